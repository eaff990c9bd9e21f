"""Quality of trained models, seeded and small: what a user of the presets can expect."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ebm_studio.core.chains import noise
from ebm_studio.core.config import preset_2d, preset_digits
from ebm_studio.core.datasets import toy
from ebm_studio.core.landscape import Grid, evaluate_energy, log_z, nll
from ebm_studio.core.training import Trainer

EIGHT_STEPS = 900


@pytest.mark.slow
def test_eight_gaussians_mode_shares_and_nll():
    cfg = preset_2d("8gaussians")
    cfg.device = "cpu"
    trainer = Trainer(cfg)
    for _ in range(EIGHT_STEPS):
        trainer.step()
    ds = toy("8gaussians")
    modes = torch.tensor(ds.modes, dtype=torch.float32)
    # the model's samples: the persistent chains it trained against
    samples = trainer.buffer.data
    share = torch.bincount(torch.cdist(samples, modes).argmin(1), minlength=8).double() / len(samples)
    assert ((share - 0.125).abs() < 0.06).all(), share
    # NLL of held-out points with Z by grid quadrature, against the true mixture's
    grid = Grid((-4.0, 4.0), (-4.0, 4.0), 256)
    lz = log_z(evaluate_energy(trainer.model, grid), grid)
    held = ds.heldout(4000)
    model_nll = nll(trainer.model, held, lz)
    true_nll = float(-ds.log_prob(held).double().mean())
    assert model_nll - true_nll < 0.5, (model_nll, true_nll)


@pytest.mark.slow
def test_digits_model_prefers_digits_to_noise():
    cfg = preset_digits()
    cfg.device = "cpu"
    cfg.optim.batch_size = 32
    cfg.sampler.steps = 10
    cfg.sampler.buffer_size = 1024
    trainer = Trainer(cfg)
    for _ in range(12):
        trainer.step()
    held = trainer.dataset.heldout(300)
    e_digits = trainer.model_energy(held)
    e_noise = trainer.model_energy(noise(500, (1, 28, 28), generator=torch.Generator().manual_seed(1)))
    # each held-out digit against the lowest energy any noise image reached
    frac = float((e_digits < e_noise.min()).float().mean())
    assert frac >= 0.95, frac
    assert np.isfinite(e_digits.numpy()).all()
