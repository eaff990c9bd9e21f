"""Langevin chain-steps per second: this core against the peer libraries, on the same energy modules.

Two workloads: the project's MLPEnergy 2-128-128-128-1 at 4,096 chains and its ConvEnergy 28×28
width 16 at 128 chains. Each implementation runs unadjusted Langevin x ← x − (ε/2)∇E + √ε ξ on the
*same* module:

- ``this core``: ``make_sampler("langevin", energy, x0, step_size=ε).run(n)``, the default path
  (E and ∇E in closed form, without autograd, see ``energies.py`` and ``conv_grad.py``; bf16 inside
  the network where the CPU has native bf16, see ``core/precision.py``);
- ``this core, fp32``: the same with ``precision="fp32"``;
- ``plain frozen loop``: parameters frozen, ``torch.autograd.grad`` on x, written out by hand;
- ``ebmkit`` and ``torchebm``: their Langevin samplers, parameters mapped to the same update.

Two tables per workload. *As each is used*: every implementation in a fresh process of its own,
set up as its users get it (this core as the app and the CLI start it, which keeps glibc from
unmapping and re-faulting each step's tensors, see ``core/allocator.py``; the peers in a plain
Python process), with the minor page faults per step beside the rate. *One process, allocator
tuned for all*: the implementations interleaved in one process that has that allocator setting,
which compares the sampling loops alone. Rounds alternate in a rotating order and the best counts,
so a busy machine slows all alike. The ratio is to the best *peer* (ebmkit, torchebm). ``--engine`` adds this core as the app runs it: a viewer job in the engine's
thread, headless, recording every step, with the app's thread policy (the idle cores but one, kept
for the window: one thread on 2 cores). An accuracy table follows: on an MLP fitted to a correlated Gaussian energy,
every implementation's samples are compared in mean and covariance with that MLP's exact density
(quadrature on a grid), in units of the Monte Carlo standard error; a faster path must not be a
wrong one. On the ConvNet, the mean energy after the timed steps is printed for each.

The peers are installed for the bench only: ``pip install '.[bench]'``.

    python bench/peers.py [--rounds 7] [--repeats 3] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ebm_studio.core.allocator import tune_allocator
from ebm_studio.core.energies import ConvEnergy, MLPEnergy
from ebm_studio.core.samplers import frozen, make_sampler

Runner = Callable[[torch.nn.Module, torch.Tensor, int, float], torch.Tensor]


# --- the implementations -------------------------------------------------------------------------
def core(precision: str) -> Runner:
    def run(energy, x, steps, eps):
        s = make_sampler("langevin", energy, x, step_size=eps, seed=int(torch.randint(1 << 30, ())),
                         precision=precision)
        return s.run(steps).x
    return run


def plain_frozen_loop(energy, x, steps, eps):
    """What a careful user writes: parameters frozen, the input gradient only."""
    with frozen(energy):
        for _ in range(steps):
            x = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(energy(x).sum(), x)
            x = x.detach() - 0.5 * eps * g + math.sqrt(eps) * torch.randn_like(x)
    return x.detach()


def ebmkit_runner() -> Runner | None:
    try:
        from ebm.samplers import LangevinDynamics
    except ImportError:
        return None

    def run(energy, x, steps, eps):
        # ebmkit: x − ε'∇E + σξ; ε' = ε/2 and σ = √ε give the same update
        return LangevinDynamics(step_size=eps / 2, steps=steps, noise_scale=math.sqrt(eps)).sample(energy, x)
    return run


def torchebm_runner() -> Runner | None:
    try:
        from torchebm.core import BaseModel
        from torchebm.samplers import LangevinDynamics
    except ImportError:
        return None

    class Wrapped(BaseModel):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x)

    wrapped: dict[int, BaseModel] = {}

    def run(energy, x, steps, eps):
        model = wrapped.setdefault(id(energy), Wrapped(energy))
        # torchebm: x − η∇E + √(2η)·s·ξ; η = ε/2 and s = 1 give the same update
        sampler = LangevinDynamics(model, step_size=eps / 2, noise_scale=1.0, device=x.device)
        if x.is_cuda:  # its own mixed precision (CUDA only), as this core's bf16 there
            sampler.setup_mixed_precision(True, torch.bfloat16)
        return sampler.sample(x=x, n_steps=steps)
    return run


def implementations() -> dict[str, tuple[Runner | None, bool]]:
    """name → (runner or None when not installed, is a peer)."""
    return {
        "this core": (core("auto"), False),
        "this core, fp32": (core("fp32"), False),
        "plain frozen loop": (plain_frozen_loop, False),
        "ebmkit 0.16": (ebmkit_runner(), True),
        "torchebm 0.8.9": (torchebm_runner(), True),
    }


# --- throughput ----------------------------------------------------------------------------------
def throughput(impls, energy, x, steps: int, eps: float, rounds: int) -> dict:
    """Best chain-steps/s of each implementation over interleaved rounds."""
    names = [n for n, (run, _) in impls.items() if run is not None]
    best = dict.fromkeys(names, 0.0)
    for name in names:  # warm-up: first calls allocate and pick kernels
        impls[name][0](energy, x, 2, eps)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            out = impls[name][0](energy, x, steps, eps)
            if out.is_cuda:
                torch.cuda.synchronize()
            best[name] = max(best[name], x.shape[0] * steps / (time.perf_counter() - t0))
    return best


def print_table(title: str, best: dict, peers: set[str], faults: dict | None = None) -> None:
    top_peer = max((v for n, v in best.items() if n in peers), default=None)
    print(f"\n{title}")
    print(f"  {'implementation':22s} {'chain-steps/s':>14s} {'× best peer':>12s}"
          + (f" {'faults/step':>12s}" if faults else ""))
    for name, v in best.items():
        ratio = f"{v / top_peer:11.2f}×" if top_peer else "           -"
        fault = "" if not faults else ("           -" if math.isnan(faults[name]) else f" {faults[name]:12,.0f}")
        print(f"  {name:22s} {v:14,.0f} {ratio}" + fault)


# --- accuracy on a Gaussian ----------------------------------------------------------------------
MEAN = torch.tensor([0.5, -0.3])
COV = torch.tensor([[1.0, 0.6], [0.6, 0.8]])


def fitted_gaussian_mlp(device: torch.device) -> MLPEnergy:
    """The bench's MLP fitted to E(x) = ½(x − μ)ᵀΣ⁻¹(x − μ), so its density is nearly that Gaussian."""
    torch.manual_seed(0)
    mlp = MLPEnergy().to(device)
    prec = torch.linalg.inv(COV).to(device)
    opt = torch.optim.Adam(mlp.parameters(), lr=3e-3)
    for _ in range(1500):
        x = torch.randn(1024, 2, device=device) * 2.5 + MEAN.to(device)
        d = x - MEAN.to(device)
        target = 0.5 * ((d @ prec) * d).sum(-1)
        loss = ((mlp(x) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mlp


def exact_moments(energy: MLPEnergy, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of exp(−E) by quadrature on a fine grid."""
    g = torch.linspace(-7, 7, 561, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.ravel(), yy.ravel()], 1)
    with torch.no_grad():
        e = torch.cat([energy(p.float().to(device)).double().cpu() for p in pts.split(65536)])
    w = torch.softmax(-e, 0)
    mean = (w[:, None] * pts).sum(0)
    d = pts - mean
    cov = (w[:, None, None] * d[:, :, None] * d[:, None, :]).sum(0)
    return mean.numpy(), cov.numpy()


def accuracy(impls, device: torch.device, chains: int = 4096, repeats: int = 4) -> None:
    mlp = fitted_gaussian_mlp(device)
    mean_t, cov_t = exact_moments(mlp, device)
    eps, steps = 0.005, 400
    print(f"\nAccuracy: MLP fitted to a Gaussian, {chains * repeats:,} chains × {steps} steps of ε = {eps} "
          "from that Gaussian;\n  error against the exact moments of the MLP's density, in Monte Carlo "
          "standard errors")
    print(f"  {'implementation':22s} {'mean error':>12s} {'cov error':>12s}  (|err|/SE, worst entry)")
    for name, (run, _) in impls.items():
        if run is None:
            print(f"  {name:22s} not installed (pip install '.[bench]')")
            continue
        torch.manual_seed(1)
        x0 = (torch.randn(chains * repeats, 2) @ torch.linalg.cholesky(COV).T + MEAN).to(device)
        xs = torch.cat([run(mlp, x, steps, eps) for x in x0.split(chains)]).double().cpu().numpy()
        n = xs.shape[0]
        mean = xs.mean(0)
        cov = np.cov(xs.T)
        se_mean = np.sqrt(np.diag(cov_t) / n)
        # SE of a covariance entry for Gaussian data: √((σ_ij² + σ_ii σ_jj)/n)
        se_cov = np.sqrt((cov_t**2 + np.outer(np.diag(cov_t), np.diag(cov_t))) / n)
        print(f"  {name:22s} {np.max(np.abs(mean - mean_t) / se_mean):12.2f} "
              f"{np.max(np.abs(cov - cov_t) / se_cov):12.2f}")
    print("  (ULA's own bias at this ε, about ε·λ/4 of a variance, is 0.1–0.4 SE here)")


WORKLOADS = {
    "mlp": ("MLP 2-128-128-128-1, 4,096 chains", 200, 0.01),
    "conv": ("ConvNet 28×28 width 16, 128 chains", 60, 1e-3),
}


def workload(name: str, dev: torch.device) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if name == "mlp":
        return MLPEnergy().to(dev), torch.randn(4096, 2, device=dev)
    return ConvEnergy(1, 28, 16).to(dev), torch.rand(128, 1, 28, 28, device=dev) * 2 - 1


ENGINE = "this core, app engine"


def engine_child(args) -> None:
    """This core as the app runs it: a viewer job in the engine's thread (headless), recording
    every step as the Live tab does, torch's threads set as the app sets them; the rate is read
    from the steps its frames report."""
    import tempfile

    from PySide6.QtCore import QCoreApplication

    from ebm_studio.core.checkpoint import energy_checkpoint, save_checkpoint
    from ebm_studio.worker.api import OpenCheckpoint
    from ebm_studio.worker.requests import JobRequest
    from ebm_studio.worker.thread import EngineHost

    from ebm_studio.app import _leave_a_core_for_the_gui
    from ebm_studio.core.threads import keep_engine_threads

    tune_allocator()
    _leave_a_core_for_the_gui()  # as the app starts: threads and their governor
    if args.threads:
        keep_engine_threads(args.threads)
    app = QCoreApplication.instance() or QCoreApplication([])
    energy, x = workload(args.workload, torch.device(args.device))
    _, _, eps = WORKLOADS[args.workload]
    images = x.ndim == 4
    data = {"name": "bench", "kind": "images" if images else "points",
            "value_range": [-1, 1] if images else [-4, 4]}
    path = save_checkpoint(energy_checkpoint(energy, data=data, sampler={"kind": "langevin", "step_size": eps}),
                           Path(tempfile.mkdtemp()) / "bench.pt")
    host = EngineHost(args.device)
    seen: list[tuple[float, int]] = []

    def take(slot: str) -> None:
        f = host.take_frame(slot)
        if f is not None and slot == "viewer":
            seen.append((time.perf_counter(), f.step))

    host.engine.frame_ready.connect(take)
    host.start()

    def spin(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)

    host.send(OpenCheckpoint(str(path)))
    spin(1.0)
    host.update_live(sampler="langevin", step_size=eps, steps_per_frame=10**6)
    host.run(JobRequest("sample", {"n_chains": x.shape[0], "init": "noise"}, seed=0))
    spin(2.0)  # warm-up
    best = 0.0
    for _ in range(args.rounds):
        start = len(seen)
        spin(1.0)
        window = seen[start:]
        if len(window) >= 2:
            (t0, s0), (t1, s1) = window[0], window[-1]
            best = max(best, x.shape[0] * (s1 - s0) / (t1 - t0))
    host.shutdown(3000)
    print(json.dumps({"rate": best, "faults": float("nan")}))


def child(args) -> None:
    """One implementation on one workload in this fresh process: print best rate and faults/step."""
    if args.child == ENGINE:
        engine_child(args)
        return
    if args.child.startswith("this core"):
        tune_allocator()  # as ``ebm-studio`` and the app start
    dev = torch.device(args.device)
    energy, x = workload(args.workload, dev)
    _, steps, eps = WORKLOADS[args.workload]
    run = implementations()[args.child][0]
    run(energy, x, 2, eps)
    best, faults = 0.0, 0
    for _ in range(args.rounds):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        out = run(energy, x, steps, eps)
        if out.is_cuda:
            torch.cuda.synchronize()
        best = max(best, x.shape[0] * steps / (time.perf_counter() - t0))
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    print(json.dumps({"rate": best, "faults": faults / (args.rounds * steps)}))


def as_used(names: list[str], which: str, args) -> dict[str, tuple[float, float]]:
    """Best rate and its page faults per step of each implementation, each in fresh processes."""
    best: dict[str, tuple[float, float]] = {}
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            cmd = [sys.executable, __file__, "--child", name, "--workload", which, "--rounds",
                   str(args.rounds), "--device", args.device]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            if out["rate"] > best.get(name, (0.0, 0.0))[0]:
                best[name] = (out["rate"], out["faults"])
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per implementation")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--engine", action="store_true",
                    help="also run this core inside the app's engine (a headless viewer job; needs PySide6)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--workload", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        child(args)
        return
    dev = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}")
    impls = implementations()
    names = [n for n, (run, _) in impls.items() if run is not None]
    peers = {n for n, (run, peer) in impls.items() if peer and run is not None}
    missing = [n for n, (run, _) in impls.items() if run is None]
    if missing:
        print(f"not installed: {', '.join(missing)} (pip install '.[bench]')")
    for which, (title, steps, eps) in WORKLOADS.items():
        used = as_used(names + ([ENGINE] if args.engine else []), which, args)
        print_table(f"{title} — as each is used (own process; page faults per step)",
                    {n: v[0] for n, v in used.items()}, peers, {n: v[1] for n, v in used.items()})
    tune_allocator()
    for which, (title, steps, eps) in WORKLOADS.items():
        energy, x = workload(which, dev)
        print_table(f"{title} — one process, allocator tuned for all",
                    throughput(impls, energy, x, steps, eps, args.rounds), peers)
    if not args.no_accuracy:
        accuracy(impls, dev)


if __name__ == "__main__":
    main()
