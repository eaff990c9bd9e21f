"""The landscape view's pictures: the model's heatmap beside the truth, with every overlay.

One :class:`LandscapePlots` widget (a pyqtgraph layout) holds two linked plots and one colour bar:

- left, the model: heatmap (E/T, p_T or log p_T), contour lines, the −∇E arrows, the chains and
  their trails, the data points, the user's drawn points and brush, the two KL fits;
- right, the truth (exact density) or a 2-D histogram of the data, on the same colour scale.

Every overlay with many lines is one item: all contour segments are one ``PlotCurveItem`` with
``connect="pairs"``, all arrows another, all trails a third. The chains are a scatter of at most a
few hundred points (the frame's highlighted chains); thousands of scatter points painted in the GUI
thread would fight the worker for the GIL.

Mouse: a left click emits ``clicked(x, y)`` (drop chains there); in draw mode a left press and drag
emits ``stroke(x, y, first)`` instead of panning. The wheel zooms, the right button drags to zoom
(pyqtgraph's defaults) in both modes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGraphicsItem

#: colours of the overlays (RGBA)
CONTOUR_PEN = (255, 255, 255, 110)
ARROW_PEN = (235, 235, 235, 170)
PARTICLE_BRUSH = (255, 190, 40, 230)
DROPPED_BRUSH = (255, 255, 255, 255)
TRAIL_PEN = (255, 210, 120, 160)
DATA_BRUSH = (80, 220, 255, 170)
DRAWN_BRUSH = (255, 255, 255, 220)
FORWARD_PEN = (0, 230, 255, 255)
REVERSE_PEN = (255, 70, 200, 255)
BRUSH_PEN = (255, 255, 255, 180)


class LandscapeViewBox(pg.ViewBox):
    """A ViewBox that reports left clicks and, in draw mode, left drags (instead of panning)."""

    clicked = Signal(float, float)
    stroke = Signal(float, float, bool)  # x, y, first point of a stroke (else: continue to here)
    stroke_finished = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.draw_mode = False

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph naming)
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            if self.draw_mode:
                self.stroke.emit(float(p.x()), float(p.y()), True)
                self.stroke_finished.emit()
            else:
                self.clicked.emit(float(p.x()), float(p.y()))
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (pyqtgraph naming)
        if self.draw_mode and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            if ev.isStart():  # the stroke starts where the button went down, not at the threshold
                p0 = self.mapSceneToView(ev.buttonDownScenePos())
                self.stroke.emit(float(p0.x()), float(p0.y()), True)
            p = self.mapSceneToView(ev.scenePos())
            self.stroke.emit(float(p.x()), float(p.y()), False)
            if ev.isFinish():
                self.stroke_finished.emit()
            return
        super().mouseDragEvent(ev, axis)


def _pairs_curve(pen) -> pg.PlotCurveItem:
    item = pg.PlotCurveItem(pen=pg.mkPen(pen, width=1), connect="pairs", antialias=False)
    item.setZValue(5)
    return item


def _set_pairs(item: pg.PlotCurveItem, segs: np.ndarray | None) -> None:
    if segs is None or len(segs) == 0:
        item.setData([], [])
    else:
        item.setData(segs[:, 0], segs[:, 1], connect="pairs")


class LandscapePlots(pg.GraphicsLayoutWidget):
    """The model's landscape and the truth side by side, sharing axes and a colour scale."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("landscape_plots")
        self.setBackground("k")
        self.vb = LandscapeViewBox()
        self.model_plot = self.addPlot(row=0, col=0, viewBox=self.vb)
        self.truth_plot = self.addPlot(row=0, col=1)
        for p in (self.model_plot, self.truth_plot):
            p.setAspectLocked(True)
            p.hideButtons()
            p.showGrid(x=False, y=False)
        self.truth_plot.setXLink(self.model_plot)
        self.truth_plot.setYLink(self.model_plot)

        self.image = pg.ImageItem()  # [ix, iy] arrays: pyqtgraph's column-major default is right
        self.truth_image = pg.ImageItem()
        self.model_plot.addItem(self.image)
        self.truth_plot.addItem(self.truth_image)
        self.colorbar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get("viridis"),
                                        interactive=False, width=14, colorMapMenu=False)
        self.colorbar.setImageItem([self.image, self.truth_image])
        self.addItem(self.colorbar, row=0, col=2)
        # equal columns for the two plots, whatever their titles' and axes' widths: the same
        # (large) preferred width, shrunk alike to fit
        for col in (0, 1):
            self.ci.layout.setColumnStretchFactor(col, 1)
            self.ci.layout.setColumnPreferredWidth(col, 4000)

        self.contours = _pairs_curve(CONTOUR_PEN)
        self.truth_contours = _pairs_curve(CONTOUR_PEN)
        self.arrows = _pairs_curve(ARROW_PEN)
        self.trails = _pairs_curve(TRAIL_PEN)
        self.trails.setZValue(7)
        self._particle_brush = pg.mkBrush(*PARTICLE_BRUSH)
        self._dropped_brush = pg.mkBrush(*DROPPED_BRUSH)
        self.particles = pg.ScatterPlotItem(size=5, pen=None, brush=self._particle_brush)
        self.particles.setZValue(8)
        self.data_points = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(*DATA_BRUSH))
        self.data_points.setZValue(6)
        self.drawn_points = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(*DRAWN_BRUSH))
        self.drawn_points.setZValue(9)
        self.brush_outline = pg.PlotCurveItem(pen=pg.mkPen(BRUSH_PEN, width=1, style=Qt.PenStyle.DashLine))
        self.brush_outline.setZValue(10)
        self.fit_forward = pg.PlotCurveItem(pen=pg.mkPen(FORWARD_PEN, width=2), connect="finite")
        self.fit_reverse = pg.PlotCurveItem(pen=pg.mkPen(REVERSE_PEN, width=2), connect="finite")
        self.fit_forward_means = pg.ScatterPlotItem(size=9, symbol="x", pen=pg.mkPen(FORWARD_PEN, width=2))
        self.fit_reverse_means = pg.ScatterPlotItem(size=9, symbol="+", pen=pg.mkPen(REVERSE_PEN, width=2))
        for item in (self.fit_forward, self.fit_reverse, self.fit_forward_means, self.fit_reverse_means):
            item.setZValue(11)
        for item in (self.contours, self.arrows, self.trails, self.particles, self.data_points,
                     self.drawn_points, self.brush_outline, self.fit_forward, self.fit_reverse,
                     self.fit_forward_means, self.fit_reverse_means):
            self.model_plot.addItem(item)
        self.truth_plot.addItem(self.truth_contours)
        self.truth_data_points = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(*DATA_BRUSH))
        self.truth_data_points.setZValue(6)
        self.truth_plot.addItem(self.truth_data_points)
        # Static layers are painted once into a device pixmap and blitted afterwards: the chains
        # move 30 times a second, and re-stroking thousands of contour and arrow segments and
        # re-scaling the heatmap under them at every frame cost ~10 ms of the GUI thread per paint.
        # (the truth plot has no moving items: its layers are painted only when they change)
        # Not the fitted ellipses: a wide fit reaches past the view, and a device cache of an item
        # larger than the viewport keeps only its exposed pieces (drawn as broken arcs).
        for item in (self.image, self.contours, self.arrows):
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._truth_key: tuple | None = None
        self._truth_segs_key: tuple | None = None
        self._rect: tuple[float, float, float, float] | None = None
        self._truth_rect: tuple[float, float, float, float] | None = None
        self.home_rect: tuple[float, float, float, float] | None = None

    # --- heatmaps --------------------------------------------------------------------------------
    def set_colormap(self, name: str) -> None:
        self.colorbar.setColorMap(pg.colormap.get(name))

    def set_images(self, model: np.ndarray, truth: np.ndarray | None, levels: tuple[float, float],
                   rect: tuple[float, float, float, float],
                   truth_rect: tuple[float, float, float, float] | None,
                   truth_key: tuple | None = None) -> None:
        """Show ``model`` (and ``truth``) with one colour scale ``levels`` on ``rect`` (x, y, w, h).

        ``truth_key`` identifies the truth picture: when it is the last one's, the truth plot is
        not touched (and not repainted)."""
        lo, hi = levels
        if not hi > lo:
            hi = lo + 1e-12
        self.image.setImage(np.asarray(model, dtype=np.float32), autoLevels=False, levels=(lo, hi))
        if rect != self._rect:
            self._rect = rect
            self.image.setRect(*rect)
        fresh = truth_key is None or truth_key != self._truth_key
        if truth is not None and truth_rect is not None and fresh:
            self._truth_key = truth_key
            self.truth_image.setImage(np.asarray(truth, dtype=np.float32), autoLevels=False,
                                      levels=(lo, hi))
            if truth_rect != self._truth_rect:
                self._truth_rect = truth_rect
                self.truth_image.setRect(*truth_rect)
        elif truth is None:
            self._truth_key = None
        # the colour bar drives both images' lookup tables and levels (setting them, even to the
        # same values, repaints both images and the bar's axis)
        if self.colorbar.levels() != (lo, hi):
            self.colorbar.setLevels((lo, hi))

    def show_truth(self, on: bool) -> None:
        """Show or hide the truth plot. A hidden plot is unlinked first: squeezed to no width, its
        aspect-locked range would run off to infinity and drag the linked model plot along."""
        if on == self.truth_plot.isVisible():
            return
        if on:
            self.truth_plot.setVisible(True)
            self.ci.layout.setColumnMaximumWidth(1, 100000)
            self.ci.layout.setColumnStretchFactor(1, 1)
            self.ci.layout.setColumnPreferredWidth(1, 4000)
            self.truth_plot.setXLink(self.model_plot)
            self.truth_plot.setYLink(self.model_plot)
        else:
            self.truth_plot.setXLink(None)
            self.truth_plot.setYLink(None)
            self.truth_plot.setVisible(False)
            self.ci.layout.setColumnStretchFactor(1, 0)
            self.ci.layout.setColumnPreferredWidth(1, 0)
            self.ci.layout.setColumnMaximumWidth(1, 0)

    def clear_all(self, message: str = "") -> None:
        """Nothing to show (not a 2-D model): empty plots, ``message`` as the title."""
        self.image.clear()
        self.truth_image.clear()
        self._truth_key = self._truth_segs_key = None
        self._rect = self._truth_rect = None
        for setter in (self.set_contours, self.set_arrows, self.set_particles, self.set_trails,
                       self.set_data_points, self.set_drawn_points):
            setter(None)
        self.set_fits(None, None)
        self.show_truth(False)
        self.model_plot.setTitle(message, size="10pt")
        self.truth_plot.setTitle("", size="10pt")

    def reset_view(self, rect: tuple[float, float, float, float] | None = None) -> None:
        """Zoom to ``rect`` (x, y, w, h), by default the data box of the last landscape."""
        rect = rect or self.home_rect
        if rect is None:
            return
        x, y, w, h = rect
        self.model_plot.setRange(xRange=(x, x + w), yRange=(y, y + h), padding=0.02)

    def view_box_limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        (x0, x1), (y0, y1) = self.vb.viewRange()
        return (float(x0), float(x1)), (float(y0), float(y1))

    # --- overlays --------------------------------------------------------------------------------
    def set_contours(self, segs: np.ndarray | None, truth_segs: np.ndarray | None = None,
                     truth_key: tuple | None = None) -> None:
        """Contour segments of the model and the truth (the truth's skipped if ``truth_key`` is
        the last one's: unchanged)."""
        _set_pairs(self.contours, segs)
        key = None if truth_segs is None else truth_key
        if key is None or key != self._truth_segs_key:
            self._truth_segs_key = key
            _set_pairs(self.truth_contours, truth_segs)

    def set_arrows(self, segs: np.ndarray | None) -> None:
        _set_pairs(self.arrows, segs)

    def set_particles(self, pts: np.ndarray | None, n_dropped: int = 0) -> None:
        """The chains; the first ``n_dropped`` (the ones the user dropped) in white."""
        if pts is None or len(pts) == 0:
            self.particles.setData([], [])
            return
        k = min(int(n_dropped), len(pts))
        if k == 0:
            self.particles.setData(pts[:, 0], pts[:, 1], brush=self._particle_brush, size=5)
            return
        brushes = [self._dropped_brush] * k + [self._particle_brush] * (len(pts) - k)
        sizes = np.full(len(pts), 5.0)
        sizes[:k] = 7.0
        self.particles.setData(pts[:, 0], pts[:, 1], brush=brushes, size=sizes)

    def set_trails(self, segs: np.ndarray | None) -> None:
        _set_pairs(self.trails, segs)

    def set_data_points(self, pts: np.ndarray | None) -> None:
        for item in (self.data_points, self.truth_data_points):
            if pts is None or len(pts) == 0:
                item.setData([], [])
            else:
                item.setData(pts[:, 0], pts[:, 1])

    def set_drawn_points(self, pts: np.ndarray | None) -> None:
        if pts is None or len(pts) == 0:
            self.drawn_points.setData([], [])
        else:
            self.drawn_points.setData(pts[:, 0], pts[:, 1])

    def set_brush(self, x: float | None, y: float | None, radius: float) -> None:
        if x is None or y is None:
            self.brush_outline.setData([], [])
            return
        t = np.linspace(0.0, 2.0 * np.pi, 49)
        self.brush_outline.setData(x + radius * np.cos(t), y + radius * np.sin(t))

    def set_fits(self, forward: tuple[np.ndarray, np.ndarray] | None,
                 reverse: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Each fit: (outline with NaN breaks (P, 2), component means (K, 2)), or None to hide."""
        for curve, means, fit in ((self.fit_forward, self.fit_forward_means, forward),
                                  (self.fit_reverse, self.fit_reverse_means, reverse)):
            if fit is None or len(fit[0]) == 0:
                curve.setData([], [])
                means.setData([], [])
            else:
                curve.setData(fit[0][:, 0], fit[0][:, 1], connect="finite")
                means.setData(fit[1][:, 0], fit[1][:, 1])
