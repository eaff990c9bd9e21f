"""Chain-steps per second: this core's Langevin vs a loop written as tutorials write it.

The tutorial loop keeps the parameters requiring grad, calls ``energy.sum().backward()``, reads
``x.grad`` and zeroes gradients; the core takes ``torch.autograd.grad`` on the input only with the
parameters frozen and reuses ∇E from the previous step. Both run side by side in one process,
alternating, and the best of several repeats is reported, so the ratio is robust to machine load.
A last line compares the ConvNet's space-to-depth stem with the plain strided conv it replaces,
both under the core's Langevin.

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


class PlainStemConv(ConvEnergy):
    """The same ConvNet with the stem run as the plain 5×5 stride-2 conv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.features(x)).squeeze(-1)


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
        compare(name, (core_langevin, energy), (naive_langevin, energy), x, steps, eps, args.repeats)
    conv = cases[0][1]
    plain = PlainStemConv(1, 28, 16).to(dev)
    plain.load_state_dict(conv.state_dict())
    print(f"{'':36s} {'space-to-depth stem':>20s} {'strided stem':>20s}")
    compare("ConvNet stem, core Langevin", (core_langevin, conv), (core_langevin, plain), cases[0][2],
            20, 1e-3, args.repeats)


def compare(name: str, a, b, x, steps: int, eps: float, repeats: int) -> None:
    """Best-of-``repeats`` chain-steps/s of two (loop, energy) pairs, alternating, and their ratio."""
    for fn, energy in (a, b):
        fn(energy, x, 2, eps)  # warm-up (allocations, oneDNN kernels)
    best_a = best_b = 0.0
    for _ in range(repeats):
        best_a = max(best_a, measure(a[0], a[1], x, steps, eps))
        best_b = max(best_b, measure(b[0], b[1], x, steps, eps))
    print(f"{name:36s} {best_a:20,.0f} {best_b:20,.0f} {best_a / best_b:6.2f}x")


if __name__ == "__main__":
    main()
