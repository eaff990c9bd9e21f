"""What a 2-D landscape refresh hands the GUI: typed, frozen, plain numpy and floats.

Three types, from the engine's raw material to the finished picture, and the view's choices:

- :class:`LandscapeResult`: one refresh of the engine (``Engine.landscape_ready``): the grid
  energies (a :class:`~ebm_studio.core.landscape.Landscape`) plus everything the view needs to
  re-render them at another temperature without torch, and, when the view had told the engine its
  display spec, the picture already rendered for it;
- :class:`RenderedView`: the picture at one view spec (:func:`.landscape_render.render_view`):
  heatmaps, colour range, contours, titles and the numbers;
- :class:`LandscapeNumbers`: the numbers panel at one temperature (log Z_T, NLL, both KLs, mass
  per mode);
- :class:`ViewSpec`: what the picture depends on besides those arrays (temperature, quantity,
  contours, truth on/off), which the view sends the engine so its refreshes arrive rendered.

They live in ``core`` (not with the worker's protocol, which re-exports them) because
``core.landscape_render`` builds and reads them in both threads, and ``core`` imports nothing of the
worker. This module imports no torch: the GUI may use it. Instances are frozen; the ones that hold
arrays compare by identity (``eq=False``), since ``==`` on arrays is not a truth value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # core.landscape imports torch; only its type is needed here
    from ebm_studio.core.landscape import Landscape


#: what the heatmap can show: E/T (plus the reference term), p_T or log p_T
MODES = ("energy", "density", "log_density")


@dataclass(frozen=True)
class ViewSpec:
    """What the landscape picture depends on besides the engine's arrays: the view's display
    choices. Validated when made (``ValueError`` naming the bad value)."""

    #: the temperature T of p_T ∝ exp(−E/T)
    temperature: float = 1.0
    #: the heatmap's quantity, one of :data:`MODES`
    mode: str = "log_density"
    #: draw contour lines
    contours: bool = True
    #: how many automatic contour levels, evenly spaced inside the colour range (1–100)
    n_levels: int = 8
    #: the user's own contour levels (None: automatic)
    levels: tuple[float, ...] | None = None
    #: show the truth (or the data histogram) beside the model
    truth: bool = True

    def __post_init__(self) -> None:
        # frozen: normalise through object.__setattr__, so equal choices compare equal
        t = float(self.temperature)
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperature must be positive, got {self.temperature!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        n = int(self.n_levels)
        if not 1 <= n <= 100:
            raise ValueError(f"n_levels must lie in 1..100, got {self.n_levels!r}")
        levels = self.levels
        if levels is not None:
            levels = tuple(float(v) for v in levels)
            if not all(math.isfinite(v) for v in levels):
                raise ValueError("contour levels must be finite numbers")
        for name, value in (("temperature", t), ("n_levels", n), ("levels", levels),
                            ("contours", bool(self.contours)), ("truth", bool(self.truth))):
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class LandscapeNumbers:
    """The numbers panel at ``temperature``: quadrature on the landscape's grid (nats)."""

    #: the temperature T all the numbers are at
    temperature: float
    #: quadrature log Z_T = log Σ exp(−E/T)·ΔA over the box
    log_z: float
    #: cells per side of the grid
    grid_n: int
    #: the box ((x0, x1), (y0, y1)) the grid covers
    box: tuple[tuple[float, float], tuple[float, float]]
    #: the model the landscape is of, and the training steps behind it
    model_name: str
    step: int
    #: an analytic model's exact log Z (only at T = 1, else None)
    exact_log_z: float | None = None
    #: mean −log p_T over the held-out points (None without held-out data)
    nll: float | None = None
    #: how many held-out points ``nll`` averages over
    heldout_n: int = 0
    #: the data density's own held-out NLL (the floor; None without an exact density)
    nll_truth: float | None = None
    #: KL(p_data‖p_T) (mode covering) and KL(p_T‖p_data) (mode seeking); None without an exact
    #: data density
    kl_data_model: float | None = None
    kl_model_data: float | None = None
    #: probability mass of the cells nearest each mode, model and truth (None without modes)
    mass_model: tuple[float, ...] | None = None
    mass_truth: tuple[float, ...] | None = None
    #: the engine's time for the refresh behind these numbers (seconds)
    seconds: float | None = None


@dataclass(frozen=True, eq=False)
class RenderedView:
    """Everything the landscape view draws at one view spec (see ``render_view``)."""

    #: the view spec this picture was rendered for
    spec: ViewSpec
    #: the model's heatmap (n, n) float32, indexed [ix, iy]: E/T (+ reference), p_T or log p_T
    image: np.ndarray
    #: the colour scale (lo, hi) shared by both heatmaps, rounded outwards to "nice" steps
    colour_range: tuple[float, float]
    #: what the heatmap shows, for the title: "E/T", "p_T" or "log p_T"
    label: str
    #: the truth (exact density) or data histogram on the same scale (None: neither)
    truth_image: np.ndarray | None
    #: ``"exact"``, ``"histogram"`` or None, and the truth plot's title
    truth_kind: str | None
    truth_title: str
    #: what the truth picture depends on: unchanged between refreshes, the view skips repainting
    truth_key: tuple
    #: the contour levels drawn (empty without contours)
    contour_levels: np.ndarray
    #: contour segments (2·S, 2) of the model and of an exact truth, consecutive rows pairing up
    #: (None: contours off, or no exact truth to contour)
    contours: np.ndarray | None
    truth_contours: np.ndarray | None
    #: the numbers panel at the spec's temperature
    numbers: LandscapeNumbers
    #: the model's log p_T (n, n) float64 at the spec's temperature
    log_p: np.ndarray
    #: time taken to render this picture (seconds)
    seconds: float


@dataclass(frozen=True, eq=False)
class LandscapeResult:
    """One landscape refresh of the current 2-D model, computed in the engine thread.

    The data fields (truth, histogram, modes, held-out energies) come from the model's data set;
    they are None (or 0) when the model has none (a composition, a lost file) or the set lacks
    them (no exact density, no modes).
    """

    #: raw E and log p_T on the grid, −∇E on a coarse grid, the quadrature log Z_T, all at the
    #: engine's temperature (``landscape.temperature``)
    landscape: Landscape
    #: the model's name and training steps when the landscape was computed
    model_name: str
    step: int
    #: what the request that asked for it named (None: a training run's refresh)
    request_id: Any
    #: σ of the model's Gaussian reference q(x) = N(0, σ²I) (None: no reference)
    ref_sigma: float | None
    #: an analytic model's exact log Z at T = 1 (None otherwise)
    exact_log_z: float | None
    #: mean E and mean |x|²/2σ² over the held-out points, and how many there are, so the NLL
    #: follows at any T: ``NLL_T = mean E/T + mean |x|²/2σ² + log Z_T``
    heldout_mean_energy: float | None
    heldout_mean_ref: float
    heldout_n: int
    #: the data density's exact log density on the same grid (n, n) float64
    truth_log_density: np.ndarray | None
    #: the data density's own held-out NLL
    nll_truth: float | None
    #: the mode centres (M, 2), the nearest mode of every cell (n, n) int16, and the true mass
    #: per mode
    modes: np.ndarray | None
    mode_labels: np.ndarray | None
    mass_truth: tuple[float, ...] | None
    #: a 2-D histogram of the data as a density on the box (bins, bins) float32
    data_hist: np.ndarray | None
    #: up to 1,000 data points (k, 2) float32 to draw over the landscape
    data_points: np.ndarray | None
    #: −∇E arrows as segments (2·3·A, 2) (None without a gradient grid)
    arrows: np.ndarray | None
    #: engine time for the grid evaluation, and for the whole refresh (seconds)
    seconds_grid: float
    seconds: float
    #: the picture at the view's last spec, rendered in the engine (None: no spec known yet)
    view: RenderedView | None = None

    @property
    def temperature(self) -> float:
        """The engine's temperature, at which ``landscape`` is normalised."""
        return self.landscape.temperature

    @property
    def nll(self) -> float | None:
        """The held-out NLL at the engine's temperature (what the training panel shows)."""
        if self.heldout_mean_energy is None:
            return None
        return self.heldout_mean_energy / self.temperature + self.heldout_mean_ref + self.landscape.log_z


__all__ = ["MODES", "LandscapeNumbers", "LandscapeResult", "RenderedView", "ViewSpec"]
