"""Statistical tests of the samplers: samples must match distributions with known moments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ebm_studio.core.chains import ReplayBuffer, noise
from ebm_studio.core.energies import ConvEnergy, GaussianEnergy, GaussianMixtureEnergy
from ebm_studio.core.samplers import SAMPLER_KINDS, make_sampler, switch_sampler

COV = np.array([[1.0, 0.8], [0.8, 1.0]])
MEAN = np.array([1.0, -0.5])


def gaussian() -> GaussianEnergy:
    return GaussianEnergy(MEAN, COV)


def run_and_collect(sampler, burn: int, n_keep: int, every: int) -> torch.Tensor:
    """Run ``burn`` steps, then keep ``n_keep`` snapshots ``every`` steps apart: (n_keep, N, d)."""
    sampler.run(burn)
    snaps = []
    for _ in range(n_keep):
        snaps.append(sampler.run(every).x.clone())
    return torch.stack(snaps)


def cov_tolerance(n_eff: int, cov: np.ndarray) -> np.ndarray:
    """4 standard errors of a sample covariance entry: Var(s_ij) ≈ (σ_ij² + σ_ii σ_jj)/n."""
    d = np.diag(cov)
    return 4.0 * np.sqrt((cov**2 + np.outer(d, d)) / n_eff)


@pytest.mark.parametrize("kind,eps,burn", [("langevin", 0.01, 1500), ("mala", 0.2, 400), ("hmc", 0.2, 200)])
def test_gaussian_moments(kind, eps, burn):
    n = 4000
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(1)) * 3
    s = make_sampler(kind, gaussian(), x0, step_size=eps, seed=7)
    snaps = run_and_collect(s, burn, 4, 150)  # snapshots far apart: nearly independent
    x = snaps.reshape(-1, 2).double().numpy()
    n_eff = x.shape[0] // 2  # conservative: count neighbouring snapshots as half-correlated
    mean, cov = x.mean(0), np.cov(x.T)
    se_mean = 4 * np.sqrt(np.diag(COV) / n_eff)
    # ULA's stationary covariance is Σ(I − εP/4)⁻¹: relative bias ≤ ε λ_max(P)/4
    bias = eps * np.linalg.eigvalsh(np.linalg.inv(COV)).max() / 4 if kind == "langevin" else 0.0
    assert np.all(np.abs(mean - MEAN) < se_mean), (mean, MEAN)
    assert np.all(np.abs(cov - COV) < cov_tolerance(n_eff, COV) + bias * np.abs(COV)), cov


def test_temperature_scales_covariance():
    n = 4000
    x0 = torch.zeros(n, 2) + torch.tensor(MEAN, dtype=torch.float32)
    covs = {}
    for t in (1.0, 2.0):
        s = make_sampler("mala", gaussian(), x0, step_size=0.3 * t, temperature=t, seed=3)
        x = run_and_collect(s, 300, 4, 100).reshape(-1, 2).double().numpy()
        covs[t] = np.cov(x.T)
    ratio = covs[2.0] / covs[1.0]
    # relative SE of a variance ≈ √(2/n) per estimate; the ratio of two has √2 times that
    tol = 4 * math.sqrt(2) * math.sqrt(2 / (2 * n))
    assert abs(ratio[0, 0] - 2) < 2 * tol and abs(ratio[1, 1] - 2) < 2 * tol, ratio
    assert abs(covs[2.0][0, 1] / covs[1.0][0, 1] - 2) < 2 * tol * 1.5


def test_low_temperature_concentrates_on_modes():
    mix = GaussianMixtureEnergy([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.0]], stds=0.5)
    x0 = noise(2000, (2,), "uniform", low=-4, high=4, generator=torch.Generator().manual_seed(0))
    s = make_sampler("langevin", mix, x0, temperature=0.01, step_size=2e-3, seed=0)
    x = s.run(500).x
    d = torch.cdist(x, mix.means).min(1).values
    # at T = 0.01 each mode is N(μ, 0.01·0.25): 99.99 % of mass within 4.5·0.05 of a centre
    assert (d < 0.25).float().mean() > 0.995, d.max()


TWO_MODES = dict(means=[[-1.0, 0.0], [1.0, 0.0]], weights=[0.7, 0.3], stds=0.6)


def left_fraction_truth() -> float:
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    return 0.7 * phi(1 / 0.6) + 0.3 * phi(-1 / 0.6)


def occupancy(kind: str, eps: float, steps: int = 1500, burn: int = 300, n: int = 500, seed: int = 0):
    """Per-chain time averages of 1[x₁ < 0] and of |x|²: chains are independent, so the
    spread of these averages across chains gives an honest standard error (it includes
    the autocorrelation within each chain)."""
    mix = GaussianMixtureEnergy(**TWO_MODES)
    x0 = noise(n, (2,), "uniform", low=-3, high=3, generator=torch.Generator().manual_seed(seed))
    s = make_sampler(kind, mix, x0, step_size=eps, seed=seed, n_leapfrog=4)
    s.run(burn)
    s.reset_accept_stats()
    left = torch.zeros(n, dtype=torch.float64)
    sq = torch.zeros(n, dtype=torch.float64)
    for _ in range(steps):
        x = s.step().x
        left += (x[:, 0] < 0).double()
        sq += (x**2).sum(1).double()
    return left / steps, sq / steps, s.mean_accept_rate


def second_moment_truth() -> float:
    means = np.array(TWO_MODES["means"])
    w = np.array(TWO_MODES["weights"])
    return float((w * ((means**2).sum(1) + 2 * 0.36)).sum())


@pytest.mark.parametrize("kind,eps,steps", [("mala", 0.5, 1500), ("hmc", 0.4, 700)])
def test_exact_samplers_match_mode_weights(kind, eps, steps):
    left, _, acc = occupancy(kind, eps, steps=steps)
    se = float(left.std() / math.sqrt(len(left)))
    assert 0 < acc < 1
    assert abs(float(left.mean()) - left_fraction_truth()) < 4 * se + 1e-3, (left.mean(), se)
    # the chains must actually cross between the modes for this test to mean anything
    assert ((left > 0.05) & (left < 0.95)).float().mean() > 0.5


@pytest.mark.parametrize("kind", ["mala", "hmc"])
def test_acceptance_falls_as_step_grows(kind):
    rates = [occupancy(kind, eps, steps=100, burn=50, n=400)[2] for eps in (0.05, 0.5, 1.5)]
    assert all(0 < r < 1 for r in rates), rates
    assert rates[0] > rates[1] > rates[2], rates


def test_ula_bias_shrinks_with_step_size():
    truth = second_moment_truth()
    errs, ses = [], []
    for eps in (0.4, 0.15, 0.05):
        steps = int(round(100 / eps))
        _, sq, _ = occupancy("langevin", eps, steps=steps, burn=int(30 / eps), n=400)
        errs.append(abs(float(sq.mean()) - truth))
        ses.append(float(sq.std() / math.sqrt(len(sq))))
    assert errs[0] > errs[1] + 2 * (ses[0] + ses[1]), (errs, ses)
    assert errs[1] > errs[2], errs
    assert errs[2] < 4 * ses[2] + 0.02 * truth, (errs, ses)


@pytest.mark.parametrize("kind", SAMPLER_KINDS)
def test_mask_keeps_fixed_pixels_bit_for_bit(kind):
    torch.manual_seed(0)
    energy = ConvEnergy(channels=1, size=16, width=4)
    x0 = torch.rand(3, 1, 16, 16) * 2 - 1
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[:, 4:12, 4:12] = True
    s = make_sampler(kind, energy, x0, mask=mask, step_size=0.05, clamp=(-1, 1), seed=1)
    x = s.run(25).x
    assert torch.equal(x[:, ~mask], x0[:, ~mask])
    assert not torch.equal(x[:, mask], x0[:, mask])


@pytest.mark.parametrize("kind", SAMPLER_KINDS)
def test_same_seed_same_chains(kind):
    x0 = torch.randn(64, 2)
    a = make_sampler(kind, gaussian(), x0, step_size=0.1, seed=5).run(20).x
    b = make_sampler(kind, gaussian(), x0, step_size=0.1, seed=5).run(20).x
    c = make_sampler(kind, gaussian(), x0, step_size=0.1, seed=6).run(20).x
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_changed_step_size_applies_at_next_step():
    energy = gaussian()
    s = make_sampler("langevin", energy, torch.randn(32, 2), step_size=0.01, temperature=1.5, seed=2)
    s.run(5)
    x = s.x.clone()
    s.step_size = 0.3
    s.temperature = 0.7
    g = torch.Generator().set_state(s.generator.get_state())
    xi = torch.randn(x.shape, generator=g)
    grad_u = (x - energy.mean) @ energy.precision / 0.7
    expected = x - 0.15 * grad_u + math.sqrt(0.3) * xi
    torch.testing.assert_close(s.step().x, expected, rtol=1e-5, atol=1e-5)


def test_reported_energy_is_at_new_state():
    energy = gaussian()
    for kind in SAMPLER_KINDS:
        r = make_sampler(kind, energy, torch.randn(16, 2), step_size=0.1).step()
        torch.testing.assert_close(r.energy, energy(r.x))


def test_switch_sampler_continues_chains():
    s = make_sampler("langevin", gaussian(), torch.randn(16, 2), step_size=0.05, seed=1)
    s.run(3)
    t = switch_sampler(s, "mala")
    assert t.kind == "mala" and torch.equal(t.x, s.x) and t.steps_done == 3
    assert t.step().accept_rate is not None


@pytest.mark.parametrize(
    "kwargs,word",
    [
        ({"step_size": 0.0}, "step_size"),
        ({"step_size": -1.0}, "step_size"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"noise": -0.1}, "noise"),
        ({"clamp": (1.0, -1.0)}, "clamp"),
        ({"mask": torch.ones(3, dtype=torch.bool)}, "mask"),
        ({"mask": torch.ones(2)}, "mask"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, word):
    with pytest.raises(ValueError, match=word):
        make_sampler("langevin", gaussian(), torch.zeros(4, 2), **kwargs)


def test_bad_state_and_kind():
    with pytest.raises(ValueError, match="x0"):
        make_sampler("mala", gaussian(), torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="sampler"):
        make_sampler("gibbs", gaussian(), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="shape"):
        make_sampler("langevin", gaussian(), torch.zeros(2, 3))
    s = make_sampler("langevin", gaussian(), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="temperature"):
        s.temperature = -2


def test_replay_buffer_reseeds_a_fraction():
    gen = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(1000, lambda n: torch.full((n, 2), 5.0), reseed_fraction=0.1, generator=gen)
    buf.data.zero_()
    x = buf.sample(200)
    assert int((x == 5.0).all(1).sum()) == 20
    buf.push(x + 1)
    assert int((buf.data == 1.0).all(1).sum()) == 180
    with pytest.raises(ValueError, match="reseed_fraction"):
        ReplayBuffer(10, lambda n: torch.zeros(n, 2), reseed_fraction=1.5)


def test_run_stops_between_steps_when_asked():
    from ebm_studio.core.samplers import Stopped

    s = make_sampler("langevin", gaussian(), torch.zeros(8, 2), step_size=0.01)
    polls = iter([False, False, False, True])
    s.should_stop = lambda: next(polls)
    with pytest.raises(Stopped):
        s.run(10)
    assert s.steps_done == 3
