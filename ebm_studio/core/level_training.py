"""The negative phase of the two level methods: what a training step compares the data with.

- **multigrid**: short-run chains from noise at the coarsest level, each level's result repeated
  up to start the next; every level's energy is fitted to the data pooled to its size.
- **drl**: every example is diffused to a random level t; the positive is x_t, the negative a
  Langevin run on p(x_t | x_{t+1}) from x̃ (the recovery likelihood's gradient).

Both return :class:`Phase`: the samples to show (full resolution) and a function that computes
the per-example energies of positives and negatives *with* a graph, so the trainer's one update
path (loss, regulariser, divergence checks, rollback) serves every method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ebm_studio.core.chains import noise
from ebm_studio.core.level_sampler import SNAPSHOT_CHAINS, LevelSnapshot
from ebm_studio.core.ladder import LadderEnergy, upsample
from ebm_studio.core.samplers import Stopped, poll_stop  # noqa: F401  (re-exported)
from ebm_studio.core.recovery import RecoveryEnergy, conditional_grad, gaussian_like, recovery_step


@dataclass
class Phase:
    samples: torch.Tensor
    energies: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    accept: float | None = None
    #: the negatives level by level, for the level strip (empty for plain training)
    levels: list[LevelSnapshot] = field(default_factory=list)


def coarse_noise(trainer, n: int) -> torch.Tensor:
    """Fresh chains at a ladder's coarsest level: uniform on the data box (on the CPU)."""
    model: LadderEnergy = trainer.model
    lo, hi = trainer.dataset.value_range
    return noise(n, (model.channels, model.sizes[0], model.sizes[0]), "uniform", low=lo, high=hi,
                 generator=trainer.generator)


def ladder_phase(trainer, data: torch.Tensor, should_stop=None) -> Phase:
    """Coarse chains from the replay buffer (persistent: the coarse level is where the modes are
    found) or from noise (short-run); every finer level is a short run from the level below."""
    model: LadderEnergy = trainer.model
    steps = trainer.config.method.level_steps
    buffer = trainer.buffer
    x = (buffer.sample(data.shape[0]) if buffer is not None else coarse_noise(trainer, data.shape[0]))
    x = x.to(trainer.device)
    negatives = []
    for k, size in enumerate(model.sizes):
        if k:
            x = upsample(x, size)
        sampler = trainer.make_sampler(x, energy=model.levels[k])
        for _ in range(steps):
            poll_stop(should_stop)
            sampler.step()
        x = sampler.x.detach().clone()
        negatives.append(x)
    if buffer is not None:  # only a whole step touches the buffer (a stopped one leaves it)
        buffer.push(negatives[0].cpu())
    positives = model.level_data(data)

    def energies():
        e_data = torch.cat([model.level_energy(p, k) for k, p in enumerate(positives)])
        e_samp = torch.cat([model.level_energy(n, k) for k, n in enumerate(negatives)])
        return e_data, e_samp

    levels = [LevelSnapshot(name, n[:SNAPSHOT_CHAINS].cpu().numpy(), None, steps, "done")
              for name, n in zip(model.level_names(), negatives)]
    return Phase(negatives[-1], energies, levels=levels)


def recovery_phase(trainer, data: torch.Tensor, should_stop=None) -> Phase:
    model: RecoveryEnergy = trainer.model
    s = trainer.config.sampler
    gen = trainer.generator
    k = model.n_levels
    t = torch.randint(k + 1, (data.shape[0],), generator=gen).to(trainer.device)
    top = t == k
    below = t.clamp(max=k - 1)  # the top level has no noisier sample: its chains start from noise
    x_t = model.diffuse(data, t, gen)
    anchor, s2 = model.anchor(model.noise_up(x_t, below, gen), below)
    shape = (-1, *([1] * (data.ndim - 1)))
    conditional = (~top).to(data.dtype).reshape(shape)
    x = torch.where(top.reshape(shape), gaussian_like(data, gen), anchor)
    for _ in range(trainer.config.method.level_steps):
        poll_stop(should_stop)
        _, grad = conditional_grad(model, x, t)
        if not torch.isfinite(grad).all():
            raise FloatingPointError("the energy gradient became non-finite")
        x = recovery_step(model, x, t, anchor, s2, step_scale=s.step_size, temperature=s.temperature,
                          generator=gen, grad=grad, conditional=conditional)
    neg = x.detach()
    weight = torch.as_tensor(model.loss_weights, dtype=data.dtype, device=data.device)[t]

    def energies():
        # the contrast in the network's own units, weighted by level as the paper does
        return weight * model.network(x_t, t), weight * model.network(neg, t)

    levels = []
    for level in range(k, -1, -1):  # noisiest first, as sampling walks
        picked = neg[t == level][:SNAPSHOT_CHAINS]
        levels.append(LevelSnapshot(f"t={level}", picked.cpu().numpy(), None,
                                    trainer.config.method.level_steps, "done"))
    return Phase(neg, energies, levels=levels)


PHASES = {"multigrid": ladder_phase, "drl": recovery_phase}

