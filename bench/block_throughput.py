"""Langevin chain-steps per second, step by step against blocks replayed as CUDA graphs.

On a GPU the small energies here are launch-bound: a step of 128 digit chains is far less work than
launching its kernels. This runs the core sampler one step at a time and through
``LangevinBlock`` (K steps per graph replay), side by side in interleaved rounds, at the batch
sizes the app uses and at sizes that fill a device (the viewer can hold 100k+ 2-D chains). Where
no graph can be captured (a CPU), the block runs eagerly and the ratio shows its overhead, ≈ 1.

    python bench/block_throughput.py [--device cuda] [--rounds 5] [--block 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from ebm_studio.core.energies import ConvEnergy, MLPEnergy
from ebm_studio.core.langevin_block import LangevinBlock
from ebm_studio.core.samplers import make_sampler


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--block", type=int, default=20)
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    mlp, conv = MLPEnergy().to(dev), ConvEnergy(1, 28, 16).to(dev)
    big = dev.type == "cuda"
    cases = [("MLP", mlp, (2,), n, 0.01) for n in ((4096, 131072) if big else (4096,))]
    cases += [("ConvNet 28×28 w16", conv, (1, 28, 28), n, 1e-3) for n in ((128, 1024) if big else (128,))]
    print(f"torch {torch.__version__}, device {dev}, block of {args.block} steps")
    print(f"{'workload':28s} {'step by step':>14s} {'graphed blocks':>15s} {'ratio':>7s}")
    for name, energy, shape, n, eps in cases:
        x0 = torch.randn(n, *shape, device=dev)
        s1 = make_sampler("langevin", energy, x0, step_size=eps)
        s2 = make_sampler("langevin", energy, x0, step_size=eps)
        block = LangevinBlock(args.block)
        block.run(s2)  # capture (or fall back) outside the timing
        s1.run(args.block)
        best = [0.0, 0.0]
        for _ in range(args.rounds):
            for i, go in enumerate((lambda: s1.run(args.block), lambda: block.run(s2))):
                sync(dev)
                t0 = time.perf_counter()
                go()
                sync(dev)
                best[i] = max(best[i], n * args.block / (time.perf_counter() - t0))
        tag = "" if block.graphed else f"  (eager: {block.fallback_reason or 'no CUDA graphs here'})"
        print(f"{name + f', {n:,} chains':28s} {best[0]:14,.0f} {best[1]:15,.0f} {best[1] / best[0]:6.2f}×{tag}")


if __name__ == "__main__":
    main()
