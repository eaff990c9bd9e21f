"""``ebm-studio inpaint`` and ``ebm-studio translate``: the image tools, headless.

Both run the model's own sampler (the settings it was trained with, unless overridden) through the
same core functions as the app. ``--image`` takes a picture file or ``heldout:K``, the K-th
held-out item of the model's data set.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from ebm_studio.cli_args import (
    Failure,
    UsageError,
    _bounded_int,
    _int,
    _non_negative_float,
    _positive_float,
    _positive_int,
)

MAX_PROPOSALS = 256
MAX_STEPS = 1_000_000


def _add_common(p) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="an image model (.pt)")
    p.add_argument("--n", type=_positive_int, default=4, help="number of proposals (default 4)")
    p.add_argument("--steps", type=_int, default=None, help="Langevin steps (default: as trained)")
    p.add_argument("--temperature", type=_positive_float)
    p.add_argument("--step-size", type=_positive_float)
    p.add_argument("--noise", type=_non_negative_float, help="noise σ (tuned Langevin)")
    p.add_argument("--seed", type=_bounded_int(0, 2**63 - 1, "--seed"), default=0)


def add_parsers(sub) -> None:
    p = sub.add_parser("inpaint", help="fill in the masked part of an image",
                       description="Masked Langevin: the pixels under the mask (white = fill in) "
                                   "are sampled under the model; the others stay exactly as given.")
    _add_common(p)
    p.add_argument("--image", required=True, help="picture file, or heldout:K for a held-out item")
    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument("--mask", metavar="MASK.png", help="mask picture: white = fill in")
    m.add_argument("--mask-preset", choices=("lower-half", "upper-half", "left-half", "right-half",
                                             "centre-square", "random"))
    p.add_argument("--fraction", type=_non_negative_float, default=0.5,
                   help="share of pixels for --mask-preset random (default 0.5)")
    p.add_argument("--fill", choices=("noise", "blur", "mean"), default="noise",
                   help="initial guess of the masked pixels (default noise)")
    p.add_argument("--out", required=True, metavar="OUT", help=".png (image, proposals) or .npz")

    t = sub.add_parser("translate", help="carry images towards a target model's domain",
                       description="Langevin under the target model, started at the source image: "
                                   "the number of steps, step size and noise set how far it travels.")
    _add_common(t)
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="picture file, or heldout:K for a held-out item")
    src.add_argument("--folder", help="translate every picture in this folder")
    t.add_argument("--out", metavar="OUT", help=".png (source, results) or .npz (with --image)")
    t.add_argument("--out-dir", metavar="DIR", help="output folder (with --folder)")
    t.add_argument("--trajectory", metavar="T.npz", help="record the run (with --image)")
    t.add_argument("--every", type=_positive_int, default=1, help="record every K-th step")


# --------------------------------------------------------------------------------------------


def _model(path: str):
    import torch

    from ebm_studio.cli_args import load_ckpt
    from ebm_studio.core.image_tools import ImageInputError, check_image_model
    from ebm_studio.core.model import ModelState

    model = ModelState.from_checkpoint(load_ckpt(path), torch.device("cpu"))
    try:
        check_image_model(model)
    except ImageInputError as exc:
        raise Failure(str(exc)) from None
    return model


def _steps(args, model) -> int:
    steps = model.default_steps if args.steps is None else args.steps
    if not 0 <= steps <= MAX_STEPS:
        raise UsageError(f"--steps must lie in 0..{MAX_STEPS}, got {steps}")
    if args.n > MAX_PROPOSALS:
        raise UsageError(f"--n must be at most {MAX_PROPOSALS}, got {args.n}")
    return steps


def _source(spec: str, model):
    """The image named by ``--image`` as (C, H, W) in [-1, 1], with the conversion notes."""
    from ebm_studio.core.image_tools import data_background, fit_image, read_image_file

    if spec.startswith("heldout:"):
        try:
            k = int(spec.split(":", 1)[1])
        except ValueError:
            raise UsageError(f"--image heldout:K needs a whole number K, got {spec!r}") from None
        if k < 0:
            raise UsageError(f"--image heldout:K needs K = 0 or more, got {spec!r}")
        held = model.dataset().heldout(k + 1)
        if not 0 <= k < len(held):
            raise Failure(f"the data set has {len(held)} held-out items; {spec} does not exist")
        return held[k], []
    return fit_image(read_image_file(spec), model.event_shape, data_background(model.data_desc))


def _sampler(model, x0, args, mask=None):
    return model.make_sampler(x0, temperature=args.temperature, step_size=args.step_size,
                              noise=args.noise, seed=args.seed, mask=mask)


def _check_out(out: str | None, suffixes: tuple[str, ...], flag: str = "--out") -> Path:
    if not out:
        raise UsageError(f"{flag} is required")
    p = Path(out)
    if p.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} must end in {' or '.join(suffixes)}, got {out!r}")
    if not p.parent.is_dir():
        raise Failure(f"cannot write {p}: the folder {p.parent} does not exist")
    return p


def _errors():
    from ebm_studio.cli_args import user_errors

    return user_errors()


# --------------------------------------------------------------------------------------------


def cmd_inpaint(args: argparse.Namespace) -> int:
    from ebm_studio.core.image_tools import (
        inpaint_start,
        mask_preset,
        masked_view,
        read_mask_file,
        run_sampler,
        save_arrays,
        save_image_rows,
    )

    out = _check_out(args.out, (".png", ".npz"))
    model = _model(args.checkpoint)
    steps = _steps(args, model)
    size = model.event_shape[-1]
    try:
        image, notes = _source(args.image, model)
        if args.mask:
            mask = read_mask_file(args.mask, size)
        else:
            mask = mask_preset(args.mask_preset, size, args.fraction, args.seed)
        from ebm_studio.core.image_tools import check_mask

        warning = check_mask(mask, (size, size))
        x0, free = inpaint_start(model, image, mask, args.n, args.fill, args.seed)
        sampler = _sampler(model, x0, args, mask=free)
        t0 = time.perf_counter()
        trace = run_sampler(sampler, steps)
        x = sampler.x.detach().cpu().numpy()
        e = sampler.current_energy().cpu().numpy()
    except FloatingPointError as exc:
        raise Failure(f"sampling failed: {exc}") from None
    except _errors() as exc:
        raise Failure(str(exc)) from None
    for note in [*notes, warning]:
        if note:
            print(f"note: {note}", file=sys.stderr)
    img = image.numpy()
    try:
        if out.suffix.lower() == ".npz":
            # the mean of the proposals estimates the posterior mean: the fill with the least error
            save_arrays(out, image=img, mask=mask, proposals=x, energies=e, energy_trace=np.array(trace),
                        mean=x.mean(0))
        else:
            save_image_rows([np.concatenate([masked_view(img, mask)[None], x])], out)
    except OSError as exc:
        raise Failure(f"cannot write output: {exc}") from None
    print(f"{args.n} proposals x {steps} steps in {time.perf_counter() - t0:.1f} s -> {out}", file=sys.stderr)
    print("energy: " + "  ".join(f"{v:.4g}" for v in e))
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    if args.folder:
        return _translate_folder(args)
    if args.out_dir:
        raise UsageError("--out-dir goes with --folder; use --out with --image")
    out = _check_out(args.out, (".png", ".npz"))
    traj = _check_out(args.trajectory, (".npz",), "--trajectory") if args.trajectory else None
    if traj is not None and traj.resolve() == out.resolve():
        raise UsageError("--trajectory and --out name the same file")
    model = _model(args.checkpoint)
    steps = _steps(args, model)
    try:
        source, notes = _source(args.image, model)
        result = _translate_one(model, source, steps, args, record=traj is not None)
    except FloatingPointError as exc:
        raise Failure(f"sampling failed: {exc}") from None
    except _errors() as exc:
        raise Failure(str(exc)) from None
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    x, e, recorder, dist = result
    from ebm_studio.core.image_tools import save_arrays, save_image_rows

    try:
        if out.suffix.lower() == ".npz":
            save_arrays(out, source=source.numpy(), results=x, energies=e, distance=dist)
        else:
            save_image_rows([np.concatenate([source.numpy()[None], x])], out)
        if recorder is not None:
            recorder.save_npz(traj)
    except OSError as exc:
        raise Failure(f"cannot write output: {exc}") from None
    print(f"{args.n} results x {steps} steps -> {out}" + (f"; trajectory -> {traj}" if traj else ""),
          file=sys.stderr)
    print("energy: " + "  ".join(f"{v:.4g}" for v in e))
    print("RMS distance from the source: " + "  ".join(f"{v:.3f}" for v in dist))
    return 0


def _translate_one(model, source, steps: int, args, record: bool = False):
    """(results, energies, recorder or None, RMS distance per result) of one source image."""
    from ebm_studio.core.image_tools import run_sampler

    x0 = source.unsqueeze(0).repeat(args.n, 1, 1, 1)
    sampler = _sampler(model, x0, args)
    recorder = None
    on_step = None
    if record:
        from ebm_studio.core.trajectory import TrajectoryRecorder

        recorder = TrajectoryRecorder(every=args.every, kind="images")
        live = {"sampler": sampler.kind, "temperature": sampler.temperature,
                "step_size": sampler.step_size, "noise": sampler.noise}

        def on_step(k, x, e):
            if recorder.wants(k):
                recorder.record(k, x.detach().cpu().numpy(), e.detach().cpu().numpy(), settings=live)

    run_sampler(sampler, steps, on_step=on_step)
    x = sampler.x.detach().cpu().numpy()
    e = sampler.current_energy().cpu().numpy()
    dist = np.sqrt(((x - source.numpy()[None]) ** 2).reshape(len(x), -1).mean(1))
    return x, e, recorder, dist


def _translate_folder(args: argparse.Namespace) -> int:
    from ebm_studio.core.image_tools import (
        PICTURE_SUFFIXES,
        data_background,
        fit_image,
        read_image_file,
        save_image_rows,
    )

    if args.out or args.trajectory:
        raise UsageError("with --folder, name an output folder with --out-dir (not --out/--trajectory)")
    if not args.out_dir:
        raise UsageError("--folder needs --out-dir")
    folder, out_dir = Path(args.folder), Path(args.out_dir)
    if not folder.is_dir():
        raise Failure(f"{folder}: no such folder")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise Failure(f"{folder}: holds no pictures ({', '.join(PICTURE_SUFFIXES)})")
    model = _model(args.checkpoint)
    steps = _steps(args, model)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Failure(f"cannot create {out_dir}: {exc}") from None
    from ebm_studio.core.masks import output_names

    names = output_names(files)
    done, skipped = 0, []
    for i, path in enumerate(files, 1):
        try:
            source, _ = fit_image(read_image_file(path), model.event_shape, data_background(model.data_desc))
            x, _, _, _ = _translate_one(model, source, steps, args)
            save_image_rows([np.concatenate([source.numpy()[None], x])], out_dir / names[path])
            done += 1
        except FloatingPointError as exc:
            skipped.append(f"{path.name}: sampling failed ({exc})")
        except _errors() as exc:
            skipped.append(f"{path.name}: {exc}")
        print(f"[{i}/{len(files)}] {path.name}", file=sys.stderr)
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)
    print(f"translated {done} of {len(files)} pictures into {out_dir}", file=sys.stderr)
    if done == 0:
        raise Failure("no picture could be translated")
    return 0
