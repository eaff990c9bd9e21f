"""2-D landscapes for the GUI, computed in the worker: E, p_T, ∇E, the truth and the numbers.

:class:`LandscapeService` (one per engine) is what :meth:`Engine.compute_landscape` runs (between
steps, in the engine thread). Its result is a frozen
:class:`~ebm_studio.core.landscape_result.LandscapeResult` of numpy arrays and floats, no tensors:

- ``landscape``: a :class:`~ebm_studio.core.landscape.Landscape` (raw E and log p_T on the grid,
  −∇E on a coarse grid, the quadrature log Z_T) at the engine's temperature, where the training
  panel reads the held-out NLL (``result.nll``);
- ``view``: the landscape view's whole picture (heatmaps, contours, numbers) at the view's own
  spec (temperature, quantity, levels), rendered here so the GUI thread only draws it;
- what the landscape view needs to redo all that at another temperature without torch: the mean
  energy of the held-out points (``NLL_T = mean E/T + mean |x|²/2σ² + log Z_T``), the exact log
  density of the data on the same grid, the nearest-mode label of every cell, a 2-D histogram and
  a sample of the data, and the exact log Z of an analytic model (T = 1).

The KLs and masses per mode are computed only where they are shown: at the view's temperature,
in ``render_view``.

View parameters are sticky per engine (the service object holds them). The landscape view sets the
grid size, the arrow grid, an optional box and its display spec
(:meth:`LandscapeService.set_view_params`); the training job's periodic ``compute_landscape({})``
then uses the same grid and renders for the view, so a zoomed or refined view stays so while a run
refreshes it.

The data-dependent parts (truth grid, histogram, mode labels, held-out sample) do not change while a
model trains, so they are cached for the last (data set, grid) pair: a training refresh costs one
grid evaluation of the network plus some 10–30 ms of numpy (numbers, the view's picture).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import numpy as np
import torch

from ebm_studio.core.landscape import (
    DEFAULT_GRID_N,
    Grid,
    check_limits,
    compute_landscape,
    eval_mode,
    evaluate_energy,
    log_density,
    mode_masses,
    module_device_dtype,
)
from ebm_studio.core.landscape_render import arrows_for, render_view
from ebm_studio.core.landscape_result import LandscapeResult, ViewSpec
from ebm_studio.worker.live import Settings
from ebm_studio.core.model import ModelState

HELDOUT_N = 2000
#: points of the data set behind the histogram (the exact density does not need them)
HIST_N = 20000
#: data points the view can draw on top of the landscape
SHOW_DATA_N = 1000
GRID_N_RANGE = (16, 1024)
GRAD_N_RANGE = (4, 64)
DEFAULT_GRAD_N = 24

# --------------------------------------------------------------------------------------------
# Sticky view parameters (per engine thread)
# --------------------------------------------------------------------------------------------


def _check_int(name: str, value, lo: int, hi: int) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if not lo <= v <= hi or v != value:
        raise ValueError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
    return v


def clean_params(params: dict) -> dict:
    """Validated copy of the view parameters ``n``, ``grad_n``, ``xlim``/``ylim`` (or ``box``).

    ``xlim``/``ylim`` set to None mean "the model's data box". Raises ``ValueError``.
    """
    out: dict = {}
    if "n" in params:
        out["n"] = _check_int("grid size n", params["n"], *GRID_N_RANGE)
    if "grad_n" in params:
        out["grad_n"] = _check_int("arrow grid", params["grad_n"], *GRAD_N_RANGE)
    if params.get("box") is not None:  # the older square form (lo, hi)
        out["xlim"] = out["ylim"] = check_limits("box", params["box"])
    for key in ("xlim", "ylim"):
        if key in params:
            out[key] = None if params[key] is None else check_limits(key, params[key])
    if "view" in params:
        view = params["view"]
        if view is not None and not isinstance(view, ViewSpec):
            raise ValueError(f"a view spec must be a ViewSpec, got {type(view).__name__}")
        out["view"] = view
    if "temperature" in params and params["temperature"] is not None:
        t = float(params["temperature"])
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperature must be positive, got {params['temperature']!r}")
        out["temperature"] = t
    return out


class LandscapeService:
    """One engine's landscape state: the view's sticky grid and display spec, and the cached data
    extras (held-out points, histogram) of the last data set. The engine owns one."""

    def __init__(self) -> None:
        self._params: dict = {}
        self._extras: tuple | None = None

    def set_view_params(self, params: dict) -> dict:
        """Remember the view's grid (``n``, ``grad_n``, box) and display spec (``view``, see
        :func:`~ebm_studio.core.landscape_render.render_view`) for later refreshes."""
        sticky = dict(self._params)
        new = clean_params(params)
        new.pop("temperature", None)  # the temperature is the live setting's (or the request's)
        sticky.update(new)
        self._params = sticky
        return dict(sticky)

    def view_params(self) -> dict:
        return dict(self._params)

    def compute(self, model: ModelState, params: dict, settings: Settings) -> dict:
        """The landscape of ``model`` on the remembered grid (``params`` override it)."""
        return landscape_for(self, model, params, settings)


# --------------------------------------------------------------------------------------------
# The landscape
# --------------------------------------------------------------------------------------------


def _grid_for(model: ModelState, p: dict) -> Grid:
    lo, hi = model.value_range
    xlim = p.get("xlim") or (lo, hi)
    ylim = p.get("ylim") or (lo, hi)
    return Grid(xlim, ylim, p.get("n", DEFAULT_GRID_N))


def _ref_mean(x: torch.Tensor, ref_sigma: float | None) -> float:
    if ref_sigma is None:
        return 0.0
    return float((x.double() ** 2).sum(-1).mean()) / (2.0 * ref_sigma**2)


def _data_points(dataset, n: int) -> torch.Tensor | None:
    """Up to ``n`` data points for display and the histogram (all train+held-out items when
    stored, a seeded draw from an endless toy)."""
    count = getattr(dataset, "count", None)
    if count is None:
        return dataset.heldout(n).float()
    idx = np.arange(count)
    if count > n:
        idx = np.sort(np.random.default_rng(0).choice(count, n, replace=False))
    return dataset.items(idx).float()


def _hist_bins(n_points: int) -> int:
    # ~5 points per occupied bin for large sets; never coarser than 16 bins a side
    return int(np.clip(math.sqrt(n_points / 5.0), 16, 96))


def _data_extras(service: LandscapeService, model: ModelState, dataset, grid: Grid) -> dict:
    """Everything that depends on the data set and the grid only (cached between refreshes)."""
    truth = model.truth
    key = (id(dataset), model.data_name, truth is not None, grid)
    cache = service._extras
    if cache is not None and cache[0] == key and cache[1] is dataset:
        return cache[2]
    out: dict = {"heldout": None, "truth_log_density": None, "mode_labels": None, "modes": None,
                 "data_hist": None, "data_points": None, "nll_truth": None, "mass_truth": None}
    if dataset is not None:
        held = dataset.heldout(HELDOUT_N)
        out["heldout"] = held.float() if held.shape[0] > 0 else None
        pts = _data_points(dataset, HIST_N).numpy().astype(np.float64)
        bins = _hist_bins(pts.shape[0])
        h, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=bins, range=[grid.xlim, grid.ylim])
        area = (grid.xlim[1] - grid.xlim[0]) * (grid.ylim[1] - grid.ylim[0]) / bins**2
        # a density (per unit area, over all points, in the box or not): same scale as p_T
        out["data_hist"] = (h / (pts.shape[0] * area)).astype(np.float32)
        out["data_points"] = pts[:SHOW_DATA_N].astype(np.float32)
    if truth is not None:
        with torch.no_grad():
            lp = truth.log_prob(grid.points(torch.float64)).double().numpy().reshape(grid.n, grid.n)
        out["truth_log_density"] = lp
        if out["heldout"] is not None:
            out["nll_truth"] = float(-truth.log_prob(out["heldout"]).double().mean())
        if truth.modes is not None:
            modes = np.asarray(truth.modes, dtype=np.float64)
            x, y = grid.mesh()
            d2 = (x[..., None] - modes[:, 0]) ** 2 + (y[..., None] - modes[:, 1]) ** 2
            out["mode_labels"] = d2.argmin(-1).astype(np.int16)
            out["modes"] = modes
            out["mass_truth"] = mode_masses(lp, grid, modes)
    service._extras = (key, dataset, out)
    return out


def _heldout_mean_energy(model: ModelState, held: torch.Tensor) -> float:
    dev, dtype = module_device_dtype(model.energy)
    with torch.no_grad(), eval_mode(model.energy):
        e = model.energy(held.to(dev, dtype)).double()
    if not torch.isfinite(e).all():
        raise FloatingPointError("the energy is non-finite at some held-out points")
    return float(e.mean())


def exact_log_z(model: ModelState) -> float | None:
    """log ∫ exp(−E) dx of an analytic model at T = 1 without a reference (else None)."""
    if model.ref_sigma is not None or not getattr(model.energy, "has_exact_log_prob", False):
        return None
    try:
        return float(model.energy.log_z)
    except AttributeError:
        return None


def landscape_for(service: LandscapeService, model: ModelState, params: dict,
                  settings: Settings) -> LandscapeResult:
    """Compute everything the landscape view and the training panel draw for the current model.

    ``params`` override the sticky view parameters for this call (``n``, ``grad_n``, ``xlim``,
    ``ylim``, ``temperature``; ``request_id`` is echoed back).
    """
    t0 = time.perf_counter()
    p = {**service.view_params(), **clean_params(params)}
    temperature = float(p.get("temperature", settings.temperature))
    grid = _grid_for(model, p)
    grad_n = p.get("grad_n", DEFAULT_GRAD_N)
    ls = compute_landscape(model.energy, grid, temperature, grad_n=grad_n, ref_sigma=model.ref_sigma)
    t_grid = time.perf_counter() - t0
    try:
        dataset = model.dataset()
    except Exception:  # no data set (a composition, a lost file): fewer numbers, same picture
        dataset = None
    extras = _data_extras(service, model, dataset, grid)
    held = extras["heldout"]
    mean_e = None if held is None else _heldout_mean_energy(model, held)
    mass_truth = extras["mass_truth"]
    result = LandscapeResult(
        landscape=ls,
        model_name=model.name,
        step=model.step,
        request_id=params.get("request_id"),
        ref_sigma=model.ref_sigma,
        exact_log_z=exact_log_z(model),
        heldout_mean_energy=mean_e,
        heldout_mean_ref=0.0 if held is None else _ref_mean(held, model.ref_sigma),
        heldout_n=0 if held is None else int(held.shape[0]),
        truth_log_density=extras["truth_log_density"],
        nll_truth=extras["nll_truth"],
        modes=extras["modes"],
        mode_labels=extras["mode_labels"],
        mass_truth=None if mass_truth is None else tuple(mass_truth.tolist()),
        data_hist=extras["data_hist"],
        data_points=extras["data_points"],
        arrows=arrows_for(ls),
        seconds_grid=t_grid,
        seconds=time.perf_counter() - t0,
    )
    if p.get("view") is None:
        return result
    # the view's picture at its own temperature, so the GUI thread only draws it (its numbers
    # give the engine time up to here; the result's own time includes the picture)
    view = render_view(result, p["view"])
    return replace(result, view=view, seconds=time.perf_counter() - t0)


__all__ = ["LandscapeService", "landscape_for", "clean_params", "evaluate_energy",
           "log_density", "exact_log_z"]
