"""Mode covering vs mode seeking: fit a Gaussian mixture q_φ to a 2-D target p ∝ exp(−E/T).

Two directions of the KL divergence, two behaviours (the classic picture of the EBM literature):

- **Forward KL(p‖q)** (:func:`fit_forward_kl`) needs *samples* of p: minimising it is maximum
  likelihood, so q must put mass wherever p has any. A single Gaussian spreads over all modes
  (mode covering). Closed form for k = 1; EM for k > 1.
- **Reverse KL(q‖p)** (:func:`fit_reverse_kl`) needs only the *energy*:
  ``KL(q‖p) = E_q[log q + E/T] + log Z_T``, and log Z_T does not depend on φ. Samples of q are
  reparameterised (``x = μ_k + L_k ε``) so the expectation is differentiable; q pays infinitely
  for mass where p has none, so a single Gaussian settles on one mode (mode seeking).

The mixture expectation is written ``Σ_k π_k E_{N(μ_k, Σ_k)}[log q(x) + E(x)/T]``: exact in π
(softmax logits), so no gradient through a discrete component choice is needed.

Results are :class:`GaussianMixtureParams` (plain numpy); their
:meth:`~GaussianMixtureParams.to_energy` is an analytic energy the landscape view can draw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ebm_studio.core.energies import Energy, GaussianMixtureEnergy
from ebm_studio.core.errors import check_int_at_least, check_positive
from ebm_studio.core.landscape import eval_mode, module_device_dtype
from ebm_studio.core.samplers import frozen

LOG_2PI = math.log(2.0 * math.pi)
#: EM covariance floor, relative to the data's mean per-axis variance: stops a component
#: collapsing onto one sample while biasing real variances by < 1e-5 of the data scale
COV_FLOOR_REL = 1e-5
#: EM stops when the mean log-likelihood improves by less than this (nats per sample)
EM_TOL = 1e-7
#: callbacks are called every this many steps (and at the last one)
PROGRESS_EVERY = 10

Progress = Callable[[int, int, float], None]


@dataclass
class GaussianMixtureParams:
    """A 2-D Gaussian mixture: ``weights`` (K,) summing to 1, ``means`` (K, 2), ``covs`` (K,2,2)."""

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray

    def __post_init__(self) -> None:
        self.weights = np.asarray(self.weights, dtype=np.float64).reshape(-1)
        self.means = np.asarray(self.means, dtype=np.float64)
        self.covs = np.asarray(self.covs, dtype=np.float64)
        k = self.weights.size
        if k < 1 or self.means.shape != (k, 2) or self.covs.shape != (k, 2, 2):
            raise ValueError(
                "weights, means, covs must have shapes (K,), (K, 2), (K, 2, 2); got "
                f"{self.weights.shape}, {self.means.shape}, {self.covs.shape}"
            )
        for name in ("weights", "means", "covs"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"{name} contains non-finite values")
        if (self.weights <= 0).any():
            raise ValueError(f"weights must be positive, got {self.weights}")
        self.weights = self.weights / self.weights.sum()
        try:
            np.linalg.cholesky(self.covs)
        except np.linalg.LinAlgError:
            raise ValueError("covs must be symmetric positive definite") from None

    @property
    def k(self) -> int:
        return self.weights.size

    def log_prob(self, x):
        """log q(x) for points (N, 2); a tensor in gives a tensor (of x's dtype) out, else numpy."""
        is_tensor = isinstance(x, torch.Tensor)
        xt = torch.as_tensor(x).detach().to("cpu", torch.float64)
        if xt.ndim != 2 or xt.shape[1] != 2:
            raise ValueError(f"x must have shape (N, 2), got {tuple(xt.shape)}")
        chol = torch.linalg.cholesky(torch.as_tensor(self.covs))
        lp = _mixture_log_prob(
            xt, torch.log(torch.as_tensor(self.weights)), torch.as_tensor(self.means), chol
        )
        return lp.to(x.device, x.dtype) if is_tensor else lp.numpy()

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` samples (n, 2), seeded."""
        n = check_int_at_least("n", n, 1)
        rng = np.random.default_rng(seed)
        comp = rng.choice(self.k, size=n, p=self.weights)
        chol = np.linalg.cholesky(self.covs)
        eps = rng.standard_normal((n, 2))
        return self.means[comp] + np.einsum("nij,nj->ni", chol[comp], eps)

    def to_energy(self) -> GaussianMixtureEnergy:
        """The analytic energy −log q(x) (up to the constant log 2π), to draw on the landscape."""
        return GaussianMixtureEnergy(self.means, weights=self.weights, covs=self.covs)

    @classmethod
    def from_energy(cls, energy: GaussianMixtureEnergy) -> "GaussianMixtureParams":
        """The parameters of a 2-D analytic mixture energy (e.g. to sample a toy target)."""
        return cls(
            energy.weights.detach().double().cpu().numpy(),
            energy.means.detach().double().cpu().numpy(),
            energy.covs.detach().double().cpu().numpy(),
        )


def _mixture_log_prob(
    x: torch.Tensor, log_w: torch.Tensor, means: torch.Tensor, chol: torch.Tensor
) -> torch.Tensor:
    """log Σ_k w_k N(x; μ_k, L_k L_kᵀ) for x (N, 2); differentiable in every argument.

    The 2×2 triangular solve is written out element-wise: batched BLAS calls (bmm, triangular
    solve) on such tiny matrices were 10× slower, and far worse when other processes share the
    cores (their threads spin at barriers).
    """
    a, b, c = chol[:, 0, 0], chol[:, 1, 1], chol[:, 1, 0]
    d0 = x[:, None, 0] - means[None, :, 0]  # (N, K)
    d1 = x[:, None, 1] - means[None, :, 1]
    z0 = d0 / a
    z1 = (d1 - c * z0) / b  # L⁻¹(x − μ)
    log_det = torch.log(a) + torch.log(b)  # ½ log|Σ|
    return torch.logsumexp(log_w - 0.5 * (z0**2 + z1**2) - log_det - LOG_2PI, dim=1)


# --------------------------------------------------------------------------------------------
# Forward KL: maximum likelihood
# --------------------------------------------------------------------------------------------


def _check_samples(samples, k: int) -> np.ndarray:
    x = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    x = x.astype(np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"samples must have shape (N, 2), got {x.shape}")
    if x.shape[0] < max(2, k):
        raise ValueError(
            f"samples must hold at least max(2, k) = {max(2, k)} points, got {x.shape[0]}"
        )
    if not np.isfinite(x).all():
        raise ValueError("samples contains non-finite values")
    return x


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: next centre drawn ∝ squared distance to the nearest chosen centre."""
    centres = [x[rng.integers(x.shape[0])]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        # all points coincide with chosen centres: any point will do
        idx = rng.choice(x.shape[0], p=d2 / total) if total > 0 else rng.integers(x.shape[0])
        centres.append(x[idx])
        d2 = np.minimum(d2, ((x - x[idx]) ** 2).sum(1))
    return np.stack(centres)


def _log_gauss(x: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """(N, K) log N(x_n; μ_k, Σ_k)."""
    chol = np.linalg.cholesky(covs)
    diff = x[None, :, :] - means[:, None, :]  # (K, N, 2)
    # 2×2 triangular solve written out: cheaper than a generic solver for K·N tiny systems
    z0 = diff[..., 0] / chol[:, None, 0, 0]
    z1 = (diff[..., 1] - chol[:, None, 1, 0] * z0) / chol[:, None, 1, 1]
    log_det = np.log(chol[:, 0, 0]) + np.log(chol[:, 1, 1])
    return (-0.5 * (z0**2 + z1**2) - log_det[:, None] - LOG_2PI).T


def fit_forward_kl(
    samples,
    k: int = 1,
    steps: int = 200,
    seed: int = 0,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    sample_weights=None,
) -> GaussianMixtureParams:
    """min_q KL(p‖q) over k-component mixtures = maximum likelihood of ``samples`` (N, 2) of p.

    ``sample_weights`` (N,) turn the points into a weighted sample of p: with grid cell centres
    weighted by p·ΔA (quadrature) the fit is exact for the density, not subject to how well a
    sampler mixed between modes. k = 1: the (weighted) mean and maximum-likelihood covariance,
    i.e. moment matching. k > 1: EM from a seeded k-means++ start, at most ``steps`` iterations,
    stopping early once the mean log-likelihood improves by < ``EM_TOL``; a covariance floor keeps
    components from collapsing. ``progress(i, steps, loss)`` gets the mean negative
    log-likelihood (= KL(p‖q) + H(p)).
    """
    k = check_int_at_least("k", k, 1)
    steps = check_int_at_least("steps", steps, 1)
    x = _check_samples(samples, k)
    n = x.shape[0]
    if sample_weights is None:
        w = np.full(n, 1.0 / n)
    else:
        w = np.asarray(sample_weights, dtype=np.float64).reshape(-1)
        if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"sample_weights must be {n} finite non-negative numbers with a positive sum")
        w = w / w.sum()
    data_mean = w @ x
    data_cov = ((x - data_mean) * w[:, None]).T @ (x - data_mean)
    floor = COV_FLOOR_REL * float(np.trace(data_cov) / 2) + 1e-12  # + tiny absolute: points may coincide
    eye = np.eye(2)

    if k == 1:
        params = GaussianMixtureParams(np.ones(1), data_mean[None], (data_cov + floor * eye)[None])
        if progress is not None:
            progress(1, 1, float(-(w * params.log_prob(x)).sum()))
        return params

    rng = np.random.default_rng(seed)
    pick = x if sample_weights is None else x[rng.choice(n, size=min(n, 4096), p=w)]
    means = _kmeans_pp(pick, k, rng)
    covs = np.repeat((data_cov + floor * eye)[None] / k, k, axis=0)
    weights = np.full(k, 1.0 / k)
    prev = -np.inf
    for i in range(1, steps + 1):
        # E step: responsibilities r_nk ∝ w_k N(x_n; μ_k, Σ_k)
        lj = np.log(weights)[None] + _log_gauss(x, means, covs)
        m = lj.max(1, keepdims=True)
        ll_n = m[:, 0] + np.log(np.exp(lj - m).sum(1))
        r = np.exp(lj - ll_n[:, None])
        ll = float(w @ ll_n)
        # M step, each point counting with its weight
        rw = r * w[:, None]
        nk = rw.sum(0)
        dead = nk < 1e-8
        nk = np.maximum(nk, 1e-300)
        weights = nk / nk.sum()
        means = (rw.T @ x) / nk[:, None]
        d = x[None] - means[:, None]  # (K, N, 2)
        covs = np.einsum("nk,kni,knj->kij", rw, d, d) / nk[:, None, None] + floor * eye
        if dead.any():
            # a component that explains nothing restarts on the worst-explained point
            worst = x[np.argsort(ll_n)[: int(dead.sum())]]
            means[dead] = worst
            covs[dead] = data_cov / k + floor * eye
            weights[dead] = 1.0 / n
            weights = weights / weights.sum()
        stop = ll - prev < EM_TOL or i == steps or (should_stop is not None and should_stop())
        if progress is not None and (i % PROGRESS_EVERY == 0 or stop):
            progress(i, steps, -ll)
        if stop:
            break
        prev = ll
    return GaussianMixtureParams(weights, means, covs)


# --------------------------------------------------------------------------------------------
# Reverse KL: reparameterised variational fit, needs only E
# --------------------------------------------------------------------------------------------


def _tril_from(raw_diag: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
    """(K, 2, 2) lower-triangular Cholesky factors [[a, 0], [c, b]] with a, b = exp(raw_diag)."""
    d = torch.exp(raw_diag)
    zero = torch.zeros_like(off)
    return torch.stack([torch.stack([d[:, 0], zero], -1), torch.stack([off, d[:, 1]], -1)], -2)


class _Adam:
    """Plain Adam (β = 0.9, 0.999) for a few small tensors.

    Written out because constructing ``torch.optim.Adam`` imports ``torch._dynamo`` on first use,
    which cost 2.5–3 s here: more than a whole fit, on the path to the first picture.
    """

    def __init__(self, params: list[torch.Tensor], lr: float) -> None:
        self.params, self.lr, self.t = params, lr, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, grads: tuple[torch.Tensor, ...]) -> None:
        self.t += 1
        c1, c2 = 1.0 - 0.9**self.t, 1.0 - 0.999**self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m.mul_(0.9).add_(g, alpha=0.1)
            v.mul_(0.999).addcmul_(g, g, value=0.001)
            p.sub_(self.lr * (m / c1) / ((v / c2).sqrt() + 1e-8))


def fit_reverse_kl(
    energy: Energy,
    k: int = 1,
    temperature: float = 1.0,
    steps: int = 500,
    n_samples: int = 256,
    lr: float = 0.05,
    seed: int = 0,
    init_scale: float = 1.0,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    init: GaussianMixtureParams | None = None,
) -> GaussianMixtureParams:
    """min_q KL(q‖p), p ∝ exp(−E/T), over k-component mixtures, by Adam on reparameterised samples.

    Loss per step: ``Σ_k π_k · mean_{ε} [log q(μ_k + L_k ε) + E(μ_k + L_k ε)/T]`` with ``n_samples``
    draws of ε per component; it equals KL(q‖p) − log Z_T, so needs no Z. The start (unless
    ``init`` is given) is seeded: means ~ N(0, init_scale² I), covariances init_scale² I, equal
    weights. ``progress(i, steps, loss)`` every 10 steps; ``should_stop()`` is checked every step
    and returns the current parameters early. The energy's parameters are frozen meanwhile.
    """
    k = check_int_at_least("k", k, 1)
    temperature = check_positive("temperature", temperature)
    steps = check_int_at_least("steps", steps, 1)
    n_samples = check_int_at_least("n_samples", n_samples, 1)
    lr = check_positive("lr", lr)
    init_scale = check_positive("init_scale", init_scale)
    if init is not None and init.k != k:
        raise ValueError(f"init has {init.k} components but k = {k}")
    if energy.event_shape and tuple(energy.event_shape) != (2,):
        raise ValueError(f"energy must be 2-D (event shape (2,)), got {tuple(energy.event_shape)}")

    gen = torch.Generator().manual_seed(int(seed))
    dt = torch.float64  # the variational parameters; the energy runs in its own dtype
    e_device, e_dtype = module_device_dtype(energy)
    if init is None:
        means0 = init_scale * torch.randn(k, 2, generator=gen, dtype=dt)
        chol0 = init_scale * torch.eye(2, dtype=dt).expand(k, 2, 2)
        logits0 = torch.zeros(k, dtype=dt)
    else:
        means0 = torch.as_tensor(init.means, dtype=dt)
        chol0 = torch.linalg.cholesky(torch.as_tensor(init.covs, dtype=dt))
        logits0 = torch.log(torch.as_tensor(init.weights, dtype=dt))
    means = means0.clone().requires_grad_(True)
    raw_diag = torch.log(torch.diagonal(chol0, dim1=-2, dim2=-1)).clone().requires_grad_(True)
    off = chol0[:, 1, 0].clone().requires_grad_(True)
    logits = logits0.clone().requires_grad_(True)
    params = [means, raw_diag, off, logits]
    opt = _Adam(params, lr)

    def current() -> GaussianMixtureParams:
        with torch.no_grad():
            chol = _tril_from(raw_diag, off)
            return GaussianMixtureParams(
                torch.softmax(logits, 0).numpy(),
                means.numpy().copy(),
                (chol @ chol.transpose(-1, -2)).numpy(),  # once, at the end: BLAS is fine
            )

    with frozen(energy), eval_mode(energy):
        for i in range(1, steps + 1):
            if should_stop is not None and should_stop():
                break
            chol = _tril_from(raw_diag, off)
            eps = torch.randn(k, n_samples, 2, generator=gen, dtype=dt)
            # x = μ_k + L_k ε written out element-wise (see _mixture_log_prob for why)
            x0 = means[:, None, 0] + chol[:, None, 0, 0] * eps[..., 0]
            x1 = means[:, None, 1] + chol[:, None, 1, 0] * eps[..., 0]
            x1 = x1 + chol[:, None, 1, 1] * eps[..., 1]
            x = torch.stack([x0, x1], -1)  # (K, n, 2)
            flat = x.reshape(-1, 2)
            log_w = torch.log_softmax(logits, 0)
            log_q = _mixture_log_prob(flat, log_w, means, chol)
            e = energy(flat.to(e_device, e_dtype)).to("cpu", dt)
            per_comp = (log_q + e / temperature).reshape(k, n_samples).mean(1)
            loss = (torch.exp(log_w) * per_comp).sum()
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the reverse-KL loss became non-finite at step {i} (lr too large?)"
                )
            opt.step(torch.autograd.grad(loss, params))
            if progress is not None and (i % PROGRESS_EVERY == 0 or i == steps):
                progress(i, steps, float(loss.detach()))
    return current()
