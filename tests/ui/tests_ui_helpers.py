"""Mouse input for the painting canvases and model opening, shared by the image tool tests."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication


def _send(canvas, kind, x, y, button, buttons, modifiers=Qt.KeyboardModifier.NoModifier):
    vp = canvas.viewport()
    local = QPointF(canvas.map_from_image(x, y))
    glob = QPointF(vp.mapToGlobal(local.toPoint()))
    QApplication.sendEvent(vp, QMouseEvent(kind, local, glob, button, buttons, modifiers))


def paint_drag(canvas, path, modifiers=Qt.KeyboardModifier.NoModifier):
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    _send(canvas, QEvent.Type.MouseButtonPress, *path[0], left, left, modifiers)
    for x, y in path[1:]:
        _send(canvas, QEvent.Type.MouseMove, x, y, none, left, modifiers)
    _send(canvas, QEvent.Type.MouseButtonRelease, *path[-1], left, none, modifiers)


def open_tool_model(tool, qtbot, path, timeout: int = 20000) -> None:
    """Open ``path`` in an image tool and wait until it and its first image have arrived."""
    from ebm_studio.worker.tool_api import OpenToolModel

    tool.host.send_tool(OpenToolModel(tool.owner, str(path)))
    qtbot.waitUntil(lambda: tool.model is not None and tool.model.path == str(path) and tool.image is not None,
                    timeout=timeout)
