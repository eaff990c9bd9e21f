"""Autosaves of a training run: atomic, compact checkpoints in a user folder, keeping the newest few.

Image replay buffers are stored as a uint8 subset (see ``core.checkpoint.compact``): an image
autosave is a few MB, not 30. The bundled ``checkpoints/`` folder holds the trained examples only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ebm_studio.core.checkpoint import Checkpoint, compact, save_checkpoint
from ebm_studio.core.fileio import remove_stale_parts

KEEP = 3


def default_dir() -> Path:
    """``$EBM_STUDIO_AUTOSAVE_DIR``, else a folder in the user's data directory."""
    env = os.environ.get("EBM_STUDIO_AUTOSAVE_DIR")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "ebm-studio" / "checkpoints"


class Autosaver:
    def __init__(self, folder: Path | None = None, keep: int = KEEP) -> None:
        self.folder = Path(folder) if folder is not None else default_dir()
        remove_stale_parts(self.folder)  # left by a process killed while it saved
        self.keep = keep
        self.run = "run"
        self._saved: list[Path] = []

    def start_run(self, name: str) -> None:
        self.run = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
        self._saved = []

    def save(self, ckpt: Checkpoint, step: int) -> Path:
        path = self.folder / f"autosave-{self.run}-step{step:07d}.pt"
        save_checkpoint(compact(ckpt), path)
        if path not in self._saved:
            self._saved.append(path)
        while len(self._saved) > self.keep:
            old = self._saved.pop(0)
            try:
                old.unlink()
            except OSError:
                pass
        return path

    def latest(self) -> Path | None:
        for p in reversed(self._saved):
            if p.exists():
                return p
        return None
