"""Energy functions E(x): neural energies, analytic energies with exact densities, and sums of them.

Convention (one everywhere): ``forward(x)`` returns one scalar per sample, shape ``(N,)``; low energy
means likely. The model at temperature T is ``p_T(x) ∝ exp(-E(x)/T) · q(x)`` where ``q`` is an
optional Gaussian reference (see :class:`GaussianReference`).

Analytic energies are the negative log of an *unnormalised* density whose normaliser is known in
closed form (``log_z``), so quadrature and samplers can be checked against exact numbers:
``log p(x) = -E(x) - log_z`` at T = 1.
"""

from __future__ import annotations

import importlib
import math
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ebm_studio.core.conv_grad import ConvGradPlan, conv_energy_and_input_grad, stem_weight
from ebm_studio.core.errors import check_int_at_least, check_positive

LOG_2PI = math.log(2.0 * math.pi)


class Energy(nn.Module):
    """Base class: ``forward(x)`` maps a batch ``(N, *event_shape)`` to energies ``(N,)``."""

    #: shape of one sample, e.g. ``(2,)`` for points or ``(1, 28, 28)`` for digits
    event_shape: tuple[int, ...] = ()
    #: True when :meth:`log_prob` is exact (analytic energies)
    has_exact_log_prob: bool = False
    #: True for networks whose E and ∇E may be computed in bf16 (see ``precision.py``); analytic
    #: energies stay float32: they are cheap and serve as exact references
    low_precision_ok: bool = False

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` when ``x`` does not have shape ``(N, *event_shape)``."""
        if self.event_shape and tuple(x.shape[1:]) != tuple(self.event_shape):
            raise ValueError(
                f"x must have shape (N, {', '.join(map(str, self.event_shape))}), "
                f"got {tuple(x.shape)}"
            )

    @property
    def log_z(self) -> float:
        """Exact log normaliser of exp(-E) at T = 1 (analytic energies only)."""
        raise AttributeError(f"{type(self).__name__} has no closed-form normaliser")

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact normalised log density at T = 1 (analytic energies only)."""
        return -self(x) - self.log_z

    def describe(self) -> dict:
        """Plain-data description (kind and constructor arguments) for checkpoints."""
        raise ValueError(f"{type(self).__name__} cannot be described as plain data")


# --------------------------------------------------------------------------------------------
# Neural energies
# --------------------------------------------------------------------------------------------


class MLPEnergy(Energy):
    """A fully connected energy for low-dimensional points (default 2 → 128 → 128 → 128 → 1, SiLU)."""

    low_precision_ok = True

    def __init__(self, in_dim: int = 2, hidden: Sequence[int] = (128, 128, 128)) -> None:
        super().__init__()
        in_dim = check_int_at_least("in_dim", in_dim, 1)
        hidden = tuple(check_int_at_least("hidden width", h, 1) for h in hidden)
        self.in_dim, self.hidden = in_dim, hidden
        self.event_shape = (in_dim,)
        layers: list[nn.Module] = []
        width = in_dim
        for h in hidden:
            # SiLU: smooth (the sampler needs ∇x E) and ~9 % faster than a hand-written Swish
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def energy_and_input_grad(
        self, x: torch.Tensor, dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """E(x) and ∇ₓE(x) in closed form, without an autograd graph (what samplers need).

        With z = W h + b and SiLU(z) = z·σ(z), whose derivative is σ(z)·(1 + z·(1 − σ(z))), the
        input gradient is the product of the layers' Jacobians, taken right to left. With
        ``dtype=torch.bfloat16`` the hidden-to-hidden layers, their activations and the gradient
        back through them run in bf16; the first layer (which sees x) and the output product run
        in float32, and E and ∇E come back float32. Without a hidden-to-hidden layer there is
        nothing worth rounding, and everything stays float32.
        """
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        first, hidden, out = linears[0], linears[1:-1], linears[-1]
        if not hidden:
            dtype = torch.float32
        if len(linears) == 1:  # no hidden layer: an affine energy
            with torch.no_grad():
                return torch.addmm(out.bias, x, out.weight.t()).squeeze(-1), out.weight.detach().expand_as(x)
        with torch.no_grad():
            z0 = torch.addmm(first.bias, x, first.weight.t())
            h, pre = F.silu(z0).to(dtype), []
            weights = [lin.weight.to(dtype) for lin in hidden]
            for lin, w in zip(hidden, weights):
                z = torch.addmm(lin.bias.to(dtype), h, w.t())
                h = F.silu(z)
                pre.append(z)
            e = torch.addmm(out.bias, h.float(), out.weight.t()).squeeze(-1)
            g = out.weight.to(dtype).expand(x.shape[0], -1)
            for w, z in zip(reversed(weights), reversed(pre)):
                # aten's fused SiLU backward: one pass instead of five element-wise ones
                g = torch.ops.aten.silu_backward(g, z) @ w
            g = torch.ops.aten.silu_backward(g.float(), z0) @ first.weight
        return e, g

    def describe(self) -> dict:
        return {"kind": "mlp", "in_dim": self.in_dim, "hidden": list(self.hidden)}


class ConvEnergy(Energy):
    """A ConvNet energy for images (1 or 3 channels, 16–64 px; a ladder's coarse levels go down to
    ``min_size``): four strided convs, SiLU, linear head.

    The layout is the small CNN of the UvA EBM tutorial: a 5×5 stride-2 stem, three 3×3 stride-2
    convs with (w, 2w, 2w, 2w) channels, flatten, two linear layers. Striding from the first layer
    keeps a Langevin step cheap (a stride-1 stem at full resolution cost 1.8× more per step).
    ``spectral_norm`` wraps every layer in spectral normalisation, which keeps the energy
    Lipschitz and training calmer. Weights are kept ``channels_last`` (~8 % faster on CPU), and the
    stem runs as a space-to-depth conv (see :func:`stem_conv`).
    """

    low_precision_ok = True

    def __init__(
        self, channels: int = 1, size: int = 28, width: int = 16, spectral_norm: bool = False,
        min_size: int = 16,
    ) -> None:
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        # smaller sides are for the coarse levels of a ladder (see ``ladder.py``)
        size = check_int_at_least("size", size, min_size)
        if size > 64:
            raise ValueError(f"size must lie in {min_size}..64 pixels, got {size!r}")
        width = check_int_at_least("width", width, 1)
        self.channels, self.size, self.width, self.spectral_norm = channels, size, width, bool(
            spectral_norm
        )
        self.event_shape = (channels, size, size)
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        c = (width, 2 * width, 2 * width, 2 * width)
        self.features = nn.Sequential(
            wrap(nn.Conv2d(channels, c[0], 5, stride=2, padding=2)),
            nn.SiLU(),
            wrap(nn.Conv2d(c[0], c[1], 3, stride=2, padding=1)),
            nn.SiLU(),
            wrap(nn.Conv2d(c[1], c[2], 3, stride=2, padding=1)),
            nn.SiLU(),
            wrap(nn.Conv2d(c[2], c[3], 3, stride=2, padding=1)),
            nn.SiLU(),
        )
        s = size
        for _ in range(4):
            s = (s + 1) // 2
        self.head = nn.Sequential(
            nn.Flatten(),
            wrap(nn.Linear(c[3] * s * s, c[3])),
            nn.SiLU(),
            wrap(nn.Linear(c[3], 1)),
        )
        self.to(memory_format=torch.channels_last)
        self._grad_plan = ConvGradPlan()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = stem_conv(self.features[0], x)
        for layer in self.features[1:]:
            h = layer(h)
        return self.head(h).squeeze(-1)

    def energy_and_input_grad(
        self, x: torch.Tensor, dtype: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """E(x) and ∇ₓE(x) without an autograd graph (what samplers need); see ``conv_grad.py``."""
        return conv_energy_and_input_grad(self, self._grad_plan, x, dtype)

    def describe(self) -> dict:
        return {
            "kind": "conv",
            "channels": self.channels,
            "size": self.size,
            "width": self.width,
            "spectral_norm": self.spectral_norm,
        }


def stem_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The 5×5 stride-2 stem as the same linear map written as a 3×3 stride-1 conv on 2×2 blocks.

    Langevin needs ∇ₓE, and oneDNN's input gradient of a strided conv with few input channels is
    slow on CPU (8× its forward for the 1-channel stem at 28 px). Rearranging the input with
    ``pixel_unshuffle`` (each 2×2 block becomes 4 channels) and the 5×5 kernel, padded to 6×6,
    into a 3×3 kernel over those channels gives bit-for-bit the same sums (up to rounding) through
    a stride-1 conv whose input gradient is cheap: a Langevin step on digits is ~25 % faster. The
    parameters stay those of ``conv``, so checkpoints and spectral norm are unchanged.
    """
    w = stem_weight(conv)
    if x.shape[-1] % 2 or x.shape[-2] % 2:  # odd sizes: one more zero row/column, as padding had
        x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
    blocks = F.pixel_unshuffle(x, 2).contiguous(memory_format=torch.channels_last)
    return F.conv2d(blocks, w.contiguous(memory_format=torch.channels_last), conv.bias, padding=1)


# --------------------------------------------------------------------------------------------
# Analytic energies (exact normalisers)
# --------------------------------------------------------------------------------------------


def _as_tensor(values, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(values, dtype=np.float64), dtype=torch.float64)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains non-finite values")
    return t


def _cholesky(cov: torch.Tensor, name: str) -> torch.Tensor:
    try:
        return torch.linalg.cholesky(cov)
    except RuntimeError:
        raise ValueError(f"{name} must be symmetric positive definite") from None


class GaussianEnergy(Energy):
    """E(x) = ½ (x−μ)ᵀ Σ⁻¹ (x−μ): a Gaussian with full covariance; log Z = d/2·log 2π + ½ log|Σ|."""

    has_exact_log_prob = True

    def __init__(self, mean: Sequence[float], cov: Sequence[Sequence[float]]) -> None:
        super().__init__()
        m = _as_tensor(mean, "mean").reshape(-1)
        c = _as_tensor(cov, "cov")
        d = m.numel()
        if c.shape != (d, d):
            raise ValueError(f"cov must have shape ({d}, {d}) to match mean, got {tuple(c.shape)}")
        chol = _cholesky(c, "cov")
        self.event_shape = (d,)
        self.register_buffer("mean", m.float())
        self.register_buffer("cov", c.float())
        self.register_buffer("precision", torch.cholesky_inverse(chol).float())
        self._log_z = 0.5 * d * LOG_2PI + float(torch.log(torch.diagonal(chol)).sum())

    @property
    def log_z(self) -> float:
        return self._log_z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x - self.mean
        return 0.5 * ((d @ self.precision) * d).sum(-1)

    def describe(self) -> dict:
        return {"kind": "gaussian", "mean": self.mean.tolist(), "cov": self.cov.tolist()}


class GaussianMixtureEnergy(Energy):
    """E(x) = −log Σ_k w_k exp(−½ maha_k(x)) / √|Σ_k| ; log Z = d/2·log 2π (weights normalised).

    ``covs`` may be one covariance per component, or ``stds`` a scalar/one isotropic std each.
    """

    has_exact_log_prob = True

    def __init__(
        self,
        means: Sequence[Sequence[float]],
        weights: Sequence[float] | None = None,
        stds: float | Sequence[float] | None = None,
        covs: Sequence[Sequence[Sequence[float]]] | None = None,
    ) -> None:
        super().__init__()
        mu = _as_tensor(means, "means")
        if mu.ndim != 2 or mu.shape[0] < 1:
            raise ValueError(f"means must have shape (K, d), got {tuple(mu.shape)}")
        k, d = mu.shape
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else _as_tensor(
            weights, "weights"
        ).reshape(-1)
        if w.numel() != k or (w <= 0).any():
            raise ValueError(f"weights must be {k} positive numbers, got {weights!r}")
        w = w / w.sum()
        if covs is not None:
            c = _as_tensor(covs, "covs")
            if c.shape != (k, d, d):
                raise ValueError(f"covs must have shape ({k}, {d}, {d}), got {tuple(c.shape)}")
        else:
            s = _as_tensor(1.0 if stds is None else stds, "stds").reshape(-1)
            if s.numel() == 1:
                s = s.expand(k)
            if s.numel() != k or (s <= 0).any():
                raise ValueError(f"stds must be one positive number or {k} of them, got {stds!r}")
            c = torch.eye(d, dtype=torch.float64) * (s**2)[:, None, None]
        chol = torch.stack([_cholesky(ci, f"covs[{i}]") for i, ci in enumerate(c)])
        self.event_shape = (d,)
        self.register_buffer("means", mu.float())
        self.register_buffer("weights", w.float())
        self.register_buffer("covs", c.float())
        precisions = torch.cholesky_inverse(chol)
        self.register_buffer("precisions", precisions.float())
        # maha_k(x) = |(x − μ_k) L_k|² with P_k = L_k L_kᵀ: one batched matmul instead of an einsum
        # (the einsum was 5–40× slower per step on a loaded CPU)
        self.register_buffer("precision_factors", torch.linalg.cholesky(precisions).float())
        log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        self.register_buffer("log_coef", (torch.log(w) - 0.5 * log_det).float())
        self._log_z = 0.5 * d * LOG_2PI

    @property
    def log_z(self) -> float:
        return self._log_z

    def component_log_terms(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K) log w_k − ½ maha_k − ½ log|Σ_k| (without the 2π term)."""
        diff = x[None, :, :] - self.means[:, None, :]  # (K, N, d)
        maha = (torch.matmul(diff, self.precision_factors) ** 2).sum(-1)  # (K, N)
        return self.log_coef[None] - 0.5 * maha.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.logsumexp(self.component_log_terms(x), dim=-1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K) posterior probability of each component; used to count mode occupancy."""
        return torch.softmax(self.component_log_terms(x), dim=-1)

    def describe(self) -> dict:
        return {
            "kind": "mixture",
            "means": self.means.tolist(),
            "weights": self.weights.tolist(),
            "covs": self.covs.tolist(),
        }


class BananaEnergy(Energy):
    """A twisted Gaussian: x₁ ~ N(0, s₁²), x₂ | x₁ ~ N(b (x₁² − s₁²), s₂²); log Z = log 2π s₁ s₂."""

    has_exact_log_prob = True

    def __init__(self, s1: float = 1.5, s2: float = 0.5, b: float = 0.5) -> None:
        super().__init__()
        self.s1, self.s2 = check_positive("s1", s1), check_positive("s2", s2)
        self.b = float(b)
        self.event_shape = (2,)

    @property
    def log_z(self) -> float:
        return math.log(2.0 * math.pi * self.s1 * self.s2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[:, 0], x[:, 1]
        return 0.5 * (x1 / self.s1) ** 2 + 0.5 * ((x2 - self.b * (x1**2 - self.s1**2)) / self.s2) ** 2

    def describe(self) -> dict:
        return {"kind": "banana", "s1": self.s1, "s2": self.s2, "b": self.b}


class DoubleWellEnergy(Energy):
    """E(x) = h (x₁² − 1)² + ½ Σ_{i>1} x_i²: two wells at x₁ = ±1 separated by a barrier of height h.

    log Z is exact to quadrature precision: a 1-D integral over x₁ times Gaussians in the rest.
    """

    has_exact_log_prob = True

    def __init__(self, barrier: float = 2.0, dim: int = 2) -> None:
        super().__init__()
        self.barrier = check_positive("barrier", barrier)
        self.dim = check_int_at_least("dim", dim, 1)
        self.event_shape = (self.dim,)
        t = np.linspace(-6.0, 6.0, 200_001)
        f = np.exp(-self.barrier * (t**2 - 1.0) ** 2)
        self._log_z = math.log(np.trapezoid(f, t)) + 0.5 * (self.dim - 1) * LOG_2PI

    @property
    def log_z(self) -> float:
        return self._log_z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.barrier * (x[:, 0] ** 2 - 1.0) ** 2
        if self.dim > 1:
            e = e + 0.5 * (x[:, 1:] ** 2).sum(-1)
        return e

    def describe(self) -> dict:
        return {"kind": "double_well", "barrier": self.barrier, "dim": self.dim}


class GaussianReference(Energy):
    """The reference q(x) = N(0, σ² I) written as an energy: E_q(x) = |x|² / (2σ²).

    Samplers take it through ``ref_sigma`` (so that it is not divided by T); this class exists for
    composition and display.
    """

    has_exact_log_prob = True

    def __init__(self, sigma: float = 1.0, event_shape: Sequence[int] = (2,)) -> None:
        super().__init__()
        self.sigma = check_positive("sigma", sigma)
        self.event_shape = tuple(int(s) for s in event_shape)

    @property
    def log_z(self) -> float:
        d = int(np.prod(self.event_shape))
        return 0.5 * d * (LOG_2PI + 2.0 * math.log(self.sigma))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) ** 2).sum(-1) / (2.0 * self.sigma**2)

    def describe(self) -> dict:
        return {"kind": "reference", "sigma": self.sigma, "event_shape": list(self.event_shape)}


class SumEnergy(Energy):
    """A weighted sum Σ_i w_i E_i(x): a product of experts, p ∝ Π p_i^{w_i}.

    ``weights`` is a plain list that may be changed between calls (live composition weights).
    """

    def __init__(self, energies: Iterable[Energy], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.terms = nn.ModuleList(energies)
        if len(self.terms) == 0:
            raise ValueError("SumEnergy needs at least one energy")
        shapes = {tuple(e.event_shape) for e in self.terms}
        if len(shapes) != 1:
            raise ValueError(f"energies must share one event shape, got {sorted(shapes)}")
        self.event_shape = shapes.pop()
        self.weights = [1.0] * len(self.terms) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.terms):
            raise ValueError(f"weights must have {len(self.terms)} entries, got {len(self.weights)}")
        self.low_precision_ok = all(getattr(e, "low_precision_ok", False) for e in self.terms)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(w * e(x) for w, e in zip(self.weights, self.terms) if w != 0.0) + x.new_zeros(
            x.shape[0]
        )

    def describe(self) -> dict:
        return {
            "kind": "sum",
            "weights": list(self.weights),
            "terms": [e.describe() for e in self.terms],
        }


_ANALYTIC = {
    "gaussian": GaussianEnergy,
    "mixture": GaussianMixtureEnergy,
    "banana": BananaEnergy,
    "double_well": DoubleWellEnergy,
    "reference": GaussianReference,
}
_NEURAL = {"mlp": MLPEnergy, "conv": ConvEnergy}
# energies of several levels live in their own modules, which import this one
_LEVELLED = {"ladder": "ebm_studio.core.ladder:LadderEnergy",
             "recovery": "ebm_studio.core.recovery:RecoveryEnergy"}


def build_energy(spec: dict) -> Energy:
    """Rebuild an energy from :meth:`Energy.describe` output; raises ``ValueError`` on bad specs."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"an energy description must be a dict with a 'kind', got {spec!r}")
    args = {k: v for k, v in spec.items() if k != "kind"}
    kind = spec["kind"]
    try:
        if kind == "sum":
            return SumEnergy([build_energy(t) for t in args["terms"]], args.get("weights"))
        if kind in _LEVELLED:
            module, name = _LEVELLED[kind].split(":")
            cls = getattr(importlib.import_module(module), name)
        else:
            cls = _NEURAL.get(kind) or _ANALYTIC.get(kind)
        if cls is None:
            known = ", ".join(sorted([*_NEURAL, *_ANALYTIC, *_LEVELLED, "sum"]))
            raise ValueError(f"unknown energy kind {kind!r} (known: {known})")
        return cls(**args)
    except TypeError as exc:
        raise ValueError(f"bad arguments for energy kind {kind!r}: {exc}") from None


def eight_gaussians_energy(radius: float = 2.0, std: float = 0.2) -> GaussianMixtureEnergy:
    """The classic ring of eight equal Gaussians, as an analytic energy (the app's default demo)."""
    angles = np.arange(8) * (2 * np.pi / 8)
    means = np.stack([radius * np.cos(angles), radius * np.sin(angles)], 1)
    return GaussianMixtureEnergy(means, stds=std)
