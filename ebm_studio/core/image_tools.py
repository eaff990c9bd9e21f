"""Images in for the image tools: read a file, fit it to a model, masks and initial fills.

Shared by inpainting and translation, headless and in the app. Every conversion says what it
changed (``notes``), and every image or mask a model cannot take raises :class:`ImageInputError`
with a message meant for the user.

Conventions: images are float tensors (C, H, W) in [-1, 1]; a mask is a boolean (H, W) array,
True where pixels are *free* (to be filled in), as the samplers take it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from ebm_studio.core.masks import MASK_PRESETS, PICTURE_SUFFIXES, MaskError, mask_preset  # noqa: F401

FILLS = ("noise", "blur", "mean")

MAX_IMAGE_PIXELS = 64_000_000


class ImageInputError(MaskError):
    """An image, mask or model the image tools cannot use; the message says why and what to do."""


# --------------------------------------------------------------------------------------------
# Reading and fitting images
# --------------------------------------------------------------------------------------------


def read_image_file(path: str | Path) -> np.ndarray:
    """A picture file as uint8 (H, W, C) with C = 1 (grey) or 3 (colour, alpha dropped)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ImageInputError(f"{p}: no such file")
    if not p.is_file():
        raise ImageInputError(f"{p}: not a regular file")
    try:
        with Image.open(p) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise ImageInputError(f"{p}: {im.width}×{im.height} pixels is too large an image")
            im = ImageOps.exif_transpose(im)
            if im.mode.startswith("I"):  # 16-bit grey (and 32-bit integers read as 16-bit)
                a = np.asarray(im, np.float64) / 257.0
                return np.clip(np.round(a), 0, 255).astype(np.uint8)[..., None]
            if im.mode == "F":  # floats: 0..1 when they fit there, else 0..255
                a = np.asarray(im, np.float64)
                a = a * 255.0 if a.min() >= 0 and a.max() <= 1 else a
                return np.clip(np.round(a), 0, 255).astype(np.uint8)[..., None]
            if im.mode in ("L", "1", "LA"):
                return np.asarray(im.convert("L"), np.uint8)[..., None]
            return np.asarray(im.convert("RGB"), np.uint8)
    except ImageInputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageInputError(f"{p}: not an image EBM Studio can read ({exc.__class__.__name__})") from None


def fit_image(
    pixels: np.ndarray, event_shape: tuple[int, int, int], background: float | None = None
) -> tuple[torch.Tensor, list[str]]:
    """``pixels`` (H, W[, C]) uint8 (0..255) or float in [-1, 1] → (C, S, S) in [-1, 1], and notes.

    Non-square pictures are centre-cropped, then resized; colour becomes grey for a 1-channel model
    (luma), grey is repeated for a 3-channel one. ``background`` (the model's data background, e.g.
    −1 for digits: dark) inverts a picture whose border has the other polarity (a dark digit on
    white paper), and says so.
    """
    c, h, w = (int(v) for v in event_shape)
    a = np.asarray(pixels)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4) or min(a.shape[:2]) < 1:
        raise ImageInputError(f"an image must be (H, W), (H, W, 1) or (H, W, 3), got shape {a.shape}")
    notes: list[str] = []
    if a.dtype == np.uint8:
        x = a.astype(np.float32) / 127.5 - 1.0
    else:
        x = a.astype(np.float32)
        if not np.isfinite(x).all():
            raise ImageInputError("the image holds NaN or infinite values")
        if x.min() < -1.0001 or x.max() > 1.0001:
            raise ImageInputError(f"float images must lie in [-1, 1], got {x.min():.3g}..{x.max():.3g}")
    if x.shape[-1] == 4:
        x = x[..., :3]
    src_c = x.shape[-1]
    t = torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)
    ih, iw = t.shape[1:]
    if ih != iw:
        s = min(ih, iw)
        top, left = (ih - s) // 2, (iw - s) // 2
        t = t[:, top:top + s, left:left + s]
        notes.append(f"cropped {iw}×{ih} to the centre {s}×{s}")
    if t.shape[1] != h or t.shape[2] != w:
        notes.append(f"resized {t.shape[2]}×{t.shape[1]} to {w}×{h}")
        t = F.interpolate(t[None], size=(h, w), mode="bilinear", align_corners=False, antialias=True)[0]
    if src_c == 3 and c == 1:
        t = (t * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(0, keepdim=True)
        notes.append("converted colour to grey")
    elif src_c == 1 and c == 3:
        t = t.expand(3, h, w)
        notes.append("repeated grey into 3 channels")
    elif src_c != c:
        raise ImageInputError(f"a {src_c}-channel image cannot be given to a {c}-channel model")
    if background is not None:
        border = torch.cat([t[:, 0], t[:, -1], t[:, :, 0], t[:, :, -1]], dim=-1).mean()
        if float(border) * background < 0 and abs(float(border)) > 0.2:
            t = -t
            notes.append("inverted (the model's images are " + ("light on dark" if background < 0 else "dark on light") + ")")
    return t.clamp(-1, 1).contiguous().float(), notes


def data_background(data_desc: dict) -> float | None:
    """The background polarity of a model's training images, where it is known (digits: dark)."""
    return -1.0 if data_desc.get("name") == "digits" else None


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------


def read_mask_file(path: str | Path, size: int) -> np.ndarray:
    """A mask picture (white = fill in), centre-cropped like the image it goes with, then resized
    to (size, size) by nearest neighbour."""
    pixels = read_image_file(path)
    grey = pixels.mean(-1)
    h, w = grey.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    grey = grey[top:top + side, left:left + side]
    im = Image.fromarray(grey.astype(np.uint8)).resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(im) > 127


def check_mask(mask: np.ndarray, size: tuple[int, int]) -> str:
    """Refuse a mask of the wrong shape or with nothing to fill; returns a note ("" or a warning)."""
    m = np.asarray(mask)
    if m.dtype != bool:
        raise ImageInputError(f"a mask must be boolean (True = fill in), got {m.dtype}")
    if m.shape != tuple(size):
        raise ImageInputError(f"the mask is {m.shape[1]}×{m.shape[0]} but the image is {size[1]}×{size[0]}")
    if not m.any():
        raise ImageInputError("the mask is empty: mark the part of the image to fill in "
                              "(paint it, or white in a mask picture)")
    if m.all():
        return "the mask covers the whole image, so nothing is observed: this is plain sampling"
    return ""


# --------------------------------------------------------------------------------------------
# Initial fills
# --------------------------------------------------------------------------------------------


def initial_fill(
    image: torch.Tensor, mask: np.ndarray, kind: str, n: int, generator: torch.Generator
) -> torch.Tensor:
    """``n`` copies of ``image`` (C, H, W) whose free pixels start as ``noise``, ``blur`` or ``mean``.

    ``blur`` diffuses the observed pixels into the hole (repeated normalised 3×3 averaging), a
    guess that keeps strokes continuous; ``mean`` uses the mean observed value.
    """
    if kind not in FILLS:
        raise ImageInputError(f"initial fill must be one of {', '.join(FILLS)}, got {kind!r}")
    free = torch.from_numpy(np.asarray(mask, dtype=bool))
    x = image.unsqueeze(0).repeat(n, 1, 1, 1)
    observed = (~free).float()
    if kind == "noise":
        fill = torch.rand(x.shape, generator=generator) * 2 - 1
    elif kind == "mean":
        value = float((image * observed).sum() / (observed.sum() * image.shape[0]).clamp_min(1))
        fill = torch.full_like(x, value)
    else:
        fill = _diffuse(image, observed).unsqueeze(0).expand_as(x)
    return torch.where(free, fill, x).contiguous()


def _diffuse(image: torch.Tensor, known: torch.Tensor, rounds: int = 64) -> torch.Tensor:
    """Normalised convolution: each round, unknown pixels take the mean of their known neighbours."""
    c = image.shape[0]
    k = known.expand_as(image).bool()
    kernel = torch.ones(c, 1, 3, 3)
    v = torch.where(k, image, torch.zeros_like(image))[None]
    w = k.float()[None]
    for _ in range(rounds):
        vb = F.conv2d(v, kernel, padding=1, groups=c)
        wb = F.conv2d(w, kernel, padding=1, groups=c)
        reached = wb > 0
        w = torch.where(k[None], 1.0, reached.float())
        v = torch.where(k[None], image[None], torch.where(reached, vb / wb.clamp_min(1e-6), 0.0))
        if bool(w.all()):
            break
    mean = image[k].mean() if bool(k.any()) else torch.tensor(0.0)
    return torch.where(w[0] > 0, v[0], mean).clamp(-1, 1)


# --------------------------------------------------------------------------------------------
# Runs (headless; the engine drives the same samplers step by step)
# --------------------------------------------------------------------------------------------


def check_image_model(model) -> None:
    """Refuse a model the image tools cannot use (a 2-D density)."""
    if model.kind != "images":
        raise ImageInputError(
            f"'{model.name}' is a 2-D model; inpainting and translation need an image model "
            "(open the digits or a texture example)")


def inpaint_start(model, image: torch.Tensor, mask: np.ndarray, n: int, fill: str, seed: int):
    """Initial proposals (n, C, H, W) and the sampler mask for an inpainting run."""
    check_image_model(model)
    c, h, w = model.event_shape
    if tuple(image.shape) != (c, h, w):
        raise ImageInputError(f"the image is {tuple(image.shape)} but the model takes {(c, h, w)}")
    check_mask(mask, (h, w))
    g = torch.Generator().manual_seed(int(seed))
    x0 = initial_fill(image, mask, fill, int(n), g)
    free = torch.from_numpy(np.asarray(mask, dtype=bool))[None].expand(c, h, w).contiguous()
    return x0, free


def run_sampler(sampler, steps: int, every: int = 1, on_step=None, should_stop=None):
    """Advance ``sampler`` by ``steps`` steps; ``on_step(step, x, energies)`` every ``every`` steps.

    Returns the per-step mean energies (including the start), so a caller can plot them.
    """
    e0 = sampler.current_energy()
    trace = [float(e0.mean())]
    if on_step is not None:
        on_step(0, sampler.x, e0)
    for k in range(1, int(steps) + 1):
        if should_stop is not None and should_stop():
            break
        r = sampler.step()
        trace.append(float(r.energy.mean()))
        if on_step is not None and (k % every == 0 or k == steps):
            on_step(k, r.x, r.energy)
    return trace


# --------------------------------------------------------------------------------------------
# Writing results
# --------------------------------------------------------------------------------------------


def save_image_rows(rows: list[np.ndarray], path: str | Path, scale: int = 1) -> None:
    """Write rows of (N, C, H, W) images in [-1, 1] as one PNG grid, one row each (atomically)."""
    from ebm_studio.core.fileio import atomic_path
    from ebm_studio.core.imaging import image_grid

    width = max(len(r) for r in rows)
    padded = []
    for r in rows:
        r = np.asarray(r, dtype=np.float32)
        if len(r) < width:
            r = np.concatenate([r, np.full((width - len(r), *r.shape[1:]), -1.0, np.float32)])
        padded.append(r)
    img = image_grid(np.concatenate(padded), ncols=width)
    if scale > 1:
        img = img.repeat(scale, 0).repeat(scale, 1)
    img = img[..., 0] if img.shape[-1] == 1 else img
    with atomic_path(path) as tmp:
        Image.fromarray(img).save(tmp, format="PNG")


def save_arrays(path: str | Path, **arrays) -> None:
    """Write named arrays to a compressed ``.npz`` (atomically)."""
    from ebm_studio.core.fileio import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v) for k, v in arrays.items()})


def masked_view(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The observed image with the hole shown mid-grey, (C, H, W)."""
    return np.where(np.asarray(mask, bool)[None], 0.0, np.asarray(image, np.float32)).astype(np.float32)
