"""Drawing frames: one pyqtgraph view that shows either an image grid or rasterised particles.

Particles are drawn as a 2-D histogram in an ``ImageItem`` (cheap to paint) plus a scatter of at
most a few hundred highlighted chains: thousands of scatter points painted in the GUI thread
fight the worker for the GIL and stall the window.
"""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal

from ebm_studio.worker.frames import Frame

PARTICLE_COLOUR = (255, 200, 60, 220)
#: share of an image grid's height kept free above it for the caption
CAPTION_BAND = 0.1
HIST_CMAP = "inferno"


class FrameView(pg.GraphicsLayoutWidget):
    """Shows the newest frame; emits ``clicked(x, y)`` in data coordinates."""

    clicked = Signal(float, float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setBackground("k")
        self.plot = self.addPlot()
        self.plot.setAspectLocked(True)
        self.plot.hideButtons()
        self.image = pg.ImageItem(axisOrder="row-major")
        self.hist = pg.ImageItem()  # histogram arrays are [ix, iy]: column-major is right
        self.hist.setColorMap(pg.colormap.get(HIST_CMAP))
        self.scatter = pg.ScatterPlotItem(size=4, pen=None, brush=pg.mkBrush(*PARTICLE_COLOUR))
        for item in (self.hist, self.image, self.scatter):
            self.plot.addItem(item)
        self.caption = pg.TextItem(color=(230, 230, 230), anchor=(0, 0))
        self.caption.setZValue(10)
        self.plot.addItem(self.caption)
        self._mode: str | None = None
        self._box: tuple[float, float] | None = None
        self._image_shape: tuple[int, ...] | None = None
        self.frames_drawn = 0
        self.last_frame = None  # the frame drawn last (which job's chains the view shows)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        self._hide_axes()  # until a frame says what the plane is

    def _hide_axes(self) -> None:
        self.plot.showAxis("left", False)
        self.plot.showAxis("bottom", False)

    def set_mode(self, mode: str) -> None:
        """``images`` (pixel grid, y downwards) or ``points`` (data plane, y upwards)."""
        if mode == self._mode:
            return
        self._mode = mode
        images = mode == "images"
        self.image.setVisible(images)
        self.hist.setVisible(not images)
        self.scatter.setVisible(not images)
        self.plot.invertY(images)
        self.plot.showAxis("left", not images)
        self.plot.showAxis("bottom", not images)
        self._box = None
        self._image_shape = None

    def show_frame(self, frame: Frame, caption: str = "") -> None:
        self.set_mode(frame.kind)
        if frame.kind == "images":
            img = frame.grid[..., 0] if frame.grid.shape[-1] == 1 else frame.grid
            self.image.setImage(img, autoLevels=False, levels=(0, 255))
            if self._image_shape != img.shape:
                self._image_shape = img.shape
                # a band above the grid (y grows downwards) holds the caption, off the top row
                self.plot.setRange(xRange=(0, img.shape[1]), yRange=(-CAPTION_BAND * img.shape[0], img.shape[0]),
                                   padding=0.02)
            self.caption.setAnchor((0, 1))
            self.caption.setPos(0, 0)
        else:
            h = np.log1p(frame.hist)
            top = float(h.max()) or 1.0
            self.hist.setImage(h, autoLevels=False, levels=(0.0, top))
            if self._box != frame.box:
                lo, hi = frame.box
                self._box = frame.box
                self.hist.setRect(lo, lo, hi - lo, hi - lo)
                self.plot.setRange(xRange=(lo, hi), yRange=(lo, hi), padding=0.02)
            pts = frame.points
            self.scatter.setData(pts[:, 0], pts[:, 1])
            self.caption.setAnchor((0, 0))
            self.caption.setPos(frame.box[0], frame.box[1])  # top-left corner of the data box
        self.caption.setText(caption)
        self.frames_drawn += 1
        self.last_frame = frame

    def clear_frame(self) -> None:
        """Show nothing (until the next frame): the data behind the last one is gone."""
        self.image.clear()
        self.hist.clear()
        self.scatter.setData([], [])
        self.caption.setText("")
        self._mode = None
        self._hide_axes()

    def _on_click(self, event) -> None:
        if self._mode != "points" or event.button() != pg.QtCore.Qt.MouseButton.LeftButton:
            return
        pos = self.plot.vb.mapSceneToView(event.scenePos())
        self.clicked.emit(float(pos.x()), float(pos.y()))


class EnergyTrace(pg.PlotWidget):
    """Per-chain energy over steps: the mean and a 10–90 % band, bounded history."""

    MAX_POINTS = 3000
    DRAWN_POINTS = 300
    REDRAW_S = 0.5

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setLabel("left", "energy E")
        self.setLabel("bottom", "step")
        self.showGrid(x=False, y=True, alpha=0.15)
        # a fixed axis width: tick labels of changing length would otherwise re-layout the plot
        self.getAxis("left").setWidth(56)
        self.getPlotItem().setDownsampling(auto=True, mode="peak")
        self.getPlotItem().setClipToView(True)
        self.mean_curve = self.plot(pen=pg.mkPen((255, 200, 60), width=2), name="mean")
        self.lo_curve = self.plot(pen=pg.mkPen((255, 200, 60, 60)))
        self.hi_curve = self.plot(pen=pg.mkPen((255, 200, 60, 60)))
        self.band = pg.FillBetweenItem(self.lo_curve, self.hi_curve, brush=pg.mkBrush(255, 200, 60, 50))
        self.addItem(self.band)
        self._flush = QTimer(self)
        self._flush.setSingleShot(True)
        self._flush.timeout.connect(self._redraw)
        self.clear_trace()

    def clear_trace(self) -> None:
        self._rows: list[tuple[float, float, float, float]] = []
        self._drawn_at = 0.0
        for c in (self.mean_curve, self.lo_curve, self.hi_curve):
            c.setData([], [])

    def add(self, step: int, energies: np.ndarray) -> None:
        if energies.size == 0 or not np.isfinite(energies).any():
            return
        e = energies[np.isfinite(energies)]
        lo, hi = np.percentile(e, (10, 90))
        if self._rows and step <= self._rows[-1][0]:
            self._rows = [r for r in self._rows if r[0] < step]  # a reset or a branch
        self._rows.append((float(step), float(e.mean()), float(lo), float(hi)))
        if len(self._rows) > self.MAX_POINTS:
            self._rows = self._rows[::2]  # keep the whole run, at half the density
        # the band's path is rebuilt on every update: redraw at most REDRAW_S apart, and make
        # sure the newest row is drawn even when no further frame comes (a paused chain)
        now = time.perf_counter()
        if now - self._drawn_at < self.REDRAW_S:
            if not self._flush.isActive():
                self._flush.start(int(self.REDRAW_S * 1000))
            return
        self._redraw()

    def _redraw(self) -> None:
        self._drawn_at = time.perf_counter()
        if not self._rows:
            return
        a = np.asarray(self._rows)
        if len(a) > self.DRAWN_POINTS:
            # the band's path is built from every point: a few hundred are all a trace needs, and
            # thousands made each redraw stall the GUI thread for tens of milliseconds
            a = a[np.linspace(0, len(a) - 1, self.DRAWN_POINTS).astype(int)]
        self.mean_curve.setData(a[:, 0], a[:, 1])
        self.lo_curve.setData(a[:, 0], a[:, 2])
        self.hi_curve.setData(a[:, 0], a[:, 3])
        if a[-1, 0] == a[0, 0]:  # one step (fresh or paused chains): no padded, negative step axis
            self.setXRange(a[0, 0], a[0, 0] + 1, padding=0)
        else:
            self.enableAutoRange(axis="x")
