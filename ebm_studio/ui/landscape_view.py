"""The 2-D energy-landscape explorer: E/T or p_T live, the truth beside it, chains, fits, drawing.

For 2-D models the partition function is computable by quadrature, so this view shows what
notebooks rarely show live: the energy surface, the normalised density, the chains moving on it and
the error against the truth, all refreshing while a model trains or the temperature moves.

Who computes what.

- The **engine** (worker thread) evaluates the network on the grid, −∇E on a coarse grid, the exact
  data density on the same grid, the held-out energies and the nearest-mode labels
  (:mod:`ebm_studio.worker.landscape_service`), and renders the view's picture and numbers at the
  view's last spec (temperature, quantity, contour levels; :mod:`ebm_studio.core.landscape_render`).
  A training job asks for a refresh every few steps, so while a model trains the GUI thread only
  hands finished arrays to pyqtgraph. This view asks when the model, the grid or the box changes
  (a ``ComputeLandscape`` command, at most one request in flight).
- The **view** (GUI thread) re-renders by itself only when the user changes the spec: moving the
  temperature slider re-normalises the last energy grid, ``p_T = exp(−E/T) / Z_T`` with
  ``log Z_T = log Σ exp(−E/T)·ΔA``, one logsumexp and one exp over 256² cells plus contours and
  numbers, 10–20 ms of numpy. So the slider re-renders p_T at once instead of waiting for an engine
  that may be in the middle of a training step (a round trip would lag by a step or more), and no
  torch is needed in the GUI. The new spec then goes to the engine (coalesced) for later refreshes.
  Drawing is throttled by a timer (latest wins) and skipped while the tab is hidden.

Modes and tools: heatmap of E/T, p_T or log p_T with a shared colour bar, contour lines (auto or
typed levels), −∇E arrows (one item for all shafts and barbs), the live chains with trails (click
to drop new chains), the truth or a data histogram beside the model, the numbers panel, and the
side tabs: draw your own data (:mod:`.draw_data`), compose two energies (:mod:`.compose_panel`),
forward- vs reverse-KL fits (:mod:`.landscape_fit`).
"""

from __future__ import annotations

import collections
import time

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QWidget,
)

from ebm_studio.ui.compose_panel import ComposePanel
from ebm_studio.ui.draw_data import DrawDataPanel
from ebm_studio.ui.landscape_fit import FitPanel
from ebm_studio.ui.landscape_numbers import NumbersPanel
from ebm_studio.ui.landscape_plot import LandscapePlots
from ebm_studio.ui.widgets import LogSlider, RedrawTimer
from ebm_studio.core import landscape_render as lm
from ebm_studio.worker.frames import Frame
from ebm_studio.worker.api import (
    JobInfo,
    ChainsAdded,
    ComputeLandscape,
    DropChains,
    FitProgress,
    FitResult,
    LandscapeNumbers,
    LandscapeResult,
    ModelInfo,
    ModelInfoReply,
    NotTwoD,
    RequestModelInfo,
    RequestRefused,
    SetLandscapeView,
    ViewSpec,
)
from ebm_studio.ui.landscape_controls import TIPS, LandscapeControls
from ebm_studio.ui.session import Session

REDRAW_HZ = 30.0
#: a request without an answer for this long no longer blocks the next one (an engine error)
REQUEST_TIMEOUT_S = 5.0
class LandscapeView(LandscapeControls, QWidget):
    """The landscape tab: controls on the left, the pictures and numbers on the right."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        host = session.host
        self.session = session
        self.setObjectName("landscape_view")
        self.host = host
        self.model_info: ModelInfo | None = None  # the model the landscape shows
        self.result: LandscapeResult | None = None  # the newest landscape from the engine
        self.numbers: LandscapeNumbers | None = None  # what the numbers panel shows
        self.training = False
        self.landscapes_drawn = 0
        self.landscapes_received = 0
        self.render_ms: collections.deque[float] = collections.deque(maxlen=200)
        self._dirty = False
        self._frame: Frame | None = None
        self._frame_dirty = False
        self._trail: collections.deque[np.ndarray] = collections.deque()
        self._trail_key: tuple | None = None
        self._stale = True
        self._req = 0
        self._in_flight: str | None = None
        self._in_flight_t = 0.0
        self._want_more = False
        self._box: tuple[tuple[float, float], tuple[float, float]] | None = None
        self._framed: tuple | None = None
        self._arrows_key: tuple | None = None
        self._levels_error = ""
        self._rng = np.random.default_rng(1)
        self.last_chain_temperature: float | None = None
        self.last_drop: dict | None = None
        self._dropped = 0  # how many of the first chains in the frames were dropped by clicks
        self._dropped_job: int | None = None
        self.log_p: np.ndarray | None = None  # the shown model's log p_T (for tests and numbers)
        self.local_renders = 0  # pictures rendered in the GUI thread (the spec had changed)
        self.engine_renders = 0  # pictures the engine rendered for the view's spec
        self._titles: tuple[str, str] | None = None
        self._spec_timer = QTimer(self)
        self._spec_timer.setSingleShot(True)
        self._spec_timer.setInterval(150)
        self._spec_timer.timeout.connect(self._send_spec)

        self.plots = LandscapePlots()
        self.numbers_panel = NumbersPanel()
        self.draw = DrawDataPanel(host)
        self.compose = ComposePanel(host)
        self.fit = FitPanel(host)
        self._build_controls()

        self.tools = QTabWidget()
        self.tools.setObjectName("landscape_tools")
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.view_controls)
        self.tools.addTab(scroll, "View")
        for w, title in ((self.draw, "Draw data"), (self.compose, "Compose"), (self.fit, "KL fits")):
            s = QScrollArea()
            s.setWidgetResizable(True)
            s.setWidget(w)
            self.tools.addTab(s, title)
        self.tools.setMinimumWidth(330)
        self.tools.setMaximumWidth(420)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.plots)
        right.addWidget(self.numbers_panel)
        right.setStretchFactor(0, 5)
        right.setStretchFactor(1, 1)
        lay = QHBoxLayout(self)
        lay.addWidget(self.tools)
        lay.addWidget(right, 1)

        # --- wiring -------------------------------------------------------------------------------
        self.plots.vb.clicked.connect(self._on_click)
        self.plots.vb.stroke.connect(self._on_stroke)
        self.plots.vb.stroke_finished.connect(self._stroke_finished)
        self.tools.currentChanged.connect(lambda _i: self._update_draw_mode())
        self.draw.points_changed.connect(self._show_drawn)
        self.fit.overlays_changed.connect(self._draw_fits)
        s = session
        s.landscape_ready.connect(self._on_landscape)
        s.model_changed.connect(self._on_model_changed)
        s.job_changed.connect(self._on_job_state)
        s.event.connect(self._on_event)
        s.frame.connect(self.on_frame)
        self._timer = RedrawTimer(self, REDRAW_HZ, self._tick)
        self.numbers_panel.clear("Waiting for the first landscape…")
        from ebm_studio.ui.main_window import app_settings  # deferred: main_window hosts this panel

        self.restore_settings(app_settings())
        self.draw.restore_settings(app_settings())
        # the engine may have announced its start-up model before this panel existed: ask again
        host.send(RequestModelInfo())

    # ==============================================================================================
    # requests to the engine
    # ==============================================================================================
    @property
    def is_2d(self) -> bool:
        info = self.model_info
        return info is not None and info.kind == "points" and info.event_shape == (2,)

    def request_landscape(self, force: bool = False) -> None:
        """Ask the engine for a landscape on the current grid (one request in flight)."""
        if not self.is_2d:
            return
        now = time.perf_counter()
        if self._in_flight is not None and now - self._in_flight_t < REQUEST_TIMEOUT_S and not force:
            self._want_more = True
            return
        self._req += 1
        rid = f"view-{self._req}"
        self._in_flight, self._in_flight_t, self._want_more = rid, now, False
        self._stale = False
        xlim, ylim = self._box if self._box is not None else (None, None)
        self.host.send(ComputeLandscape(n=self.grid_box.currentData(), grad_n=self.arrow_n.value(),
                                        xlim=xlim, ylim=ylim, view=self.view_spec(), request_id=rid))

    def reset_view(self) -> None:
        self._box = None
        self._framed = None
        self.plots.reset_view()
        self.request_landscape(force=True)

    def grid_on_view(self) -> None:
        self._box = self.plots.view_box_limits()
        self.request_landscape(force=True)

    def _on_temperature(self, t: float) -> None:
        self.fit.set_temperature(t)
        self._spec_changed()
        if self.follow_t.isChecked() and not self.training:
            try:
                self.host.update_live(temperature=t)
            except ValueError as exc:
                self._say(str(exc))
                return
            # keep the viewer's own slider in step, so its next restart does not undo T
            viewer = getattr(self.window(), "viewer", None)
            slider = getattr(viewer, "temperature", None)
            if isinstance(slider, LogSlider):
                slider.setValue(t)

    def _on_click(self, x: float, y: float) -> None:
        if not self.is_2d:
            self._say("Chains can be dropped on 2-D models only.")
            return
        n = self.drop_n.value()
        span = self._span()
        pts = np.array([x, y]) + self._rng.normal(scale=0.01 * span, size=(n, 2))
        self.last_drop = {"x": x, "y": y, "n": n}
        self.host.send(DropChains(pts.astype(np.float32)))

    def _on_stroke(self, x: float, y: float, first: bool) -> None:
        self.draw.stroke_to(x, y, first)
        self.plots.set_brush(x, y, self.draw.radius.value())

    def _stroke_finished(self) -> None:
        self.draw.end_stroke()
        self.plots.set_brush(None, None, 0.0)

    def _span(self) -> float:
        if self.result is not None:
            g = self.result.landscape.grid
            return max(g.xlim[1] - g.xlim[0], g.ylim[1] - g.ylim[0])
        lo, hi = self.model_info.value_range if self.model_info is not None else (-4.0, 4.0)
        return float(hi - lo)

    def _say(self, text: str) -> None:
        self.status.setText(text)

    # ==============================================================================================
    # engine answers
    # ==============================================================================================
    def _on_model_changed(self, info: ModelInfo) -> None:
        self.model_info = info
        self.result = None
        self.log_p = None
        self._trail.clear()
        self._trail_key = None
        self._framed = None
        self._arrows_key = None
        self._box = None
        self._in_flight = None
        self.fit.clear()
        self.compose.model_replaced(info)
        self.plots.set_fits(None, None)
        if not self.is_2d:
            self.numbers_panel.clear(f"The landscape needs a 2-D model; {info.name} "
                                     f"has samples of shape {info.event_shape}.")
            self._titles = None
            self._frame = None
            self.plots.clear_all("no landscape: the model is not 2-D")
            return
        self._stale = True
        if self.isVisible():
            self.request_landscape(force=True)

    def _on_landscape(self, result: LandscapeResult) -> None:
        self.landscapes_received += 1
        rid = result.request_id
        if rid is not None and rid == self._in_flight:
            self._in_flight = None
            if self._want_more:
                self.request_landscape()
        self.compose.landscape_arrived(rid)
        self.result = result
        self._dirty = True
        self._stale = False

    def _on_job_state(self, info: JobInfo) -> None:
        if info.kind == "train":  # other slots' jobs run beside a run and do not end it
            self.training = info.active
        self.fit.training = self.training
        self.fit.on_job_state(info)  # a fit runs in its own slot: the viewer's chains go on

    def _on_event(self, ev) -> None:
        if isinstance(ev, FitProgress):
            self.fit.on_progress(ev)
        elif isinstance(ev, FitResult):
            self.fit.on_result(ev.fits)
        elif isinstance(ev, ModelInfoReply):
            if self.model_info is None:  # a model_changed that came meanwhile is newer
                self._on_model_changed(ev.info)
        elif isinstance(ev, ChainsAdded):
            # the dropped chains come first in the frames: highlight them while this job runs
            self._dropped = min(self._dropped + ev.added, 256)
            self._say(f"Dropped {ev.added} chains: {ev.n_chains:,} chains now.")
        elif isinstance(ev, RequestRefused) and ev.request in ("drop", "landscape"):
            self._in_flight = None if ev.request == "landscape" else self._in_flight
            self._say(ev.message)
        elif isinstance(ev, NotTwoD):
            self._in_flight = None
        self.draw.on_event(ev)
        self.compose.on_event(ev)

    def on_frame(self, frame: Frame) -> None:
        """Every frame the engine emits (the main window calls this): keep the newest chains."""
        if frame.kind != "points" or frame.job_kind not in ("sample", "train", "fit") or frame.points is None:
            return
        pts = frame.points
        if self._dropped and self._dropped_job not in (None, frame.job_id):
            self._dropped = 0  # another job: its chains were not dropped here
        self._dropped_job = frame.job_id
        key = (frame.job_id, pts.shape[0], frame.n_chains)
        if key != self._trail_key:
            self._trail.clear()
            self._trail_key = key
        if frame.job_kind == "train":
            # a training frame's points are that step's negatives, fresh draws from the replay
            # buffer: consecutive frames are not the same chains, so a trail would join strangers
            self._trail.clear()
        self._trail.append(pts)
        while len(self._trail) > self.trail_len.value():
            self._trail.popleft()
        self._frame = frame
        self._frame_dirty = True
        self.last_chain_temperature = frame.settings.get("temperature")

    # ==============================================================================================
    # drawing
    # ==============================================================================================
    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        if self._stale and self.is_2d:
            self.request_landscape()
        self._dirty = self.result is not None

    def _tick(self) -> None:
        if not self.isVisible():
            return
        if self._in_flight is not None and time.perf_counter() - self._in_flight_t > REQUEST_TIMEOUT_S:
            self._in_flight = None  # the engine said why (an error dialog); allow a new request
            if self._want_more:
                self.request_landscape()
        if self._dirty and self.result is not None:
            self._dirty = False
            self.render()
        if self._frame_dirty:
            self._frame_dirty = False
            self._draw_particles()

    def _typed_levels(self) -> list[float] | None:
        """The typed contour levels, or None (automatic); a bad entry is flagged, not used."""
        text = self.levels_edit.text().strip()
        if not text:
            self._levels_flag("")
            return None
        try:
            levels = lm.parse_levels(text)
        except ValueError as exc:
            self._levels_flag(str(exc))
            return None
        self._levels_flag("")
        return levels or None

    def _levels_flag(self, error: str) -> None:
        if error == self._levels_error:
            return
        self._levels_error = error
        if error:
            self.levels_edit.setStyleSheet("border: 1px solid #d04040;")
            self.levels_edit.setToolTip(f"{TIPS['levels']}<br><b>Not used:</b> {error}")
            self._say(f"Contour levels not used: {error}; showing automatic levels.")
        else:
            self.levels_edit.setStyleSheet("")
            self.levels_edit.setToolTip(TIPS["levels"])

    def view_spec(self) -> ViewSpec:
        """What the picture depends on besides the engine's arrays (see ``render_view``)."""
        return ViewSpec(
            temperature=self.temperature.value(),
            mode=self.mode_box.currentData(),
            contours=self.contours_box.isChecked(),
            n_levels=self.contour_n.value(),
            levels=self._typed_levels(),
            truth=self.truth_box.isChecked(),
        )

    def _spec_changed(self) -> None:
        """Redraw now (locally) and tell the engine soon (coalesced), so that later refreshes
        arrive already rendered for this spec."""
        self._dirty = True
        self._spec_timer.start()

    def _send_spec(self) -> None:
        self.host.send(SetLandscapeView(self.view_spec()))

    def render(self) -> None:
        """Draw the newest landscape at the view's spec. The engine's rendering is used when it
        was made for this spec (a training refresh); otherwise it is rendered here (numpy)."""
        r = self.result
        if r is None:
            return
        t0 = time.perf_counter()
        spec = self.view_spec()
        v = r.view
        if v is None or v.spec != spec:
            v = lm.render_view(r, spec)
            self.local_renders += 1
        else:
            self.engine_renders += 1
        grid = r.landscape.grid
        self.log_p = v.log_p
        show_truth = spec.truth and v.truth_image is not None
        self.plots.set_images(v.image, v.truth_image if show_truth else None, v.colour_range,
                              grid.rect, grid.rect, v.truth_key)
        self.plots.home_rect = grid.rect
        framed = (grid.xlim, grid.ylim, show_truth)
        if framed != self._framed:
            # a new box, or the truth plot came or went: frame the data box once the layout has
            # settled (the aspect lock widens the range of a plot that is still being resized)
            self._framed = framed
            self.plots.show_truth(show_truth)
            self.plots.reset_view(grid.rect)
            QTimer.singleShot(0, lambda rect=grid.rect: self.plots.reset_view(rect))
        self.plots.set_contours(v.contours, v.truth_contours if show_truth else None, v.truth_key)
        self._draw_arrows()
        self._draw_data_points()
        # (the training step is in the numbers panel: a title that changes at every refresh
        # would re-lay out the plots and repaint their axes each time)
        self._set_titles(f"model {v.label} · T = {spec.temperature:.3g}", v.truth_title)
        self.numbers = v.numbers
        self.numbers_panel.show_numbers(self.numbers)
        self.landscapes_drawn += 1
        self.render_ms.append(1000.0 * (time.perf_counter() - t0))

    def _set_titles(self, model: str, truth: str) -> None:
        # a title change re-lays out the plots: only when the text changes
        if (model, truth) != self._titles:
            self._titles = (model, truth)
            self.plots.model_plot.setTitle(model, size="10pt")
            self.plots.truth_plot.setTitle(truth, size="10pt")

    def _draw_arrows(self, force: bool = False) -> None:
        r = self.result
        segs = r.arrows if r is not None else None
        if not self.arrows_box.isChecked() or segs is None:
            self.plots.set_arrows(None)
            self._arrows_key = None
            return
        if id(segs) == self._arrows_key and not force:
            return  # arrows do not depend on T or the display mode
        self._arrows_key = id(segs)
        self.plots.set_arrows(segs)

    def _draw_particles(self) -> None:
        frame = self._frame
        if not self.chains_box.isChecked() or frame is None:
            self.plots.set_particles(None)
            self.plots.set_trails(None)
            return
        self.plots.set_particles(frame.points, self._dropped)
        if self.trails_box.isChecked():
            self.plots.set_trails(lm.trail_segments(list(self._trail)))
        else:
            self.plots.set_trails(None)

    def _draw_data_points(self) -> None:
        r = self.result
        pts = r.data_points if (r is not None and self.data_box.isChecked()) else None
        self.plots.set_data_points(pts)

    def _draw_fits(self) -> None:
        forward, reverse = self.fit.overlays()
        self.plots.set_fits(forward, reverse)

    def _update_draw_mode(self) -> None:
        drawing = self.tools.currentIndex() == 1
        self.plots.vb.draw_mode = drawing
        self.plots.setCursor(Qt.CursorShape.CrossCursor if drawing else Qt.CursorShape.ArrowCursor)
        self._show_drawn()

    def _show_drawn(self) -> None:
        # drawn points are a scatter; shown only while drawing (thousands of scatter points
        # repainted during a training run would fight the worker for the GIL)
        drawing = self.tools.currentIndex() == 1
        self.plots.set_drawn_points(self.draw.points if drawing else None)

    # ==============================================================================================
    # persistence
    # ==============================================================================================
    _PERSIST = {
        # key: (widget attribute, getter, setter, type)
        "mode": ("mode_box", "currentData", "setCurrentIndex", str),
        "cmap": ("cmap_box", "currentText", "setCurrentIndex", str),
        "grid_n": ("grid_box", "currentData", "setCurrentIndex", int),
        "contours": ("contours_box", "isChecked", "setChecked", bool),
        "n_levels": ("contour_n", "value", "setValue", int),
        "arrows": ("arrows_box", "isChecked", "setChecked", bool),
        "arrow_n": ("arrow_n", "value", "setValue", int),
        "chains": ("chains_box", "isChecked", "setChecked", bool),
        "trails": ("trails_box", "isChecked", "setChecked", bool),
        "trail_len": ("trail_len", "value", "setValue", int),
        "data": ("data_box", "isChecked", "setChecked", bool),
        "truth": ("truth_box", "isChecked", "setChecked", bool),
        "follow_t": ("follow_t", "isChecked", "setChecked", bool),
        "drop_n": ("drop_n", "value", "setValue", int),
    }

    def restore_settings(self, settings) -> None:
        """Display choices from the last session (a damaged value keeps the default)."""
        for key, (attr, _get, setter, kind) in self._PERSIST.items():
            raw = settings.value(f"landscape/{key}")
            if raw is None:
                continue
            widget = getattr(self, attr)
            try:
                if kind is bool:
                    value = raw if isinstance(raw, bool) else str(raw).lower() in ("true", "1")
                else:
                    value = kind(raw)
                if setter == "setCurrentIndex":
                    i = widget.findData(value) if attr != "cmap_box" else widget.findText(value)
                    if i >= 0:
                        widget.setCurrentIndex(i)
                else:
                    getattr(widget, setter)(value)
            except (TypeError, ValueError):
                continue

    def save_settings(self, settings) -> None:
        """Called by the main window when it closes."""
        for key, (attr, getter, _set, _kind) in self._PERSIST.items():
            settings.setValue(f"landscape/{key}", getattr(getattr(self, attr), getter)())
        self.draw.save_settings(settings)

    # ==============================================================================================
    # helpers for tests and benchmarks
    # ==============================================================================================
    def current_density(self) -> np.ndarray | None:
        """The shown model's p_T on the grid (None before the first landscape)."""
        return None if self.log_p is None else np.exp(self.log_p)
