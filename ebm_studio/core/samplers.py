"""MCMC samplers for p_T(x) ∝ exp(−E(x)/T)·q(x), run one step at a time.

All samplers work on the potential ``U(x) = E(x)/T + |x|²/(2σ_ref²)`` (the reference term only when
``ref_sigma`` is set) and share one machinery:

- ``step()`` advances every chain once and returns a :class:`StepResult` with the new state, the
  per-chain energies ``E(x)`` *at the new state* and, for MALA/HMC, the acceptance rate;
- temperature, step size and noise are plain attributes, validated on assignment, that may change
  between any two steps (the live controls of the app);
- gradients are taken with ``torch.autograd.grad`` on the input only, with the energy's parameters
  frozen: computing weight gradients as well (``.backward()`` + zeroing) costs 1.5–1.75× more;
- E(x) and ∇E(x) at the current state are cached, so every Langevin/MALA step costs one
  forward+backward and a temperature change still applies at the very next step;
- a boolean ``mask`` (True = free) keeps the other entries bit-for-bit at their initial values;
  ``clamp=(lo, hi)`` keeps states in a box; ``clip_grad`` clips ∇U element-wise.

Kinds:

``langevin``  unadjusted Langevin (ULA): x ← x − (ε/2)∇U + √ε ξ. Samples p_T as ε → 0; biased at finite ε.
``tuned``     x ← x − α∇U + σξ with α (step size) and σ (noise) independent, as IGEBM and the UvA
              tutorial use for images. A heuristic that makes short runs look good, *not* a sampler of p_T.
``mala``      Langevin proposal + Metropolis–Hastings: exact for any ε (clamp aside).
``hmc``       Hamiltonian Monte Carlo, leapfrog with unit mass: exact for any ε and L (clamp aside).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from ebm_studio.core.energies import Energy
from ebm_studio.core.energy_eval import (  # noqa: F401  (re-exported: the samplers' public names)
    DEFAULT_CHUNK,
    Stopped,
    check_finite_energy,
    energy_and_grad,
    frozen,
    poll_stop,
)
from ebm_studio.core.langevin_block import LangevinBlock, graphs_available, run_steps
from ebm_studio.core.precision import check_precision, compute_dtype
from ebm_studio.core.errors import (
    check_finite_tensor,
    check_int_at_least,
    check_non_negative,
    check_positive,
)

SAMPLER_KINDS = ("langevin", "tuned", "mala", "hmc")
SAMPLER_LABELS = {
    "langevin": "Langevin (unadjusted)",
    "tuned": "Tuned Langevin (heuristic)",
    "mala": "MALA (Metropolis-adjusted)",
    "hmc": "HMC (leapfrog)",
}

@dataclass
class StepResult:
    """What one sampler step produced. Tensors are the sampler's own; copy before keeping."""

    step: int
    x: torch.Tensor
    energy: torch.Tensor  # (N,) E(x) at the new state, not divided by T
    accept_rate: float | None = None  # fraction of chains that accepted this step (MALA/HMC)


_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def as_batch(x0) -> torch.Tensor:
    """``x0`` as a float tensor batch ``(N, ...)`` with N ≥ 1; ``ValueError`` otherwise."""
    if not isinstance(x0, torch.Tensor):
        x0 = torch.as_tensor(x0, dtype=torch.float32)
    if x0.ndim < 2 or x0.shape[0] < 1:
        raise ValueError(f"x0 must be a batch (N, ...) with N >= 1, got shape {tuple(x0.shape)}")
    return x0


def _normalise_mask(mask, x: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    m = torch.as_tensor(mask, device=x.device)
    if m.dtype != torch.bool:
        raise ValueError(f"mask must be a boolean tensor (True = free), got dtype {m.dtype}")
    if tuple(m.shape) == tuple(x.shape[1:]):
        m = m.unsqueeze(0)
    if m.ndim != x.ndim or any(a not in (1, b) for a, b in zip(m.shape, x.shape)):
        raise ValueError(
            f"mask must have the shape of one sample {tuple(x.shape[1:])} or of the batch "
            f"{tuple(x.shape)}, got {tuple(m.shape)}"
        )
    return m.expand_as(x)


class SamplerSettings:
    """The validated settings every sampler has; each may change between any two steps."""

    @property
    def temperature(self) -> float:
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self._temperature = check_positive("temperature", value)

    @property
    def step_size(self) -> float:
        return self._step_size

    @step_size.setter
    def step_size(self, value: float) -> None:
        self._step_size = check_positive("step_size", value)

    @property
    def noise(self) -> float:
        return self._noise

    @noise.setter
    def noise(self, value: float) -> None:
        self._noise = check_non_negative("noise", value)

    @property
    def n_leapfrog(self) -> int:
        return self._n_leapfrog

    @n_leapfrog.setter
    def n_leapfrog(self, value: int) -> None:
        self._n_leapfrog = check_int_at_least("n_leapfrog", value, 1)

    @property
    def clamp(self) -> tuple[float, float] | None:
        return self._clamp

    @clamp.setter
    def clamp(self, value: tuple[float, float] | None) -> None:
        if value is not None:
            lo, hi = (float(v) for v in value)
            if not lo < hi:
                raise ValueError(f"clamp must be a box (lo, hi) with lo < hi, got {value!r}")
            value = (lo, hi)
        self._clamp = value

    @property
    def clip_grad(self) -> float | None:
        return self._clip_grad

    @clip_grad.setter
    def clip_grad(self, value: float | None) -> None:
        self._clip_grad = None if value is None else check_positive("clip_grad", value)

    @property
    def ref_sigma(self) -> float | None:
        return self._ref_sigma

    @ref_sigma.setter
    def ref_sigma(self, value: float | None) -> None:
        self._ref_sigma = None if value is None else check_positive("ref_sigma", value)


class Sampler(SamplerSettings):
    """Base class of all samplers; see the module docstring for the shared behaviour."""

    kind = "base"
    #: whether ``run`` may advance in CUDA-graph blocks (see ``langevin_block.py``)
    steps_in_blocks = False
    exact = False

    def __init__(
        self,
        energy: Energy,
        x0: torch.Tensor,
        *,
        temperature: float = 1.0,
        step_size: float = 0.01,
        noise: float = 0.005,
        n_leapfrog: int = 5,
        seed: int | None = 0,
        device: torch.device | str | None = None,
        mask=None,
        clamp: tuple[float, float] | None = None,
        clip_grad: float | None = None,
        ref_sigma: float | None = None,
        chunk: int = DEFAULT_CHUNK,
        precision: str = "auto",
    ) -> None:
        x0 = as_batch(x0)
        check_finite_tensor("x0", x0)
        self.device = torch.device(device) if device is not None else x0.device
        self.energy = energy
        self.temperature = temperature
        self.step_size = step_size
        self.noise = noise
        self.n_leapfrog = n_leapfrog
        self.clamp = clamp
        self.clip_grad = clip_grad
        self.ref_sigma = ref_sigma
        self.chunk = check_int_at_least("chunk", chunk, 1)
        self.precision = check_precision(precision)
        self.generator = torch.Generator(device=self.device)
        self.seed = seed
        self.generator.manual_seed(int(seed) if seed is not None else torch.seed())
        self._mask: torch.Tensor | None = None
        self.steps_done = 0
        self.accept_sum = 0.0  # running totals for the mean acceptance since the last reset
        self.accept_count = 0
        #: polled inside a step's inner loop (HMC leapfrog), so an absurdly long step can be
        #: abandoned: :class:`Stopped` leaves the chains at their last state
        self.should_stop: Callable[[], bool] | None = None
        self._block: LangevinBlock | None = None  # made at ``run``'s first use on a GPU
        self.set_state(x0, mask)

    # --- state ---------------------------------------------------------------------------------
    @property
    def x(self) -> torch.Tensor:
        """The current state (the sampler's own tensor: copy it before keeping it)."""
        return self._x

    @property
    def mask(self) -> torch.Tensor | None:
        return self._mask

    def set_state(self, x: torch.Tensor, mask=None) -> None:
        """Replace the chains (and mask); the entries where the mask is False are held fixed."""
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x, dtype=torch.float32)
        check_finite_tensor("x", x)
        self.energy.check_input(x)
        self._x = x.detach().to(self.device, torch.float32).clone()
        self._mask = _normalise_mask(mask, self._x)
        self._observed = self._x.clone() if self._mask is not None else None
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def compute_dtype(self) -> torch.dtype:
        """What E and ∇E are computed in: bf16 for unadjusted samplers where the hardware has it.

        Worked out at every use, since the energy may be swapped between steps."""
        return compute_dtype(self.precision, self.device, self.energy, self.kind)

    @property
    def mean_accept_rate(self) -> float | None:
        """Mean acceptance since construction or :meth:`reset_accept_stats` (MALA/HMC only)."""
        return self.accept_sum / self.accept_count if self.accept_count else None

    def reset_accept_stats(self) -> None:
        self.accept_sum, self.accept_count = 0.0, 0

    # --- shared maths --------------------------------------------------------------------------
    def _eval(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """E(x) and ∇E(x) (raw energy, not divided by T)."""
        e, g = energy_and_grad(self.energy, x, self.chunk, self.compute_dtype)
        check_finite_energy(e, self.steps_done)
        return e, g

    def _current(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None:
            self._cache = self._eval(self._x)
        return self._cache

    def current_energy(self) -> torch.Tensor:
        """E(x) per chain at the current state (cached: the next step needs it anyway)."""
        return self._current()[0]

    def _potential(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        u = e / self._temperature
        if self._ref_sigma is not None:
            u = u + (x.flatten(1) ** 2).sum(-1) / (2.0 * self._ref_sigma**2)
        return u

    def _grad_u(self, x: torch.Tensor, grad_e: torch.Tensor) -> torch.Tensor:
        g = grad_e / self._temperature
        if self._ref_sigma is not None:
            g = g + x / self._ref_sigma**2
        if self._clip_grad is not None:
            g = g.clamp(-self._clip_grad, self._clip_grad)
        if self._mask is not None:
            g = g * self._mask
        return g

    def _drift_and_noise(self, drift: float, noise: float) -> torch.Tensor:
        """x − drift·∇U(x) + noise·ξ at the current state (before the box and the fixed entries)."""
        _, ge = self._current()
        coef = -drift / self._temperature
        # fused passes take float32 factors; absurd settings take the plain path and overflow there
        fused = abs(coef) < _FLOAT32_MAX and noise < _FLOAT32_MAX
        if fused and self._ref_sigma is None and self._clip_grad is None and self._mask is None:
            # ∇U = ∇E/T: one fused pass instead of a division, a product and a difference
            x = torch.add(self._x, ge, alpha=coef)
        else:
            x = self._x - drift * self._grad_u(self._x, ge)
        if noise > 0:
            if fused:
                x.add_(self._randn(), alpha=noise)  # x is a fresh tensor: adding in place is safe
            else:
                x = x + noise * self._randn()
        return x

    def _randn(self) -> torch.Tensor:
        xi = torch.randn(self._x.shape, generator=self.generator, device=self.device)
        return xi * self._mask if self._mask is not None else xi

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the box and re-set the fixed entries bit-for-bit."""
        if self._clamp is not None:
            x = x.clamp(*self._clamp)
        if self._mask is not None:
            x = torch.where(self._mask, x, self._observed)
        return x

    def _per_chain(self, t: torch.Tensor) -> torch.Tensor:
        return t.flatten(1).sum(-1)

    # --- stepping ------------------------------------------------------------------------------
    def _advance(self) -> float | None:
        """Move ``self._x`` one step, leaving the cache at the new state; returns acceptance."""
        raise TypeError(f"{type(self).__name__} does not implement a step")

    def step(self) -> StepResult:
        """Advance every chain one step."""
        accept = self._advance()
        self.steps_done += 1
        if accept is not None:
            self.accept_sum += accept
            self.accept_count += 1
        e, _ = self._current()
        return StepResult(self.steps_done, self._x, e, accept)

    def run(self, n_steps: int) -> StepResult:
        """Advance ``n_steps`` steps and return the last result.

        Where CUDA graphs can be captured, Langevin and tuned Langevin advance in blocks of steps
        replayed as one graph each (see ``langevin_block.py``): a step of a small energy is far
        less work for a GPU than launching its kernels. The blocks draw their noise from a stream
        seeded by this sampler's (so a run is reproducible from the seed, though not equal to the
        same number of ``step`` calls) and check for non-finite energies once per block.
        Elsewhere the steps are taken one by one. ``should_stop`` is polled between steps (and
        blocks): :class:`Stopped` leaves the chains at the last whole step.
        """
        n_steps = check_int_at_least("n_steps", n_steps, 1)
        if self.steps_in_blocks and graphs_available(self.device):
            if self._block is None:
                self._block = LangevinBlock()
            run_steps(self, n_steps, self._block, self.should_stop)
            return StepResult(self.steps_done, self._x, self._current()[0], None)
        for _ in range(n_steps):
            poll_stop(self.should_stop)
            result = self.step()
        return result

    def __iter__(self) -> Iterator[StepResult]:
        while True:
            yield self.step()


class LangevinSampler(Sampler):
    """Unadjusted Langevin: x ← x − (ε/2)∇U(x) + √ε ξ."""

    kind = "langevin"
    steps_in_blocks = True

    def _advance(self) -> None:
        eps = self._step_size
        self._x = self._finish(self._drift_and_noise(0.5 * eps, math.sqrt(eps)))
        self._cache = None
        return None


class TunedLangevinSampler(Sampler):
    """Tuned Langevin: x ← x − α∇U(x) + σξ (α = step_size, σ = noise). A heuristic, not exact."""

    kind = "tuned"
    steps_in_blocks = True

    def _advance(self) -> None:
        self._x = self._finish(self._drift_and_noise(self._step_size, self._noise))
        self._cache = None
        return None


class MALASampler(Sampler):
    """Metropolis-adjusted Langevin: a ULA proposal accepted with the Metropolis–Hastings ratio."""

    kind = "mala"
    exact = True

    def _advance(self) -> float:
        eps = self._step_size
        x = self._x
        e, ge = self._current()
        g = self._grad_u(x, ge)
        y = self._finish(x - 0.5 * eps * g + math.sqrt(eps) * self._randn())
        ey, gey = self._eval(y)
        gy = self._grad_u(y, gey)
        # log q(y|x) − log q(x|y), Gaussian proposals with variance ε
        fwd = self._per_chain((y - x + 0.5 * eps * g) ** 2) / (2 * eps)
        bwd = self._per_chain((x - y + 0.5 * eps * gy) ** 2) / (2 * eps)
        log_alpha = self._potential(x, e) - self._potential(y, ey) + fwd - bwd
        return self._accept(y, ey, gey, log_alpha)

    def _accept(self, y, ey, gey, log_alpha: torch.Tensor) -> float:
        u = torch.rand(log_alpha.shape, generator=self.generator, device=self.device)
        acc = torch.log(u) < log_alpha
        e, ge = self._current()
        sel = acc.view(-1, *([1] * (y.ndim - 1)))
        self._x = torch.where(sel, y, self._x)
        self._cache = (torch.where(acc, ey, e), torch.where(sel, gey, ge))
        return float(acc.float().mean())


class HMCSampler(MALASampler):
    """Hamiltonian Monte Carlo: L leapfrog steps of size ε with unit mass, then an MH accept."""

    kind = "hmc"

    def _advance(self) -> float:
        eps, n = self._step_size, self._n_leapfrog
        x0 = self._x
        e0, ge0 = self._current()
        p = self._randn()
        h0 = self._potential(x0, e0) + 0.5 * self._per_chain(p**2)
        x, ge = x0, ge0
        p = p - 0.5 * eps * self._grad_u(x, ge)
        for i in range(n):
            poll_stop(self.should_stop)
            x = x + eps * p
            if self._mask is not None:
                x = torch.where(self._mask, x, self._observed)
            e, ge = self._eval(x)
            if i < n - 1:
                p = p - eps * self._grad_u(x, ge)
        p = p - 0.5 * eps * self._grad_u(x, ge)
        y = self._finish(x)
        if self._clamp is not None:
            e, ge = self._eval(y)
        h1 = self._potential(y, e) + 0.5 * self._per_chain(p**2)
        return self._accept(y, e, ge, h0 - h1)


_KINDS = {
    "langevin": LangevinSampler,
    "tuned": TunedLangevinSampler,
    "mala": MALASampler,
    "hmc": HMCSampler,
}


def make_sampler(kind: str, energy: Energy, x0: torch.Tensor, **kwargs) -> Sampler:
    """Build a sampler by name (``langevin``, ``tuned``, ``mala``, ``hmc``)."""
    cls = _KINDS.get(kind)
    if cls is None:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLER_KINDS)}; got {kind!r}")
    return cls(energy, x0, **kwargs)


def switch_sampler(old: Sampler, kind: str) -> Sampler:
    """A sampler of another kind that continues ``old``'s chains with the same settings and RNG."""
    if kind == old.kind:
        return old
    if hasattr(old, "switch_kind"):  # a level sampler switches the kind of its own levels
        old.switch_kind(kind)
        return old
    new = make_sampler(
        kind,
        old.energy,
        old.x,
        temperature=old.temperature,
        step_size=old.step_size,
        noise=old.noise,
        n_leapfrog=old.n_leapfrog,
        seed=0,
        device=old.device,
        mask=None,
        clamp=old.clamp,
        clip_grad=old.clip_grad,
        ref_sigma=old.ref_sigma,
        chunk=old.chunk,
        precision=old.precision,
    )
    new.generator = old.generator
    new._mask, new._observed = old._mask, old._observed
    new.steps_done = old.steps_done
    return new
