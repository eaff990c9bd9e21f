"""Guard rails of the layering (see the README's design section): imports point downwards only.

``core`` imports no Qt, no ``worker`` and no ``ui``; ``ui`` imports no torch itself (it sends
commands and draws frames); ``worker`` imports no ``ui``. Checked on the source, every import
statement, including those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ebm_studio"
RULES = {
    "core": ("PySide6", "pyqtgraph", "ebm_studio.worker", "ebm_studio.ui"),
    "worker": ("ebm_studio.ui", "pyqtgraph"),
    "ui": ("torch",),
}


def imported_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(RULES))
def test_imports_point_downwards(layer):
    bad = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in imported_names(path):
            if any(name == f or name.startswith(f + ".") for f in RULES[layer]):
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not bad, "\n".join(bad)
