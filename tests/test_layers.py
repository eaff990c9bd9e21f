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


#: the worker modules the GUI may use: the protocols (commands, events, job requests), frames and
#: the host that owns the engine thread; everything else of the worker is the engine's business
UI_MAY_USE = {"ebm_studio.worker.api", "ebm_studio.worker.tool_api", "ebm_studio.worker.frames",
              "ebm_studio.worker.requests", "ebm_studio.worker.thread"}


def test_the_gui_speaks_to_the_worker_only_through_its_protocol():
    bad = []
    for path in sorted((PACKAGE / "ui").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for name in imported_names(path):
            if name.startswith("ebm_studio.worker") and name not in UI_MAY_USE:
                bad.append(f"{path.name} imports {name}")
        if "host.call.emit" in text or ".call.emit(" in text:
            bad.append(f"{path.name} runs code in the engine thread (host.call) instead of sending a command")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("layer", sorted(RULES))
def test_imports_point_downwards(layer):
    bad = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in imported_names(path):
            if any(name == f or name.startswith(f + ".") for f in RULES[layer]):
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not bad, "\n".join(bad)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the package modules it imports (every import statement, also inside functions
    and under TYPE_CHECKING: a cycle hidden in a function is still a cycle)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in paths}
    for mod, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            graph[mod] |= {n for n in names if n in paths and n != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
