"""Atomic file writes: write to a temporary file in the same folder, then ``os.replace``.

A crash or a cancelled export therefore never leaves a half-written file under the final name,
and errors name the file the user asked for, never the hidden temporary one.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from glob import escape as glob_escape
from pathlib import Path
from typing import BinaryIO, Callable, Iterator


#: a temporary file older than this was left by a process that was killed while writing
STALE_PART_S = 3600.0

#: ``.NAME.<pid>.<random>.part``: the writer's process id tells whether it is still alive
_PART_PID = re.compile(r"\.(\d+)\.[^.]+\.part$")


def _writer_is_gone(part: Path) -> bool:
    """True when the process that made ``part`` no longer exists (POSIX; elsewhere: unknown)."""
    m = _PART_PID.search(part.name)
    if m is None or os.name != "posix":
        return False
    pid = int(m.group(1))
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, OSError):
        return False
    return False


def remove_stale_parts(folder: str | Path, older_than_s: float = STALE_PART_S) -> int:
    """Delete ``.NAME.*.part`` files a killed writer left in ``folder`` (its process is gone, or
    the file is older than ``older_than_s``); returns how many."""
    import time

    removed = 0
    try:
        entries = list(Path(folder).glob(".*.part"))
    except OSError:
        return 0
    now = time.time()
    for p in entries:
        try:
            if p.is_file() and (_writer_is_gone(p) or now - p.stat().st_mtime > older_than_s):
                p.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def _remove_dead_parts(target: Path) -> None:
    """Remove temporary files of ``target`` whose writers were killed (a fresh save is on disk)."""
    with contextlib.suppress(OSError):
        for p in target.parent.glob(f".{glob_escape(target.name)}.*.part"):
            if _writer_is_gone(p):
                with contextlib.suppress(OSError):
                    p.unlink()


def _final_target(target: Path) -> Path:
    """Write through a symbolic link (the link stays a link) rather than replacing it by a file."""
    try:
        return target.resolve() if target.is_symlink() else target
    except (OSError, RuntimeError):
        return target


def _temp_beside(target: Path) -> Path:
    """A new empty temporary file next to ``target``; ``OSError`` names ``target``."""
    try:
        if target.is_dir():
            raise IsADirectoryError(21, "it is a folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".part", dir=target.parent)
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
    target = _final_target(Path(path))
    tmp_path = _temp_beside(target)
    try:
        yield tmp_path
        try:  # a rewrite keeps the file's permissions (mkstemp makes it 0600)
            os.chmod(tmp_path, target.stat().st_mode & 0o7777)
        except OSError:
            with contextlib.suppress(OSError):
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
        _remove_dead_parts(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def atomic_write(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def atomic_write_stream(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(binary file)`` on a temporary file next to ``path``, then move it in place.

    On any exception (a cancelled export too) the temporary file goes and ``path`` is left as it
    was: no half-written file, ever."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)
    return path


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))
