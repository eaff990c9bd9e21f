"""Landscapes by quadrature: grid layout, log Z against exact normalisers, NLL, KL, mode masses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ebm_studio.core.energies import (
    Energy,
    GaussianEnergy,
    GaussianMixtureEnergy,
    MLPEnergy,
    eight_gaussians_energy,
)
from ebm_studio.core.landscape import (
    DEFAULT_GRID_N,
    Grid,
    compare_to_truth,
    compute_landscape,
    default_bounds,
    energy_gradient,
    evaluate_energy,
    kl_divergence,
    log_density,
    log_z,
    mixture_bounds,
    mode_masses,
    nll,
)


class Shifted(Energy):
    """E(x) + c: the same density, another normaliser."""

    event_shape = (2,)

    def __init__(self, base: Energy, c: float) -> None:
        super().__init__()
        self.base, self.c = base, c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.c


class Linear(Energy):
    """E(x) = x₀ + 10·x₁: tells x from y in the grid layout."""

    event_shape = (2,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0] + 10.0 * x[:, 1]


def sample_mixture(energy: GaussianMixtureEnergy, n: int, seed: int) -> torch.Tensor:
    """Exact samples of an analytic mixture (component, then Cholesky · ε)."""
    rng = np.random.default_rng(seed)
    w = energy.weights.double().numpy()
    comp = rng.choice(len(w), size=n, p=w / w.sum())
    chol = np.linalg.cholesky(energy.covs.double().numpy())
    x = energy.means.double().numpy()[comp] + np.einsum(
        "nij,nj->ni", chol[comp], rng.standard_normal((n, 2))
    )
    return torch.as_tensor(x, dtype=torch.float32)


def unequal_mixture() -> GaussianMixtureEnergy:
    """Three components: unequal weights, one narrow, one broad and correlated."""
    return GaussianMixtureEnergy(
        means=[[-2.0, 1.0], [1.5, -0.5], [0.5, 2.5]],
        weights=[0.6, 0.3, 0.1],
        covs=[
            [[0.3, 0.0], [0.0, 0.05]],
            [[1.5, 0.9], [0.9, 1.0]],
            [[0.02, 0.0], [0.0, 0.02]],
        ],
    )


# --------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------


def test_grid_layout_is_x_first_cell_centres():
    g = Grid((-1.0, 3.0), (0.0, 2.0), n=8)
    assert g.cell_area == pytest.approx(0.5 * 0.25)
    np.testing.assert_allclose(g.xs, -1.0 + 0.25 + 0.5 * np.arange(8))
    np.testing.assert_allclose(g.ys, 0.125 + 0.25 * np.arange(8))
    pts = g.points()
    assert pts.shape == (64, 2) and pts.dtype == torch.float32
    values = evaluate_energy(Linear(), g)
    assert values.shape == (8, 8) and values.dtype == np.float64
    expected = g.xs[:, None] + 10.0 * g.ys[None, :]  # [ix, iy]
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert g.rect == (-1.0, 0.0, 4.0, 2.0)
    assert g.with_n(4) == Grid((-1, 3), (0, 2), 4)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(xlim=(1.0, 1.0), ylim=(0.0, 1.0)), "xlim"),
        (dict(xlim=(0.0, 1.0), ylim=(0.0, float("nan"))), "ylim"),
        (dict(xlim=(0.0, 1.0), ylim=(0.0, 1.0), n=1), "n"),
        (dict(xlim=(0.0, 1.0), ylim=(0.0, 1.0), n=2.5), "n"),
    ],
)
def test_grid_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Grid(**kwargs)


def test_default_bounds_cover_data_square_ish():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(500, 2)) * [4.0, 0.2] + [1.0, -2.0]
    (x0, x1), (y0, y1) = default_bounds(pts)
    assert x0 < pts[:, 0].min() and x1 > pts[:, 0].max()
    assert y0 < pts[:, 1].min() and y1 > pts[:, 1].max()
    span = pts[:, 0].max() - pts[:, 0].min()
    assert (x1 - x0) == pytest.approx(1.3 * span)
    assert (y1 - y0) == pytest.approx(0.5 * (x1 - x0))  # thin set widened to half the long side
    (a, b), (c, d) = default_bounds(np.array([[2.0, 3.0]]))  # one point: a box, not a dot
    assert a < 2.0 < b and c < 3.0 < d
    with pytest.raises(ValueError, match="points"):
        default_bounds(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="margin"):
        default_bounds(pts, margin=-1)


# --------------------------------------------------------------------------------------------
# log Z by quadrature against exact normalisers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [eight_gaussians_energy, unequal_mixture])
def test_quadrature_log_z_matches_exact_with_mixture_bounds(make):
    energy = make()
    grid = Grid(*mixture_bounds(energy))
    assert grid.n == DEFAULT_GRID_N == 256
    lz = log_z(evaluate_energy(energy, grid), grid)
    assert abs(lz - energy.log_z) / abs(energy.log_z) < 1e-3


@pytest.mark.parametrize("make", [eight_gaussians_energy, unequal_mixture])
def test_quadrature_log_z_matches_exact_with_data_bounds(make):
    # the app's default: bounds from (a few thousand) data points, 15 % margin
    energy = make()
    grid = Grid(*default_bounds(sample_mixture(energy, 2000, seed=1)))
    lz = log_z(evaluate_energy(energy, grid), grid)
    assert abs(lz - energy.log_z) / abs(energy.log_z) < 1e-3


def test_log_z_temperature_scaling_of_a_gaussian():
    g = GaussianEnergy([0.5, -1.0], [[1.0, 0.6], [0.6, 2.0]])
    grid = Grid(*mixture_bounds(g, n_std=15.0))  # ≥ 6.7 σ_T up to T = 5
    values = evaluate_energy(g, grid)
    for t in (0.25, 0.5, 1.0, 2.0, 5.0):
        exact = g.log_z + 0.5 * 2 * math.log(t)
        assert log_z(values, grid, temperature=t) == pytest.approx(exact, abs=1e-5)


def test_log_z_is_stable_for_large_energies_and_log_density_normalised():
    energy = eight_gaussians_energy()
    grid = Grid(*mixture_bounds(energy), n=128)
    values = evaluate_energy(energy, grid)
    lz = log_z(values, grid)
    shifted = log_z(values + 1e4, grid, temperature=2.0)
    assert math.isfinite(shifted)
    assert shifted == pytest.approx(log_z(values, grid, temperature=2.0) - 5e3, abs=1e-6)
    lp = log_density(values, grid)
    assert np.exp(lp).sum() * grid.cell_area == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(lp, -values - lz)
    with pytest.raises(ValueError, match="temperature"):
        log_z(values, grid, temperature=0.0)
    with pytest.raises(ValueError, match="energy_values"):
        log_z(values[:-1], grid)


# --------------------------------------------------------------------------------------------
# NLL, KL, mode masses
# --------------------------------------------------------------------------------------------


def test_nll_of_true_samples_is_the_entropy_and_shift_invariant():
    truth = eight_gaussians_energy()
    grid = Grid(*mixture_bounds(truth))
    values = evaluate_energy(truth, grid)
    lz = log_z(values, grid)
    lp = log_density(values, grid)
    entropy = -float((np.exp(lp) * lp).sum()) * grid.cell_area
    x = sample_mixture(truth, 20000, seed=2)
    got = nll(truth, x, lz)
    # standard error of a mean of −log p(x): std ≈ 1 nat here
    with torch.no_grad():
        sd = float((truth(x).double() + lz).std())
    assert got == pytest.approx(entropy, abs=4 * sd / math.sqrt(len(x)))
    assert nll(truth, x, truth.log_z) == pytest.approx(got, abs=1e-5)  # quadrature ≈ exact Z

    # a model equal to the truth up to its (unknown) normaliser: NLL gap 0
    model = Shifted(truth, 7.5)
    mv = evaluate_energy(model, grid)
    assert nll(model, x, log_z(mv, grid)) - got == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="x"):
        nll(truth, torch.zeros(5, 3), lz)


def gaussian_kl(m1, s1, m2, s2) -> float:
    m1, s1, m2, s2 = map(np.asarray, (m1, s1, m2, s2))
    p2 = np.linalg.inv(s2)
    d = m2 - m1
    return 0.5 * (
        np.trace(p2 @ s1) + d @ p2 @ d - 2 + np.log(np.linalg.det(s2) / np.linalg.det(s1))
    )


def test_kl_divergence_matches_closed_form_between_gaussians():
    m1, s1 = [0.0, 0.5], [[1.0, 0.3], [0.3, 0.5]]
    m2, s2 = [0.7, 0.0], [[2.0, -0.2], [-0.2, 1.0]]
    grid = Grid((-9.0, 9.0), (-8.0, 8.0))
    lp = log_density(evaluate_energy(GaussianEnergy(m1, s1), grid), grid)
    lq = log_density(evaluate_energy(GaussianEnergy(m2, s2), grid), grid)
    assert kl_divergence(lp, lq, grid) == pytest.approx(gaussian_kl(m1, s1, m2, s2), rel=1e-4)
    assert kl_divergence(lq, lp, grid) == pytest.approx(gaussian_kl(m2, s2, m1, s1), rel=1e-4)
    assert kl_divergence(lp, lp, grid) == 0.0


def test_compare_to_truth_zero_for_the_truth_positive_otherwise():
    truth = eight_gaussians_energy()
    grid = Grid(*mixture_bounds(truth))
    true_lp = log_density(evaluate_energy(truth, grid), grid)

    same = compare_to_truth(evaluate_energy(Shifted(truth, -3.0), grid), true_lp, grid)
    assert same["kl_data_model"] == pytest.approx(0.0, abs=1e-9)
    assert same["kl_model_data"] == pytest.approx(0.0, abs=1e-9)

    # a single broad Gaussian over the ring: covers every mode, misses the holes
    broad = GaussianEnergy([0.0, 0.0], [[2.0, 0.0], [0.0, 2.0]])
    diff = compare_to_truth(evaluate_energy(broad, grid), true_lp, grid)
    assert diff["kl_data_model"] > 0.1 and diff["kl_model_data"] > 0.1
    # its mass in the holes costs far more in the mode-seeking direction
    assert diff["kl_model_data"] > 2 * diff["kl_data_model"]
    # the ring at a higher temperature is a different density too
    hot = compare_to_truth(evaluate_energy(truth, grid), true_lp, grid, temperature=2.0)
    assert hot["kl_data_model"] > 0.05 and hot["kl_model_data"] > 0.05


def test_mode_masses_of_eight_gaussians():
    truth = eight_gaussians_energy()
    grid = Grid(*mixture_bounds(truth))
    lp = log_density(evaluate_energy(truth, grid), grid)
    masses = mode_masses(lp, grid, truth.means.numpy())
    assert masses.shape == (8,)
    assert masses.sum() == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(masses, 1 / 8, atol=1e-4)
    # one mode only: all the mass
    assert mode_masses(lp, grid, np.zeros((1, 2)))[0] == pytest.approx(1.0, abs=1e-9)


def test_unequal_mixture_mode_masses_follow_the_weights():
    truth = unequal_mixture()
    grid = Grid(*mixture_bounds(truth))
    lp = log_density(evaluate_energy(truth, grid), grid)
    masses = mode_masses(lp, grid, truth.means.numpy())
    # the broad component leaks a little into the others' Voronoi cells: loose tolerance
    np.testing.assert_allclose(masses, [0.6, 0.3, 0.1], atol=0.03)


# --------------------------------------------------------------------------------------------
# Evaluation, gradients, the landscape bundle
# --------------------------------------------------------------------------------------------


def test_compute_landscape_energy_gradient_and_density():
    g = GaussianEnergy([0.5, -0.5], [[1.0, 0.4], [0.4, 0.8]])
    grid = Grid(*mixture_bounds(g), n=64)
    land = compute_landscape(g, grid, temperature=0.5, grad_n=12)
    assert land.energy.shape == (64, 64) and land.log_density.shape == (64, 64)
    assert land.log_z == pytest.approx(g.log_z + math.log(0.5), abs=1e-5)
    assert np.exp(land.log_density).sum() * grid.cell_area == pytest.approx(1.0, abs=1e-12)
    assert land.grad.shape == (12, 12, 2) and land.grad_grid == grid.with_n(12)
    x, y = land.grad_grid.mesh()
    pts = np.stack([x, y], -1) - g.mean.numpy()
    expected = pts @ g.precision.double().numpy()  # ∇E = Σ⁻¹ (x − μ), Σ⁻¹ symmetric
    np.testing.assert_allclose(land.grad, expected, rtol=1e-4, atol=1e-5)
    assert compute_landscape(g, grid, grad_n=None).grad is None


def test_mlp_evaluation_chunks_and_restores_training_mode():
    torch.manual_seed(0)
    model = MLPEnergy()
    model.train()
    grid = Grid((-4.0, 4.0), (-4.0, 4.0), n=100)
    values = evaluate_energy(model, grid, batch=999)  # chunks that do not divide n²
    assert model.training
    assert all(p.requires_grad for p in model.parameters())
    with torch.no_grad():
        direct = model(grid.points()).double().numpy().reshape(100, 100)
    np.testing.assert_allclose(values, direct, rtol=1e-5, atol=1e-6)
    grad = energy_gradient(model, grid.with_n(10))
    assert grad.shape == (10, 10, 2) and np.isfinite(grad).all()
    assert all(p.grad is None for p in model.parameters())  # no weight gradients accumulated


def test_non_finite_energy_and_wrong_dimension_are_reported():
    class Hole(Energy):
        event_shape = (2,)

        def forward(self, x):
            return torch.where(x[:, 0] > 0, torch.full_like(x[:, 0], float("inf")), x[:, 1])

    grid = Grid((-1.0, 1.0), (-1.0, 1.0), n=8)
    with pytest.raises(FloatingPointError, match="non-finite"):
        evaluate_energy(Hole(), grid)
    with pytest.raises(ValueError):
        evaluate_energy(MLPEnergy(in_dim=3), grid)
