"""Chain-steps per second: this core's Langevin vs a loop written as tutorials write it.

The tutorial loop keeps the parameters requiring grad, calls ``energy.sum().backward()``, reads
``x.grad`` and zeroes gradients; the core takes ``torch.autograd.grad`` on the input only with the
parameters frozen and reuses ∇E from the previous step. Both run side by side in one process,
alternating, and the best of several repeats is reported, so the ratio is robust to machine load.

    python bench/sampler_throughput.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from ebm_studio.core.energies import ConvEnergy, MLPEnergy
from ebm_studio.core.samplers import make_sampler


def naive_langevin(energy, x, steps: int, eps: float) -> torch.Tensor:
    """The tutorial habit: weight gradients computed and zeroed at every step."""
    x = x.clone().requires_grad_(True)
    for _ in range(steps):
        energy.zero_grad(set_to_none=False)
        if x.grad is not None:
            x.grad.zero_()
        e = energy(x)
        e.sum().backward()
        with torch.no_grad():
            x -= 0.5 * eps * x.grad
            x += math.sqrt(eps) * torch.randn_like(x)
    return x.detach()


def core_langevin(energy, x, steps: int, eps: float) -> torch.Tensor:
    s = make_sampler("langevin", energy, x, step_size=eps, seed=0)
    return s.run(steps).x


def measure(fn, energy, x, steps, eps) -> float:
    t0 = time.perf_counter()
    fn(energy, x, steps, eps)
    return x.shape[0] * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    cases = [
        ("ConvNet 1x28x28, batch 128", ConvEnergy(1, 28, 16).to(dev), torch.rand(128, 1, 28, 28, device=dev) * 2 - 1, 20, 1e-3),
        ("MLP 2-128-128-128-1, batch 4096", MLPEnergy(2, (128, 128, 128)).to(dev), torch.randn(4096, 2, device=dev), 50, 1e-3),
    ]
    print(f"torch {torch.__version__}, {args.threads} threads, device {dev}; best of {args.repeats}")
    print(f"{'case':36s} {'core chain-steps/s':>20s} {'naive chain-steps/s':>20s} {'ratio':>7s}")
    for name, energy, x, steps, eps in cases:
        core_langevin(energy, x, 2, eps)  # warm-up (allocations, oneDNN kernels)
        naive_langevin(energy, x, 2, eps)
        best_core = best_naive = 0.0
        for _ in range(args.repeats):
            best_core = max(best_core, measure(core_langevin, energy, x, steps, eps))
            best_naive = max(best_naive, measure(naive_langevin, energy, x, steps, eps))
        print(f"{name:36s} {best_core:20,.0f} {best_naive:20,.0f} {best_core / best_naive:6.2f}x")


if __name__ == "__main__":
    main()
