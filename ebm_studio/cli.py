"""The ``ebm-studio`` command: no arguments opens the window; sub-commands run the core headless.

``train``, ``sample``, ``energy`` and ``info`` use exactly the engine the GUI uses. User mistakes
(a missing file, a bad value) print one line to stderr without a traceback: exit code 2 for bad
usage, 1 for failures.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Sequence

from ebm_studio import __version__, cli_image_tools, cli_quality
from ebm_studio.core.allocator import tune_allocator
from ebm_studio.core.config import PRECISIONS


from ebm_studio.cli_args import (  # noqa: F401  (the error types are part of this module's API)
    MAX_THREADS_PER_CORE,
    Failure,
    UsageError,
    _bounded_int,
    _int,
    _non_negative_float,
    _positive_float,
    _positive_int,
    load_ckpt,
    user_errors,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ebm-studio",
        description="EBM Studio: train and explore energy-based models. "
        "Without a command, opens the window.",
    )
    p.add_argument("--version", action="version", version=f"EBM Studio {__version__}")
    p.add_argument("--checkpoint", metavar="CKPT", help="open this checkpoint in the window")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train an energy model headless", description=(
        "Train an EBM by analysis by synthesis. Ctrl+C saves a resumable checkpoint and exits."))
    t.add_argument("--data", help="built-in data set (8gaussians, digits, texture:brick, ...) or a "
                   "file/folder of your own; default: the configuration's")
    t.add_argument("--config", metavar="FILE.toml", help="training configuration (TOML)")
    t.add_argument("--steps", type=_positive_int, help="number of training steps (total, when resuming)")
    t.add_argument("--seed", type=_int, help="random seed")
    t.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    t.add_argument("--lr", type=_positive_float, help="learning rate (overrides the configuration)")
    t.add_argument("--precision", choices=PRECISIONS,
                   help="what the network computes in while sampling negatives: auto (bf16 for Langevin "
                        "where the hardware has it), fp32 or bf16 (overrides the configuration)")
    t.add_argument("--method", choices=("plain", "multigrid", "drl"),
                   help="plain (one energy), multigrid (a coarse-to-fine ladder) or drl (diffusion "
                   "recovery likelihood); default: the configuration's, else plain")
    t.add_argument("--seconds", type=_positive_float, metavar="S",
                   help="stop after S seconds of training (and save), whatever --steps says")
    t.add_argument("--out", required=True, metavar="CKPT", help="checkpoint to write (.pt)")
    t.add_argument("--resume", metavar="CKPT", help="continue from this checkpoint")
    t.add_argument("--every", type=_positive_int, default=100, metavar="N",
                   help="print metrics and save the checkpoint every N steps (default 100)")
    t.add_argument("--threads", type=_bounded_int(1, MAX_THREADS_PER_CORE * (os.cpu_count() or 1), "--threads"),
                   help="CPU threads for torch (default: the cores idle at start-up)")
    t.add_argument("--compact", action="store_true",
                   help="store an image replay buffer as a uint8 subset (small files to ship)")
    t.add_argument("--quality", type=_int, default=0, metavar="N",
                   help="at the end, measure sample quality on N samples and store it in the checkpoint")

    s = sub.add_parser("sample", help="draw samples from a checkpoint",
                       description="Run MCMC chains under a checkpoint's energy and save them.")
    s.add_argument("checkpoint", metavar="CKPT")
    s.add_argument("--n", type=_bounded_int(1, 1_000_000, "--n"), default=64, help="number of chains (default 64)")
    s.add_argument("--steps", type=_positive_int, default=None,
                   help="MCMC steps (default: the checkpoint's training setting)")
    s.add_argument("--sampler", choices=("langevin", "tuned", "mala", "hmc"))
    s.add_argument("--temperature", type=_positive_float)
    s.add_argument("--step-size", type=_positive_float)
    s.add_argument("--noise", type=_non_negative_float, help="noise σ (tuned Langevin)")
    s.add_argument("--init", choices=("noise", "data", "buffer"), default="noise")
    s.add_argument("--seed", type=_int, default=0)
    s.add_argument("--device", default="auto")
    s.add_argument("--precision", choices=PRECISIONS,
                   help="what the network computes in while sampling: auto (bf16 for Langevin where "
                        "the hardware has it; the default), fp32 or bf16")
    s.add_argument("--out", required=True, metavar="FILE", help=".npz (samples + energies) or .png")
    s.add_argument("--trajectory", metavar="OUT.npz", help="also record the run to this file")
    s.add_argument("--every", type=_positive_int, default=1, metavar="K",
                   help="record every K-th step of the trajectory (default 1)")

    e = sub.add_parser("energy", help="score points or images under a checkpoint",
                       description="Evaluate E(x)/T of every input, written in input order.")
    e.add_argument("checkpoint", metavar="CKPT")
    e.add_argument("input", metavar="INPUT",
                   help=".npy/.npz/.csv of (N, 2) points, or an image file, a folder, or an image array")
    e.add_argument("--temperature", type=_positive_float, default=1.0)
    e.add_argument("--batch", type=_positive_int, default=1024)
    e.add_argument("--out", required=True, metavar="FILE.npy")

    i = sub.add_parser("info", help="describe a checkpoint")
    i.add_argument("checkpoint", metavar="CKPT")
    cli_quality.add_parser(sub)
    cli_image_tools.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tune_allocator()  # before any tensor: see core/allocator.py
    if args.command is None:
        from ebm_studio.app import run_gui

        return run_gui(args.checkpoint)
    handlers = {"train": cmd_train, "sample": cmd_sample, "energy": cmd_energy, "info": cmd_info,
                "quality": cli_quality.cmd_quality, "inpaint": cli_image_tools.cmd_inpaint,
                "translate": cli_image_tools.cmd_translate}
    try:
        return handlers[args.command](args) or 0
    except UsageError as exc:
        parser.error(str(exc))  # exits 2
    except Failure as exc:
        print(f"ebm-studio {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


def cmd_info(args) -> int:
    print(load_ckpt(args.checkpoint).summary())
    return 0


def cmd_train(args) -> int:
    import torch

    from ebm_studio.core.checkpoint import CheckpointError, compact, save_checkpoint, trainer_checkpoint
    from ebm_studio.core.fileio import check_writable
    from ebm_studio.core.config import TrainConfig, preset_for_method
    from ebm_studio.core.datasets import load_dataset
    from ebm_studio.core.training import DivergenceError, StepAborted, Trainer
    from ebm_studio.core.metrics_log import MetricsLog

    from ebm_studio.core.threads import ThreadGovernor, choose_threads

    # the cores that are idle now: OpenMP threads competing with another busy process lose badly;
    # without --threads, the count follows neighbours that start or stop later in the run too
    torch.set_num_threads(args.threads or choose_threads())
    governor = None if args.threads else ThreadGovernor(torch.set_num_threads, torch.get_num_threads())
    errors = user_errors()
    resume = load_ckpt(args.resume) if args.resume else None
    try:
        if args.config:
            config = TrainConfig.load(args.config)
        elif resume is not None and resume.config is not None:
            config = resume.train_config()
        else:
            name = args.data or "8gaussians"
            kind = load_dataset(name).kind if Path(name).exists() else None
            config = preset_for_method(args.method or "plain", name, kind)
        if args.data:
            config.data.name = args.data
        if args.method and config.method.name != args.method:
            if resume is not None:
                raise Failure(f"the checkpoint was trained with the method '{config.method.name}'; "
                              f"it cannot continue as '{args.method}' (train a new model instead)")
            config.method = preset_for_method(args.method, config.data.name, kind=None).method
        if args.seed is not None:
            config.seed = args.seed
        if args.device:
            config.device = args.device
        if args.steps:
            config.steps = args.steps
        if args.lr:
            config.optim.lr = args.lr
        if args.precision:
            config.sampler.precision = args.precision
        config.validate()
        trainer = Trainer(config)
        log = MetricsLog()
        if resume is not None:
            trainer.load_state(resume.trainer_state())
            log = MetricsLog.from_dict(resume.metrics)
    except errors as exc:
        raise Failure(str(exc)) from None

    out = Path(args.out)
    if out.suffix.lower() != ".pt":
        raise UsageError(f"--out must name a .pt checkpoint file, got {args.out!r}")

    run_report: dict = {}  # training time, machine, quality: stored in the checkpoint

    def unchanged() -> str:
        return f"Nothing was saved; {out} is unchanged." if out.exists() else "Nothing was saved."

    def save(force: bool = False) -> None:
        """Write the trainer's state, but only a verified one, and never nothing better over a file."""
        if not force and trainer.step_count <= start and out.exists():
            return  # no step of this run succeeded: the file on disk is at least as good
        try:
            trainer.verify()
        except DivergenceError as exc:  # rolled back to the last verified state, if any
            try:
                trainer.verify()  # the state it went back to must pass too
            except DivergenceError:
                raise Failure(f"{exc} No verified state is left to save. {unchanged()}") from None
            if trainer.step_count <= start and not force:
                raise Failure(f"{exc} {unchanged()}") from None
            print(f"{exc} Saving the last good state (step {trainer.step_count}).", file=sys.stderr)
        ckpt = trainer_checkpoint(trainer, log.to_dict())
        ckpt.report = dict(run_report)
        try:
            save_checkpoint(compact(ckpt) if args.compact else ckpt, out)
        except CheckpointError as exc:
            raise Failure(str(exc)) from None

    from ebm_studio.core.fileio import remove_stale_parts

    remove_stale_parts(out.parent if str(out.parent) else ".")  # left by an earlier run killed mid-save
    try:  # a run that cannot be saved must fail before it trains, not after
        check_writable(out)
    except OSError as exc:
        raise Failure(str(exc)) from None

    total = config.steps
    start = trainer.step_count
    if start >= total:
        print(f"checkpoint is already at step {start} >= --steps {total}; nothing to do")
        if not out.exists():
            save(force=True)
        return 0
    n_threads = torch.get_num_threads()
    where = f"{trainer.device}" + (f", {n_threads} thread{'s' if n_threads > 1 else ''}"
                                   if trainer.device.type == "cpu" else "")
    print(f"training {config.data.name} ({trainer.dataset.kind}, shape {trainer.dataset.event_shape}) "
          f"on {where} for {total - start} steps -> {out}", file=sys.stderr)
    t0 = time.perf_counter()
    live = sys.stderr.isatty()
    line_open = False  # a progress line without its newline yet
    with _ctrl_c() as ctrl_c:
        deadline = t0 + args.seconds if args.seconds else math.inf
        while trainer.step_count < total and not ctrl_c and time.perf_counter() < deadline:
            if governor is not None:
                governor.poll()
            try:
                m = trainer.step(should_stop=ctrl_c.__bool__)
            except StepAborted:  # Ctrl+C inside a long step: the model is as the last step left it
                break
            except DivergenceError as exc:
                if trainer.step_count <= start:
                    raise Failure(f"{exc} {unchanged()}") from None
                save()
                raise Failure(f"{exc} Saved the last good state (step {trainer.step_count}) to {out}.") from None
            log.append(m)
            done = trainer.step_count - start
            rate = done / (time.perf_counter() - t0)
            eta = (total - trainer.step_count) / rate if rate > 0 else 0
            report = trainer.step_count % args.every == 0 or trainer.step_count == total
            if live:
                _progress(trainer.step_count, total, rate, eta, m, end="\n" if report else "")
                line_open = not report
            elif report:  # a log file gets one line per report, not a carriage return per step
                _progress(trainer.step_count, total, rate, eta, m, end="\n", prefix="")
            if trainer.step_count % args.every == 0:
                save()
    interrupted = bool(ctrl_c)
    if line_open:
        print(file=sys.stderr)
    run_report.update(train_seconds=round(time.perf_counter() - t0, 1), machine=_machine(trainer.device))
    save()  # the trained model is on disk before anything else can go wrong
    if args.quality > 0 and not interrupted:
        run_report["quality"] = _measure(trainer, args.quality, args.compact)
        if run_report["quality"]:
            save(force=True)
    if interrupted:
        print(f"interrupted at step {trainer.step_count}; resumable checkpoint saved to {out} "
              f"(continue with --resume {out})", file=sys.stderr)
        return 130
    print(f"done: {trainer.step_count} steps in {time.perf_counter() - t0:.1f} s; saved {out}",
          file=sys.stderr)
    return 0


class _CtrlC:
    """True once Ctrl+C was pressed; a second press interrupts at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.pressed = False

    def __bool__(self) -> bool:
        return self.pressed

    def __call__(self, signum, frame) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True


@contextlib.contextmanager
def _ctrl_c():
    """Turn Ctrl+C into a flag that long loops poll (they finish or abandon the step, then save)."""
    flag = _CtrlC()
    old = signal.signal(signal.SIGINT, flag)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, old)


def _machine(device) -> str:
    import os
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    n = torch.get_num_threads()
    return f"{platform.machine()} CPU, {n} thread{'s' if n > 1 else ''} of {os.cpu_count()} cores"


def _measure(trainer, n: int, compacted: bool) -> dict:
    """The quality meter on a freshly trained model as it is saved (compact or not), for the report:
    re-measuring the saved file gives the same figures."""
    import torch

    from ebm_studio.core.checkpoint import expand_buffer, compact, trainer_checkpoint
    from ebm_studio.core.model import ModelState
    from ebm_studio.core.quality import measure_model

    ckpt = trainer_checkpoint(trainer)
    if compacted:
        ckpt = compact(ckpt)
        ckpt.buffer = expand_buffer(ckpt.buffer, ckpt.data)
    model = ModelState.from_checkpoint(ckpt, torch.device("cpu"))
    try:
        q = measure_model(model, n)
    except ValueError as exc:
        print(f"quality: {exc}", file=sys.stderr)
        return {}
    print("quality: " + q.format(), file=sys.stderr)
    return {"meter": q.kind, "n": q.n, **q.figures}


def _progress(step: int, total: int, rate: float, eta: float, m: dict, end: str = "",
              prefix: str = "\r") -> None:
    width = 24
    filled = int(width * step / total)
    bar = "#" * filled + "-" * (width - filled)
    sys.stderr.write(
        f"{prefix}[{bar}] {step}/{total} {rate:5.1f} it/s ETA {eta:5.0f}s  loss {m['loss']:+.4f} "
        f"E_data {m['e_data']:+.3f} E_sample {m['e_sample']:+.3f}   {end}"
    )
    sys.stderr.flush()


def _dataset_for(ckpt):
    from ebm_studio.core.datasets import load_dataset

    from ebm_studio.core.datasets import dataset_key

    d = ckpt.data
    name = dataset_key(d)
    shape = d.get("shape") or []
    size = shape[-1] if len(shape) == 3 else None
    channels = shape[0] if len(shape) == 3 else None
    if not name:
        raise Failure(f"{ckpt.path}: the checkpoint names no data set, so --init data is unavailable")
    return load_dataset(name, image_size=size, channels=channels)


def cmd_sample(args) -> int:
    import numpy as np
    import torch

    from ebm_studio.core.device import resolve_device
    from ebm_studio.core.model import ModelState

    ckpt = load_ckpt(args.checkpoint)
    out = Path(args.out)
    if out.suffix.lower() not in (".npz", ".png"):
        raise UsageError(f"--out must end in .npz or .png, got {args.out!r}")
    if args.trajectory and Path(args.trajectory).expanduser().resolve() == out.expanduser().resolve():
        raise UsageError("--trajectory and --out name the same file; the samples would be replaced")
    if args.trajectory and not args.trajectory.lower().endswith(".npz"):
        raise UsageError(f"--trajectory must end in .npz, got {args.trajectory!r}")
    if args.trajectory and not Path(args.trajectory).parent.is_dir():  # fail before sampling
        raise Failure(f"cannot write the trajectory: the folder {Path(args.trajectory).parent} "
                      "does not exist")
    errors = user_errors()
    try:
        device = resolve_device(args.device)
        model = ModelState.from_checkpoint(ckpt, device)
        shape = tuple(model.event_shape)
        lo, hi = model.value_range
        gen = torch.Generator().manual_seed(args.seed)
        if args.init == "data":
            model.set_dataset(_dataset_for(ckpt))
        elif args.init == "buffer" and model.buffer is None:
            raise Failure(f"{args.checkpoint}: the checkpoint holds no replay buffer; use --init noise or data")
        x0 = model.initial_state(args.n, args.init, gen)
        kind = args.sampler or model.sampler_defaults.get("kind", "langevin")
        steps = args.steps or model.default_steps
        sampler = model.make_sampler(
            x0, kind=kind, temperature=args.temperature, step_size=args.step_size, noise=args.noise,
            seed=args.seed, device=device, precision=args.precision,
        )
    except Failure:
        raise
    except errors as exc:
        raise Failure(str(exc)) from None

    recorder = None
    if args.trajectory:
        from ebm_studio.core.trajectory import TrajectoryRecorder

        recorder = TrajectoryRecorder(every=args.every, kind="images" if len(shape) == 3 else "points")
    live = {"sampler": kind, "temperature": sampler.temperature, "step_size": sampler.step_size,
            "noise": sampler.noise}
    t0 = time.perf_counter()
    from ebm_studio.core.samplers import Stopped

    with _ctrl_c() as ctrl_c:
        print(f"sampling {args.n} chains x {steps} {kind} steps -> {out} (Ctrl+C stops and saves)",
              file=sys.stderr, flush=True)
        sampler.should_stop = ctrl_c.__bool__
        try:
            _run_sampler(sampler, steps, recorder, live, ctrl_c)
        except Stopped:  # Ctrl+C inside one long step: the chains stay at the last whole step
            pass
        except FloatingPointError as exc:
            raise Failure(f"sampling failed: {exc}") from None
    x = sampler.x.cpu().numpy()
    e = sampler.current_energy().cpu().numpy()
    acc = sampler.mean_accept_rate
    try:
        if out.suffix.lower() == ".npz":
            from ebm_studio.core.fileio import atomic_path

            key = "images" if len(shape) == 3 else "points"
            with atomic_path(out) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez_compressed(fh, **{key: x, "energies": e})
        else:
            _save_png(x, out, (lo, hi))
        if recorder is not None:
            recorder.save_npz(args.trajectory)
    except OSError as exc:
        raise Failure(f"cannot write output: {exc}") from None
    dt = time.perf_counter() - t0
    done = sampler.steps_done
    msg = f"{args.n} chains x {done} {kind} steps in {dt:.1f} s -> {out}"
    if ctrl_c:
        msg = f"interrupted at step {done} of {steps}; " + msg
    if acc is not None:
        msg += f" (acceptance {acc:.2f})"
    if args.trajectory:
        msg += f"; trajectory ({len(recorder)} steps) -> {args.trajectory}"
    print(msg, file=sys.stderr)
    print(f"energy: min {e.min():.4g}  median {np.median(e):.4g}  max {e.max():.4g}")
    return 130 if ctrl_c else 0


def _run_sampler(sampler, steps: int, recorder, live: dict, stop) -> None:
    """Advance ``steps`` steps (fewer once ``stop`` is true), recording what ``recorder`` wants.

    One step at a time, whatever the device: a run with a trajectory and one without must give
    the same chains for a seed (``Sampler.run``'s graphed blocks on a GPU draw another stream)."""
    if recorder is not None:
        e0 = sampler.current_energy().cpu().numpy()  # cached: the first step needs it anyway
        recorder.record(0, sampler.x.cpu().numpy(), e0, settings=live)
    for _ in range(steps):
        if stop:
            return
        r = sampler.step()
        if recorder is not None:
            if recorder.wants(r.step):
                recorder.record(r.step, r.x.cpu().numpy(), r.energy.cpu().numpy(),
                                accept=r.accept_rate, settings=live)
            else:
                recorder.note_settings(r.step, live)


def _save_png(x, out: Path, box) -> None:
    from PIL import Image

    from ebm_studio.core.export import render_points
    from ebm_studio.core.fileio import atomic_path
    from ebm_studio.core.imaging import image_grid

    if x.ndim == 4:
        img = image_grid(x)
        img = img[..., 0] if img.shape[-1] == 1 else img
    else:
        img = render_points(x, xlim=tuple(box), ylim=tuple(box), size=512)
    with atomic_path(out) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")


def cmd_energy(args) -> int:
    import numpy as np
    import torch

    from ebm_studio.core.scoring import load_inputs

    ckpt = load_ckpt(args.checkpoint)
    out = Path(args.out)
    if out.suffix.lower() != ".npy":
        raise UsageError(f"--out must end in .npy, got {args.out!r}")
    if out.exists() and out.resolve() == Path(args.input).expanduser().resolve():
        raise UsageError("--out names the input file; choose another name so the input is kept")
    errors = user_errors()
    try:
        energy = ckpt.build_energy("cpu")
        x = load_inputs(args.input, tuple(energy.event_shape))
        ref = ckpt.sampler.get("ref_sigma")
        values = []
        with torch.no_grad():
            for chunk in torch.split(x, args.batch):
                e = energy(chunk)
                if ref:
                    e = e + (chunk.flatten(1) ** 2).sum(-1) / (2 * ref**2)
                values.append(e / args.temperature)
        energies = torch.cat(values).double().numpy()
        bad = int((~np.isfinite(energies)).sum())
        if bad:
            raise Failure(f"the model gives NaN or infinite energies for {bad} of {len(energies)} inputs "
                          f"(its weights may have diverged; see ebm-studio info); {out} was not written")
        from ebm_studio.core.fileio import atomic_path

        with atomic_path(out) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, energies)
    except errors as exc:
        raise Failure(str(exc)) from None
    print(f"{len(energies)} inputs: min {energies.min():.4g}  median {np.median(energies):.4g}  "
          f"max {energies.max():.4g}  (E/T at T={args.temperature:g}) -> {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
