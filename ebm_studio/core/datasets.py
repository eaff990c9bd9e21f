"""Data sets: 2-D toy densities, user point clouds, and (via :mod:`.image_data`) image sets.

Every data set is a :class:`Dataset` with one contract:

* ``batch(n, generator)`` is the training draw: a float32 CPU tensor ``(n, *event_shape)``;
  points are ``(n, 2)``, images ``(n, C, H, W)`` in [-1, 1]. The engine moves it to its device.
* ``heldout(n, seed)`` returns data that ``batch`` never returns, for NLL and sample-quality
  metrics: toys draw fresh points from a stream independent of every batch generator; stored data
  (points, images) reserve a fixed 10 % split that ``batch`` never touches.
* ``value_range`` is the box used to initialise chains with uniform noise and to clamp them.
* ``describe()`` is plain data for checkpoints and the GUI.

Toys (:class:`ToyDensity`) are endless samplers, so their ``count`` is ``None`` and ``len()``
raises ``TypeError`` (as for any object without a length) rather than inventing a number; their
truth value is still True. The toy set is the usual FFJORD one, rescaled so that every toy lies
well inside the common box [-4, 4]²; three of them have a closed-form density (``log_prob``): the
two Gaussian mixtures, and the rings, whose density — a circle convolved with an isotropic
Gaussian — is exact through the Bessel function I₀.

Every problem with the data — a missing or unreadable file, a wrong shape or dtype, NaNs, too
few items, a bad argument — raises :class:`DatasetError` (a ``ValueError``) whose message names the
file or the data set; library exceptions (numpy, Pillow) are caught and rewrapped.

The image half lives in :mod:`ebm_studio.core.image_data` and what both halves share in
:mod:`ebm_studio.core.dataset_base`; their public names are re-exported here, so callers only ever
import ``datasets``.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ebm_studio.core.bundled import RESOURCES_ENV, resources_dir  # noqa: F401  (re-exported)
from ebm_studio.core.energies import GaussianMixtureEnergy, eight_gaussians_energy

from ebm_studio.core import image_data as im
from ebm_studio.core.dataset_base import (  # noqa: F401  (re-exported: callers import datasets)
    HELDOUT_FRACTION,
    HELDOUT_SEED,
    SPLIT_SEED,
    TOY_BOX,
    Dataset,
    DatasetError,
    StoredDataset,
    as_generator,
    check_at_least_two,
    check_count,
    check_numbers,
    check_regular_file,
    independent_generator,
    read_array,
)
from ebm_studio.core.image_data import (  # noqa: F401  (re-exported)
    IMAGE_SUFFIXES,
    ImageDataset,
    TextureDataset,
    load_digits,
    load_image_array,
    load_image_folder,
    load_textures,
)

TOY_NAMES = (
    "8gaussians", "grid25", "rings", "moons", "swissroll", "checkerboard", "pinwheel", "spirals"
)
IMAGE_NAMES = ("digits", "textures", "texture:brick", "texture:grass", "texture:gravel")
_POINT_SUFFIXES = (".csv", ".txt", ".tsv")
_ARRAY_SUFFIXES = (".npy", ".npz")


def dataset_key(desc: dict) -> str | None:
    """What to pass to :func:`load_dataset` to get the data set a ``describe()`` dict came from:
    the built-in name when it is one (a texture's source is its picture), else the source path."""
    name, source = desc.get("name"), desc.get("source")
    if isinstance(name, str) and name.lower() in dataset_names():
        return name
    if source not in (None, "", "builtin", "memory"):
        return str(source)
    return name or None


def dataset_names() -> list[str]:
    """All built-in data set names: the toys, then the image sets."""
    return [*TOY_NAMES, *IMAGE_NAMES]


# --------------------------------------------------------------------------------------------
# Toy densities
# --------------------------------------------------------------------------------------------

#: a toy sampler: (n, generator) -> (n, 2) float64 points
Sampler = Callable[[int, "torch.Generator | None"], torch.Tensor]
_F64 = torch.float64
# grid25: a 5 × 5 grid, spacing 1.25, std 0.1 (12.5 std between neighbours: hard to mix)
_GRID_MEANS = np.stack(np.meshgrid(np.linspace(-2.5, 2.5, 5), np.linspace(-2.5, 2.5, 5)), -1)
_GRID_MEANS = _GRID_MEANS.reshape(-1, 2)
_ANGLES = np.arange(8) * np.pi / 4  # the same ring as eight_gaussians_energy()
_EIGHT_MEANS = 2.0 * np.stack([np.cos(_ANGLES), np.sin(_ANGLES)], 1)
# rings: FFJORD's four circles (radii 0.25, 0.55, 0.8, 1 times 3), equal weights, noise 0.08
_RING_RADII = torch.tensor([0.75, 1.65, 2.4, 3.0], dtype=_F64)
_RING_STD = 0.08


def _mixture_sampler(means: np.ndarray, std: float) -> Sampler:
    mu = torch.as_tensor(means, dtype=_F64)

    def sample(n, g):
        k = torch.randint(len(mu), (n,), generator=g)
        return mu[k] + std * torch.randn(n, 2, generator=g, dtype=_F64)

    return sample


def _unit_circle(theta: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.cos(theta), torch.sin(theta)], -1)


def _rings(n, g):
    k = torch.randint(len(_RING_RADII), (n,), generator=g)
    theta = 2 * math.pi * torch.rand(n, generator=g, dtype=_F64)
    noise = _RING_STD * torch.randn(n, 2, generator=g, dtype=_F64)
    return _RING_RADII[k, None] * _unit_circle(theta) + noise


def _rings_log_prob(x: torch.Tensor) -> torch.Tensor:
    # A circle of radius R (uniform angle) plus N(0, s² I) noise has the exact density
    #   p(x) = exp(-(r² + R²) / 2s²) I₀(rR / s²) / (2π s²),   r = |x|,
    # written with the scaled Bessel i0e(z) = e^{-z} I₀(z) to stay finite for large rR/s².
    s2 = _RING_STD**2
    r = x.norm(dim=-1, keepdim=True)
    R = _RING_RADII.to(x.device)
    terms = (
        -math.log(len(R) * 2 * math.pi * s2)
        - (r - R) ** 2 / (2 * s2)
        + torch.log(torch.special.i0e(r * R / s2))
    )
    return torch.logsumexp(terms, dim=-1)


def _moons(n, g):
    # scikit-learn's two moons, centred and scaled by 2: x in [-3, 3], y in [-1.5, 1.5]
    upper = torch.rand(n, generator=g) < 0.5
    t = math.pi * torch.rand(n, generator=g, dtype=_F64)
    outer = torch.stack([torch.cos(t), torch.sin(t)], -1)
    inner = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], -1)
    x = torch.where(upper[:, None], outer, inner) - torch.tensor([0.5, 0.25], dtype=_F64)
    return 2.0 * x + 0.1 * torch.randn(n, 2, generator=g, dtype=_F64)


def _swissroll(n, g):
    # FFJORD: scikit-learn's swiss roll (noise 1) seen from above, divided by 5
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g, dtype=_F64))
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], -1)
    return (x + torch.randn(n, 2, generator=g, dtype=_F64)) / 5.0


def _checkerboard(n, g):
    # FFJORD's 4 × 4 board with 8 filled squares, scaled by 1.5 to fill [-3, 3]²
    x1 = 4 * torch.rand(n, generator=g, dtype=_F64) - 2
    x2 = torch.rand(n, generator=g, dtype=_F64) - 2 * torch.randint(2, (n,), generator=g)
    x2 = x2 + torch.remainder(torch.floor(x1), 2)
    return 1.5 * torch.stack([x1, x2], -1)


#: checkerboard: 8 squares of side 1.5 filled uniformly, total area 18
_CHECKER_LOG_P = -math.log(18.0)


def _checkerboard_log_prob(x: torch.Tensor) -> torch.Tensor:
    """Exact log density of the checkerboard: log(1/18) on the filled squares, −inf elsewhere."""
    u = x / 1.5
    inside = (u.abs() <= 2).all(-1)
    cell = torch.floor(u).clamp(-2, 1)
    filled = torch.remainder(cell[:, 0] + cell[:, 1], 2) == 0
    out = torch.full(x.shape[:1], -math.inf, dtype=x.dtype, device=x.device)
    return out.masked_fill(inside & filled, _CHECKER_LOG_P)


def _pinwheel(n, g):
    # FFJORD's five-armed pinwheel (radial std 0.3, tangential 0.1, rate 0.25), scaled by 1.5
    arm = torch.randint(5, (n,), generator=g)
    f = torch.randn(n, 2, generator=g, dtype=_F64) * torch.tensor([0.3, 0.1], dtype=_F64)
    f[:, 0] += 1.0
    angle = arm * (2 * math.pi / 5) + 0.25 * torch.exp(f[:, 0])
    c, s = torch.cos(angle), torch.sin(angle)
    return 1.5 * torch.stack([f[:, 0] * c + f[:, 1] * s, -f[:, 0] * s + f[:, 1] * c], -1)


def _spirals(n, g):
    # FFJORD's two interleaved spirals, divided by 3.5 (not 3) to keep a margin inside the box
    t = torch.sqrt(torch.rand(n, generator=g, dtype=_F64)) * 3 * math.pi
    x = torch.stack([-torch.cos(t) * t, torch.sin(t) * t], -1)
    x = x + 0.5 * torch.rand(n, 2, generator=g, dtype=_F64)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).to(_F64)
    return sign[:, None] * x / 3.5 + 0.1 * torch.randn(n, 2, generator=g, dtype=_F64)


_SAMPLERS: dict[str, Sampler] = {
    "8gaussians": _mixture_sampler(_EIGHT_MEANS, 0.2),
    "grid25": _mixture_sampler(_GRID_MEANS, 0.1),
    "rings": _rings,
    "moons": _moons,
    "swissroll": _swissroll,
    "checkerboard": _checkerboard,
    "pinwheel": _pinwheel,
    "spirals": _spirals,
}
_MODES = {"8gaussians": _EIGHT_MEANS, "grid25": _GRID_MEANS}
_MIXTURES: dict[str, Callable[[], GaussianMixtureEnergy]] = {
    "8gaussians": lambda: eight_gaussians_energy(radius=2.0, std=0.2),
    "grid25": lambda: GaussianMixtureEnergy(_GRID_MEANS, stds=0.1),
}


class ToyDensity(Dataset):
    """One of the built-in 2-D toys: an endless, seeded sampler in the box [-4, 4]²."""

    def __init__(self, name: str) -> None:
        if name not in _SAMPLERS:
            raise DatasetError(f"unknown toy density {name!r} (known: {', '.join(TOY_NAMES)})")
        self.name = name
        self.kind, self.event_shape, self.value_range = "points", (2,), TOY_BOX
        self._sampler = _SAMPLERS[name]
        self._energy = _MIXTURES[name]() if name in _MIXTURES else None

    @property
    def has_log_prob(self) -> bool:
        """True when :meth:`log_prob` is exact (the mixtures, the rings and the checkerboard)."""
        return self._energy is not None or self.name in ("rings", "checkerboard")

    @property
    def modes(self) -> np.ndarray | None:
        """(K, 2) mode centres of the mixtures; None for the other toys."""
        return _MODES[self.name].copy() if self.name in _MODES else None

    def energy(self) -> GaussianMixtureEnergy | None:
        """A fresh analytic energy E = −log p + const for the mixtures; None for the others."""
        return _MIXTURES[self.name]() if self.name in _MIXTURES else None

    def sample(self, n: int, seed: int | torch.Generator | None = None) -> torch.Tensor:
        """``n`` points, float32 (n, 2); the same integer seed gives the same points."""
        return self._sampler(check_count("n", n), as_generator(seed)).float()

    def batch(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sample(n, generator)

    def heldout(self, n: int, seed: int = HELDOUT_SEED) -> torch.Tensor:
        return self.sample(n, independent_generator(seed))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact normalised log density, shape (N,), for toys with ``has_log_prob``."""
        if not self.has_log_prob:
            raise DatasetError(f"toy {self.name!r} has no closed-form density")
        x = torch.as_tensor(x)
        if x.ndim != 2 or x.shape[1] != 2:
            raise DatasetError(f"log_prob needs points of shape (N, 2), got {tuple(x.shape)}")
        if self._energy is not None:
            out = self._energy.to(x.device).log_prob(x.float())
        elif self.name == "checkerboard":
            out = _checkerboard_log_prob(x.to(_F64))
        else:
            out = _rings_log_prob(x.to(_F64))
        return out.to(x.dtype) if x.is_floating_point() else out.float()

    def describe(self) -> dict:
        d = super().describe()
        d["has_log_prob"] = self.has_log_prob
        return d


def toy(name: str) -> ToyDensity:
    """The built-in toy density ``name`` (one of :data:`TOY_NAMES`)."""
    return ToyDensity(name)


# --------------------------------------------------------------------------------------------
# User point sets
# --------------------------------------------------------------------------------------------


#: user points beyond this magnitude are refused (training on them overflows at the first step)
MAX_POINT_ABS = 1e6


class PointsDataset(StoredDataset):
    """User 2-D points; ``value_range`` is the data's extent (both axes) plus a 10 % margin."""

    def __init__(self, points, name: str = "points", source: str = "memory") -> None:
        p = np.asarray(points)
        check_numbers(p, source, "points", allow_bool=False)
        if p.ndim != 2 or p.shape[1] != 2:
            raise DatasetError(f"{source}: points need shape (N, 2), got {p.shape}")
        check_at_least_two(len(p), source, "points")
        biggest = float(np.abs(p).max())
        if biggest > MAX_POINT_ABS:  # the network's energies and the sampler's steps overflow
            raise DatasetError(f"{source}: points reach {biggest:.3g}; use data of moderate scale "
                               f"(|x| ≤ {MAX_POINT_ABS:g}), e.g. subtract the mean and divide by the "
                               "spread")
        self._points = torch.from_numpy(p.astype(np.float32))
        super().__init__(len(p))
        self.name, self.kind, self.event_shape, self.source = name, "points", (2,), source
        lo, hi = float(p.min()), float(p.max())
        margin = 0.1 * (hi - lo) if hi > lo else 1.0
        self.value_range = (lo - margin, hi + margin)

    def items(self, indices) -> torch.Tensor:
        return self._points[torch.as_tensor(indices, dtype=torch.long)]


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _read_points_text(path: Path) -> np.ndarray:
    check_regular_file(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read as text ({exc})") from None
    rows: list[list[float]] = []
    header_allowed = True
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f for f in re.split(r"[,;\s]+", line) if f]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            # one header line before the first row is fine, but only a clear one ("x,y"): a row
            # with a typo ("1.0,2.O") is an error, never silently dropped
            if header_allowed and not any(_is_number(f) for f in fields):
                header_allowed = False
                continue
            raise DatasetError(f"{path}: line {lineno} is not numbers: {line[:60]!r}") from None
        header_allowed = False
        if len(values) != 2:
            raise DatasetError(
                f"{path}: line {lineno} has {len(values)} columns; points need exactly 2 (x, y)"
            )
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 2)


def load_points(path) -> PointsDataset:
    """User (N, 2) points from .csv/.txt (comma or whitespace separated, optional header line),
    .npy, or .npz (array 'points' or 'x', else the first)."""
    path = Path(path).expanduser()
    check_regular_file(path)
    if path.suffix.lower() in _ARRAY_SUFFIXES:
        points, _ = read_array(path, ("points", "x"))
    else:
        points = _read_points_text(path)
    return PointsDataset(points, name=path.stem, source=str(path))


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def load_dataset(
    name_or_path: str | os.PathLike, *, image_size: int | None = None, channels: int | None = None
) -> Dataset:
    """A built-in name (see :func:`dataset_names`, checked first), a folder of images, a .npy/.npz
    (points if its array has shape (N, 2), else images) or a .csv/.txt of points.

    ``image_size`` (default: 28 for digits, 32 for textures and folders, native for arrays) and
    ``channels`` (1 or 3; default: as stored) apply to image sets; point sets ignore them.
    """
    key = str(name_or_path).strip()
    low = key.lower()
    if low in TOY_NAMES:
        return toy(low)
    if low == "digits":
        return im.load_digits(image_size or 28, channels=channels)
    if low == "textures" or low.startswith("texture:"):
        which = None if low == "textures" else low.split(":", 1)[1]
        return im.load_textures(which, image_size or 32, channels=channels)
    path = Path(key).expanduser()
    if not path.exists():
        raise DatasetError(
            f"{key}: no such file or folder, and not a built-in data set "
            f"({', '.join(dataset_names())})"
        )
    if path.is_dir():
        return im.load_image_folder(path, image_size or 32, channels)
    check_regular_file(path)
    suffix = path.suffix.lower()
    if suffix in _POINT_SUFFIXES:
        return load_points(path)
    if suffix in _ARRAY_SUFFIXES:
        array, labels = read_array(path, ("points", "images", "x", "X", "data"))
        if array.ndim == 2 and array.shape[1] == 2:
            return PointsDataset(array, name=path.stem, source=str(path))
        if array.ndim <= 2:  # a table (or a list) cannot be images: it is points of the wrong width
            raise DatasetError(
                f"{path}: an array of shape {array.shape}; points need shape (N, 2), images "
                "(N, H, W), (N, H, W, C) or (N, C, H, W)"
            )
        return im.images_from_array(array, labels, path, image_size, channels)
    if suffix in im.IMAGE_SUFFIXES:
        raise DatasetError(f"{path}: one image is not a data set; choose the folder that holds it")
    raise DatasetError(
        f"{path}: unsupported file type {suffix or '(none)'!r}; expected a folder of images, "
        ".npy, .npz, .csv or .txt"
    )
