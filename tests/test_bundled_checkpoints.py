"""The trained examples in ``checkpoints/``: they load, sample, are small, and are as good as their
stored figures say; the smallest recipe re-trains to figures in range."""

from __future__ import annotations

import math

import pytest
import torch

from ebm_studio.core.bundled import checkpoints_dir, example_checkpoints
from ebm_studio.core.checkpoint import load_checkpoint
from ebm_studio.core.config import TrainConfig
from ebm_studio.core.model import ModelState
from ebm_studio.core.quality import measure_model, meter_kind, points_quality
from ebm_studio.core.training import Trainer

EXAMPLES = example_checkpoints()
#: per figure: how far a re-measurement may fall from the stored value (the same samples are
#: drawn with the same seed, so only floating-point order differs)
TOLERANCE = {"confident": 0.03, "classes": 1, "is_like": 0.3, "nearest_train": 0.02,
             "histogram_tv": 0.02, "spectrum_rms": 0.1, "nll_gap": 0.01, "mode_mass_error": 0.01}


def test_examples_exist_with_recipes_and_fit_in_twenty_megabytes():
    assert {"8gaussians", "digits"} <= set(EXAMPLES)
    total = sum(p.stat().st_size for p in EXAMPLES.values())
    assert total <= 20 * 2**20, f"bundled checkpoints take {total / 2**20:.1f} MB"
    for name in EXAMPLES:
        assert (checkpoints_dir() / "recipes" / f"{name}.toml").is_file(), f"no recipe for {name}"
        TrainConfig.load(checkpoints_dir() / "recipes" / f"{name}.toml")


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_loads_samples_and_matches_its_stored_quality(name):
    ckpt = load_checkpoint(EXAMPLES[name])
    model = ModelState.from_checkpoint(ckpt, torch.device("cpu"))
    x0 = model.initial_state(4, "buffer" if model.buffer is not None else "noise", torch.Generator().manual_seed(0))
    sampler = model.make_sampler(x0, seed=0)
    result = sampler.run(3)
    assert torch.isfinite(result.x).all()
    stored = ckpt.report.get("quality")
    if meter_kind(model.data_desc, model.event_shape) is None:
        assert not stored  # no meter fits (a 2-D toy without a closed-form density)
        return
    assert stored, f"{name}: no stored quality figures"
    q = measure_model(model, n=int(stored["n"]) if stored["meter"] != "points" else 256)
    for key, value in q.figures.items():
        assert math.isclose(value, stored[key], abs_tol=TOLERANCE[key]), (name, key, value, stored[key])


@pytest.mark.slow
def test_the_smallest_recipe_retrains_to_figures_in_range():
    cfg = TrainConfig.load(checkpoints_dir() / "recipes" / "8gaussians.toml")
    cfg.device = "cpu"
    trainer = Trainer(cfg)
    for _ in range(cfg.steps):
        trainer.step()
    q = points_quality(trainer.model, trainer.dataset)
    print(f"\n8gaussians recipe re-trained: {q.format()}")
    assert q.figures["nll_gap"] < 0.15 and q.figures["mode_mass_error"] < 0.04, q.figures
