"""Export recorded trajectories: animated GIF and APNG, a PNG strip of chosen steps, the raw .npz.

All exports work on a :meth:`TrajectoryRecorder.snapshot` (shared arrays, no copy), so they can run
while the engine keeps recording. Frames are rendered with numpy only:

- images: the whole grid of chains (:func:`ebm_studio.core.imaging.image_grid`), or one chain by
  index, enlarged by an integer ``scale`` (nearest neighbour, so pixels stay crisp);
- 2-D points: a ``size × size`` density plot (log-scaled 2-D histogram, each occupied bin a visible
  dot) on fixed axes for the whole animation; with ``chain=i`` particle i is drawn in red with its
  trail through the exported steps.

Frame count = number of chosen steps (``steps=None``: every recorded step; otherwise each requested
step number maps to the nearest recorded one). Pillow merges *identical* consecutive frames into one
longer frame, so a selection with repeated steps plays the same but has fewer frames in the file.

Long exports take ``progress(done, total)`` and ``should_cancel()``; a cancelled export raises
:class:`ExportCancelled` and leaves no file (everything is written to a temp file next to the target
and moved into place with ``os.replace``). For GIF/APNG ``total`` is the number of frames plus one
for the final encoding, which cannot be interrupted.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from ebm_studio.core.errors import check_int_at_least, check_positive
from ebm_studio.core.fileio import atomic_write_stream
from ebm_studio.core.imaging import histogram2d, image_grid, to_uint8
from ebm_studio.core.trajectory import (
    CancelFn,
    ExportCancelled,
    ProgressFn,
    TrajectoryRecorder,
)

__all__ = [
    "ExportCancelled",
    "export_apng",
    "export_gif",
    "export_npz",
    "export_png_strip",
    "point_limits",
    "render_points",
    "render_state",
]

Limits = tuple[tuple[float, float], tuple[float, float]]

#: auto ``scale`` enlarges image frames until the longer side reaches this many pixels
_AUTO_SIDE = 200
_BACKGROUND = np.array([16, 16, 22], np.uint8)
_HIGHLIGHT = np.array([255, 60, 40], np.uint8)
_TRAIL = np.array([255, 170, 40], np.uint8)


# --------------------------------------------------------------------------- rendering
def point_limits(samples: Sequence[np.ndarray], margin: float = 0.1) -> Limits:
    """Square axes (xlim, ylim) holding the bulk (0.5–99.5 %) of the given (N, 2) point sets.

    One pair of limits for a whole animation keeps the picture from jumping between frames.
    """
    pts = np.concatenate([np.asarray(s, np.float64).reshape(-1, 2) for s in samples])
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        return (-1.0, 1.0), (-1.0, 1.0)
    lo = np.percentile(pts, 0.5, axis=0)
    hi = np.percentile(pts, 99.5, axis=0)
    centre = (lo + hi) / 2
    half = float(np.max(hi - lo)) / 2 * (1 + 2 * margin)
    if not half > 1e-12:
        half = 1.0
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def _to_pixels(xy: np.ndarray, size: int, xlim: tuple[float, float], ylim: tuple[float, float]):
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    # the same bins as histogram2d (floor of the fraction), rows counted from the top (y up)
    col = np.floor((xy[:, 0] - xlim[0]) / (xlim[1] - xlim[0]) * size)
    row = size - 1 - np.floor((xy[:, 1] - ylim[0]) / (ylim[1] - ylim[0]) * size)
    return row.astype(np.int64), col.astype(np.int64)


def _paint(img: np.ndarray, rows: np.ndarray, cols: np.ndarray, colour: np.ndarray, r: int) -> None:
    size = img.shape[0]
    for dr in range(-r, r + 1):
        for dc in range(-r, r + 1):
            rr, cc = rows + dr, cols + dc
            ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
            img[rr[ok], cc[ok]] = colour


def render_points(
    points: np.ndarray,
    *,
    size: int = 256,
    xlim: tuple[float, float] | None = None,
    ylim: tuple[float, float] | None = None,
    highlight: np.ndarray | None = None,
    trail: np.ndarray | None = None,
) -> np.ndarray:
    """A (size, size, 3) uint8 density plot of (N, 2) ``points`` (y up).

    Occupied bins are at least mid-grey, brighter on a log scale with the count, so single particles
    stay visible next to dense modes. ``highlight`` (K, 2) points are drawn as red squares,
    ``trail`` (T, 2) as an orange polyline (a particle's path).
    """
    size = check_int_at_least("size", size, 8)
    pts = np.asarray(points, np.float32)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {pts.shape}")
    if xlim is None or ylim is None:
        xlim, ylim = point_limits([pts])
    counts = histogram2d(pts, xlim, ylim, bins=size).T[::-1]  # [ix, iy] → rows top-down
    peak = float(counts.max())
    img = np.empty((size, size, 3), np.uint8)
    img[:] = _BACKGROUND
    if peak > 0:
        level = 110 + 145 * np.log1p(counts) / math.log1p(peak)
        occupied = counts > 0
        img[occupied] = np.clip(level[occupied], 0, 255).astype(np.uint8)[:, None]
    if trail is not None and len(trail) > 1:
        t = np.asarray(trail, np.float64).reshape(-1, 2)
        # sample each segment densely enough (in pixels) to draw a connected line
        seg = np.diff(t, axis=0)
        span = np.array([xlim[1] - xlim[0], ylim[1] - ylim[0]])
        n_sub = np.clip(np.ceil(np.abs(seg / span).max(axis=1) * size * 2), 1, 4 * size).astype(int)
        pieces = [t[i] + seg[i] * np.linspace(0, 1, n + 1)[:, None] for i, n in enumerate(n_sub)]
        rows, cols = _to_pixels(np.concatenate(pieces), size, xlim, ylim)
        _paint(img, rows, cols, _TRAIL, 0)
    if highlight is not None and len(highlight):
        rows, cols = _to_pixels(highlight, size, xlim, ylim)
        _paint(img, rows, cols, _HIGHLIGHT, max(1, size // 128))
    return img


def _upscale(img: np.ndarray, scale: int) -> np.ndarray:
    if scale == 1:
        return img
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def render_state(
    state: np.ndarray,
    kind: str,
    *,
    chain: int | None = None,
    scale: int = 1,
    size: int = 256,
    limits: Limits | None = None,
    trail: np.ndarray | None = None,
) -> np.ndarray:
    """One frame (H, W, C) uint8 for a state: image grid / one chain / point density.

    Image states may be float in [-1, 1] or the stored uint8 codes (which skip a decode/encode).
    """
    scale = check_int_at_least("scale", scale, 1)
    if kind == "images":
        x = np.asarray(state)
        if chain is None:
            img = image_grid(x)  # takes uint8 codes as they are
        else:
            tile = x[chain]
            img = (tile if tile.dtype == np.uint8 else to_uint8(tile)).transpose(1, 2, 0)
        return _upscale(img, scale)
    if kind == "points":
        xlim, ylim = limits if limits is not None else point_limits([state])
        hl = None if chain is None else np.asarray(state)[chain : chain + 1]
        img = render_points(state, size=size, xlim=xlim, ylim=ylim, highlight=hl, trail=trail)
        return _upscale(img, scale)
    raise ValueError(f"kind must be 'images' or 'points', got {kind!r}")


#: height in pixels of one line of an export's caption band
LABEL_LINE = 13
_LABEL_INK = 235
_LABEL_BAND = 40


def frame_caption(step: int, energies: np.ndarray | None, chain: int | None = None) -> str:
    """'step 1,200 · mean E −3.41' (one chain: its own energy)."""
    text = f"step {int(step):,}"
    if energies is not None and len(energies):
        e = np.asarray(energies, np.float64)
        value = e[chain] if chain is not None else e[np.isfinite(e)].mean() if np.isfinite(e).any() else np.nan
        if np.isfinite(value):
            text += f" · {'E' if chain is not None else 'mean E'} {value:.4g}"
    return text


def label_frame(frame: np.ndarray, caption: str, limits: Limits | None = None) -> np.ndarray:
    """``frame`` with a caption band below it: the step and energy, and for points the axes'
    ranges (x and y at the plot's edges). Text that is wider than the frame is cut at its edge."""
    from PIL import ImageDraw

    lines = [caption]
    if limits is not None:
        (x0, x1), (y0, y1) = limits
        lines.append(f"x {x0:.3g}…{x1:.3g}  y {y0:.3g}…{y1:.3g}")
    h, w, c = frame.shape
    band = np.full((LABEL_LINE * len(lines) + 3, w, c), _LABEL_BAND, np.uint8)
    image = Image.fromarray(band[:, :, 0] if c == 1 else band, "L" if c == 1 else "RGB")
    draw = ImageDraw.Draw(image)
    ink = _LABEL_INK if c == 1 else (_LABEL_INK,) * 3
    for k, line in enumerate(lines):
        draw.text((2, 1 + k * LABEL_LINE), line, fill=ink)
    drawn = np.asarray(image)
    drawn = drawn[:, :, None] if c == 1 else drawn
    return np.concatenate([frame, drawn], axis=0)


# --------------------------------------------------------------------------- frame production
def _indices(rec: TrajectoryRecorder, steps: Sequence[int] | None) -> list[int]:
    if len(rec) == 0:
        raise ValueError("the recording is empty: nothing to export")
    if steps is None:
        return list(range(len(rec)))
    idx = [rec.index_of(s) for s in steps]
    if not idx:
        raise ValueError("steps must name at least one step")
    return idx


def _check_chain(rec: TrajectoryRecorder, chain: int | None) -> int | None:
    if chain is None:
        return None
    n = rec.n_chains or 0
    if isinstance(chain, bool) or not isinstance(chain, (int, np.integer)) or not 0 <= chain < n:
        raise ValueError(f"chain must be an index in [0, {n}), got {chain!r}")
    return int(chain)


def _auto_scale(rec: TrajectoryRecorder, chain: int | None, scale: int | None) -> int:
    if scale is not None:
        return check_int_at_least("scale", scale, 1)
    if rec.kind != "images":
        return 1
    _, h, w = rec.chain_shape  # type: ignore[misc]
    if chain is None:
        n = rec.n_chains or 1
        cols = max(1, math.ceil(math.sqrt(n)))
        rows = math.ceil(n / cols)
        h, w = rows * (h + 1) + 1, cols * (w + 1) + 1
    return max(1, min(16, math.ceil(_AUTO_SIDE / max(h, w))))


def _render_frames(
    rec: TrajectoryRecorder,
    indices: list[int],
    *,
    chain: int | None,
    scale: int,
    size: int,
    total: int,
    progress: ProgressFn | None,
    should_cancel: CancelFn | None,
    labels: bool = True,
) -> list[np.ndarray]:
    limits = None
    path: list[np.ndarray] = []
    if rec.kind == "points":
        if rec.chain_shape != (2,):
            raise ValueError(f"only 2-D points can be drawn, this recording has {rec.chain_shape}")
        # fixed axes from up to 32 evenly spread frames of the selection
        pick = indices[:: max(1, len(indices) // 32)]
        limits = point_limits([rec.get(i).state for i in pick])
    frames = []
    for k, i in enumerate(indices):
        if should_cancel is not None and should_cancel():
            raise ExportCancelled("export cancelled")
        if rec.kind == "images" and rec.storage_dtype == "uint8":
            # the stored codes are exactly what to_uint8 would give for the decoded state
            state = rec.stored_state(i)
            if state.dtype != np.uint8:  # a float32 branch point
                state = rec.get(i).state
        else:
            state = rec.get(i).state
        trail = None
        if rec.kind == "points" and chain is not None:
            path.append(state[chain])
            trail = np.stack(path)
        frame = render_state(
            state,
            rec.kind or "",
            chain=chain,
            scale=scale,
            size=size,
            limits=limits,
            trail=trail,
        )
        if labels:
            entry = rec.get(i)
            frame = label_frame(frame, frame_caption(entry.step, entry.energies, chain), limits)
        frames.append(frame)
        if progress is not None:
            progress(k + 1, total)
    return frames


def _pil(frame: np.ndarray) -> Image.Image:
    if frame.shape[2] == 1:
        return Image.fromarray(frame[:, :, 0], "L")
    return Image.fromarray(frame, "RGB")


def _export_animation(
    fmt: str,
    recorder: TrajectoryRecorder,
    path: str | os.PathLike[str],
    *,
    steps: Sequence[int] | None,
    chain: int | None,
    fps: float,
    scale: int | None,
    size: int,
    loop: int,
    progress: ProgressFn | None,
    should_cancel: CancelFn | None,
    labels: bool = True,
) -> Path:
    fps = check_positive("fps", fps)
    loop = check_int_at_least("loop", loop, 0)
    rec = recorder if recorder.frozen else recorder.snapshot()
    chain = _check_chain(rec, chain)
    indices = _indices(rec, steps)
    total = len(indices) + 1
    frames = _render_frames(
        rec,
        indices,
        chain=chain,
        scale=_auto_scale(rec, chain, scale),
        size=size,
        total=total,
        progress=progress,
        should_cancel=should_cancel,
        labels=labels,
    )
    if should_cancel is not None and should_cancel():
        raise ExportCancelled("export cancelled")
    images = [_pil(f) for f in frames]
    duration = max(1, round(1000.0 / fps))  # milliseconds per frame (GIF rounds to 10 ms)

    def write(fh) -> None:
        images[0].save(
            fh,
            format=fmt,
            save_all=True,
            append_images=images[1:],
            duration=duration,
            loop=loop,
        )

    out = atomic_write_stream(path, write)
    if progress is not None:
        progress(total, total)
    return out


# --------------------------------------------------------------------------- public exports
def export_gif(
    recorder: TrajectoryRecorder,
    path: str | os.PathLike[str],
    *,
    steps: Sequence[int] | None = None,
    chain: int | None = None,
    fps: float = 10.0,
    scale: int | None = None,
    size: int = 256,
    loop: int = 0,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    labels: bool = True,
) -> Path:
    """Write an animated GIF, one frame per chosen step (``loop=0``: repeat forever).

    ``chain=None`` shows all chains (image grid / all particles), ``chain=i`` one of them.
    ``scale=None`` enlarges small images to about 200 px; ``size`` is the side of point plots.
    ``labels`` adds a caption band under each frame: step, energy, and the axes of points.
    """
    return _export_animation(
        "GIF",
        recorder,
        path,
        steps=steps,
        chain=chain,
        fps=fps,
        scale=scale,
        size=size,
        loop=loop,
        progress=progress,
        should_cancel=should_cancel,
        labels=labels,
    )


def export_apng(
    recorder: TrajectoryRecorder,
    path: str | os.PathLike[str],
    *,
    steps: Sequence[int] | None = None,
    chain: int | None = None,
    fps: float = 10.0,
    scale: int | None = None,
    size: int = 256,
    loop: int = 0,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    labels: bool = True,
) -> Path:
    """Write an animated PNG (lossless, unlike GIF's 256 colours); arguments as for GIF."""
    return _export_animation(
        "PNG",
        recorder,
        path,
        steps=steps,
        chain=chain,
        fps=fps,
        scale=scale,
        size=size,
        loop=loop,
        progress=progress,
        should_cancel=should_cancel,
        labels=labels,
    )


def export_png_strip(
    recorder: TrajectoryRecorder,
    path: str | os.PathLike[str],
    steps: Sequence[int] | None = None,
    *,
    chain: int | None = None,
    scale: int | None = None,
    size: int = 256,
    pad: int = 2,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
    labels: bool = True,
) -> Path:
    """One PNG with the chosen steps side by side, left to right, ``pad`` black pixels around each.

    Size: width ``n·w + (n+1)·pad``, height ``h + 2·pad`` for frames of ``h × w`` (with
    ``labels``, ``h`` includes each frame's caption band: step, energy, and the axes of points).
    """
    pad = check_int_at_least("pad", pad, 0)
    rec = recorder if recorder.frozen else recorder.snapshot()
    chain = _check_chain(rec, chain)
    indices = _indices(rec, steps)
    total = len(indices) + 1
    frames = _render_frames(
        rec,
        indices,
        chain=chain,
        scale=_auto_scale(rec, chain, scale),
        size=size,
        total=total,
        progress=progress,
        should_cancel=should_cancel,
        labels=labels,
    )
    h, w, c = frames[0].shape
    n = len(frames)
    strip = np.zeros((h + 2 * pad, n * w + (n + 1) * pad, c), np.uint8)
    for k, f in enumerate(frames):
        x0 = pad + k * (w + pad)
        strip[pad : pad + h, x0 : x0 + w] = f
    if should_cancel is not None and should_cancel():
        raise ExportCancelled("export cancelled")
    image = _pil(strip)
    out = atomic_write_stream(path, lambda fh: image.save(fh, format="PNG"))
    if progress is not None:
        progress(total, total)
    return out


def export_npz(
    recorder: TrajectoryRecorder,
    path: str | os.PathLike[str],
    *,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
) -> Path:
    """The raw recording as ``.npz`` (see :meth:`TrajectoryRecorder.save_npz`)."""
    return recorder.save_npz(path, progress=progress, should_cancel=should_cancel)


#: export formats by key: file suffix, and the name the GUI shows
EXPORT_FORMATS = {"gif": ".gif", "apng": ".png", "png": ".png", "npz": ".npz"}
FORMAT_NAMES = {"gif": "GIF", "apng": "APNG", "png": "PNG strip", "npz": ".npz trajectory"}


def check_target(path: str | os.PathLike[str], fmt: str) -> str | None:
    """Why ``path`` cannot take an export of format ``fmt`` (None when it can)."""
    if fmt not in EXPORT_FORMATS:
        return f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}"
    p = Path(path)
    if not str(path).strip() or not p.name:
        return "no file name given"
    if p.is_dir():
        return f"{p} is a folder, not a file"
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"no permission to write in {folder}"
    if p.exists() and not os.access(p, os.W_OK):
        return f"{p} exists and is read-only"
    return None
