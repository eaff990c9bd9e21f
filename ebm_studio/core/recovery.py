"""Diffusion recovery likelihood (DRL): one energy network told the noise level.

Noise variances β₁ < … < β_K diffuse the data, ``x_{t+1} = √(1−β_{t+1})·x_t + √β_{t+1}·ε``, so
level t's marginal is ``x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε`` with ``ᾱ_t = Π_{i≤t} (1−β_i)``. The model has
K + 1 levels (Gao, Song, Poole, Wu & Kingma, "Learning energy-based models by diffusion recovery
likelihood", ICLR 2021):

- the top level K is an ordinary EBM of the noisiest marginal, p(x_K) ∝ exp(−E(x_K, K)), which is
  nearly Gaussian and so easy to sample from noise;
- every level t < K is a conditional EBM

      p(x_t | x_{t+1}) ∝ exp(−E(x_t, t)/T − |x_t − x̃|² / (2 s_t²)),
      x̃ = x_{t+1} / √(1−β_{t+1}),   s_t² = β_{t+1} / (1−β_{t+1}),

  whose quadratic term keeps the sample near the noisy one, so a short Langevin run suffices:
  this is what makes DRL stable.

Scales. The network's output f(x, t) is measured in units of the level's Langevin step:
``E(x, t) = f(x, t) / ε⁰_t`` with ``ε⁰_t = c₀·v_t`` (``v_t`` the level's noise variance s_t², or
1 − ᾱ_K at the top; ``c₀`` the model's ``step_scale``). A Langevin step ε_t = c·v_t with the
sampler's step size c = c₀ then moves a sample by ½∇f, pulls it a share c/2 of the way back to
x̃ and adds noise of √c times the level's size, whatever the level: one setting suits all, and
about 2/c steps mix the conditional. Training weights level t's
contrast by σ₁/σ_{t+1} (σ_{K+1} = 1), as the paper does.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ebm_studio.core.energies import ConvEnergy, Energy, MLPEnergy, stem_conv
from ebm_studio.core.samplers import frozen

MAX_NOISE_LEVELS = 20
#: c₀: the step scale a recovery model's energies are measured in
DEFAULT_STEP_SCALE = 0.1


def gaussian_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``x``, drawn on the generator's device (a trainer's
    generator lives on the CPU so that its state is portable) and moved to ``x``'s."""
    if generator is None:
        return torch.randn_like(x)
    return torch.randn(x.shape, generator=generator, device=generator.device).to(x.device)


def geometric_betas(levels: int, beta_min: float, beta_max: float) -> list[float]:
    """``levels`` noise variances from ``beta_min`` to ``beta_max``, evenly spaced in log."""
    if not isinstance(levels, int) or not 2 <= levels <= MAX_NOISE_LEVELS:
        raise ValueError(f"diffusion recovery needs 2..{MAX_NOISE_LEVELS} noise levels, got {levels!r}")
    if not 0 < beta_min < beta_max < 1:
        raise ValueError(f"noise variances need 0 < beta_min < beta_max < 1, got {beta_min!r}, {beta_max!r}")
    r = (beta_max / beta_min) ** (1.0 / (levels - 1))
    return [beta_min * r**k for k in range(levels)]


class RecoveryEnergy(Energy):
    """E(x, t) for levels t = 0 … K: a ConvNet (images) or an MLP (points) told the level.

    Images: the ConvNet energy's layers with a learned per-level shift of the stem's features and
    one output per level. Points: an MLP on ``(x, one-hot t)``. ``forward(x)`` is level 0, the
    cleanest, so scorers see an energy of clean data.
    """

    method = "drl"

    def __init__(self, event_shape: Sequence[int], betas: Sequence[float], width: int = 16,
                 hidden: Sequence[int] = (128, 128, 128), spectral_norm: bool = False,
                 step_scale: float = DEFAULT_STEP_SCALE) -> None:
        super().__init__()
        betas = [float(b) for b in betas]
        if not 2 <= len(betas) <= MAX_NOISE_LEVELS or not all(0 < b < 1 for b in betas) or betas != sorted(betas):
            raise ValueError(f"betas must be 2..{MAX_NOISE_LEVELS} increasing values in (0, 1), got {betas!r}")
        if not (isinstance(step_scale, (int, float)) and math.isfinite(step_scale) and step_scale > 0):
            raise ValueError(f"step_scale must be a positive number, got {step_scale!r}")
        self.event_shape = tuple(int(s) for s in event_shape)
        self.betas, self.width, self.hidden = betas, int(width), [int(h) for h in hidden]
        self.spectral_norm, self.step_scale = bool(spectral_norm), float(step_scale)
        outputs = len(betas) + 1
        if len(self.event_shape) == 3:
            c, s, _ = self.event_shape
            self.net = ConvEnergy(c, s, width, spectral_norm)
            self.net.head[-1] = nn.Linear(self.net.head[-1].in_features, outputs)
            self.level_shift = nn.Parameter(torch.zeros(outputs, self.net.features[0].out_channels))
        elif len(self.event_shape) == 1:
            self.net = MLPEnergy(self.event_shape[0] + outputs, hidden)
            self.level_shift = None
        else:
            raise ValueError(f"recovery energies model points (d,) or images (C, H, W), got {event_shape!r}")
        ab = [1.0]
        for b in betas:
            ab.append(ab[-1] * (1.0 - b))
        #: ᾱ_t for t = 0 … K (ᾱ_0 = 1)
        self.alpha_bar = ab
        k = len(betas)
        #: v_t: a level's noise variance (s_t², and 1 − ᾱ_K at the top): its step per unit of c
        self.step_base = [b / (1.0 - b) for b in betas] + [1.0 - ab[k]]
        sigma = [math.sqrt(b) for b in betas] + [1.0]
        #: the loss weight σ₁/σ_{t+1} of level t
        self.loss_weights = [sigma[0] / sigma[t] for t in range(k + 1)]

    # --- the schedule ---------------------------------------------------------------------------
    @property
    def n_levels(self) -> int:
        """K: the conditional levels (the model has K + 1 levels with the top one)."""
        return len(self.betas)

    def level_names(self) -> list[str]:
        return [f"t={t}" for t in range(self.n_levels, -1, -1)]

    def _per_level(self, values: Sequence[float], t, like: torch.Tensor) -> torch.Tensor | float:
        if isinstance(t, int):
            return values[t]
        v = torch.as_tensor(values, dtype=like.dtype, device=like.device)[t]
        return v.reshape(-1, *([1] * (like.ndim - 1)))

    def step_base_of(self, t, like: torch.Tensor):
        return self._per_level(self.step_base, t, like)

    def diffuse(self, x0: torch.Tensor, t, generator: torch.Generator | None = None) -> torch.Tensor:
        """Level-t marginal samples ``√ᾱ_t·x₀ + √(1−ᾱ_t)·ε``; ``t`` an int or a tensor per sample."""
        ab = self._per_level(self.alpha_bar, t, x0)
        ab = torch.as_tensor(ab, dtype=x0.dtype, device=x0.device)
        return ab.sqrt() * x0 + (1.0 - ab).sqrt() * gaussian_like(x0, generator)

    def noise_up(self, x: torch.Tensor, t, generator: torch.Generator | None = None) -> torch.Tensor:
        """One diffusion step from level t to t+1 (``t`` < K, an int or a tensor per sample)."""
        b = torch.as_tensor(self._per_level(self.betas, t, x), dtype=x.dtype, device=x.device)
        return (1.0 - b).sqrt() * x + b.sqrt() * gaussian_like(x, generator)

    def anchor(self, x_next: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor | float]:
        """x̃ = x_{t+1}/√(1−β_{t+1}) and s_t² of level ``t`` < K (shaped per sample)."""
        b = self._per_level(self.betas, t, x_next)
        bt = torch.as_tensor(b, dtype=x_next.dtype, device=x_next.device)
        return x_next / (1.0 - bt).sqrt(), b / (1.0 - b)

    # --- the energy ----------------------------------------------------------------------------
    def network(self, x: torch.Tensor, t) -> torch.Tensor:
        """f(x, t), the network's output: ``t`` an int or a long tensor, one level per sample."""
        n = x.shape[0]
        t = torch.as_tensor(t, device=x.device, dtype=torch.long)
        t = t.expand(n) if t.ndim == 0 else t
        if self.level_shift is None:
            onehot = F.one_hot(t, self.n_levels + 1).to(x.dtype)
            return self.net(torch.cat([x, onehot], dim=1))
        net = self.net
        h = stem_conv(net.features[0], x) + self.level_shift[t][:, :, None, None]
        for layer in net.features[1:]:
            h = layer(h)
        return net.head(h).gather(1, t[:, None]).squeeze(1)

    def level_energy(self, x: torch.Tensor, t) -> torch.Tensor:
        """E(x, t) = f(x, t)/ε⁰_t."""
        scale = self._per_level(self.step_base, t, x)
        if isinstance(scale, torch.Tensor):
            scale = scale.reshape(-1)
        return self.network(x, t) / (self.step_scale * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.level_energy(x, 0)

    def scale_free(self, x: torch.Tensor) -> torch.Tensor:
        """f(x, 0): the level-0 output before its step scaling, which a divergence limit bounds."""
        return self.network(x, 0)

    def describe(self) -> dict:
        spec = {"kind": "recovery", "event_shape": list(self.event_shape), "betas": list(self.betas),
                "step_scale": self.step_scale}
        if len(self.event_shape) == 3:
            spec.update(width=self.width, spectral_norm=self.spectral_norm)
        else:
            spec["hidden"] = list(self.hidden)
        return spec


def conditional_grad(energy: RecoveryEnergy, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x, t) and ∇ₓE(x, t) with the parameters frozen."""
    with frozen(energy), torch.enable_grad():
        xs = x.detach().requires_grad_(True)
        e = energy.level_energy(xs, t)
        (g,) = torch.autograd.grad(e.sum(), xs)
    return e.detach(), g


def recovery_step(energy: RecoveryEnergy, x: torch.Tensor, t, anchor: torch.Tensor | None, s2, *,
                  step_scale: float, temperature: float, generator: torch.Generator | None,
                  grad: torch.Tensor, conditional=True) -> torch.Tensor:
    """One Langevin step on U(x) = E(x, t)/T + |x − x̃|²/(2s²) (no quadratic term where
    ``conditional`` is False: the top level), step ε = c·v_t with c = ``step_scale``.
    ``grad`` is ∇E at x; ``conditional`` may be a per-sample 0/1 tensor."""
    eps = step_scale * energy.step_base_of(t, x)
    grad_u = grad / temperature
    if anchor is not None and conditional is not False:
        pull = (x - anchor) / s2
        grad_u = grad_u + (pull * conditional if isinstance(conditional, torch.Tensor) else pull)
    sqrt_eps = eps.sqrt() if isinstance(eps, torch.Tensor) else math.sqrt(eps)
    return x - 0.5 * eps * grad_u + sqrt_eps * gaussian_like(x, generator)
