"""What the presets deliver: wall time and quality of each 2-D toy preset, and of digits after a
time budget.

2-D: mode shares of the persistent chains (mixtures) and the held-out NLL gap to the true density
(where it is exact), with Z by 256² grid quadrature. Digits: the share of held-out digits whose
energy is below every uniform-noise image, the energy gap, and a PNG of replay-buffer samples.

    python bench/preset_quality.py [--toys 8gaussians,grid25] [--digits-minutes 5] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ebm_studio.core.chains import noise
from ebm_studio.core.config import preset_2d, preset_digits
from ebm_studio.core.datasets import TOY_NAMES, toy
from ebm_studio.core.imaging import image_grid
from ebm_studio.core.landscape import Grid, evaluate_energy, log_z, nll
from ebm_studio.core.training import Trainer


def toy_quality(name: str, steps: int | None) -> str:
    cfg = preset_2d(name)
    cfg.device = "cpu"
    if steps:
        cfg.steps = steps
    trainer = Trainer(cfg)
    t0 = time.perf_counter()
    for _ in range(cfg.steps):
        trainer.step()
    wall = time.perf_counter() - t0
    ds = toy(name)
    parts = [f"{name:13s} {cfg.steps:5d} steps {wall:6.1f} s"]
    if ds.modes is not None:
        modes = torch.tensor(np.asarray(ds.modes), dtype=torch.float32)
        share = torch.bincount(torch.cdist(trainer.buffer.data, modes).argmin(1), minlength=len(modes))
        share = share.double() / len(trainer.buffer.data)
        parts.append(f"mode shares {share.min():.3f}..{share.max():.3f} (ideal {1 / len(modes):.3f})")
    if ds.has_log_prob:
        grid = Grid(ds.value_range, ds.value_range, 256)
        lz = log_z(evaluate_energy(trainer.model, grid), grid)
        held = ds.heldout(4000)
        gap = nll(trainer.model, held, lz) - float(-ds.log_prob(held).double().mean())
        parts.append(f"NLL gap {gap:+.3f} nats")
    return "  ".join(parts)


def digits_quality(minutes: float, out: Path) -> str:
    cfg = preset_digits()
    cfg.device = "cpu"
    trainer = Trainer(cfg)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < minutes * 60:
        m = trainer.step()
    wall = time.perf_counter() - t0
    held = trainer.dataset.heldout(500)
    e_digits = trainer.model_energy(held)
    e_noise = trainer.model_energy(noise(500, (1, 28, 28), generator=torch.Generator().manual_seed(1)))
    frac = float((e_digits < e_noise.min()).float().mean())
    grid = image_grid(trainer.buffer.data[:64].numpy())
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"digits_{trainer.step_count}steps.png"
    Image.fromarray(grid[..., 0]).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(png)
    return (f"digits        {trainer.step_count:5d} steps {wall:6.1f} s  held-out digits below all noise "
            f"{frac:.1%}  E gap (samples − data) {m['gap']:+.3f}  buffer samples -> {png}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--toys", default=",".join(TOY_NAMES))
    ap.add_argument("--steps", type=int, default=None, help="override the 2-D preset's steps")
    ap.add_argument("--digits-minutes", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench_out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    for name in [t for t in args.toys.split(",") if t]:
        print(toy_quality(name, args.steps), flush=True)
    if args.digits_minutes > 0:
        print(digits_quality(args.digits_minutes, Path(args.out)), flush=True)


if __name__ == "__main__":
    main()
