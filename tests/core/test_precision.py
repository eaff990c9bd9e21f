"""bf16 inside the network: which samplers take it, how close E and ∇E stay, and that the samples
of a bf16 chain match a float32 chain's in mean and covariance."""

from __future__ import annotations

import math

import pytest
import torch

from ebm_studio.core.config import ConfigError, TrainConfig
from ebm_studio.core.energies import ConvEnergy, GaussianEnergy, MLPEnergy, SumEnergy
from ebm_studio.core.precision import compute_dtype, native_bf16
from ebm_studio.core.samplers import energy_and_grad, make_sampler, switch_sampler


def autograd_reference(energy, x):
    x = x.detach().double().requires_grad_(True)
    e = energy.double()(x)
    (g,) = torch.autograd.grad(e.sum(), x)
    energy.float()
    return e.detach().float(), g.float()


def test_auto_takes_bf16_only_for_unadjusted_samplers_on_networks():
    mlp, gauss = MLPEnergy(), GaussianEnergy([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])
    fast = torch.bfloat16 if native_bf16("cpu") else torch.float32
    assert compute_dtype("auto", "cpu", mlp, "langevin") == fast
    assert compute_dtype("auto", "cpu", mlp, "tuned") == fast
    assert compute_dtype("auto", "cpu", mlp, "mala") == torch.float32  # the accept step needs exact energies
    assert compute_dtype("auto", "cpu", mlp, "hmc") == torch.float32
    assert compute_dtype("bf16", "cpu", mlp, "mala") == torch.float32  # even when asked for
    assert compute_dtype("bf16", "cpu", mlp, "langevin") == torch.bfloat16
    assert compute_dtype("fp32", "cpu", mlp, "langevin") == torch.float32
    assert compute_dtype("bf16", "cpu", gauss, "langevin") == torch.float32  # analytic: always exact
    assert compute_dtype("bf16", "cpu", SumEnergy([mlp, gauss]), "langevin") == torch.float32
    assert compute_dtype("bf16", "cpu", SumEnergy([mlp, MLPEnergy()]), "langevin") == torch.bfloat16
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16"):
        compute_dtype("half", "cpu", mlp, "langevin")


def test_a_sampler_follows_its_kind_and_keeps_its_precision_when_switched():
    x = torch.randn(8, 2)
    s = make_sampler("mala", MLPEnergy(), x, precision="auto")
    assert s.compute_dtype == torch.float32
    s = switch_sampler(s, "langevin")
    expected = torch.bfloat16 if native_bf16("cpu") else torch.float32
    assert s.precision == "auto" and s.compute_dtype == expected
    s = switch_sampler(make_sampler("langevin", MLPEnergy(), x, precision="fp32"), "tuned")
    assert s.compute_dtype == torch.float32
    with pytest.raises(ValueError, match="precision"):
        make_sampler("langevin", MLPEnergy(), x, precision="fp16")


@pytest.mark.parametrize("hidden", [(128, 128, 128), (64,), ()])
def test_mlp_closed_form_in_bf16_is_close_to_float64_autograd(hidden):
    torch.manual_seed(0)
    mlp = MLPEnergy(hidden=hidden)
    x = torch.randn(512, 2) * 2
    e_ref, g_ref = autograd_reference(mlp, x)
    e32, g32 = energy_and_grad(mlp, x)
    e16, g16 = energy_and_grad(mlp, x, dtype=torch.bfloat16)
    assert e16.dtype == g16.dtype == torch.float32
    torch.testing.assert_close(e32, e_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g32, g_ref, rtol=1e-4, atol=1e-5)
    scale = float(g_ref.norm())
    assert float((g16 - g_ref).norm()) < 0.01 * scale
    assert float((e16 - e_ref).abs().max()) < 0.02 * float(e_ref.abs().max() + 1e-3)


def test_conv_gradient_in_bf16_is_close_to_float64_autograd():
    torch.manual_seed(0)
    conv = ConvEnergy(1, 28, width=8)
    x = torch.rand(16, 1, 28, 28) * 2 - 1
    e_ref, g_ref = autograd_reference(conv, x)
    e16, g16 = energy_and_grad(conv, x, dtype=torch.bfloat16)
    assert e16.dtype == g16.dtype == torch.float32
    assert float((g16 - g_ref).norm()) < 0.015 * float(g_ref.norm())
    assert float((e16 - e_ref).abs().max()) < 0.03 * float(e_ref.abs().max() + 1e-3)


def test_bf16_chains_sample_what_float32_chains_sample():
    """Same energy, same start, independent noise: the two sample sets agree in mean and covariance
    within Monte Carlo error (a sharp random MLP under a Gaussian reference, so mass sits in
    several wells and the drift is large next to the noise)."""
    torch.manual_seed(3)
    mlp = MLPEnergy()
    n, steps = 4096, 250
    x0 = torch.randn(n, 2)
    out = {}
    for prec, seed in (("fp32", 1), ("bf16", 2)):
        s = make_sampler("langevin", mlp, x0, step_size=0.02, temperature=0.01, ref_sigma=1.5, seed=seed,
                         precision=prec)
        out[prec] = s.run(steps).x.double()
    a, b = out["fp32"], out["bf16"]
    cov = torch.cov(a.T)
    se_mean = (torch.diagonal(cov) * 2 / n).sqrt()  # SE of a difference of two independent means
    assert ((a.mean(0) - b.mean(0)).abs() < 4 * se_mean).all(), (a.mean(0), b.mean(0), se_mean)
    d = torch.diagonal(cov)
    se_cov = ((cov**2 + torch.outer(d, d)) * 2 / n).sqrt()
    assert ((torch.cov(a.T) - torch.cov(b.T)).abs() < 4 * se_cov).all()
    assert abs(float(cov[0, 1])) > 0.5  # the energy shapes the samples (the reference alone is isotropic)


def test_precision_is_a_validated_sampler_setting():
    cfg = TrainConfig()
    assert cfg.sampler.precision == "auto"
    cfg.sampler.precision = "fp32"
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again.sampler.precision == "fp32"
    cfg.sampler.precision = "half"
    with pytest.raises(ConfigError, match="sampler.precision"):
        cfg.validate()


def test_training_and_checkpoint_samplers_take_the_configured_precision(tmp_path):
    from ebm_studio.core.checkpoint import save_checkpoint, trainer_checkpoint
    from ebm_studio.core.config import preset_2d
    from ebm_studio.core.model import ModelState
    from ebm_studio.core.training import Trainer

    cfg = preset_2d("8gaussians")
    cfg.device = "cpu"
    cfg.sampler.precision = "fp32"
    t = Trainer(cfg)
    t.step()
    assert t.make_sampler(torch.zeros(4, 2)).precision == "fp32"
    path = tmp_path / "m.pt"
    save_checkpoint(trainer_checkpoint(t, {}), path)
    model = ModelState.from_checkpoint(str(path), torch.device("cpu"))
    assert model.make_sampler(torch.zeros(4, 2)).precision == "fp32"
    assert model.make_sampler(torch.zeros(4, 2), precision="bf16").compute_dtype == torch.bfloat16
    assert math.isfinite(float(model.make_sampler(torch.zeros(4, 2)).step().energy.mean()))


def test_a_checkpoint_with_an_unknown_precision_is_refused_with_the_field(tmp_path):
    from ebm_studio.core.checkpoint import CheckpointError, energy_checkpoint, load_checkpoint, save_checkpoint

    path = tmp_path / "odd.pt"
    save_checkpoint(energy_checkpoint(MLPEnergy(), sampler={"kind": "langevin", "precision": "fp8"}), path)
    with pytest.raises(CheckpointError, match="sampler.precision.*auto, fp32, bf16.*'fp8'"):
        load_checkpoint(path)
