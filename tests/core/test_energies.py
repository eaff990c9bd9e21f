"""Energies: shapes and sizes, exact normalisers by quadrature, composition, descriptions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ebm_studio.core.energies import (
    BananaEnergy,
    ConvEnergy,
    DoubleWellEnergy,
    GaussianEnergy,
    GaussianMixtureEnergy,
    GaussianReference,
    MLPEnergy,
    SumEnergy,
    build_energy,
    eight_gaussians_energy,
    stem_conv,
)


def quadrature_log_z(energy, xlim=(-8.0, 8.0), ylim=(-8.0, 8.0), n=801) -> float:
    xs, ys = np.linspace(*xlim, n), np.linspace(*ylim, n)
    x, y = np.meshgrid(xs, ys, indexing="ij")
    pts = torch.tensor(np.stack([x.ravel(), y.ravel()], 1), dtype=torch.float64)
    with torch.no_grad():
        e = energy.double()(pts).numpy()
    m = (-e).max()
    return float(m + np.log(np.exp(-e - m).sum() * (xs[1] - xs[0]) * (ys[1] - ys[0])))


@pytest.mark.parametrize(
    "energy",
    [
        GaussianEnergy([0.5, -1.0], [[1.0, 0.6], [0.6, 2.0]]),
        GaussianMixtureEnergy([[-2, 0], [2, 1]], weights=[0.3, 0.7], stds=[0.5, 1.0]),
        BananaEnergy(),
        DoubleWellEnergy(barrier=2.0),
        GaussianReference(1.5),
    ],
    ids=lambda e: type(e).__name__,
)
def test_exact_log_z_matches_quadrature(energy):
    # the banana's arms reach far up: x₂ ≈ b·x₁² for |x₁| up to ~6 s₁
    ylim = (-8.0, 45.0) if isinstance(energy, BananaEnergy) else (-8.0, 8.0)
    xlim = (-10.0, 10.0) if isinstance(energy, BananaEnergy) else (-8.0, 8.0)
    n = 1601 if isinstance(energy, BananaEnergy) else 801
    assert energy.log_z == pytest.approx(quadrature_log_z(energy, xlim, ylim, n), abs=2e-4)


@pytest.mark.parametrize("channels,size", [(1, 16), (1, 28), (3, 32), (3, 64)])
def test_conv_energy_sizes(channels, size):
    e = ConvEnergy(channels, size, width=4)
    out = e(torch.rand(5, channels, size, size) * 2 - 1)
    assert out.shape == (5,) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="shape"):
        e.check_input(torch.zeros(2, channels, size + 1, size))


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 17), (1, 16), (3, 33)])
def test_space_to_depth_stem_is_the_strided_conv(channels, size):
    """The fast stem computes the same map, and the same input gradient, as the 5×5 stride-2 conv."""
    torch.manual_seed(size)
    conv = torch.nn.Conv2d(channels, 6, 5, stride=2, padding=2).double()
    x = (torch.rand(3, channels, size, size, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    ref, fast = conv(x), stem_conv(conv, x)
    assert fast.shape == ref.shape
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-12)
    g = torch.randn_like(ref)
    (g_ref,) = torch.autograd.grad(ref, x, g)
    (g_fast,) = torch.autograd.grad(fast, x, g)
    torch.testing.assert_close(g_fast, g_ref, rtol=0, atol=1e-12)


def test_spectral_norm_bounds_the_layers():
    torch.manual_seed(0)
    e = ConvEnergy(1, 16, width=4, spectral_norm=True)
    for _ in range(20):  # power iterations converge in training mode
        e(torch.randn(2, 1, 16, 16))
    w = e.head[-1].weight.detach()
    assert float(torch.linalg.matrix_norm(w, ord=2)) == pytest.approx(1.0, rel=0.05)


def test_bad_energy_arguments():
    with pytest.raises(ValueError, match="channels"):
        ConvEnergy(2, 28)
    with pytest.raises(ValueError, match="size"):
        ConvEnergy(1, 100)
    with pytest.raises(ValueError, match="positive definite"):
        GaussianEnergy([0, 0], [[1, 2], [2, 1]])
    with pytest.raises(ValueError, match="weights"):
        GaussianMixtureEnergy([[0, 0], [1, 1]], weights=[1, -1])
    with pytest.raises(ValueError, match="event shape"):
        SumEnergy([MLPEnergy(2), MLPEnergy(3)])


def test_sum_energy_is_a_product_of_experts():
    a, b = eight_gaussians_energy(), GaussianEnergy([0, 0], [[4, 0], [0, 4]])
    s = SumEnergy([a, b], [0.5, 2.0])
    x = torch.randn(7, 2)
    torch.testing.assert_close(s(x), 0.5 * a(x) + 2.0 * b(x))
    s.weights[0] = 1.0  # live weights
    torch.testing.assert_close(s(x), a(x) + 2.0 * b(x))


def test_describe_and_rebuild():
    torch.manual_seed(0)
    for e in (MLPEnergy(2, (8, 8)), ConvEnergy(3, 32, 4, True), eight_gaussians_energy(), BananaEnergy(1.0, 0.3, 0.2),
              SumEnergy([DoubleWellEnergy(), GaussianReference(2.0)], [1.0, 0.5])):
        again = build_energy(e.describe())
        again.load_state_dict(e.state_dict())
        x = torch.randn(4, *e.event_shape)
        torch.testing.assert_close(again(x), e(x))
    with pytest.raises(ValueError, match="unknown energy kind"):
        build_energy({"kind": "dragon"})
    with pytest.raises(ValueError, match="bad arguments"):
        build_energy({"kind": "mlp", "wings": 2})


def test_log_prob_of_mixture_integrates_to_one():
    e = eight_gaussians_energy()
    assert math.exp(quadrature_log_z(e) - e.log_z) == pytest.approx(1.0, abs=1e-4)


def test_the_mlps_closed_form_gradient_matches_autograd():
    from ebm_studio.core import energy_eval, samplers
    from ebm_studio.core.energies import MLPEnergy

    torch.manual_seed(0)
    energy = MLPEnergy(2, (64, 32, 16))
    x = torch.randn(500, 2) * 2
    e_fast, g_fast = energy.energy_and_input_grad(x)
    energy_eval.USE_CLOSED_FORM = False
    try:
        e_ref, g_ref = samplers.energy_and_grad(energy, x)
    finally:
        energy_eval.USE_CLOSED_FORM = True
    assert torch.allclose(e_fast, e_ref, atol=1e-6, rtol=1e-5)
    assert torch.allclose(g_fast, g_ref, atol=1e-6, rtol=1e-4)
    # and the sampler takes the fast path by default
    e2, g2 = samplers.energy_and_grad(energy, x)
    assert torch.equal(g2, g_fast)
