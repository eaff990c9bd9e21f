"""What the recipes deliver: each one trained from scratch (its steps, or a wall-time budget),
then scored by the project's quality meter beside its reference points.

2-D toys: held-out NLL gap to the exact density (quadrature) and the worst per-mode mass error;
digits: confident share, classes, IS-like score, nearest-train distance; textures: histogram and
spectrum distance to held-out crops. A PNG of samples per image recipe goes to ``--out``.

    python bench/preset_quality.py [--recipes 8gaussians,digits] [--minutes 10] [--out bench_out]

The training methods compared at equal wall time (plain persistent, coarse-to-fine, diffusion
recovery), each scored on 256 samples from its own sampler:

    python bench/preset_quality.py --recipes digits,digits-multigrid,digits-drl --minutes 10

Three seeds of the 2-D recipes in a minute each, or a recipe with a setting changed:

    python bench/preset_quality.py --recipes 8gaussians,grid25 --minutes 1 --seeds 0,1,2
    python bench/preset_quality.py --recipes rings --minutes 1 --set optim.alpha=0.01
"""

from __future__ import annotations

import argparse
import time
import tomllib
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


def configure(name: str, seed: int | None, overrides: list[str]) -> TrainConfig:
    """The recipe ``name`` with its seed replaced and ``section.key=value`` settings changed."""
    cfg = TrainConfig.load(checkpoints_dir() / "recipes" / f"{name}.toml")
    cfg.device = "cpu"
    data = cfg.to_dict()
    if seed is not None:
        data["seed"] = seed
    for item in overrides:
        key, _, value = item.partition("=")
        *path, last = key.strip().split(".")
        table = data
        for part in path:
            table = table.setdefault(part, {})
        table[last] = tomllib.loads(f"v = {value.strip()}")["v"]
    return TrainConfig.from_dict(data)


def run(name: str, minutes: float | None, out: Path, seed: int | None = None,
        overrides: list[str] = ()) -> None:
    cfg = configure(name, seed, list(overrides))
    trainer = Trainer(cfg)
    t0 = time.perf_counter()
    while trainer.step_count < cfg.steps and (minutes is None or time.perf_counter() - t0 < minutes * 60):
        trainer.step()
    wall = time.perf_counter() - t0
    model = ModelState.from_checkpoint(trainer_checkpoint(trainer), torch.device("cpu"))
    kind = meter_kind(model.data_desc, model.event_shape)
    head = f"{name:15s} seed {cfg.seed:<3d} {trainer.step_count:6d} steps {wall:7.1f} s"
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
    ap.add_argument("--seeds", default="", help="comma-separated seeds instead of the recipe's own")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="change a recipe setting (TOML value), e.g. --set optim.alpha=0.01")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads" + (f"; {', '.join(args.set)}" if args.set else ""))
    seeds = [int(s) for s in args.seeds.split(",") if s] or [None]
    for name in [r for r in args.recipes.split(",") if r]:
        for seed in seeds:
            run(name, args.minutes, Path(args.out), seed, args.set)


if __name__ == "__main__":
    main()
