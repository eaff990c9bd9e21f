"""Samplers that walk the levels of a ladder (multigrid) or of a noise schedule (DRL).

They look like any :class:`~ebm_studio.core.samplers.Sampler` to the viewer, the image tools and
the command line: ``step()`` advances every chain once and returns the state at full resolution,
the live settings apply at the next step, a mask holds observed pixels, ``set_state`` restarts.
The schedule runs ``level_steps`` steps per level; once at the last level the chains keep
sampling there, so an endless viewer run settles on the finished samples.

- :class:`LadderSampler` starts at the coarsest level from ``x0`` average-pooled (noise stays
  noise, a source image becomes its coarse copy), then repeats each level's result up to start
  the next. Each level runs an ordinary sampler (tuned Langevin, MALA...) on its own energy. A
  coarse pixel is held by the mask only where every fine pixel under it is observed.
- :class:`RecoverySampler` diffuses ``x0`` to the noisiest level and walks down, sampling
  p(x_t | x_{t+1}) at each level with Langevin (step ``c·s_t²``). Observed pixels are held at the
  observed image diffused to the level being sampled, exactly at the last.

What ``x`` shows is full size, with observed pixels exactly as given at every level.

:meth:`LevelSampler.snapshots` gives each level's latest chains and energies for the level view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ebm_studio.core.errors import check_finite_tensor, check_int_at_least
from ebm_studio.core.ladder import LadderEnergy, downsample, fixed_at, upsample
from ebm_studio.core.precision import check_precision
from ebm_studio.core.recovery import RecoveryEnergy, conditional_grad, recovery_step
from ebm_studio.core.samplers import (
    DEFAULT_CHUNK,
    Sampler,
    SamplerSettings,
    StepResult,
    _normalise_mask,
    as_batch,
    check_finite_energy,
    make_sampler,
    switch_sampler,
)

#: Langevin steps per level when a model does not say
DEFAULT_LEVEL_STEPS = 20
#: chains a level snapshot keeps (the level view shows a few, not all)
SNAPSHOT_CHAINS = 16


@dataclass
class LevelSnapshot:
    """One level's latest chains (a copy, at the level's own size) for the level view."""

    name: str
    x: np.ndarray
    mean_energy: float | None
    steps: int
    state: str  # "waiting", "running" or "done"


class LevelSampler(SamplerSettings):
    """Shared machinery: settings, the level schedule, step counting, snapshots."""

    exact = False
    kind = "langevin"

    def __init__(self, energy, x0: torch.Tensor, *, kind: str = "langevin", temperature: float = 1.0,
                 step_size: float = 0.01, noise: float = 0.005, n_leapfrog: int = 5, seed: int | None = 0,
                 device=None, mask=None, clamp: tuple[float, float] | None = None,
                 clip_grad: float | None = None, ref_sigma: float | None = None,
                 chunk: int = DEFAULT_CHUNK, level_steps: int = DEFAULT_LEVEL_STEPS,
                 precision: str = "auto") -> None:
        x0 = as_batch(x0)
        self.energy = energy
        self.kind = kind
        self.precision = check_precision(precision)
        self.temperature, self.step_size, self.noise, self.n_leapfrog = temperature, step_size, noise, n_leapfrog
        self.clamp, self.clip_grad, self.ref_sigma, self.chunk = clamp, clip_grad, ref_sigma, chunk
        self.level_steps = check_int_at_least("level_steps", level_steps, 1)
        self.device = torch.device(device) if device is not None else x0.device
        self.generator = torch.Generator(device=self.device)
        self.seed = seed
        self.generator.manual_seed(int(seed) if seed is not None else torch.seed())
        self.steps_done = 0
        self.set_state(x0, mask)

    # --- the schedule ---------------------------------------------------------------------------
    @property
    def n_levels(self) -> int:
        return len(self.level_names)

    @property
    def finished(self) -> bool:
        """True once the last level has had its steps (later steps keep sampling there)."""
        return self.level == self.n_levels - 1 and self.at_level >= self.level_steps

    def _start(self, x0, mask) -> None:
        """Take new chains (any array) and mask; the subclass then sets up its first level."""
        x0 = x0 if isinstance(x0, torch.Tensor) else torch.as_tensor(x0, dtype=torch.float32)
        check_finite_tensor("x", x0)
        self.energy.check_input(x0)
        self._x0 = x0.detach().to(self.device, torch.float32).clone()
        self._free = _normalise_mask(mask, self._x0)
        self._snaps: list[LevelSnapshot | None] = [None] * self.n_levels
        self._full: torch.Tensor | None = None

    @property
    def mask(self) -> torch.Tensor | None:
        return self._free

    def _observed_exact(self, x: torch.Tensor) -> torch.Tensor:
        """The full-size chains as shown: observed pixels exactly as given at every level (a
        coarse level holds block averages, a noisy level a noised copy; neither is shown)."""
        return x if self._free is None else torch.where(self._free, x, self._x0)

    def step(self) -> StepResult:
        if self.level < self.n_levels - 1 and self.at_level >= self.level_steps:
            self._snap(self.level, "done")
            self._next_level()
        accept = self._advance()
        self.at_level += 1
        self.steps_done += 1
        self._full = None
        return StepResult(self.steps_done, self.x, self.current_energy(), accept)

    def run(self, n_steps: int) -> StepResult:
        n_steps = check_int_at_least("n_steps", n_steps, 1)
        for _ in range(n_steps):
            result = self.step()
        return result

    def run_schedule(self) -> StepResult:
        """Run every level's steps from where the chains are now; returns the last result."""
        result = None
        while result is None or not self.finished:
            result = self.step()
        return result

    def __iter__(self):
        while True:
            yield self.step()

    @property
    def x(self) -> torch.Tensor:
        """The chains at full resolution (the sampler's own tensor: copy it before keeping it)."""
        if self._full is None:
            self._full = self._full_res()
        return self._full

    def snapshots(self) -> list[LevelSnapshot]:
        """Every level's latest chains, the current one refreshed now."""
        self._snap(self.level, "done" if self.finished else "running")
        out = []
        for i, name in enumerate(self.level_names):
            snap = self._snaps[i]
            out.append(snap if snap is not None else LevelSnapshot(name, np.zeros((0,)), None, 0, "waiting"))
        return out

    def _snap(self, i: int, state: str) -> None:
        x = self._level_state()
        e = self.current_energy()
        self._snaps[i] = LevelSnapshot(self.level_names[i], x[:SNAPSHOT_CHAINS].detach().cpu().numpy().copy(),
                                       float(e.mean()), self.at_level, state)

    @property
    def mean_accept_rate(self) -> float | None:
        return None

    def reset_accept_stats(self) -> None:
        pass


class LadderSampler(LevelSampler):
    """Coarse to fine over a :class:`LadderEnergy`; each level runs an ordinary sampler."""

    def __init__(self, energy: LadderEnergy, x0: torch.Tensor, **kwargs) -> None:
        self.level_names = energy.level_names()
        super().__init__(energy, x0, **kwargs)

    def set_state(self, x: torch.Tensor, mask=None) -> None:
        """Restart the ladder from ``x`` (full resolution), pooled to the coarsest level."""
        self._start(x, mask)
        self.level, self.at_level = 0, 0
        self._inner = self._level_sampler(0, downsample(self._x0, self.energy.sizes[0]))

    def _level_sampler(self, k: int, xk: torch.Tensor) -> Sampler:
        size = self.energy.sizes[k]
        mask = None
        if self._free is not None:
            mask = fixed_at(self._free, size)
            xk = torch.where(mask, xk, downsample(self._x0, size))
        inner = make_sampler(
            self.kind, self.energy.levels[k], xk, temperature=self.temperature, step_size=self.step_size,
            noise=self.noise, n_leapfrog=self.n_leapfrog, seed=0, device=self.device, mask=mask,
            clamp=self.clamp, clip_grad=self.clip_grad, ref_sigma=self.ref_sigma, chunk=self.chunk,
            precision=self.precision,
        )
        inner.generator = self.generator  # one random stream for the whole ladder
        return inner

    def _next_level(self) -> None:
        self.level += 1
        self.at_level = 0
        up = upsample(self._inner.x.detach(), self.energy.sizes[self.level])
        self._inner = self._level_sampler(self.level, up)

    def _advance(self) -> float | None:
        inner = self._inner
        inner.temperature, inner.step_size, inner.noise, inner.n_leapfrog = (
            self.temperature, self.step_size, self.noise, self.n_leapfrog)
        return inner.step().accept_rate

    def switch_kind(self, kind: str) -> None:
        self._inner = switch_sampler(self._inner, kind)
        self.kind = kind

    def current_energy(self) -> torch.Tensor:
        return self._inner.current_energy()

    def _level_state(self) -> torch.Tensor:
        return self._inner.x

    def _full_res(self) -> torch.Tensor:
        return self._observed_exact(upsample(self._inner.x, self.energy.sizes[-1]))

    @property
    def mean_accept_rate(self) -> float | None:
        return self._inner.mean_accept_rate


class RecoverySampler(LevelSampler):
    """Noise to data over a :class:`RecoveryEnergy`: the top level from ``x0`` diffused to it,
    then p(x_t | x_{t+1}) level by level down to t = 0."""

    def __init__(self, energy: RecoveryEnergy, x0: torch.Tensor, **kwargs) -> None:
        self.level_names = energy.level_names()
        super().__init__(energy, x0, **kwargs)

    @property
    def t(self) -> int:
        """The noise level now being sampled (K … 0)."""
        return self.energy.n_levels - self.level

    def set_state(self, x: torch.Tensor, mask=None) -> None:
        """Restart from ``x``: diffused to the noisiest level, then sampled level by level."""
        self._start(x, mask)
        k = self.energy.n_levels
        self._fixed_noise = torch.randn(self._x0.shape, generator=self.generator, device=self.device)
        self.level, self.at_level, self._cache = 0, 0, None
        self._anchor, self._s2 = None, 1.0  # the top level has no noisier sample to stay near
        self._x = self._hold(self.energy.diffuse(self._x0, k, self.generator), k)

    def _hold(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Observed pixels at level t: the observed image diffused with this run's fixed noise."""
        if self._free is None:
            return x
        ab = self.energy.alpha_bar[t]
        held = math.sqrt(ab) * self._x0 + math.sqrt(1.0 - ab) * self._fixed_noise
        return torch.where(self._free, x, held)

    def _next_level(self) -> None:
        self.level += 1
        self.at_level = 0
        self._anchor, self._s2 = self.energy.anchor(self._x.detach(), self.t)
        self._x = self._hold(self._anchor.clone(), self.t)
        self._cache = None

    def _advance(self) -> None:
        t = self.t
        _, grad = self._current()
        x = recovery_step(self.energy, self._x, t, self._anchor, self._s2, step_scale=self.step_size,
                          temperature=self.temperature, generator=self.generator, grad=grad)
        if t == 0 and self.clamp is not None:
            x = x.clamp(*self.clamp)
        self._x = self._hold(x, t)
        self._cache = None
        return None

    def _current(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cache is None:
            e, g = conditional_grad(self.energy, self._x, self.t)
            check_finite_energy(e, self.steps_done, g)
            self._cache = (e, g)
        return self._cache

    def current_energy(self) -> torch.Tensor:
        return self._current()[0]

    def switch_kind(self, kind: str) -> None:
        if kind != "langevin":
            raise ValueError("a diffusion-recovery model samples each level with Langevin; "
                             f"{kind!r} is not available for it")

    def _level_state(self) -> torch.Tensor:
        return self._x

    def _full_res(self) -> torch.Tensor:
        return self._observed_exact(self._x)


def is_level_model(energy) -> bool:
    return isinstance(energy, (LadderEnergy, RecoveryEnergy))


def make_level_sampler(energy, x0: torch.Tensor, **kwargs) -> LevelSampler:
    """The level sampler that fits a ladder or recovery energy."""
    if isinstance(energy, LadderEnergy):
        return LadderSampler(energy, x0, **kwargs)
    if isinstance(energy, RecoveryEnergy):
        kwargs["kind"] = "langevin"
        return RecoverySampler(energy, x0, **kwargs)
    raise TypeError(f"{type(energy).__name__} has no levels")
