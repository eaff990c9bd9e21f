"""Frames: what the engine sends the GUI to draw. Plain numpy copies, already reduced for display.

A points frame carries a 2-D histogram of all chains (rasterised: drawing thousands of scatter
points in the GUI thread stalls it) plus up to ``HIGHLIGHT`` chains as points; an images frame
carries a uint8 grid. Both carry per-chain energies, the settings in force and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ebm_studio.core.imaging import histogram2d, image_grid

#: how many chains a points frame carries as individual points
HIGHLIGHT = 256
HIST_BINS = 256


@dataclass
class LevelImage:
    """One level of a ladder or noise schedule, for the level strip: a few chains as a grid."""

    name: str  # "7×7", "t=3", "noise"
    grid: np.ndarray | None  # (H, W, C) uint8; None while the level waits its turn
    mean_energy: float | None
    steps: int
    state: str  # "waiting", "running", "done"


#: chains per level in a level strip: 4×4, or 2×2 when many levels share the width
LEVEL_CHAINS = 16
MANY_LEVELS = 6


def level_images(snapshots, box: tuple[float, float]) -> list[LevelImage]:
    """Level snapshots (``core.level_sampler.LevelSnapshot``) reduced to small grids."""
    out = []
    n = LEVEL_CHAINS if len(snapshots) <= MANY_LEVELS else LEVEL_CHAINS // 4
    for s in snapshots:
        grid = image_grid(s.x[:n], low=box[0], high=box[1]) if s.x.ndim == 4 and len(s.x) else None
        out.append(LevelImage(s.name, grid, s.mean_energy, int(s.steps), s.state))
    return out


@dataclass(frozen=True)
class RecordedAt:
    """Where a recorded frame (scrubbing) comes from, and when the GUI asked for it."""

    #: the branch of the recordings it was read from
    branch: int
    #: the GUI's ``time.perf_counter()`` when it asked for the step (times the scrub latency)
    t_request: float


@dataclass
class Frame:
    """One picture of a job's chains (or of a recorded step, or of a replay buffer).

    Two fields stay dicts by name, on purpose: ``settings`` holds the settings in force as the job
    reports them, or as a recording stored them (a file written by another version, a level
    model's ``level``, a training run's ``lr``), and the scrubber shows whichever are there;
    ``metrics`` holds a training step's metrics by the names its method reports (losses,
    energies, gradient norms vary with the method). Everything with a fixed meaning has a field.
    """

    job_id: int
    job_kind: str  # "sample", "train", "recorded", ...
    kind: str  # "points" or "images"
    step: int
    energies: np.ndarray  # (N,) float32: E(x) per chain
    settings: dict = field(default_factory=dict)
    accept: float | None = None  # the last step's acceptance rate (MALA, HMC)
    mean_accept: float | None = None  # the acceptance rate averaged since the chains started
    steps_per_sec: float = 0.0
    grid: np.ndarray | None = None  # images: (H, W, C) uint8
    tile_shape: tuple[int, int] | None = None  # images: (h, w) of one chain's tile, for picking
    hist: np.ndarray | None = None  # points: (bins, bins) float32 counts, [ix, iy]
    box: tuple[float, float] | None = None  # points: (lo, hi) of the histogram, both axes
    points: np.ndarray | None = None  # points: (≤HIGHLIGHT, 2) float32
    n_chains: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    total_steps: int | None = None  # training: the run's step budget
    recorded: RecordedAt | None = None  # a recorded step: where from, and when it was asked for
    label: str = ""  # e.g. "recorded step 340 (branch 2)"
    precision: str = ""  # what the sampler computes the network in ("bf16", "fp32"; "" unknown)
    levels: list[LevelImage] = field(default_factory=list)  # ladder / noise levels (images only)


def make_frame(
    job_id: int,
    job_kind: str,
    step: int,
    state: np.ndarray,
    energies: np.ndarray,
    box: tuple[float, float],
    **extra,
) -> Frame:
    """Reduce a state (a numpy array owned by the caller) to a frame of fresh copies."""
    energies = np.array(energies, dtype=np.float32, copy=True)
    if state.ndim == 4:
        grid = image_grid(state, low=box[0], high=box[1])
        return Frame(job_id, job_kind, "images", step, energies, grid=grid,
                     tile_shape=tuple(state.shape[2:]), n_chains=state.shape[0], **extra)
    pts = np.asarray(state, dtype=np.float32)
    hist = histogram2d(pts, box, box, HIST_BINS)
    return Frame(job_id, job_kind, "points", step, energies, hist=hist, box=tuple(box),
                 points=pts[:HIGHLIGHT].copy(), n_chains=pts.shape[0], **extra)
