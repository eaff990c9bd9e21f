"""Ready-made inpainting masks, brush strokes and file names of the image tools (numpy only, so
the GUI can use them without the engine).

A mask is a boolean (H, W) array, True where pixels are free (to be filled in).
"""

from __future__ import annotations

import numpy as np

#: the pictures the image tools read (folders: these suffixes, any case)
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
MASK_PRESETS = ("lower-half", "upper-half", "left-half", "right-half", "centre-square", "random")
MASK_LABELS = {"lower-half": "Lower half", "upper-half": "Upper half", "left-half": "Left half",
               "right-half": "Right half", "centre-square": "Centre square", "random": "Random pixels"}


class MaskError(ValueError):
    """A mask that cannot be made or used; the message says why."""


def mask_preset(name: str, size: int, fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """A ready-made (size, size) mask, True = fill in; ``fraction`` is for ``random`` pixels."""
    m = np.zeros((size, size), dtype=bool)
    half = size // 2
    if name == "lower-half":
        m[half:] = True
    elif name == "upper-half":
        m[:half] = True
    elif name == "left-half":
        m[:, :half] = True
    elif name == "right-half":
        m[:, half:] = True
    elif name == "centre-square":
        q = size // 4
        m[q:size - q, q:size - q] = True
    elif name == "random":
        if not 0.0 <= float(fraction) <= 1.0:
            raise MaskError(f"the share of random pixels must lie in 0..1, got {fraction!r}")
        if float(fraction) == 0:
            raise MaskError("a random mask of 0 % selects no pixels; choose a share above 0")
        m = np.random.default_rng(seed).random((size, size)) < float(fraction)
    else:
        raise MaskError(f"unknown mask preset {name!r} (known: {', '.join(MASK_PRESETS)})")
    return m


def capsule(shape: tuple[int, int], p0: tuple[float, float], p1: tuple[float, float], radius: float) -> np.ndarray:
    """Pixels (rows, cols) whose centres lie within ``radius`` of the segment p0→p1 (x, y)."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    cx, cy = xs + 0.5, ys + 0.5
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    if length2 <= 1e-12:
        t = np.zeros_like(cx, dtype=np.float64)
    else:
        t = np.clip(((cx - x0) * dx + (cy - y0) * dy) / length2, 0.0, 1.0)
    d2 = (cx - (x0 + t * dx)) ** 2 + (cy - (y0 + t * dy)) ** 2
    return d2 <= radius * radius


def output_names(paths, suffix: str = "_translated.png") -> dict:
    """A distinct output file name for each input path: ``stem + suffix``; where stems clash
    (``a.png``, ``a.jpg``, ``a.JPG``) the extension and then a counter keep them apart."""
    from collections import Counter

    paths = list(paths)
    stems = Counter(p.stem.lower() for p in paths)
    names, used = {}, set()
    for p in paths:
        base = p.stem if stems[p.stem.lower()] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}"
        name, k = base + suffix, 2
        while name.lower() in used:  # file systems that ignore case would merge a.JPG and a.jpg
            name, k = f"{base}_{k}{suffix}", k + 1
        used.add(name.lower())
        names[p] = name
    return names
