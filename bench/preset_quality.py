"""What the recipes deliver: each one trained from scratch (its steps, or a wall-time budget),
then scored by the project's quality meter beside its reference points.

2-D toys: held-out NLL gap to the exact density (quadrature) and the worst per-mode mass error;
digits: confident share, classes, IS-like score, nearest-train distance; textures: histogram and
spectrum distance to held-out crops. A PNG of samples per image recipe goes to ``--out``.

    python bench/preset_quality.py [--recipes 8gaussians,digits] [--minutes 10] [--out bench_out]

The training methods compared at equal wall time (plain persistent, coarse-to-fine, diffusion
recovery), each scored on 256 samples from its own sampler:

    python bench/preset_quality.py --recipes digits,digits-multigrid,digits-drl --minutes 10
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image

from ebm_studio.core.bundled import checkpoints_dir
from ebm_studio.core.checkpoint import trainer_checkpoint
from ebm_studio.core.config import TrainConfig
from ebm_studio.core.imaging import image_grid
from ebm_studio.core.model import ModelState
from ebm_studio.core.quality import measure_model, meter_kind, model_samples, references, score_samples
from ebm_studio.core.training import Trainer


def run(name: str, minutes: float | None, out: Path) -> None:
    cfg = TrainConfig.load(checkpoints_dir() / "recipes" / f"{name}.toml")
    cfg.device = "cpu"
    trainer = Trainer(cfg)
    t0 = time.perf_counter()
    while trainer.step_count < cfg.steps and (minutes is None or time.perf_counter() - t0 < minutes * 60):
        trainer.step()
    wall = time.perf_counter() - t0
    model = ModelState.from_checkpoint(trainer_checkpoint(trainer), torch.device("cpu"))
    kind = meter_kind(model.data_desc, model.event_shape)
    head = f"{name:15s} {trainer.step_count:6d} steps {wall:7.1f} s"
    if kind is None:
        print(f"{head}  (no meter: no closed-form density)", flush=True)
        return
    if kind == "points":
        print(f"{head}  {measure_model(model, 256).format()}", flush=True)
        return
    # the samples the meter scores are the ones the grid shows: the model's own sampler from its
    # buffer or from noise (a ladder or recovery model walks all its levels)
    x = model_samples(model, 256)
    real = model.dataset().heldout(256) if kind == "textures" else None
    print(f"{head}  {score_samples(kind, x, real).format()}", flush=True)
    for ref, r in references(kind, model.dataset(), 256).items():
        print(f"{'':15s} {'':26s}  {ref}: {r.format()}")
    out.mkdir(parents=True, exist_ok=True)
    grid = image_grid(x[:64].numpy())
    Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(out / f"{name}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    recipes = sorted(p.stem for p in (checkpoints_dir() / "recipes").glob("*.toml"))
    ap.add_argument("--recipes", default=",".join(recipes))
    ap.add_argument("--minutes", type=float, default=None, help="wall-time budget per recipe")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench_out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    for name in [r for r in args.recipes.split(",") if r]:
        run(name, args.minutes, Path(args.out))


if __name__ == "__main__":
    main()
