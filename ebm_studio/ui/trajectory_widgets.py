"""Widgets of the trajectory scrubber: the timeline with settings markers, the energy trace with a
cursor, the enlarged view of one followed chain, and the recorded-frame view that times its paints.

They only draw what they are given (numpy arrays from the engine); the panel in
:mod:`ebm_studio.ui.trajectory_scrubber` wires them together.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import (
    QGraphicsRectItem,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QToolTip,
    QWidget,
)

from ebm_studio.ui.frame_views import FrameView
from ebm_studio.ui.widgets import JumpSlider

#: keys the timeline (and the scrubber around it) takes for itself, even though the main window
#: binds Right to a window-wide "single step" action
SCRUB_KEYS = (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Home, Qt.Key.Key_End)
MARKER_COLOUR = QColor(255, 150, 40)
CHAIN_COLOUR = (80, 200, 255)
#: the energy trace draws at most this many marker lines (the newest); the timeline draws all
MAX_TRACE_MARKERS = 100


def is_scrub_key(event: QKeyEvent) -> bool:
    """A bare Left/Right/Home/End press (keypad allowed): the scrubber's own keys."""
    mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    return event.key() in SCRUB_KEYS and mods == Qt.KeyboardModifier.NoModifier


class Timeline(JumpSlider):
    """A horizontal slider over the recorded steps (value = index into them) with marker ticks.

    Markers are ``(position, step, text)`` with ``position`` in slider units (fractional when a
    change happened between two recorded steps); hovering a tick shows its text. Left/Right move
    one recorded step, Home/End jump to the ends; the slider claims these keys before the window's
    shortcuts (the main window binds Right to "single step" of the live viewer).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setObjectName("trajectory_timeline")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setRange(0, 0)
        self.setMinimumHeight(34)
        self.setTickPosition(QSlider.TickPosition.NoTicks)
        self._markers: list[tuple[float, int, str]] = []

    def set_markers(self, markers: list[tuple[float, int, str]]) -> None:
        self._markers = markers
        self.update()

    @property
    def markers(self) -> list[tuple[float, int, str]]:
        return list(self._markers)

    def x_of(self, position: float) -> float:
        """Widget x coordinate of a (fractional) slider position, at the handle's centre."""
        opt = QStyleOptionSlider()
        self.initStyleOption(opt)
        style = self.style()
        groove = style.subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderGroove, self
        )
        handle = style.subControlRect(
            QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle, self
        )
        lo, hi = self.minimum(), self.maximum()
        f = 0.0 if hi <= lo else (float(position) - lo) / (hi - lo)
        span = groove.width() - handle.width()
        return groove.x() + handle.width() / 2.0 + min(max(f, 0.0), 1.0) * span

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().paintEvent(event)
        if not self._markers:
            return
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(MARKER_COLOUR, 2))
        painter.setBrush(MARKER_COLOUR)
        drawn: set[int] = set()
        for pos, _, _ in self._markers:
            x = int(round(self.x_of(pos)))
            if x in drawn:  # thousands of markers collapse onto the pixels they share
                continue
            drawn.add(x)
            painter.drawPolygon(QPolygonF([QPointF(x - 4, 0), QPointF(x + 4, 0), QPointF(x, 7)]))
            painter.drawLine(x, 7, x, 12)
        painter.end()

    def markers_near(self, x: float, tolerance: float = 6.0) -> list[tuple[float, int, str]]:
        return [m for m in self._markers if abs(self.x_of(m[0]) - x) <= tolerance]

    def event(self, event) -> bool:  # noqa: D401 (Qt override)
        if event.type() == QEvent.Type.ShortcutOverride and is_scrub_key(event):
            event.accept()  # our key, not the window's "single step" shortcut
            return True
        if event.type() == QEvent.Type.ToolTip:
            near = self.markers_near(event.pos().x())
            if near:
                text = "<br>".join(f"{t} at step {s:,}" for _, s, t in near[:12])
                if len(near) > 12:
                    text += f"<br>… and {len(near) - 12} more"
                QToolTip.showText(event.globalPos(), text, self)
                return True
        return super().event(event)


class RecordedView(FrameView):
    """A :class:`FrameView` that measures the time from a scrub request to the painted frame.

    ``expect_paint(t_request)`` arms it; the next paint of the viewport records
    ``perf_counter() - t_request`` (in ms) into ``latencies`` and calls ``on_latency``.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._t_request: float | None = None
        self.latencies: list[float] = []
        self.on_latency = None  # callable(float ms) or None
        self.highlight_rect = QGraphicsRectItem()
        pen = QPen(QColor(255, 60, 40))
        pen.setCosmetic(True)
        pen.setWidth(2)
        self.highlight_rect.setPen(pen)
        self.highlight_rect.setZValue(5)
        self.highlight_rect.setVisible(False)
        self.plot.addItem(self.highlight_rect)
        self.highlight_point = pg.ScatterPlotItem(
            size=14, pen=pg.mkPen((255, 60, 40), width=2), brush=None, symbol="o"
        )
        self.highlight_point.setZValue(5)
        self.plot.addItem(self.highlight_point)

    def expect_paint(self, t_request: float | None) -> None:
        # a hidden view paints only when it is shown: that wait is not the scrub's latency
        self._t_request = t_request if self.isVisible() else None
        self.viewport().update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().paintEvent(event)
        if self._t_request is not None:
            ms = (time.perf_counter() - self._t_request) * 1000.0
            self._t_request = None
            self.latencies.append(ms)
            if len(self.latencies) > 1000:
                del self.latencies[:500]
            if self.on_latency is not None:
                self.on_latency(ms)

    def highlight_tile(self, rect: tuple[float, float, float, float] | None) -> None:
        """Outline one tile of an image grid: (x, y, w, h) in pixels, or None."""
        if rect is None:
            self.highlight_rect.setVisible(False)
            return
        self.highlight_rect.setRect(QRectF(*rect))
        self.highlight_rect.setVisible(True)

    def highlight_at(self, xy: np.ndarray | None) -> None:
        """Ring one particle at (x, y), or remove the ring."""
        if xy is None:
            self.highlight_point.setData([], [])
        else:
            self.highlight_point.setData([float(xy[0])], [float(xy[1])])


class ScrubTrace(pg.PlotWidget):
    """Energy over the recorded steps: mean with a 10–90 % band, a draggable cursor, settings
    markers as dashed lines, and the followed chain's own curve.

    Dragging the cursor emits ``step_picked(step)``.
    """

    step_picked = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("trajectory_trace")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the timeline keeps the keyboard
        self.setLabel("left", "energy E")
        self.setLabel("bottom", "step")
        self.showGrid(x=True, y=True, alpha=0.2)
        item = self.getPlotItem()
        item.setDownsampling(auto=True, mode="peak")
        item.setClipToView(True)
        # a dark backing keeps the labels readable over the band
        self.legend = item.addLegend(offset=(-10, 10), brush=pg.mkBrush(0, 0, 0, 170))
        amber = (255, 200, 60)
        self.mean_curve = self.plot(pen=pg.mkPen(amber, width=2),
                                    name="mean E (band: 10–90 % of chains)")
        self.lo_curve = self.plot(pen=pg.mkPen((*amber, 60)))
        self.hi_curve = self.plot(pen=pg.mkPen((*amber, 60)))
        # (no legend row of its own: pyqtgraph's legend sample crashes painting a FillBetweenItem)
        self.band = pg.FillBetweenItem(self.lo_curve, self.hi_curve, brush=pg.mkBrush(*amber, 50))
        self.addItem(self.band)
        self.chain_curve = self.plot(pen=pg.mkPen(CHAIN_COLOUR, width=2), name="followed chain")
        self.cursor = pg.InfiniteLine(
            pos=0, angle=90, movable=True, pen=pg.mkPen((240, 240, 240), width=1.5),
            hoverPen=pg.mkPen((255, 255, 255), width=3),
        )
        self.cursor.setToolTip("The step shown above; drag it to scrub")
        self.cursor.setZValue(20)
        self.addItem(self.cursor)
        self.cursor.sigDragged.connect(lambda line: self.step_picked.emit(float(line.value())))
        self._marker_lines: list[pg.InfiniteLine] = []
        self._marker_pen = pg.mkPen(MARKER_COLOUR, width=1, style=Qt.PenStyle.DashLine)

    def set_trace(
        self, steps: np.ndarray, mean: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> None:
        ok = np.isfinite(mean)
        s = np.asarray(steps, np.float64)[ok]
        self.mean_curve.setData(s, np.asarray(mean)[ok])
        self.lo_curve.setData(s, np.asarray(lo)[ok])
        self.hi_curve.setData(s, np.asarray(hi)[ok])

    def set_chain(
        self, steps: np.ndarray | None, energy: np.ndarray | None, chain: int | None
    ) -> None:
        if steps is None or energy is None or chain is None:
            self.chain_curve.setData([], [])
            self.legend.getLabel(self.chain_curve).setText("followed chain")
            return
        ok = np.isfinite(energy)
        self.chain_curve.setData(np.asarray(steps, np.float64)[ok], np.asarray(energy)[ok])
        self.legend.getLabel(self.chain_curve).setText(f"chain #{chain}")

    def set_markers(self, markers: list[tuple[int, str]]) -> None:
        shown = markers[-MAX_TRACE_MARKERS:]
        while len(self._marker_lines) < len(shown):
            line = pg.InfiniteLine(angle=90, movable=False, pen=self._marker_pen)
            self.addItem(line)
            self._marker_lines.append(line)
        for line, (step, text) in zip(self._marker_lines, shown):
            line.setValue(step)
            line.setToolTip(f"{text} at step {step:,}")
            line.setVisible(True)
        for line in self._marker_lines[len(shown):]:
            line.setVisible(False)

    def set_cursor(self, step: float) -> None:
        self.cursor.setValue(step)

    def clear_all(self) -> None:
        empty = np.zeros(0)
        self.set_trace(empty, empty, empty, empty)
        self.set_chain(None, None, None)
        self.set_markers([])


class ChainView(pg.GraphicsLayoutWidget):
    """One followed chain, enlarged: its image tile, or its 2-D path with the current position.

    No plot title: a long title sets the plot's minimum width, and a plot wider than this view is
    drawn off-screen (all black); the caption lives in ``title`` for the panel to show in a label.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("trajectory_chain_view")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setBackground("k")
        self.plot = self.addPlot()
        self.plot.setAspectLocked(True)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(False, False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.path_all = pg.PlotDataItem(pen=pg.mkPen((*CHAIN_COLOUR, 70), width=1))
        self.path_done = pg.PlotDataItem(pen=pg.mkPen(CHAIN_COLOUR, width=2))
        self.point = pg.ScatterPlotItem(size=11, pen=pg.mkPen("w"), brush=pg.mkBrush(255, 60, 40))
        for item in (self.image, self.path_all, self.path_done, self.point):
            self.plot.addItem(item)
        self._mode: str | None = "unset"  # so that clear_chain below hides the empty axes
        self._path_range: tuple | None = None
        self.tile: np.ndarray | None = None  # the tile drawn last (uint8, H×W[×C])
        self.position: np.ndarray | None = None  # the point drawn last
        self.title = ""
        self.setToolTip("The followed chain, enlarged. Click a tile or a particle in the view to "
                        "follow another chain.")
        self.clear_chain()

    def _set_mode(self, mode: str | None) -> None:
        if mode == self._mode:
            return
        self._mode = mode
        images = mode == "images"
        self.image.setVisible(images)
        for item in (self.path_all, self.path_done, self.point):
            item.setVisible(mode == "points")
        self.plot.invertY(images)
        self.plot.showAxis("left", mode == "points")
        self.plot.showAxis("bottom", mode == "points")
        self._path_range = None

    def clear_chain(self) -> None:
        # not ``clear``: GraphicsLayoutWidget binds ``clear`` per instance to empty its layout
        self._set_mode(None)
        self.tile = None
        self.position = None
        self.title = "no chain followed: click a tile or a particle"

    def show_tile(self, tile: np.ndarray, title: str) -> None:
        """An (h, w, C) uint8 tile, drawn large (one pixel per data unit, the view fits it)."""
        self._set_mode("images")
        img = tile[..., 0] if tile.ndim == 3 and tile.shape[-1] == 1 else tile
        self.image.setImage(img, autoLevels=False, levels=(0, 255))
        self.plot.setRange(xRange=(0, img.shape[1]), yRange=(0, img.shape[0]), padding=0.02)
        self.tile = img
        self.title = title

    def show_path(
        self, path: np.ndarray | None, upto: int, position: np.ndarray, title: str
    ) -> None:
        """A particle's recorded path (T, 2), bright up to index ``upto``, and its position now."""
        self._set_mode("points")
        if path is not None and len(path):
            self.path_all.setData(path[:, 0], path[:, 1])
            done = path[: max(1, upto + 1)]
            self.path_done.setData(done[:, 0], done[:, 1])
            finite = path[np.isfinite(path).all(axis=1)]
            if len(finite):
                lo, hi = finite.min(axis=0), finite.max(axis=0)
                rng = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
                if rng != self._path_range:  # refit only when the path grew, never while scrubbing
                    self._path_range = rng
                    pad = max(float((hi - lo).max()) * 0.1, 0.05)
                    self.plot.setRange(xRange=(rng[0] - pad, rng[1] + pad),
                                       yRange=(rng[2] - pad, rng[3] + pad), padding=0)
        else:
            self.path_all.setData([], [])
            self.path_done.setData([], [])
        self.point.setData([float(position[0])], [float(position[1])])
        self.position = np.asarray(position, np.float32).copy()
        self.title = title
