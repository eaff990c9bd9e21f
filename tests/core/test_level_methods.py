"""Coarse-to-fine ladders and diffusion recovery likelihood: maths, sampling, training, files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ebm_studio.core.checkpoint import load_checkpoint, save_checkpoint, trainer_checkpoint
from ebm_studio.core.config import ConfigError, TrainConfig, preset_drl, preset_multigrid
from ebm_studio.core.ladder import LadderEnergy, downsample, fixed_at, ladder_sizes, upsample
from ebm_studio.core.level_sampler import LadderSampler, RecoverySampler
from ebm_studio.core.model import ModelState
from ebm_studio.core.recovery import RecoveryEnergy, geometric_betas
from ebm_studio.core.training import StepAborted, Trainer


# --- the ladder's resampling -------------------------------------------------------------------
@pytest.mark.parametrize("size,levels,expected", [(28, 3, [7, 14, 28]), (32, 4, [4, 8, 16, 32]),
                                                  (64, 2, [32, 64])])
def test_ladder_sizes(size, levels, expected):
    assert ladder_sizes(size, levels) == expected


@pytest.mark.parametrize("size,levels", [(28, 4), (30, 3), (16, 4), (28, 1), (28, 6)])
def test_impossible_ladders_are_refused_with_the_reason(size, levels):
    with pytest.raises(ValueError, match="level"):
        ladder_sizes(size, levels)


def test_upsampling_keeps_the_coarse_image_exactly():
    g = torch.Generator().manual_seed(0)
    for coarse, fine in ((7, 14), (7, 28), (8, 32)):
        x = torch.rand(5, 3, coarse, coarse, generator=g) * 2 - 1
        assert torch.equal(downsample(upsample(x, fine), coarse), x)


def test_a_coarse_pixel_is_held_only_where_every_fine_pixel_is_observed():
    free = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    free[..., 0, 0] = True  # one free pixel in the top-left 2×2 block
    coarse = fixed_at(free, 2)
    assert coarse[0, 0].tolist() == [[True, False], [False, False]]


# --- ladder sampling ----------------------------------------------------------------------------
def _ladder_sampler(mask=None, level_steps=4, n=6):
    torch.manual_seed(0)
    energy = LadderEnergy(1, [7, 14, 28], width=4)
    x0 = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return energy, x0, LadderSampler(energy, x0, kind="tuned", step_size=10.0, noise=0.005,
                                     clip_grad=0.03, clamp=(-1.0, 1.0), level_steps=level_steps, mask=mask)


def test_ladder_walks_coarse_to_fine_then_keeps_sampling_the_finest_level():
    _, _, s = _ladder_sampler()
    shapes = []
    for _ in range(14):
        r = s.step()
        assert r.x.shape == (6, 1, 28, 28) and r.energy.shape == (6,)
        shapes.append(s.level)
    assert shapes == [0] * 4 + [1] * 4 + [2] * 6
    snaps = s.snapshots()
    assert [q.name for q in snaps] == ["7×7", "14×14", "28×28"]
    assert [q.x.shape[-1] for q in snaps] == [7, 14, 28]
    assert [q.state for q in snaps] == ["done", "done", "done"] and s.finished


def test_ladder_inpainting_keeps_every_observed_pixel():
    free = torch.zeros(1, 28, 28, dtype=torch.bool)
    free[:, 14:, 3:20] = True
    _, x0, s = _ladder_sampler(mask=free)
    r = s.run_schedule()
    assert torch.equal(r.x[:, ~free], x0[:, ~free])
    assert not torch.equal(r.x[:, free], x0[:, free])


# --- recovery sampling --------------------------------------------------------------------------
class ExactGaussianRecovery(RecoveryEnergy):
    """The exact level energies of Gaussian data N(μ, diag(v)): each level's marginal is
    N(√ᾱ_t μ, ᾱ_t v + 1 − ᾱ_t), so the conditional sampler walks down to the data exactly."""

    def __init__(self, mean, var, betas):
        super().__init__((len(mean),), betas)
        self.mu = torch.tensor(mean)
        self.var = torch.tensor(var)
        # steps of a fixed share of each level's conditional variance, so every level mixes in
        # the test's budget (the learned models take the paper's smaller steps at low noise)
        self.step_base = [b / (1 - b) for b in betas] + [1 - self.alpha_bar[-1]]

    def level_energy(self, x, t):
        t = torch.as_tensor(t).expand(x.shape[0]) if torch.as_tensor(t).ndim == 0 else t
        ab = torch.tensor(self.alpha_bar)[t][:, None]
        m = ab.sqrt() * self.mu
        v = ab * self.var + (1 - ab)
        return 0.5 * (((x - m) ** 2) / v).sum(-1)


def test_recovery_sampler_walks_down_to_the_data_distribution():
    mean, var = [1.0, -0.5], [0.25, 0.09]
    energy = ExactGaussianRecovery(mean, var, geometric_betas(6, 0.01, 0.9))
    n = 4000
    g = torch.Generator().manual_seed(0)
    data = torch.tensor(mean) + torch.randn(n, 2, generator=g) * torch.tensor(var).sqrt()
    # the walk starts from the data diffused to the noisiest level (√ᾱ_K ≈ 0.2 of it is left)
    s = RecoverySampler(energy, data, step_size=0.05, level_steps=150, seed=3)
    x = s.run_schedule().x
    assert s.level_names == ["t=6", "t=5", "t=4", "t=3", "t=2", "t=1", "t=0"]
    se = math.sqrt(max(var) / n)
    assert torch.allclose(x.mean(0), torch.tensor(mean), atol=5 * se)
    # unadjusted Langevin with ε = 0.05·s² inflates variances by about 1/(1 − ε/4s²) ≈ 1.3 %
    assert np.allclose(x.var(0).numpy(), var, rtol=0.08)
    # and the coupling to the start is gone: the result is not the input
    assert float(torch.corrcoef(torch.stack([x[:, 0], data[:, 0]]))[0, 1]) < 0.5


def test_recovery_inpainting_ends_on_the_observed_pixels():
    energy = RecoveryEnergy((1, 16, 16), geometric_betas(3, 0.02, 0.5), width=4)
    x0 = torch.rand(4, 1, 16, 16) * 2 - 1
    free = torch.zeros(1, 16, 16, dtype=torch.bool)
    free[:, 8:] = True
    s = RecoverySampler(energy, x0, step_size=0.2, level_steps=3, mask=free, clamp=(-1.0, 1.0))
    r = s.run_schedule()
    assert torch.equal(r.x[:, ~free], x0[:, ~free])


def test_a_recovery_model_refuses_other_sampler_kinds_clearly():
    energy = RecoveryEnergy((2,), geometric_betas(3, 0.02, 0.5))
    s = RecoverySampler(energy, torch.zeros(3, 2), level_steps=2)
    with pytest.raises(ValueError, match="Langevin"):
        s.switch_kind("mala")


# --- training, configs and checkpoints ---------------------------------------------------------
def _tiny(preset):
    cfg = preset()
    cfg.device = "cpu"
    cfg.model.width = 4
    cfg.optim.batch_size = 8
    cfg.method.level_steps = 2
    return cfg


@pytest.mark.parametrize("preset", [preset_multigrid, preset_drl])
def test_level_methods_train_save_and_sample_anywhere(preset, tmp_path):
    trainer = Trainer(_tiny(preset))
    for _ in range(2):
        m = trainer.step()
        assert math.isfinite(m["loss"])
    # a ladder keeps persistent chains at its coarsest level; diffusion recovery needs none
    assert (trainer.buffer is not None) == (preset is preset_multigrid)
    if trainer.buffer is not None:
        assert trainer.buffer.data.shape[1:] == (1, 7, 7)
    path = save_checkpoint(trainer_checkpoint(trainer), tmp_path / "m.pt")
    ckpt = load_checkpoint(path)
    assert ckpt.model == trainer.model.describe()
    model = ModelState.from_checkpoint(ckpt, torch.device("cpu"))
    assert model.method == trainer.config.method.name
    assert model.energy.level_names() == trainer.model.level_names()
    init = "buffer" if model.buffer is not None else "noise"
    x0 = model.initial_state(3, init, torch.Generator().manual_seed(0))
    sampler = model.make_sampler(x0)
    assert sampler.level_steps == 2
    r = sampler.run(model.default_steps)
    assert sampler.finished and r.x.shape == (3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.energy(x0), trainer.model(x0))


@pytest.mark.parametrize("preset", [preset_multigrid, preset_drl])
def test_a_resumed_level_run_repeats_the_uninterrupted_one(preset, tmp_path):
    a = Trainer(_tiny(preset))
    for _ in range(3):
        a.step()
    b = Trainer(_tiny(preset))
    for _ in range(2):
        b.step()
    ckpt = load_checkpoint(save_checkpoint(trainer_checkpoint(b), tmp_path / "b.pt"))
    c = Trainer(_tiny(preset))
    c.load_state(ckpt.trainer_state())
    c.step()
    for k, v in a.model.state_dict().items():
        assert torch.allclose(v, c.model.state_dict()[k], atol=1e-6), k


@pytest.mark.parametrize("preset", [preset_multigrid, preset_drl])
def test_stopping_a_level_step_leaves_the_model_unchanged(preset):
    trainer = Trainer(_tiny(preset))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    calls = []
    with pytest.raises(StepAborted):
        trainer.step(should_stop=lambda: calls.append(1) or len(calls) >= 2)
    assert trainer.step_count == 0
    assert all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in before.items())


def test_method_settings_round_trip_through_toml_and_are_checked():
    cfg = preset_drl()
    again = TrainConfig.from_toml(cfg.to_toml())
    assert again.method == cfg.method and "[method]" in cfg.to_toml()
    bad = preset_drl()
    bad.sampler.kind = "tuned"
    with pytest.raises(ConfigError, match="Langevin"):
        bad.validate()
    mg = preset_multigrid()
    mg.method.levels = 6
    with pytest.raises(ConfigError, match="method.levels"):
        mg.validate()
    points = preset_multigrid("8gaussians")
    with pytest.raises(ConfigError, match="image data"):
        points.validate()
    with pytest.raises(ConfigError, match="beta_min"):
        TrainConfig.from_dict({"method": {"name": "drl", "beta_min": 0.5, "beta_max": 0.1},
                               "sampler": {"kind": "langevin"}})


def test_drl_trains_on_points_and_its_samples_find_the_data():
    cfg = preset_drl("8gaussians")
    cfg.device = "cpu"
    cfg.optim.batch_size = 256
    cfg.method.level_steps = 10
    trainer = Trainer(cfg)
    for _ in range(150):
        trainer.step()
    model = ModelState.from_checkpoint(trainer_checkpoint(trainer), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    x = model.make_sampler(model.initial_state(2000, "noise", g), seed=1).run(model.default_steps).x
    r = x.norm(dim=1)
    # eight Gaussians of std 0.2 on a ring of radius 2 (scaled): samples gather on the ring
    ring = float(trainer.dataset.batch(2000, g).norm(dim=1).mean())
    assert abs(float(r.mean()) - ring) < 0.25 * ring
    assert float(((r - ring).abs() < 0.5 * ring).float().mean()) > 0.7
