"""Atomic file writes: write to a temporary file in the same folder, then ``os.replace``.

A crash or a cancelled export therefore never leaves a half-written file under the final name,
and errors name the file the user asked for, never the hidden temporary one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator


def _temp_beside(target: Path) -> Path:
    """A new empty temporary file next to ``target``; ``OSError`` names ``target``."""
    try:
        if target.is_dir():
            raise IsADirectoryError(21, "it is a folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    return Path(tmp)


def check_writable(path: str | Path) -> None:
    """Raise ``OSError`` naming ``path`` unless a file can be written there (``path`` itself is
    left untouched): long runs check their output before they start."""
    _temp_beside(Path(path)).unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on error it goes."""
    target = Path(path)
    tmp_path = _temp_beside(target)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def atomic_write(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
