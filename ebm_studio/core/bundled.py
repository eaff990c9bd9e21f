"""Where the bundled data and trained example checkpoints live, installed or in a checkout.

A wheel carries them inside the package (``ebm_studio/resources``, ``ebm_studio/checkpoints``, see
``pyproject.toml``); a source checkout or an editable install has them at the top of the
repository. Both layouts are looked up here, in that order, so no other module guesses paths.
"""

from __future__ import annotations

import os
from pathlib import Path

#: environment variable naming a folder that replaces the bundled ``resources/``
RESOURCES_ENV = "EBM_STUDIO_RESOURCES"
_PACKAGE = Path(__file__).resolve().parents[1]


def _bundled(name: str) -> Path:
    inside = _PACKAGE / name
    if inside.is_dir():
        return inside
    return _PACKAGE.parent / name


def resources_dir() -> Path:
    """The folder of bundled data: ``$EBM_STUDIO_RESOURCES`` if set, else the bundled one."""
    env = os.environ.get(RESOURCES_ENV)
    return Path(env).expanduser() if env else _bundled("resources")


def checkpoints_dir() -> Path:
    """The folder of bundled, trained example checkpoints (with their recipes)."""
    return _bundled("checkpoints")


def example_checkpoints() -> dict[str, Path]:
    """Bundled checkpoints by name (file stem), sorted; empty when none are installed."""
    folder = checkpoints_dir()
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.glob("*.pt")) if p.is_file()}
