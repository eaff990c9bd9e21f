"""What every data set shares: the :class:`Dataset` contract, stored sets with a fixed held-out
split, :class:`DatasetError`, and the checks every loader runs on what it reads.

:mod:`.datasets` (toys, user points, ``load_dataset``) and :mod:`.image_data` (digits, textures,
user images) both build on this module, so neither imports the other's internals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

#: share of stored items reserved for ``heldout`` (floor: none for fewer than 10 items)
HELDOUT_FRACTION = 0.1
#: the reserved split is a fixed permutation, so it is the same in every session
SPLIT_SEED = 0
HELDOUT_SEED = 12345
#: the common box of the 2-D toys, and the default value range of a data set
TOY_BOX = (-4.0, 4.0)


class DatasetError(ValueError):
    """A data set cannot be built or used; the message names the file (or data set) and why."""


def check_count(name: str, value, low: int = 0, high: int | None = None) -> int:
    """``value`` as an int in ``low..high`` (inclusive), else :class:`DatasetError`."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if ok and value >= low and (high is None or value <= high):
        return int(value)
    span = f"in {low}..{high}" if high is not None else f">= {low}"
    raise DatasetError(f"{name} must be an integer {span}, got {value!r}")


def as_generator(seed: int | torch.Generator | None) -> torch.Generator | None:
    """A torch generator from a seed; a generator passes through; None means torch's global RNG."""
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(check_count("seed", seed, 0, 2**64 - 1))


def independent_generator(seed: int) -> torch.Generator:
    # Mix the seed through numpy's SeedSequence so that heldout(seed=s) never replays the stream of
    # a batch generator seeded with the same integer s.
    state = np.random.SeedSequence([check_count("seed", seed), 0x4E1D]).generate_state(2)
    return torch.Generator().manual_seed((int(state[0]) << 32) | int(state[1]))


class Dataset:
    """Base class; see the module docstring for the contract."""

    name: str = ""
    kind: str = "points"  # "points" or "images"
    event_shape: tuple[int, ...] = (2,)
    value_range: tuple[float, float] = TOY_BOX
    #: number of stored items, or None for an endless sampler
    count: int | None = None
    #: file or folder the data came from, or "builtin"
    source: str = "builtin"
    #: how raw values were mapped to the tensors ``batch`` returns
    normalisation: str = "none"

    def batch(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The training draw; every concrete data set defines it."""
        raise TypeError(f"{type(self).__name__} defines no training draw (batch)")

    def heldout(self, n: int, seed: int = HELDOUT_SEED) -> torch.Tensor:
        """Data that ``batch`` never returns; every concrete data set defines it."""
        raise TypeError(f"{type(self).__name__} defines no held-out data")

    def preview(self, n: int = 64, seed: int = 0) -> np.ndarray:
        """A deterministic float32 numpy draw for the GUI: points (n, 2) or images (n, C, H, W)."""
        return self.batch(n, as_generator(seed)).numpy()

    def describe(self) -> dict:
        """Plain data (str/int/float/list/None) for checkpoints and the GUI."""
        return {
            "name": self.name,
            "kind": self.kind,
            "shape": list(self.event_shape),
            "count": self.count,
            "value_range": [float(v) for v in self.value_range],
            "source": self.source,
            "normalisation": self.normalisation,
        }

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError(f"data set {self.name!r} is an endless sampler and has no length")
        return self.count

    def __bool__(self) -> bool:  # without this, `if dataset:` would call __len__ on a toy
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, shape={self.event_shape}, count={self.count})"


class StoredDataset(Dataset):
    """A finite set of items with a fixed train/heldout split (base of points and image sets).

    ``train_indices`` and ``heldout_indices`` (sorted int64 numpy arrays) partition the items;
    ``batch`` draws only train items (uniformly, with replacement), ``heldout`` only heldout ones.
    """

    def __init__(self, count: int, labels: torch.Tensor | None = None) -> None:
        self.count = count
        self.labels = labels
        perm = np.random.default_rng(SPLIT_SEED).permutation(count)
        n_held = int(count * HELDOUT_FRACTION)
        self.heldout_indices = np.sort(perm[:n_held])
        self.train_indices = np.sort(perm[n_held:])
        self._train = torch.from_numpy(self.train_indices)

    def items(self, indices: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The stored items at ``indices`` as the float32 tensors ``batch`` returns."""
        raise TypeError(f"{type(self).__name__} defines no stored items")

    def batch_indices(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices (into all items) of a training draw; ``labels[idx]`` gives its labels."""
        n = check_count("n", n)
        pick = torch.randint(len(self._train), (n,), generator=generator)
        return self._train[pick]

    def batch(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.items(self.batch_indices(n, generator))

    def heldout(self, n: int, seed: int = HELDOUT_SEED) -> torch.Tensor:
        """Up to ``n`` distinct heldout items (capped at the split's size), chosen by ``seed``."""
        n = min(check_count("n", n), len(self.heldout_indices))
        order = torch.randperm(len(self.heldout_indices), generator=as_generator(seed))[:n]
        return self.items(torch.from_numpy(self.heldout_indices)[order])

    def describe(self) -> dict:
        d = super().describe()
        d["heldout_count"] = len(self.heldout_indices)
        return d


def check_numbers(a: np.ndarray, source, what: str, allow_bool: bool = True) -> None:
    """Raise :class:`DatasetError` unless ``a`` holds finite real numbers."""
    kinds = "biuf" if allow_bool else "iuf"
    if a.dtype.kind not in kinds:
        raise DatasetError(f"{source}: {what} have dtype {a.dtype}; expected real numbers")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise DatasetError(f"{source}: {what} contain {bad} NaN or infinite value(s)")


def check_at_least_two(n: int, source, what: str) -> None:
    if n < 2:
        raise DatasetError(f"{source}: a data set needs at least 2 {what}, found {n}")


def read_array(path: Path, keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """(array, labels or None) from a .npy, or from a .npz (first of ``keys`` present, else its
    first array; labels from 'labels' or 'y'). Pickled (object) arrays are refused."""
    check_regular_file(path)
    try:
        obj = np.load(path, allow_pickle=False)
        if not hasattr(obj, "files"):
            return obj, None
        with obj:
            names = list(obj.files)
            if not names:
                raise DatasetError(f"{path}: the .npz archive holds no arrays")
            key = next((k for k in keys if k in names), names[0])
            label_key = next((k for k in ("labels", "y") if k in names and k != key), None)
            return obj[key], (obj[label_key] if label_key else None)
    except DatasetError:
        raise
    except Exception as exc:  # numpy raises many kinds (ValueError, OSError, BadZipFile, EOFError…)
        raise DatasetError(f"{path}: cannot read as a NumPy file ({exc})") from None


def check_regular_file(path: Path) -> None:
    """Refuse folders, pipes and devices: reading a FIFO would block (the engine thread, too)."""
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    if not path.is_file():
        raise DatasetError(f"{path}: not a regular file (a folder, pipe or device)")
