"""Reduce states for display: image batches in [-1, 1] to uint8 grids, points to 2-D histograms.

Frames sent to the GUI are already reduced by these functions (in the worker), so the GUI thread only
uploads small uint8/float arrays.
"""

from __future__ import annotations

import math

import numpy as np


def to_uint8(images: np.ndarray, low: float = -1.0, high: float = 1.0) -> np.ndarray:
    """Map floats in [low, high] to uint8 [0, 255] (values outside are clipped)."""
    scaled = (np.asarray(images, dtype=np.float32) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def grid_shape(n: int, ncols: int | None = None) -> tuple[int, int]:
    """(rows, cols) of a near-square grid for ``n`` tiles."""
    cols = ncols or max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / cols)), cols


def image_grid(
    images: np.ndarray, ncols: int | None = None, pad: int = 1, low: float = -1.0, high: float = 1.0
) -> np.ndarray:
    """Tile an (N, C, H, W) float batch into one uint8 image (rows·(H+pad), cols·(W+pad), C).

    C is 1 or 3; the result keeps a trailing channel axis. Padding pixels are black.
    """
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {x.shape}")
    n, c, h, w = x.shape
    rows, cols = grid_shape(n, ncols)
    tiles = to_uint8(x, low, high) if x.dtype != np.uint8 else x
    out = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        y0, x0 = pad + r * (h + pad), pad + q * (w + pad)
        out[y0 : y0 + h, x0 : x0 + w] = tiles[i].transpose(1, 2, 0)
    return out


def histogram2d(
    points: np.ndarray, xlim: tuple[float, float], ylim: tuple[float, float], bins: int = 256
) -> np.ndarray:
    """Counts of (N, 2) points on a ``bins × bins`` grid, indexed [ix, iy] (x first, as pyqtgraph).

    Bin i holds the points whose fraction of the box, times ``bins``, has floor i (as the PNG
    export places them): ``np.histogram2d``'s bins but for points within rounding of an inner
    edge. The box's right and top edges fall in the last bins; points outside it and NaNs are
    left out. One ``bincount``: 15× faster than ``np.histogram2d`` for a 4,096-chain frame, which
    the viewer makes up to 60 times a second.
    """
    p = np.asarray(points, dtype=np.float64)
    if not (np.isfinite([*xlim, *ylim]).all() and xlim[1] > xlim[0] and ylim[1] > ylim[0]):
        # numpy widens an empty box and refuses an infinite one, with its own messages
        h, _, _ = np.histogram2d(p[:, 0], p[:, 1], bins=bins, range=[xlim, ylim])
        return h.astype(np.float32)
    x, y = p[:, 0], p[:, 1]
    inside = (x >= xlim[0]) & (x <= xlim[1]) & (y >= ylim[0]) & (y <= ylim[1])
    fx = (x[inside] - xlim[0]) * (bins / (xlim[1] - xlim[0]))
    fy = (y[inside] - ylim[0]) * (bins / (ylim[1] - ylim[0]))
    ix = np.minimum(fx.astype(np.int64), bins - 1)
    iy = np.minimum(fy.astype(np.int64), bins - 1)
    return np.bincount(ix * bins + iy, minlength=bins * bins).reshape(bins, bins).astype(np.float32)
