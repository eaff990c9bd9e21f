"""Forward KL covers modes, reverse KL seeks one: Gaussian (mixture) fits to a two-mode target."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ebm_studio.core.energies import Energy, GaussianMixtureEnergy
from ebm_studio.core.kl_fit import GaussianMixtureParams, fit_forward_kl, fit_reverse_kl

MODE_X, STD = 3.0, 0.5


class TwoModes(Energy):
    """The target: equal isotropic modes at (±3, 0), std 0.5, written element-wise.

    Same density as ``GaussianMixtureEnergy([[-3, 0], [3, 0]], stds=0.5)``, but without its batched
    2×2 einsum (a BLAS call that is slow on busy shared cores), so the many small steps of the
    reverse fit stay fast. exp(−E) integrates to 2·2πσ².
    """

    event_shape = (2,)
    log_z = math.log(2 * 2 * math.pi * STD**2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d_left = (x[:, 0] + MODE_X) ** 2 + x[:, 1] ** 2
        d_right = (x[:, 0] - MODE_X) ** 2 + x[:, 1] ** 2
        return -torch.logaddexp(-d_left / (2 * STD**2), -d_right / (2 * STD**2))


@pytest.fixture(scope="module")
def truth() -> GaussianMixtureParams:
    return GaussianMixtureParams(
        np.array([0.5, 0.5]),
        np.array([[-MODE_X, 0.0], [MODE_X, 0.0]]),
        np.stack([np.eye(2) * STD**2] * 2),
    )


@pytest.fixture(scope="module")
def samples(truth) -> torch.Tensor:
    return torch.as_tensor(truth.sample(4000, seed=1), dtype=torch.float32)


def on_a_mode(mean: np.ndarray, cov: np.ndarray) -> bool:
    return (
        abs(abs(mean[0]) - MODE_X) < 0.15
        and abs(mean[1]) < 0.15
        and np.allclose(np.diag(cov), STD**2, atol=0.08)
    )


# --------------------------------------------------------------------------------------------
# The parameter container
# --------------------------------------------------------------------------------------------


def test_params_log_prob_sample_and_energy_agree(truth):
    x = truth.sample(20000, seed=0)
    assert x.shape == (20000, 2)
    # moments of the mixture: mean 0, var_x = 9 + 0.25, var_y = 0.25 (4 standard errors)
    assert abs(x[:, 0].mean()) < 4 * math.sqrt(9.25 / len(x))
    assert x[:, 0].var() == pytest.approx(9.25, rel=0.03)
    assert x[:, 1].var() == pytest.approx(0.25, rel=0.05)
    xt = torch.as_tensor(x[:100], dtype=torch.float32)
    lp = truth.log_prob(xt)
    assert isinstance(lp, torch.Tensor) and lp.dtype == torch.float32 and lp.shape == (100,)
    np.testing.assert_allclose(truth.log_prob(x[:100]), lp.double().numpy(), rtol=1e-5)
    energy = truth.to_energy()
    assert isinstance(energy, GaussianMixtureEnergy)
    np.testing.assert_allclose(energy.log_prob(xt).numpy(), lp.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(TwoModes()(xt) + TwoModes.log_z, -lp, rtol=1e-5, atol=1e-5)
    back = GaussianMixtureParams.from_energy(energy)
    np.testing.assert_allclose(back.means, truth.means, atol=1e-6)


def test_params_reject_bad_shapes_and_covariances():
    with pytest.raises(ValueError, match="shapes"):
        GaussianMixtureParams(np.ones(2), np.zeros((3, 2)), np.stack([np.eye(2)] * 2))
    with pytest.raises(ValueError, match="covs"):
        GaussianMixtureParams(np.ones(1), np.zeros((1, 2)), -np.eye(2)[None])
    with pytest.raises(ValueError, match="weights"):
        GaussianMixtureParams(np.array([0.0]), np.zeros((1, 2)), np.eye(2)[None])


# --------------------------------------------------------------------------------------------
# Forward KL: mode covering
# --------------------------------------------------------------------------------------------


def test_forward_kl_gaussian_covers_both_modes(samples):
    fit = fit_forward_kl(samples, k=1)
    x = samples.double().numpy()
    assert fit.weights.tolist() == [1.0]
    np.testing.assert_allclose(fit.means[0], x.mean(0))  # closed form: the ML estimate
    np.testing.assert_allclose(fit.covs[0], np.cov(x.T, bias=True), atol=1e-4)  # + floor
    n = len(x)
    assert abs(fit.means[0, 0]) < 4 * math.sqrt(9.25 / n)  # between the modes
    assert fit.covs[0, 0, 0] == pytest.approx(MODE_X**2 + STD**2, rel=0.05)  # spans both
    assert fit.covs[0, 1, 1] == pytest.approx(STD**2, rel=0.1)


def test_forward_kl_mixture_recovers_both_modes(samples):
    calls = []
    fit = fit_forward_kl(samples, k=2, seed=3, progress=lambda *a: calls.append(a))
    order = np.argsort(fit.means[:, 0])
    np.testing.assert_allclose(fit.means[order], [[-MODE_X, 0.0], [MODE_X, 0.0]], atol=0.1)
    np.testing.assert_allclose(fit.weights, 0.5, atol=0.05)
    np.testing.assert_allclose(fit.covs, np.stack([np.eye(2) * STD**2] * 2), atol=0.05)
    assert calls and calls[-1][1] == 200
    # the reported loss is the mean NLL of the samples under the fit
    assert calls[-1][2] == pytest.approx(-fit.log_prob(samples.double().numpy()).mean(), abs=1e-6)
    again = fit_forward_kl(samples, k=2, seed=3)  # seeded: reproducible
    np.testing.assert_array_equal(again.means, fit.means)


def test_forward_kl_floor_keeps_duplicate_points_finite():
    x = torch.tensor([[1.0, 1.0]] * 10 + [[-1.0, 2.0]] * 10)
    fit = fit_forward_kl(x, k=2, seed=0)
    assert np.isfinite(fit.covs).all() and (np.linalg.eigvalsh(fit.covs) > 0).all()
    assert np.isfinite(fit.log_prob(x.numpy())).all()


# --------------------------------------------------------------------------------------------
# Reverse KL: mode seeking
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_reverse_kl_gaussian_seeks_one_mode(seed):
    losses = []
    fit = fit_reverse_kl(
        TwoModes(), k=1, steps=300, n_samples=128, seed=seed, progress=lambda *a: losses.append(a)
    )
    assert on_a_mode(fit.means[0], fit.covs[0]), (fit.means, fit.covs)
    # q = one of two equal modes exactly: KL(q‖p) = log 2; the loss is KL − log Z
    assert len(losses) == 30 and losses[-1][:2] == (300, 300)
    kl = np.mean([loss for _, _, loss in losses[-5:]]) + TwoModes.log_z
    assert kl == pytest.approx(math.log(2), abs=0.05)


@pytest.mark.parametrize("seed", [0, 1])
def test_reverse_kl_mixture_components_never_sit_between_modes(seed):
    # Reliable for any start: every component that keeps weight sits on a mode, and the fit is no
    # worse than a single mode. (Whether the two components find different modes depends on the
    # start; a component may also starve to ~0 weight.)
    losses = []
    fit = fit_reverse_kl(
        TwoModes(), k=2, steps=300, n_samples=128, seed=seed, progress=lambda *a: losses.append(a)
    )
    for w, m, c in zip(fit.weights, fit.means, fit.covs):
        if w > 0.05:
            assert on_a_mode(m, c), (fit.weights, fit.means, fit.covs)
    x = fit.sample(4000, seed=0)
    assert (np.abs(x[:, 0]) < 1.5).mean() < 0.02  # no mass bridging the gap
    kl = np.mean([loss for _, _, loss in losses[-5:]]) + TwoModes.log_z
    assert kl < math.log(2) + 0.05


def test_reverse_kl_on_a_mixture_energy_at_temperature_two():
    # the app's analytic class; at T = 2 each well of exp(−E/2) is N(±3, 2·0.25)
    energy = GaussianMixtureEnergy([[-MODE_X, 0.0], [MODE_X, 0.0]], stds=STD)
    fit = fit_reverse_kl(energy, k=1, temperature=2.0, steps=150, n_samples=64, lr=0.1, seed=0)
    assert abs(abs(fit.means[0, 0]) - MODE_X) < 0.25
    np.testing.assert_allclose(np.diag(fit.covs[0]), 2 * STD**2, atol=0.15)


def test_reverse_kl_should_stop_returns_current_params():
    init = GaussianMixtureParams(
        np.array([0.3, 0.7]),
        np.array([[1.0, 2.0], [-1.0, 0.5]]),
        np.stack([np.eye(2) * 0.4, np.array([[1.0, 0.2], [0.2, 0.5]])]),
    )
    fit = fit_reverse_kl(TwoModes(), k=2, init=init, should_stop=lambda: True)
    np.testing.assert_allclose(fit.weights, init.weights)
    np.testing.assert_allclose(fit.means, init.means)
    np.testing.assert_allclose(fit.covs, init.covs, atol=1e-12)
    calls = []

    def stop_after_five() -> bool:
        calls.append(1)
        return len(calls) > 5

    progress = []
    fit = fit_reverse_kl(
        TwoModes(), steps=100, should_stop=stop_after_five, progress=lambda *a: progress.append(a)
    )
    assert len(calls) == 6 and progress == []  # checked every step; stopped before step 10
    assert not np.allclose(fit.means, 0.0)


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [({"k": 0}, "k"), ({"k": 1.5}, "k"), ({"steps": 0}, "steps"), ({"k": 5000}, "samples")],
)
def test_forward_kl_rejects_bad_arguments(samples, kwargs, name):
    with pytest.raises(ValueError, match=name):
        fit_forward_kl(samples, **kwargs)


def test_forward_kl_rejects_bad_samples():
    with pytest.raises(ValueError, match="samples"):
        fit_forward_kl(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="samples"):
        fit_forward_kl(torch.tensor([[0.0, float("nan")], [1.0, 1.0]]))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"k": 0}, "k"),
        ({"k": "2"}, "k"),
        ({"steps": 0}, "steps"),
        ({"steps": -5}, "steps"),
        ({"temperature": 0.0}, "temperature"),
        ({"n_samples": 0}, "n_samples"),
        ({"lr": -0.1}, "lr"),
        ({"init_scale": 0.0}, "init_scale"),
    ],
)
def test_reverse_kl_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        fit_reverse_kl(TwoModes(), **kwargs)


def test_reverse_kl_rejects_a_non_2d_energy_and_mismatched_init(truth):
    from ebm_studio.core.energies import MLPEnergy

    with pytest.raises(ValueError, match="2-D"):
        fit_reverse_kl(MLPEnergy(in_dim=3))
    with pytest.raises(ValueError, match="init"):
        fit_reverse_kl(TwoModes(), k=3, init=truth)


def test_forward_kl_by_quadrature_is_moment_matching():
    """With grid cells weighted by p·ΔA, the single-Gaussian forward-KL fit is the density's own
    mean and covariance (moment matching), whatever a sampler would have found."""
    import numpy as np

    from ebm_studio.core.energies import GaussianMixtureEnergy
    from ebm_studio.core.kl_fit import fit_forward_kl
    from ebm_studio.core.landscape import Grid, evaluate_energy, log_density

    energy = GaussianMixtureEnergy([[-1.5, 0.0], [1.0, 1.0]], weights=[0.3, 0.7],
                                   covs=[[[0.3, 0.1], [0.1, 0.2]], [[0.2, 0.0], [0.0, 0.4]]])
    grid = Grid((-5, 5), (-5, 5), 256)
    p = np.exp(log_density(evaluate_energy(energy, grid), grid)).reshape(-1) * grid.cell_area
    x = grid.points(dtype=__import__("torch").float64).numpy()
    fit = fit_forward_kl(x, k=1, sample_weights=p)
    w = p / p.sum()
    mean = w @ x
    cov = ((x - mean) * w[:, None]).T @ (x - mean)
    assert np.allclose(fit.means[0], mean, atol=1e-6)
    assert np.allclose(fit.covs[0], cov, atol=1e-3)
    # the analytic moments of the mixture
    m = 0.3 * np.array([-1.5, 0.0]) + 0.7 * np.array([1.0, 1.0])
    assert np.allclose(mean, m, atol=5e-3)
    mix = fit_forward_kl(x, k=2, sample_weights=p, seed=0)
    order = np.argsort(mix.means[:, 0])
    assert np.allclose(mix.weights[order], [0.3, 0.7], atol=0.02)
