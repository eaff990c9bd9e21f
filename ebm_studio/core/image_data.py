"""Image data sets: the bundled digits and textures, and the user's folders and arrays.

All of them give float32 NCHW tensors in [-1, 1] (see :mod:`ebm_studio.core.datasets` for the
contract; import the public names from there). Images are kept in memory as uint8 where the source
is 8-bit (a quarter of the memory of float32) and mapped to [-1, 1] per batch; float sources are
kept as float32 already in [-1, 1].

Resizing is always "centre-crop to a square, then Pillow bilinear resize" (antialiased when
shrinking, no overshoot). Alpha channels are dropped. Colour is decided per folder: grey if every
image is grey (grey modes, or RGB with R = G = B), else RGB; ``channels`` forces 1 (ITU-R 601-2
luma, as Pillow) or 3 (grey repeated).

Textures follow the texture-synthesis EBMs (Generative ConvNet, Xie et al. 2016): a training item
is a random square crop. The bottom 64 rows of every texture (12.5 % of a 512-row image; enough for
the largest 64-pixel crop) are reserved for ``heldout`` and never cropped by ``batch``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ebm_studio.core.dataset_base import (
    Dataset,
    HELDOUT_SEED,
    DatasetError,
    StoredDataset,
    as_generator,
    check_at_least_two,
    check_count,
    check_numbers,
    read_array,
)
from ebm_studio.core.bundled import resources_dir

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
IMAGE_SIZE_RANGE = (8, 256)
TEXTURE_SIZE_RANGE = (16, 64)
TEXTURE_NAMES = ("brick", "grass", "gravel")
TEXTURE_HELDOUT_ROWS = 64
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow's RGB → L
_REBUILD = "it ships with EBM Studio; rebuild it with scripts/make_resources.py"


def _to_unit_range(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float()


class ImageDataset(StoredDataset):
    """Stored images, NCHW, uint8 (0..255) or float ([-1, 1]); ``items``/``batch`` give [-1, 1].

    ``labels`` is an int64 tensor (N,) or None; ``classes`` names them when known (folder names).
    """

    def __init__(
        self,
        images,
        labels=None,
        name: str = "images",
        source: str = "memory",
        normalisation: str = "uint8 0..255 → [-1, 1]",
        classes: list[str] | None = None,
    ) -> None:
        x = torch.as_tensor(images)
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise DatasetError(
                f"{source}: images need shape (N, 1 or 3, H, W), got {tuple(x.shape)}"
            )
        if x.dtype != torch.uint8:
            if not x.is_floating_point():
                raise DatasetError(f"{source}: images must be uint8 or float, got {x.dtype}")
            x = x.float()
            if not torch.isfinite(x).all() or x.abs().max() > 1.0:
                raise DatasetError(f"{source}: float images must be finite and lie in [-1, 1]")
        check_at_least_two(len(x), source, "images")
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long)
            if labels.shape != (len(x),):
                raise DatasetError(f"{source}: {tuple(labels.shape)} labels for {len(x)} images")
        super().__init__(len(x), labels)
        self._images = x.contiguous()
        self.name, self.kind, self.source = name, "images", source
        self.event_shape = tuple(int(s) for s in x.shape[1:])
        self.value_range = (-1.0, 1.0)
        self.normalisation = normalisation
        self.classes = classes

    @property
    def channels(self) -> int:
        return self.event_shape[0]

    @property
    def size(self) -> int:
        """Side length in pixels (the height, for non-square arrays kept at native size)."""
        return self.event_shape[1]

    def items(self, indices) -> torch.Tensor:
        return _to_unit_range(self._images[torch.as_tensor(indices, dtype=torch.long)])

    def describe(self) -> dict:
        d = super().describe()
        d["channels"] = self.channels
        d["num_classes"] = None if self.labels is None else int(self.labels.max()) + 1
        d["classes"] = None if self.classes is None else list(self.classes)
        return d


class TextureDataset(Dataset):
    """Random ``size``-pixel square crops of one or more grey textures (uint8 2-D arrays).

    ``count`` is the number of distinct training crop positions.
    """

    def __init__(
        self,
        textures: dict[str, np.ndarray],
        size: int = 32,
        channels: int = 1,
        name: str = "textures",
        source: str = "memory",
    ) -> None:
        self.size = check_count("texture crop size", size, *TEXTURE_SIZE_RANGE)
        if channels not in (1, 3):
            raise DatasetError(f"channels must be 1 or 3, got {channels!r}")
        if not textures:
            raise DatasetError(f"{source}: no textures")
        for key, t in textures.items():
            if not isinstance(t, np.ndarray) or t.dtype != np.uint8 or t.ndim != 2:
                raise DatasetError(f"{source}: texture {key!r} must be a 2-D uint8 array")
        # one stack so that crops are a single gather; textures of unequal size share the smallest
        h = min(t.shape[0] for t in textures.values())
        w = min(t.shape[1] for t in textures.values())
        if h - TEXTURE_HELDOUT_ROWS < self.size or w < self.size:
            raise DatasetError(
                f"{source}: textures of {h}×{w} pixels are too small for {size}-pixel crops"
            )
        self._tex = torch.from_numpy(np.stack([t[:h, :w] for t in textures.values()]))
        self.texture_names = list(textures)
        self.split_row = h - TEXTURE_HELDOUT_ROWS
        self.channels = channels
        self.name, self.kind, self.source = name, "images", source
        self.event_shape = (channels, self.size, self.size)
        self.value_range = (-1.0, 1.0)
        self.normalisation = "uint8 0..255 → [-1, 1]"
        self.count = len(textures) * (self.split_row - self.size + 1) * (w - self.size + 1)

    def crops(self, n: int, generator: torch.Generator | None = None, heldout: bool = False):
        """``n`` random crops (n, C, s, s) in [-1, 1] from the training rows or the heldout rows."""
        n, s = check_count("n", n), self.size
        t_count, height, width = self._tex.shape
        top, bottom = (self.split_row, height) if heldout else (0, self.split_row)
        t = torch.randint(t_count, (n,), generator=generator)
        y = top + torch.randint(bottom - top - s + 1, (n,), generator=generator)
        x = torch.randint(width - s + 1, (n,), generator=generator)
        r = torch.arange(s)
        rows, cols = (y[:, None] + r)[:, :, None], (x[:, None] + r)[:, None, :]
        patch = self._tex[t[:, None, None], rows, cols]  # one gather: (n, s, s)
        return _to_unit_range(patch)[:, None].repeat(1, self.channels, 1, 1)

    def batch(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.crops(n, generator)

    def heldout(self, n: int, seed: int = HELDOUT_SEED) -> torch.Tensor:
        positions = len(self.texture_names) * (TEXTURE_HELDOUT_ROWS - self.size + 1) * (
            self._tex.shape[2] - self.size + 1
        )
        return self.crops(min(check_count("n", n), positions), as_generator(seed), heldout=True)

    def describe(self) -> dict:
        d = super().describe()
        d["channels"] = self.channels
        d["textures"] = list(self.texture_names)
        return d


# --------------------------------------------------------------------------------------------
# Array helpers (NHWC numpy, uint8 or float32 in [-1, 1])
# --------------------------------------------------------------------------------------------


def _check_channels(channels) -> int | None:
    if channels is None or (channels in (1, 3) and not isinstance(channels, bool)):
        return channels
    raise DatasetError(f"channels must be 1, 3 or None, got {channels!r}")


def _fit(x: np.ndarray, size: int | None) -> np.ndarray:
    """Centre-crop each (H, W, C) image to a square and resize it to ``size`` (None: unchanged)."""
    if size is None:
        return x
    n, h, w, c = x.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = x[:, top : top + s, left : left + s]
    if s == size:
        return np.ascontiguousarray(x)
    out = np.empty((n, size, size, c), dtype=x.dtype)
    for i in range(n):
        for j in range(c):  # uint8 planes resize as mode "L", float32 planes as mode "F"
            plane = Image.fromarray(np.ascontiguousarray(x[i, :, :, j]))
            out[i, :, :, j] = np.asarray(plane.resize((size, size), Image.Resampling.BILINEAR))
    # bilinear weights sum to 1 only up to rounding: keep float images inside [-1, 1]
    return out if out.dtype == np.uint8 else np.clip(out, -1.0, 1.0, out=out)


def _set_channels(x: np.ndarray, channels: int | None) -> np.ndarray:
    if channels is None or channels == x.shape[-1]:
        return x
    if x.shape[-1] == 1:
        return np.repeat(x, 3, axis=-1)
    grey = x.astype(np.float32) @ _LUMA
    if x.dtype == np.uint8:
        grey = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return grey[..., None]


def _dataset(x_nhwc, labels, name, source, normalisation, size, channels, classes=None):
    x = _set_channels(_fit(x_nhwc, size), channels)
    nchw = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    return ImageDataset(nchw, labels, name, str(source), normalisation, classes)


def _to_nhwc(a: np.ndarray, source) -> np.ndarray:
    if a.ndim == 3:
        return a[..., None]
    if a.ndim == 4:
        last, first = a.shape[3] in (1, 3, 4), a.shape[1] in (1, 3, 4)
        # both readings possible (tiny images): prefer the one with square images
        if first and (not last or (a.shape[2] == a.shape[3] and a.shape[1] != a.shape[2])):
            return a.transpose(0, 2, 3, 1)
        if last:
            return a
    raise DatasetError(
        f"{source}: images need shape (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1, 3 or 4; "
        f"got {a.shape}"
    )


def _normalise(a: np.ndarray, source) -> tuple[np.ndarray, str]:
    """Map pixel values to uint8 (kept as is) or float32 in [-1, 1]; say which reading was used."""
    if a.dtype == np.uint8:
        return a, "uint8 0..255 → [-1, 1]"
    if a.dtype.kind == "b":
        return a.astype(np.uint8) * 255, "boolean → {-1, 1}"
    lo, hi = float(a.min()), float(a.max())
    if a.dtype.kind in "iu":
        if lo >= 0 and hi <= 255:
            return a.astype(np.uint8), f"{a.dtype} 0..255 → [-1, 1]"
        if a.dtype == np.uint16:
            return a.astype(np.float32) / 32767.5 - 1.0, "uint16 0..65535 → [-1, 1]"
        raise DatasetError(f"{source}: integer pixels must lie in 0..255, found {lo:g}..{hi:g}")
    a = a.astype(np.float32)
    if lo >= 0 and hi <= 1:
        return a * 2.0 - 1.0, "float [0, 1] (no negative values) → [-1, 1]"
    if lo >= -1 and hi <= 1:
        return a, "float [-1, 1], kept"
    if lo >= 0 and hi <= 255:
        return a / 127.5 - 1.0, "float 0..255 → [-1, 1]"
    raise DatasetError(
        f"{source}: float pixels must lie in [0, 1], [-1, 1] or 0..255; found [{lo:g}, {hi:g}]"
    )


def _labels(labels, n: int, source) -> np.ndarray | None:
    if labels is None:
        return None
    y = np.asarray(labels)
    integral = y.dtype.kind in "iu" or (
        y.dtype.kind == "f" and bool(np.all(np.isfinite(y) & (y == np.round(y))))
    )
    if y.shape != (n,) or not integral or (y.size and y.min() < 0):
        raise DatasetError(
            f"{source}: labels must be {n} non-negative integers, got {y.dtype} {y.shape}"
        )
    return y.astype(np.int64)


def images_from_array(array, labels, source, size: int | None = None, channels: int | None = None):
    """An :class:`ImageDataset` from an (N, H, W), (N, H, W, C) or (N, C, H, W) array."""
    a = np.asarray(array)
    check_numbers(a, source, "images")
    a = _to_nhwc(a, source)
    check_at_least_two(len(a), source, "images")
    if min(a.shape[1:3]) < 2:
        raise DatasetError(f"{source}: images of {a.shape[1]}×{a.shape[2]} pixels are too small")
    size = None if size is None else check_count("image size", size, *IMAGE_SIZE_RANGE)
    y = _labels(labels, len(a), source)
    a, normalisation = _normalise(a, source)
    if a.shape[-1] == 4:
        a, normalisation = a[..., :3], normalisation + "; alpha dropped"
    name = Path(str(source)).stem
    return _dataset(a, y, name, source, normalisation, size, _check_channels(channels))


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


def _read_image(path: Path, size: int) -> np.ndarray:
    """One file as uint8 (size, size, 3), centre-cropped and resized."""
    try:
        with Image.open(path) as im:
            im.draft(None, (2 * size, 2 * size))  # JPEG: decode at reduced scale (much faster)
            im = ImageOps.exif_transpose(im)
            if im.mode.startswith("I"):  # 16/32-bit grey: Pillow's convert("L") would clip
                grey8 = np.clip(np.asarray(im, np.float64) / 257.0, 0, 255).astype(np.uint8)
                im = Image.fromarray(grey8)
            im = im.convert("RGB")
            w, h = im.size
            s = min(w, h)
            left, top = (w - s) // 2, (h - s) // 2
            # crop first: resize(box=...) would let the filter read pixels outside the square
            im = im.crop((left, top, left + s, top + s))
            im = im.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except Exception as exc:  # Pillow raises OSError, ValueError, DecompressionBombError, …
        raise DatasetError(f"{path}: cannot read as an image ({exc})") from None


def load_image_folder(path, size: int = 32, channels: int | None = None) -> ImageDataset:
    """Every .png/.jpg/.jpeg/.bmp under ``path`` (recursively; hidden files skipped) as one set.

    When every image sits in a sub-folder, the first-level sub-folder names become class labels.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder")
    root = root.resolve()  # so that a folder given as "." still has a name
    size = check_count("image size", size, *IMAGE_SIZE_RANGE)
    channels = _check_channels(channels)
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
    if not files:
        raise DatasetError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    check_at_least_two(len(files), root, "images")
    x = np.stack([_read_image(f, size) for f in files])
    grey = bool((x[..., 0] == x[..., 1]).all() and (x[..., 1] == x[..., 2]).all())
    if channels is None and grey:
        x = x[..., :1]
    parts = [f.relative_to(root).parts for f in files]
    classes = labels = None
    if all(len(p) > 1 for p in parts):
        classes = sorted({p[0] for p in parts})
        labels = np.array([classes.index(p[0]) for p in parts])
    return _dataset(x, labels, root.name, root, "uint8 0..255 → [-1, 1]", None, channels, classes)


def load_image_array(path, size: int | None = None, channels: int | None = None) -> ImageDataset:
    """Images from a .npy or .npz ((N, H, W), (N, H, W, C) or (N, C, H, W); uint8 0..255, or float
    in [0, 1] or [-1, 1], detected and recorded in ``normalisation``); labels from 'labels'/'y'."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if path.suffix.lower() not in (".npy", ".npz"):
        raise DatasetError(f"{path}: expected a .npy or .npz file")
    array, labels = read_array(path, ("images", "x", "X", "data"))
    return images_from_array(array, labels, path, size, channels)


def load_digits(size: int = 28, channels: int | None = None) -> ImageDataset:
    """The bundled 5000 MNIST digits (``resources/digits.npz``), (N, 1, size, size), labels 0–9."""
    path = resources_dir() / "digits.npz"
    if not path.is_file():
        raise DatasetError(f"{path}: missing; {_REBUILD}")
    size = check_count("image size", size, *IMAGE_SIZE_RANGE)
    images, labels = read_array(path, ("images",))
    if images.dtype != np.uint8 or images.ndim != 3 or labels is None or len(labels) != len(images):
        raise DatasetError(f"{path}: not uint8 (N, H, W) images with labels; {_REBUILD}")
    y = _labels(labels, len(images), path)
    channels = _check_channels(channels)
    # a built-in set is found by its name: the path of this machine's copy is not part of it
    return _dataset(images[..., None], y, "digits", "builtin", "uint8 0..255 → [-1, 1]", size, channels)


def _read_texture(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DatasetError(f"{path}: missing; {_REBUILD}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"), dtype=np.uint8)
    except Exception as exc:
        raise DatasetError(f"{path}: cannot read as an image ({exc})") from None


def load_textures(
    which: str | None = None, size: int = 32, channels: int | None = None
) -> TextureDataset:
    """Crops of one bundled texture (``which`` in brick, grass, gravel) or of all three (None)."""
    folder = resources_dir() / "textures"
    if which in (None, "all"):
        names, name = TEXTURE_NAMES, "textures"
    elif which in TEXTURE_NAMES:
        names, name = (which,), f"texture:{which}"
    else:
        raise DatasetError(f"unknown texture {which!r} (known: {', '.join(TEXTURE_NAMES)})")
    textures = {n: _read_texture(folder / f"{n}.png") for n in names}
    return TextureDataset(textures, size, _check_channels(channels) or 1, name, "builtin")
