"""Reading ``.npz`` archives without trusting them: sizes from the headers, rows one at a time.

A compressed archive of 1 MB can declare (or hold) gigabytes of zeros. Before anything is
decompressed, :func:`declared_nbytes` reads each member's ``.npy`` header and adds up what the
arrays would occupy, so a loader can refuse with a sentence ("needs 80.0 GB, 12.0 GB are free")
instead of a ``MemoryError``. :func:`iter_rows` then reads a large array one row at a time, so a
loader that keeps its own copy of each row never holds the whole array twice.
"""

from __future__ import annotations

import math
import os
from typing import IO, Iterator

import numpy as np


class ArchiveTooLarge(ValueError):
    """The arrays of an archive would need more memory than is free."""


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def _read_header(fh: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    return np.lib.format.read_array_header_2_0(fh)


def member_header(z, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of array ``name`` of an open ``np.load`` archive, from its header only."""
    with z.zip.open(f"{name}.npy") as fh:
        shape, _, dtype = _read_header(fh)
    return tuple(int(s) for s in shape), dtype


def declared_nbytes(z) -> int:
    """Bytes all arrays of an open ``np.load`` archive would occupy once decompressed."""
    total = 0
    for name in z.files:
        shape, dtype = member_header(z, name)
        total += math.prod(shape) * max(dtype.itemsize, 1)
    return total


def check_fits_in_memory(z, what: str, spare: float = 0.8) -> None:
    """Raise :class:`ArchiveTooLarge` when the archive's arrays exceed ``spare`` of free memory."""
    need = declared_nbytes(z)
    free = available_memory()
    if free is not None and need > spare * free:
        raise ArchiveTooLarge(f"{what} would need {need / 2**30:,.1f} GB of memory once unpacked; "
                              f"{free / 2**30:,.1f} GB are free")


def iter_rows(z, name: str) -> Iterator[np.ndarray]:
    """The rows ``a[0], a[1], …`` of array ``name``, each a fresh array, read one at a time."""
    with z.zip.open(f"{name}.npy") as fh:
        shape, fortran, dtype = _read_header(fh)
        if fortran or dtype.hasobject or not shape:
            raise ValueError(f"'{name}' is not a plain C-ordered array")
        row_shape = shape[1:]
        row_bytes = math.prod(row_shape) * dtype.itemsize
        for _ in range(shape[0]):
            buf = fh.read(row_bytes)
            if len(buf) != row_bytes:
                raise ValueError(f"'{name}' ends early")
            yield np.frombuffer(buf, dtype=dtype).reshape(row_shape).copy()
