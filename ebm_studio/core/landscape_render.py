"""What the landscape view draws, as plain numpy: p_T at a temperature, images, contours, numbers.

One function, :func:`render_view`, turns an engine landscape (a
:class:`~.landscape_result.LandscapeResult`: the raw energy grid E, −∇E, the data density,
held-out energies, mode labels) and a :class:`~.landscape_result.ViewSpec` (temperature T,
quantity, contour levels, truth on/off) into everything the view shows, a
:class:`~.landscape_result.RenderedView`: the heatmap of E/T, p_T or log p_T and its colour
range, the truth (or data histogram) on the same scale, contour segments, and the numbers
(log Z_T, NLL, both KLs, mass per mode) at T.

It runs in both threads, which is why it is numpy only (no torch, no Qt) and lives here:

- in the **engine**, for every refresh at the view's last spec, so that while a model trains the
  GUI thread only hands finished arrays to pyqtgraph ("computed in the worker, not the GUI
  thread"): Python-heavy numpy in the GUI thread would fight the training thread for the GIL;
- in the **GUI**, when the user changes the spec (drags the temperature slider, switches the
  quantity): ``U = E/T``, one logsumexp and one exp over 256² cells, contours and numbers are
  10–20 ms of numpy, so p_T ∝ exp(−E/T) re-renders at once instead of waiting for an engine that
  may be in the middle of a training step. The spec then goes to the engine for later refreshes.

The formulas mirror ``core.landscape`` (a test checks they agree). Contours are line *segments*
from a vectorised marching-squares pass (one sweep of the grid for all levels, no Python loop over
cells) and arrows are segments too, so each is a single ``PlotCurveItem(connect="pairs")``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ebm_studio.core.landscape_result import LandscapeNumbers, LandscapeResult, RenderedView, ViewSpec

if TYPE_CHECKING:  # core.landscape imports torch, which the GUI side of this module must not need
    from ebm_studio.core.landscape import Landscape

#: the log-density view shows this many nats below the maximum (lower values share one colour)
LOG_RANGE = 12.0


# --------------------------------------------------------------------------------------------
# Normalisation and numbers
# --------------------------------------------------------------------------------------------


def logsumexp(a: np.ndarray) -> float:
    m = float(np.max(a))
    if not math.isfinite(m):
        return m
    return m + math.log(float(np.exp(a - m).sum()))


def ref_term(xs: np.ndarray, ys: np.ndarray, ref_sigma: float | None) -> np.ndarray | float:
    """|x|²/(2σ²) on the grid [ix, iy] (0 without a reference)."""
    if ref_sigma is None:
        return 0.0
    return (xs[:, None] ** 2 + ys[None, :] ** 2) / (2.0 * ref_sigma**2)


def potential(energy: np.ndarray, temperature: float, ref: np.ndarray | float = 0.0) -> np.ndarray:
    """U = E/T (+ the reference term): p_T ∝ exp(−U)."""
    return energy / temperature + ref


def normalise(u: np.ndarray, cell_area: float) -> tuple[np.ndarray, float]:
    """(log p, log Z) with log Z = log Σ exp(−U)·ΔA (midpoint rule) and log p = −U − log Z."""
    lz = logsumexp(-u) + math.log(cell_area)
    return -u - lz, lz


def kl(log_p: np.ndarray, log_q: np.ndarray, cell_area: float) -> float:
    """KL(p‖q) = Σ p (log p − log q) ΔA, both normalised on the grid (0·log 0 = 0), ≥ 0."""
    p = np.exp(log_p)
    with np.errstate(invalid="ignore"):
        terms = np.where(p > 0, p * (log_p - log_q), 0.0)
    return max(float(terms.sum()) * cell_area, 0.0)


def mode_masses(log_p: np.ndarray, labels: np.ndarray, n_modes: int, cell_area: float) -> np.ndarray:
    """Probability mass of the cells nearest each mode (``labels`` from the engine)."""
    return np.bincount(labels.ravel(), weights=np.exp(log_p).ravel() * cell_area, minlength=n_modes)


def log_hist_density(hist: np.ndarray, floor_below_max: float = LOG_RANGE) -> np.ndarray:
    """log of a histogram density; empty bins get max − ``floor_below_max`` (not −∞)."""
    with np.errstate(divide="ignore"):
        lh = np.log(hist.astype(np.float64))
    finite = lh[np.isfinite(lh)]
    top = float(finite.max()) if finite.size else 0.0
    return np.where(np.isfinite(lh), lh, top - floor_below_max)


# --------------------------------------------------------------------------------------------
# Contours: vectorised marching squares → segments
# --------------------------------------------------------------------------------------------


def contour_segments(values: np.ndarray, xs: np.ndarray, ys: np.ndarray, levels) -> np.ndarray:
    """Line segments of the level sets of ``values`` [ix, iy] sampled at (xs[ix], ys[iy]).

    Returns an array (2·S, 2) of segment end points, consecutive rows pairing up (what
    ``PlotCurveItem(connect="pairs")`` draws). Saddle cells are split by the cell-centre value.

    One pass over the grid for all levels: each node gets the number of levels below it
    (``searchsorted``); a cell is crossed by level k exactly when its corners' counts straddle k.
    Only those cells (a few per cent) are interpolated, level by level.
    """
    v = np.asarray(values, dtype=np.float64)
    lv = np.unique(np.asarray([float(l) for l in levels if math.isfinite(float(l))]))
    if v.ndim != 2 or v.shape[0] < 2 or v.shape[1] < 2 or lv.size == 0:
        return np.zeros((0, 2))
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    below = np.searchsorted(lv, v, side="left").astype(np.int16)  # v > lv[k] ⇔ below > k
    q00, q10, q11, q01 = below[:-1, :-1], below[1:, :-1], below[1:, 1:], below[:-1, 1:]
    lo = np.minimum(np.minimum(q00, q10), np.minimum(q11, q01))
    hi = np.maximum(np.maximum(q00, q10), np.maximum(q11, q01))
    ci, cj = np.nonzero(lo != hi)
    if ci.size == 0:
        return np.zeros((0, 2))
    clo, chi = lo[ci, cj], hi[ci, cj]
    # corners: bottom-left a (i, j), bottom-right b (i+1, j), top-right c (i+1, j+1), top-left d
    va, vb, vc, vd = v[ci, cj], v[ci + 1, cj], v[ci + 1, cj + 1], v[ci, cj + 1]
    x0, x1, y0, y1 = x[ci], x[ci + 1], y[cj], y[cj + 1]
    out: list[np.ndarray] = []

    def cut(p: np.ndarray, q: np.ndarray, level: float) -> np.ndarray:  # crossing along p→q
        d = q - p
        safe = np.where(d != 0, d, 1.0)
        return np.clip(np.where(d != 0, (level - p) / safe, 0.5), 0.0, 1.0)

    for k, level in enumerate(lv):
        sel = np.nonzero((clo <= k) & (chi > k))[0]
        if sel.size == 0:
            continue
        a, b, c, d = va[sel], vb[sel], vc[sel], vd[sel]
        ab, bb, cb, db = a > level, b > level, c > level, d > level
        sx0, sx1, sy0, sy1 = x0[sel], x1[sel], y0[sel], y1[sel]
        t0, t1, t2, t3 = cut(a, b, level), cut(b, c, level), cut(d, c, level), cut(a, d, level)
        # edges: 0 bottom a→b, 1 right b→c, 2 top d→c, 3 left a→d
        px = np.stack([sx0 + t0 * (sx1 - sx0), sx1, sx0 + t2 * (sx1 - sx0), sx0])
        py = np.stack([sy0, sy0 + t1 * (sy1 - sy0), sy1, sy0 + t3 * (sy1 - sy0)])
        flags = np.stack([ab != bb, bb != cb, db != cb, ab != db])
        count = flags.sum(0)
        cols = np.arange(sel.size)
        two = count == 2
        if two.any():
            f = flags[:, two]
            e0, e1 = f.argmax(0), 3 - f[::-1].argmax(0)
            kk = cols[two]
            seg = np.stack([np.stack([px[e0, kk], py[e0, kk]], -1),
                            np.stack([px[e1, kk], py[e1, kk]], -1)], 1)
            out.append(seg.reshape(-1, 2))
        four = count == 4
        if four.any():
            kk = cols[four]
            centre = 0.25 * (a[kk] + b[kk] + c[kk] + d[kk])
            same = (centre > level) == ab[kk]  # the bottom-left corner is joined to the centre
            # joined: cut off the bottom-right and top-left corners, else bottom-left and top-right
            for which, pairs in ((same, ((0, 1), (2, 3))), (~same, ((0, 3), (1, 2)))):
                k2 = kk[which]
                for e0, e1 in pairs:
                    seg = np.stack([np.stack([px[e0, k2], py[e0, k2]], -1),
                                    np.stack([px[e1, k2], py[e1, k2]], -1)], 1)
                    out.append(seg.reshape(-1, 2))
    if not out:
        return np.zeros((0, 2))
    return np.concatenate(out)


def nice_levels(lo: float, hi: float, n: int) -> np.ndarray:
    """``n`` evenly spaced levels strictly inside (lo, hi)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo or n < 1:
        return np.zeros(0)
    return lo + (hi - lo) * (np.arange(1, n + 1) / (n + 1))


def parse_levels(text: str) -> list[float]:
    """Levels typed by the user: numbers separated by commas or spaces; ``ValueError`` if not."""
    parts = [p for p in text.replace(";", ",").replace(",", " ").split() if p]
    levels = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise ValueError(f"{p!r} is not a number") from None
        if not math.isfinite(v):
            raise ValueError(f"{p!r} is not a finite number")
        levels.append(v)
    return sorted(set(levels))


# --------------------------------------------------------------------------------------------
# Arrows, ellipses, trails
# --------------------------------------------------------------------------------------------


def arrow_segments(xs: np.ndarray, ys: np.ndarray, grad: np.ndarray, cell: float) -> np.ndarray:
    """Segments (2·3·A, 2) of arrows along −∇E at the coarse grid points: a shaft and two barbs.

    Lengths grow with |∇E| up to ``0.9·cell`` (at the 90th percentile of |∇E|), so large
    gradients near the box edge do not swamp the picture; tiny ones still show a stub.
    """
    g = -np.asarray(grad, dtype=np.float64)  # the force −∇E points downhill
    gx, gy = g[..., 0].ravel(), g[..., 1].ravel()
    mag = np.hypot(gx, gy)
    x0 = np.repeat(xs, len(ys))
    y0 = np.tile(ys, len(xs))
    keep = mag > 0
    if not keep.any():
        return np.zeros((0, 2))
    ref = float(np.percentile(mag[keep], 90)) or 1.0
    length = 0.9 * cell * np.clip(mag / ref, 0.15, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ux, uy = np.where(keep, gx / mag, 0.0), np.where(keep, gy / mag, 0.0)
    # centred on the grid point
    sx, sy = x0 - 0.5 * length * ux, y0 - 0.5 * length * uy
    tx, ty = x0 + 0.5 * length * ux, y0 + 0.5 * length * uy
    barb = 0.3 * length
    c, s = math.cos(math.radians(150)), math.sin(math.radians(150))
    b1x, b1y = tx + barb * (c * ux - s * uy), ty + barb * (s * ux + c * uy)
    b2x, b2y = tx + barb * (c * ux + s * uy), ty + barb * (-s * ux + c * uy)
    segs = np.stack([
        np.stack([sx, sy], -1), np.stack([tx, ty], -1),
        np.stack([tx, ty], -1), np.stack([b1x, b1y], -1),
        np.stack([tx, ty], -1), np.stack([b2x, b2y], -1),
    ], 1)[keep]
    return segs.reshape(-1, 2)


def ellipse_path(mean: np.ndarray, cov: np.ndarray, n_sigma: float = 2.0, points: int = 64) -> np.ndarray:
    """(points+1, 2) closed curve where the Mahalanobis distance is ``n_sigma``."""
    t = np.linspace(0.0, 2.0 * math.pi, points + 1)
    circle = np.stack([np.cos(t), np.sin(t)], -1)
    chol = np.linalg.cholesky(np.asarray(cov, dtype=np.float64))
    return np.asarray(mean, dtype=np.float64) + n_sigma * circle @ chol.T


class Mixture(Protocol):
    """A Gaussian mixture in 2-D: weights (K,), means (K, 2), covariances (K, 2, 2)."""

    weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray


def mixture_outline(params: Mixture, n_sigma: float = 2.0, min_weight: float = 0.01) -> np.ndarray:
    """Ellipses of every component with weight ≥ ``min_weight``, separated by NaN rows."""
    parts = []
    for w, m, c in zip(params.weights, params.means, params.covs):
        if w < min_weight:
            continue
        parts.append(ellipse_path(m, c, n_sigma))
        parts.append(np.full((1, 2), np.nan))
    return np.concatenate(parts) if parts else np.zeros((0, 2))


def trail_segments(history: list[np.ndarray]) -> np.ndarray:
    """Segments joining each chain's consecutive positions in ``history`` (a list of (N, 2))."""
    if len(history) < 2:
        return np.zeros((0, 2))
    h = np.stack(history)  # (L, N, 2)
    segs = np.stack([h[:-1], h[1:]], 2)  # (L-1, N, 2 ends, 2)
    return segs.reshape(-1, 2)


# --------------------------------------------------------------------------------------------
# The whole picture at a view spec
# --------------------------------------------------------------------------------------------

#: the energy view spans at most this many units of E/T above its minimum
ENERGY_SPAN = 30.0
#: contours are traced on about this many nodes per side (every k-th grid node)
CONTOUR_NODES = 128


def _floor_to(v: float, step: float) -> float:
    return math.floor(v / step) * step


def _ceil_to(v: float, step: float) -> float:
    return math.ceil(v / step) * step


def _nice_step(v: float) -> float:
    """A step of about 5 % of ``v`` from 1, 2, 5 × 10^k."""
    if not (math.isfinite(v) and v > 0):
        return 1.0
    raw = 0.05 * v
    base = 10.0 ** math.floor(math.log10(raw))
    return next(m * base for m in (1.0, 2.0, 5.0, 10.0) if m * base >= raw)


def numbers_at(result: LandscapeResult, temperature: float, log_p: np.ndarray,
               log_z: float) -> LandscapeNumbers:
    """The numbers panel at ``temperature`` from an engine result and its normalisation there."""
    grid = result.landscape.grid
    area = grid.cell_area
    nll = kl_dm = kl_md = mass_model = None
    if result.heldout_mean_energy is not None:
        # −log p_T(x) = E(x)/T (+ |x|²/2σ²) + log Z_T, averaged over the held-out points
        nll = result.heldout_mean_energy / temperature + result.heldout_mean_ref + log_z
    truth = result.truth_log_density
    if truth is not None:
        kl_dm, kl_md = kl(truth, log_p, area), kl(log_p, truth, area)
    if result.mode_labels is not None and result.modes is not None:
        mass_model = tuple(mode_masses(log_p, result.mode_labels, len(result.modes), area).tolist())
    exact = result.exact_log_z
    return LandscapeNumbers(
        temperature=temperature,
        log_z=log_z,
        grid_n=grid.n,
        box=(tuple(grid.xlim), tuple(grid.ylim)),
        model_name=result.model_name,
        step=result.step,
        exact_log_z=float(exact) if exact is not None and abs(temperature - 1.0) < 1e-12 else None,
        nll=nll,
        heldout_n=result.heldout_n if nll is not None else 0,
        nll_truth=result.nll_truth,
        kl_data_model=kl_dm,
        kl_model_data=kl_md,
        mass_model=mass_model,
        mass_truth=result.mass_truth,
        seconds=result.seconds,
    )


def render_view(result: LandscapeResult, spec: ViewSpec) -> RenderedView:
    """Everything the view draws for ``result`` at ``spec`` (see the module docstring)."""
    t0 = time.perf_counter()
    ls = result.landscape
    grid = ls.grid
    xs, ys = grid.xs, grid.ys
    t = spec.temperature
    mode = spec.mode
    u = potential(ls.energy, t, ref_term(xs, ys, result.ref_sigma))
    log_p, log_z = normalise(u, grid.cell_area)
    # Colour ranges are rounded outwards to "nice" steps: a training refresh then usually keeps
    # the colour bar's range, so its axis (text, slow to paint) is not redrawn every time.
    if mode == "energy":
        img = u
        lo = _floor_to(float(u.min()), 0.5)
        hi = max(min(float(np.percentile(u, 60)), lo + ENERGY_SPAN), lo + 1.0)
        hi = _ceil_to(hi, 1.0)
        label = "E/T" + (" + |x|²/2σ²" if result.ref_sigma else "")
    elif mode == "density":
        img = np.exp(log_p)
        top = float(img.max())
        lo, hi = 0.0, _ceil_to(top, _nice_step(top))
        label = "p_T"
    else:
        img = log_p
        hi = _ceil_to(float(log_p.max()), 0.5)
        lo = hi - LOG_RANGE
        label = "log p_T"
    what = {"energy": "−log p_data − log Z_T", "density": "p_data", "log_density": "log p_data"}[mode]
    # (titles stay short: a long title widens its plot's column)
    truth_lp = result.truth_log_density
    hist = result.data_hist
    truth = None
    truth_kind, truth_title = None, ""
    if truth_lp is not None:
        truth_kind, truth_title = "exact", f"truth {what}"
        # the truth in the model's gauge: a model equal to the truth at T = 1 looks the same
        truth = {"energy": lambda: -truth_lp - log_z, "density": lambda: np.exp(truth_lp),
                 "log_density": lambda: truth_lp}[mode]()
    elif hist is not None:
        truth_kind, truth_title = "histogram", f"data histogram {what}"
        lh = log_hist_density(hist)
        truth = {"energy": lambda: -lh - log_z, "density": lambda: hist.astype(np.float64),
                 "log_density": lambda: lh}[mode]()
    levels = np.zeros(0)
    segs = truth_segs = None
    if spec.contours:
        levels = np.asarray(spec.levels) if spec.levels else nice_levels(lo, hi, spec.n_levels)
        # contours from about 128² nodes: as smooth on screen, half the segments to stroke
        k = max(1, grid.n // CONTOUR_NODES)
        segs = contour_segments(img[::k, ::k], xs[::k], ys[::k], levels)
        # a histogram's blocky bins make meaningless wiggly contours: exact truth only
        if truth_kind == "exact" and spec.truth:
            truth_segs = contour_segments(truth[::k, ::k], xs[::k], ys[::k], levels)
    # what the truth picture depends on: unchanged between training refreshes (same data, and
    # colour ranges rounded to steps), so the view can skip repainting it
    truth_key = (id(truth_lp) if truth_lp is not None else id(hist), mode, float(lo), float(hi),
                 tuple(np.round(levels, 12)), spec.truth,
                 round(log_z, 9) if mode == "energy" else None)
    return RenderedView(
        spec=spec,
        image=np.asarray(img, dtype=np.float32),
        colour_range=(lo, hi),
        label=label,
        truth_image=None if truth is None else np.asarray(truth, dtype=np.float32),
        truth_kind=truth_kind,
        truth_title=truth_title,
        truth_key=truth_key,
        contour_levels=levels,
        contours=segs,
        truth_contours=truth_segs,
        numbers=numbers_at(result, t, log_p, log_z),
        log_p=log_p,
        seconds=time.perf_counter() - t0,
    )


def arrows_for(ls: Landscape) -> np.ndarray | None:
    """Arrow segments of −∇E on the coarse grid of ``ls`` (None without a gradient)."""
    if ls.grad is None or ls.grad_grid is None:
        return None
    g = ls.grad_grid
    return arrow_segments(g.xs, g.ys, ls.grad, min(g.dx, g.dy))
