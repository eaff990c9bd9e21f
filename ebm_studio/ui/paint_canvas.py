"""A zoomable canvas to paint on a small image: a mask for inpainting, or ink for a sketch.

The image is drawn by a pyqtgraph ``ImageItem`` (row-major: pixel (row, col) covers the unit
square at x = col, y = row); the mask is a second, coloured ``ImageItem`` on top. A left-button
drag paints (the eraser or Shift erases), the wheel zooms, the right button pans. A stroke is the
union of discs of the brush radius centred on every point of the polyline through the mouse
positions, so a fast drag leaves no gaps; each stroke (or rectangle) is one undo step.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor

from ebm_studio.core.masks import capsule

HISTORY = 50


class _PaintItem(pg.ImageItem):
    """The overlay item: it takes the left-button drags and clicks and hands them to the canvas."""

    def __init__(self, canvas: "PaintCanvas") -> None:
        super().__init__(axisOrder="row-major")
        self._canvas = canvas

    def mouseDragEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph naming)
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        pos = (float(ev.pos().x()), float(ev.pos().y()))
        erase = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if ev.isStart():
            start = ev.buttonDownPos()
            self._canvas.begin_stroke((float(start.x()), float(start.y())), erase)
        self._canvas.extend_stroke(pos)
        if ev.isFinish():
            self._canvas.end_stroke()

    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        pos = (float(ev.pos().x()), float(ev.pos().y()))
        self._canvas.begin_stroke(pos, bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier))
        self._canvas.end_stroke()


class PaintCanvas(pg.GraphicsLayoutWidget):
    """Shows an image (C, H, W) in [-1, 1] and paints into ``target``: the mask or the image."""

    changed = Signal()  # the painted layer changed (a stroke ended, undo, redo, clear, ...)

    def __init__(self, target: str = "mask", parent=None) -> None:
        super().__init__(parent)
        if target not in ("mask", "image"):
            raise ValueError(f"target must be 'mask' or 'image', got {target!r}")
        self.target = target
        self.setBackground((30, 30, 30))
        self.view = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setMouseMode(pg.ViewBox.PanMode)
        self.base = pg.ImageItem(axisOrder="row-major")
        self.overlay = _PaintItem(self)
        self.view.addItem(self.base)
        self.view.addItem(self.overlay)
        self.brush = 3.0  # diameter in image pixels
        self.eraser = False
        self.rect_mode = False
        self.ink = 1.0  # sketch: the value painted (1 white, −1 black)
        self.colour = QColor(255, 60, 60)
        self.opacity = 0.55
        self.image = np.full((1, 28, 28), -1.0, np.float32)
        self.mask = np.zeros((28, 28), bool)
        self._undo: list[np.ndarray] = []
        self._redo: list[np.ndarray] = []
        self._stroke_start: tuple[float, float] | None = None
        self._last: tuple[float, float] | None = None
        self._erase_stroke = False
        self._before: np.ndarray | None = None
        #: the image-coordinate points of the last stroke (tests check coverage against them)
        self.stroke_points: list[tuple[float, float]] = []
        self._redraw(fit=True)

    # --- content ----------------------------------------------------------------------------------
    def set_image(self, image: np.ndarray, keep_mask: bool = True) -> None:
        """Show ``image`` (C, H, W); the mask is kept when the size matches, else cleared."""
        image = np.array(image, dtype=np.float32, copy=True)
        if image.ndim != 3:
            raise ValueError(f"the canvas shows (C, H, W) images, got shape {image.shape}")
        h, w = image.shape[1:]
        fit = image.shape[1:] != self.image.shape[1:]
        self.image = image
        if fit or not keep_mask:
            self.mask = np.zeros((h, w), bool)
            if self.target == "mask":
                self._undo.clear()
                self._redo.clear()
        if self.target == "image":
            self._undo.clear()
            self._redo.clear()
        self._redraw(fit=fit)

    def set_mask(self, mask: np.ndarray, undoable: bool = True) -> None:
        mask = np.array(mask, dtype=bool, copy=True)
        if mask.shape != self.mask.shape:
            raise ValueError(f"the mask is {mask.shape} but the image is {self.mask.shape}")
        if undoable:
            self._push_undo()
        self.mask = mask
        self._redraw()
        self.changed.emit()

    def layer(self) -> np.ndarray:
        return self.mask if self.target == "mask" else self.image

    def _set_layer(self, value: np.ndarray) -> None:
        if self.target == "mask":
            self.mask = value
        else:
            self.image = value

    # --- editing ---------------------------------------------------------------------------------
    def _push_undo(self) -> None:
        self._undo.append(self.layer().copy())
        del self._undo[:-HISTORY]
        self._redo.clear()

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self.layer().copy())
        self._set_layer(self._undo.pop())
        self._redraw()
        self.changed.emit()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self.layer().copy())
        self._set_layer(self._redo.pop())
        self._redraw()
        self.changed.emit()
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def clear_layer(self) -> None:
        """Clear the mask (or the sketch). Not ``clear``: pyqtgraph binds that name to the layout."""
        if self.target == "mask":
            self.set_mask(np.zeros_like(self.mask))
        else:
            self._push_undo()
            self.image = np.full_like(self.image, -self.ink if self.ink > 0 else 1.0)
            self._redraw()
            self.changed.emit()

    def invert(self) -> None:
        if self.target == "mask":
            self.set_mask(~self.mask)

    def begin_stroke(self, pos: tuple[float, float], erase: bool = False) -> None:
        self._before = self.layer().copy()
        self._stroke_start = pos
        self._last = None
        self._erase_stroke = erase or self.eraser
        self.stroke_points = []
        if not self.rect_mode:
            self.extend_stroke(pos)

    def extend_stroke(self, pos: tuple[float, float]) -> None:
        if self._before is None:
            return
        if self.rect_mode:
            self._last = pos
            self._paint_rect(self._stroke_start, pos)
            return
        self.stroke_points.append(pos)
        seg = capsule(self.mask.shape, self._last or pos, pos, self.brush / 2.0)
        self._last = pos
        self._apply(seg)

    def end_stroke(self) -> None:
        if self._before is None:
            return
        before, self._before = self._before, None
        if not np.array_equal(before, self.layer()):
            self._undo.append(before)
            del self._undo[:-HISTORY]
            self._redo.clear()
            self.changed.emit()

    def _paint_rect(self, p0, p1) -> None:
        h, w = self.mask.shape
        x0, x1 = sorted((p0[0], p1[0]))
        y0, y1 = sorted((p0[1], p1[1]))
        ys, xs = np.mgrid[0:h, 0:w]
        inside = (xs + 0.5 >= x0) & (xs + 0.5 <= x1) & (ys + 0.5 >= y0) & (ys + 0.5 <= y1)
        self._set_layer(self._before.copy())
        self._apply(inside)

    def _apply(self, pixels: np.ndarray) -> None:
        if not pixels.any():
            return
        if self.target == "mask":
            self.mask = self.mask.copy()
            self.mask[pixels] = not self._erase_stroke
        else:
            self.image = self.image.copy()
            value = -self.ink if self._erase_stroke else self.ink
            self.image[:, pixels] = value
        self._redraw()

    # --- drawing ---------------------------------------------------------------------------------
    def set_overlay(self, colour: QColor | None = None, opacity: float | None = None) -> None:
        if colour is not None:
            self.colour = QColor(colour)
        if opacity is not None:
            self.opacity = float(min(max(opacity, 0.0), 1.0))
        self._redraw()

    def _redraw(self, fit: bool = False) -> None:
        img = np.clip((self.image + 1.0) * 127.5, 0, 255).astype(np.uint8)
        img = img[0] if img.shape[0] == 1 else np.ascontiguousarray(img.transpose(1, 2, 0))
        self.base.setImage(img, autoLevels=False, levels=(0, 255))
        h, w = self.mask.shape
        rgba = np.zeros((h, w, 4), np.uint8)
        if self.target == "mask":
            rgba[self.mask] = (self.colour.red(), self.colour.green(), self.colour.blue(),
                               int(round(self.opacity * 255)))
        self.overlay.setImage(rgba, autoLevels=False, levels=(0, 255))
        if fit:
            self.view.setRange(xRange=(0, w), yRange=(0, h), padding=0.02)

    def map_to_image(self, widget_pos: QPointF) -> tuple[float, float]:
        """Widget coordinates → image coordinates (x = column, y = row; pixel centres at +0.5)."""
        scene = self.mapToScene(widget_pos.toPoint())
        p = self.overlay.mapFromScene(scene)
        return float(p.x()), float(p.y())

    def map_from_image(self, x: float, y: float):
        """Image coordinates → widget coordinates (a QPoint), for tests and tools."""
        scene = self.overlay.mapToScene(QPointF(x, y))
        return self.mapFromScene(scene)
