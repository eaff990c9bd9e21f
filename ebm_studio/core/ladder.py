"""Coarse-to-fine (multigrid) energies: one small ConvNet energy per resolution.

A ladder for 28-px digits has levels 7 → 14 → 28 px; for 32-px textures 8 → 16 → 32. Level ``k``
models the data average-pooled to its size. Sampling starts at the coarsest level (from noise,
or from a coarse copy of a given image) and each level's result, upsampled, starts a short
Langevin run at the next level (Gao, Lu, Zhou, Zhu & Wu, "Learning generative ConvNets via
multi-grid modeling and sampling", CVPR 2018).

Down- and upsampling are a pair: average pooling over ``f×f`` blocks and nearest-neighbour
repetition, so ``downsample(upsample(x)) == x`` exactly: moving up the ladder keeps the coarse
picture and only adds detail.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ebm_studio.core.energies import ConvEnergy, Energy

#: the smallest side a ladder level may have
MIN_LEVEL_SIZE = 4
MAX_LEVELS = 5


def ladder_sizes(size: int, levels: int) -> list[int]:
    """Sides of the ladder's levels, coarsest first (each level halves the next).

    Raises ``ValueError`` when ``size`` is not divisible by 2^(levels−1) or the coarsest level
    would be smaller than :data:`MIN_LEVEL_SIZE` pixels.
    """
    if not isinstance(levels, int) or not 2 <= levels <= MAX_LEVELS:
        raise ValueError(f"a ladder has 2..{MAX_LEVELS} levels, got {levels!r}")
    factor = 2 ** (levels - 1)
    if size % factor or size // factor < MIN_LEVEL_SIZE:
        raise ValueError(
            f"{levels} levels need an image side divisible by {factor} with at least "
            f"{MIN_LEVEL_SIZE} px at the coarsest level; {size} px is not (try fewer levels)"
        )
    return [size // 2 ** (levels - 1 - k) for k in range(levels)]


def downsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average-pool square images ``(N, C, S, S)`` to ``size`` px (``S`` a multiple of ``size``).

    Even factors are taken as 2×2 halvings summed pairwise, ``((a+b)+(c+d))/4``: for a block of
    equal values that is exact in floating point, so pooling undoes :func:`upsample` bit for bit.
    """
    s = x.shape[-1]
    if s % size:
        raise ValueError(f"cannot pool {s} px to {size} px: not a whole factor")
    while s != size and (s // size) % 2 == 0:
        q = x.reshape(*x.shape[:-2], s // 2, 2, s // 2, 2)
        x = ((q[..., 0, :, 0] + q[..., 0, :, 1]) + (q[..., 1, :, 0] + q[..., 1, :, 1])) * 0.25
        s //= 2
    return x if s == size else F.avg_pool2d(x, s // size)


def upsample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Repeat each pixel of ``(N, C, s, s)`` images into a block, giving ``size`` px."""
    s = x.shape[-1]
    if s == size:
        return x
    if size % s:
        raise ValueError(f"cannot repeat {s} px to {size} px: not a whole factor")
    f = size // s
    return x.repeat_interleave(f, dim=-1).repeat_interleave(f, dim=-2)


def fixed_at(free: torch.Tensor, size: int) -> torch.Tensor:
    """A full-resolution mask of free pixels (True = free) brought to ``size`` px: a coarse pixel
    is held fixed only when every fine pixel under it is fixed."""
    held = (~free).to(torch.float32)
    return downsample(held, size) < 1.0


class LadderEnergy(Energy):
    """A ladder of ConvNet energies at increasing resolution; ``forward`` is the finest level.

    ``level_energy(x, k)`` is level ``k``'s energy of images of side ``sizes[k]``. The model's
    event shape is the finest level's, so the landscape, scorers and tools treat a ladder like
    any image energy; the samplers in :mod:`ebm_studio.core.level_sampler` walk the ladder.
    """

    method = "multigrid"

    def __init__(self, channels: int = 1, sizes: Sequence[int] = (7, 14, 28), width: int = 16,
                 spectral_norm: bool = False) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or sizes != sorted(set(sizes)):
            raise ValueError(f"ladder sizes must be at least two increasing sides, got {sizes!r}")
        for lo, hi in zip(sizes, sizes[1:]):
            if hi % lo:
                raise ValueError(f"each ladder size must divide the next, got {sizes!r}")
        if sizes[0] < MIN_LEVEL_SIZE:
            raise ValueError(f"the coarsest level needs at least {MIN_LEVEL_SIZE} px, got {sizes[0]}")
        self.channels, self.sizes, self.width = channels, sizes, width
        self.spectral_norm = bool(spectral_norm)
        self.levels = nn.ModuleList(
            ConvEnergy(channels, s, width, spectral_norm, min_size=MIN_LEVEL_SIZE) for s in sizes
        )
        self.event_shape = (channels, sizes[-1], sizes[-1])

    @property
    def n_levels(self) -> int:
        return len(self.sizes)

    def level_names(self) -> list[str]:
        return [f"{s}×{s}" for s in self.sizes]

    def level_energy(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return self.levels[k](x)

    def level_data(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Full-resolution images at every level's size, coarsest first."""
        return [downsample(x, s) for s in self.sizes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.levels[-1](x)

    def describe(self) -> dict:
        return {
            "kind": "ladder",
            "channels": self.channels,
            "sizes": list(self.sizes),
            "width": self.width,
            "spectral_norm": self.spectral_norm,
        }
