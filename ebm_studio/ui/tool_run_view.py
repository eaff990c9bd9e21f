"""What both image tools share: the run controls, the live proposals, the curves and the scrubber.

:class:`ToolRunView` sends ``tool_api`` commands for one owner (``inpaint`` or ``translate``) and
draws the :class:`~ebm_studio.worker.tool_api.ToolFrame` s the engine sends back: the proposals
side by side after a reference image, one energy curve per proposal, and a second curve (the
distance from the start, for translation). Temperature, step size and noise act on the running
chains at their next step; the scrub slider shows any recorded step of the last run.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ebm_studio.ui.widgets import JumpSlider, LogSlider, format_rate
from ebm_studio.worker.tool_api import (
    FetchToolStep,
    RunState,
    StopToolRun,
    ToolFrame,
    ToolModelInfo,
    ToolRunChanged,
)

#: the most points of one curve drawn (longer traces are thinned evenly)
MAX_CURVE_POINTS = 2000
CURVE_COLOURS = [(86, 180, 233), (230, 159, 0), (0, 158, 115), (240, 228, 66), (204, 121, 167),
                 (213, 94, 0), (0, 114, 178), (200, 200, 200)]
_ACTIVE = (RunState.RUNNING, RunState.PAUSED)


def tile_row(images: list[np.ndarray], pad: int = 1) -> np.ndarray:
    """(C, H, W) images in [-1, 1] side by side as one uint8 (H, W·k) or (H, W·k, 3) picture."""
    c, h, w = images[0].shape
    out = np.full((c, h, len(images) * (w + pad) - pad), 60, np.uint8)
    for i, im in enumerate(images):
        out[:, :, i * (w + pad): i * (w + pad) + w] = np.clip((im + 1.0) * 127.5, 0, 255).astype(np.uint8)
    return out[0] if c == 1 else np.ascontiguousarray(out.transpose(1, 2, 0))


class ToolRunView(QWidget):
    """Run controls and live results of one image tool."""

    #: the user picked proposal ``i`` (a click on it)
    picked = Signal(int)
    run_requested = Signal()

    def __init__(self, host, owner: str, second_curve: str = "", parent=None) -> None:
        super().__init__(parent)
        self.host = host
        self.owner = owner
        self.state = RunState.IDLE
        self.frame: ToolFrame | None = None
        self.reference: np.ndarray | None = None  # drawn first in the strip (masked input / source)
        self.selected = 0
        self._scrubbing = False
        self._offset = 0  # 1 when the strip starts with the reference image

        controls = QGroupBox("Run")
        grid = QGridLayout(controls)
        self.n_spin = QSpinBox()
        self.n_spin.setRange(1, 16)
        self.n_spin.setValue(4)
        self.n_spin.setToolTip("Proposals run side by side, each from its own seed")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(0, 100_000)
        self.steps_spin.setSingleStep(10)
        self.steps_spin.setValue(200)
        self.steps_spin.setToolTip("Langevin steps of the run")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Seed of the first proposal; the others follow from it")
        self.temperature = LogSlider(0.01, 100.0, 1.0, decimals=3)
        self.temperature.setToolTip("Temperature T: the chains sample p_T(x) ∝ exp(−E(x)/T). Live.")
        self.step_size = LogSlider(1e-5, 1000.0, 10.0, decimals=5)
        self.step_size.setToolTip("Step size: ε of x ← x − (ε/2)∇U + √ε·ξ, or α of tuned Langevin "
                                  "x ← x − α∇U + σ·ξ (the model's own sampler). Live.")
        self.noise = LogSlider(1e-5, 1.0, 0.005, decimals=5)
        self.noise.setToolTip("Noise σ of tuned Langevin (plain Langevin uses √ε). Live.")
        for row, (label, w) in enumerate((("Proposals", self.n_spin), ("Steps", self.steps_spin),
                                          ("Seed", self.seed_spin))):
            grid.addWidget(QLabel(label), row, 0)
            grid.addWidget(w, row, 1)
        for row, (label, w) in enumerate((("Temperature", self.temperature), ("Step size", self.step_size),
                                          ("Noise σ", self.noise))):
            grid.addWidget(QLabel(label), row, 2)
            grid.addWidget(w, row, 3)
        grid.setColumnStretch(3, 1)
        self.run_button = QPushButton("Run")
        self.run_button.setObjectName(f"{owner}_run")
        self.pause_button = QPushButton("Pause")
        self.step_button = QPushButton("Step")
        self.stop_button = QPushButton("Stop")
        self.run_button.setToolTip("Start a new run from the current input")
        self.step_button.setToolTip("Pause and advance one Langevin step")
        buttons = QHBoxLayout()
        for b in (self.run_button, self.pause_button, self.step_button, self.stop_button):
            buttons.addWidget(b)
        self.status = QLabel("")
        self.status.setObjectName(f"{owner}_status")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        buttons.addWidget(self.status, 1)
        grid.addLayout(buttons, 3, 0, 1, 4)

        self.strip = pg.GraphicsLayoutWidget()
        self.strip.setBackground((30, 30, 30))
        self.strip_view = self.strip.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.strip_image = pg.ImageItem(axisOrder="row-major")
        self.strip_view.addItem(self.strip_image)
        self.highlight = pg.QtWidgets.QGraphicsRectItem(0, 0, 1, 1)
        self.highlight.setPen(pg.mkPen((255, 200, 60), width=2, cosmetic=True))
        self.strip_view.addItem(self.highlight)
        self.highlight.hide()
        self.strip.setMinimumHeight(110)
        self.strip.scene().sigMouseClicked.connect(self._on_strip_click)

        self.energy_plot = pg.PlotWidget()
        self.energy_plot.setLabel("left", "energy E")
        self.energy_plot.setLabel("bottom", "step")
        self.energy_plot.setMinimumHeight(90)
        self.energy_plot.getAxis("left").enableAutoSIPrefix(False)
        self.second_plot = None
        if second_curve:
            self.second_plot = pg.PlotWidget()
            self.second_plot.setLabel("left", second_curve)
            self.second_plot.setLabel("bottom", "step")
            self.second_plot.setMinimumHeight(90)
            self.second_plot.getAxis("left").enableAutoSIPrefix(False)
        self._curves: dict[int, list] = {}  # id(plot) → one curve item per proposal
        self.scrub = JumpSlider(Qt.Orientation.Horizontal)
        self.scrub.setObjectName(f"{owner}_scrub")
        self.scrub.setEnabled(False)
        self.scrub.setToolTip("Scrub through the recorded steps of the last run")
        self.scrub_label = QLabel("step –")
        self.scrub_label.setMinimumWidth(120)

        plots = QHBoxLayout()
        plots.addWidget(self.energy_plot, 1)
        if self.second_plot is not None:
            plots.addWidget(self.second_plot, 1)
        scrub_row = QHBoxLayout()
        scrub_row.addWidget(QLabel("Recorded"))
        scrub_row.addWidget(self.scrub, 1)
        scrub_row.addWidget(self.scrub_label)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(controls)
        lay.addWidget(self.strip, 3)
        lay.addLayout(scrub_row)
        lay.addLayout(plots, 2)

        self.run_button.clicked.connect(lambda: self.run_requested.emit())
        self.pause_button.clicked.connect(self.toggle_pause)
        self.step_button.clicked.connect(self.single_step)
        self.stop_button.clicked.connect(lambda: self.host.send_tool(StopToolRun(self.owner)))
        self.temperature.valueChanged.connect(lambda v: self._live(temperature=v))
        self.step_size.valueChanged.connect(lambda v: self._live(step_size=v))
        self.noise.valueChanged.connect(lambda v: self._live(noise=v))
        self.scrub.valueChanged.connect(self._on_scrub)
        self._sync_buttons()

    # --- settings --------------------------------------------------------------------------------
    def use_model(self, info: ToolModelInfo) -> None:
        """Take the model's own sampler settings (what it was trained with)."""
        s = info.sampler
        self.temperature.setValue(float(s.get("temperature", 1.0)))
        self.step_size.setValue(float(s.get("step_size", 0.01)))
        self.noise.setValue(float(s.get("noise", 0.005)))
        self.host.tool_live(self.owner).update(
            temperature=self.temperature.value(), step_size=self.step_size.value(), noise=self.noise.value())
        kind = s.get("kind", "langevin")
        self.step_size.setToolTip(
            ("Step α of tuned Langevin x ← x − α∇U + σ·ξ (a heuristic, not an exact sampler of p_T). Live."
             if kind == "tuned" else "Step ε of Langevin x ← x − (ε/2)∇U + √ε·ξ. Live."))

    def _live(self, **changes) -> None:
        try:
            self.host.update_tool_live(self.owner, **changes)
        except ValueError as exc:
            self.status.setText(str(exc))

    def toggle_pause(self) -> None:
        live = self.host.tool_live(self.owner)
        paused = not live.snapshot().paused
        self.host.update_tool_live(self.owner, paused=paused)
        self.pause_button.setText("Resume" if paused else "Pause")

    def clear_results(self) -> None:
        """Forget the shown run (another model was opened)."""
        self.frame = None
        self.strip_image.clear()
        self.highlight.hide()
        self._clear_curves()
        self.scrub.setEnabled(False)
        self.scrub_label.setText("step –")
        self.status.setText("")

    def single_step(self) -> None:
        self.host.step_tool(self.owner)
        self.pause_button.setText("Resume")

    def prepare_run(self) -> None:
        """Unpause and reset the views before a new run starts."""
        self.host.update_tool_live(self.owner, paused=False)
        self.pause_button.setText("Pause")
        self._clear_curves()
        self.selected = 0

    # --- engine events ---------------------------------------------------------------------------
    def on_run_changed(self, ev: ToolRunChanged) -> None:
        self.state = ev.state
        words = {RunState.RUNNING: "running", RunState.PAUSED: "paused", RunState.FINISHED: "finished",
                 RunState.STOPPED: "stopped", RunState.ERROR: "failed", RunState.IDLE: ""}
        self._total = ev.steps
        text = f"{words[ev.state]} · step {ev.step:,} of {ev.steps:,}"
        if ev.message and ev.state in (RunState.ERROR, RunState.STOPPED) and ev.message != words[ev.state]:
            text += f" · {ev.message}"
        self.status.setText(text)
        self.status.setToolTip(text)
        if self.frame is not None:
            self.scrub.setEnabled(len(self.frame.trace_steps) > 1 and ev.state != RunState.RUNNING)
        if ev.state not in _ACTIVE:
            self.pause_button.setText("Pause")
            if self.frame is not None and not self.frame.recorded:
                self.scrub_label.setText(f"step {self.frame.step:,}")  # no rate once it stopped
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        active = self.state in _ACTIVE
        self.pause_button.setEnabled(active)
        self.stop_button.setEnabled(active)
        self.step_button.setEnabled(active)

    def show_frame(self, frame: ToolFrame) -> None:
        self.frame = frame
        images = list(frame.proposals)
        self._offset = 0
        if self.reference is not None and self.reference.shape == images[0].shape:
            images = [self.reference, *images]
            self._offset = 1
        row = tile_row(images)
        self.strip_image.setImage(row, autoLevels=False, levels=(0, 255))
        h, w = row.shape[:2]
        self.strip_view.setRange(xRange=(0, w), yRange=(0, h), padding=0.02)
        self._place_highlight()
        if not frame.recorded:
            self._draw_curves(frame)
            self._scrubbing = True
            try:
                self.scrub.setRange(0, max(len(frame.trace_steps) - 1, 0))
                self.scrub.setValue(len(frame.trace_steps) - 1)
                # scrubbing a running chain would fight its live frames: pause or let it finish
                self.scrub.setEnabled(len(frame.trace_steps) > 1 and self.state != RunState.RUNNING)
            finally:
                self._scrubbing = False
            if self.state in _ACTIVE:  # the status follows the chains, not only state changes
                word = "running" if self.state == RunState.RUNNING else "paused"
                self.status.setText(f"{word} · step {frame.step:,} of {getattr(self, '_total', 0):,}")
            rate = format_rate(frame.steps_per_sec) if self.state == RunState.RUNNING else ""
            self.scrub_label.setText(f"step {frame.step:,}" + (f" · {rate}" if rate else ""))
        else:
            self.scrub_label.setText(f"step {frame.step:,} (recorded)")

    def _draw_curves(self, frame: ToolFrame) -> None:
        # the curve items stay and get new data: clearing and re-adding 2 × 16 items per frame
        # held the GUI thread for seconds while a run streamed frames
        n_rows = len(frame.trace_steps)
        stride = max(1, n_rows // MAX_CURVE_POINTS)  # a long run is drawn thinned
        steps = frame.trace_steps[::stride].astype(np.float64)
        for plot, values in ((self.energy_plot, frame.energy_trace), (self.second_plot, frame.distance_trace)):
            if plot is None or values.size == 0:
                continue
            curves = self._curves.setdefault(id(plot), [])
            while len(curves) > values.shape[1]:
                plot.removeItem(curves.pop())
            while len(curves) < values.shape[1]:
                curves.append(plot.plot())
            for i, curve in enumerate(curves):
                colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
                curve.setPen(pg.mkPen(colour, width=2 if i == self.selected else 1))
                curve.setData(steps, values[::stride, i])

    def _clear_curves(self) -> None:
        for plot in (self.energy_plot, self.second_plot):
            if plot is not None:
                plot.clear()
        self._curves = {}

    def _place_highlight(self) -> None:
        if self.frame is None:
            self.highlight.hide()
            return
        c, h, w = self.frame.proposals.shape[1:]
        x = (self.selected + self._offset) * (w + 1)
        self.highlight.setRect(x - 0.5, -0.5, w + 1, h + 1)
        self.highlight.show()

    def _on_strip_click(self, ev) -> None:
        if self.frame is None:
            return
        p = self.strip_view.mapSceneToView(ev.scenePos())
        w = self.frame.proposals.shape[-1]
        i = int(p.x() // (w + 1)) - self._offset
        if 0 <= i < len(self.frame.proposals):
            self.selected = i
            self._place_highlight()
            if not self.frame.recorded:
                self._draw_curves(self.frame)
            self.picked.emit(i)

    def _on_scrub(self, index: int) -> None:
        if self._scrubbing or self.frame is None or not len(self.frame.trace_steps):
            return
        index = min(max(index, 0), len(self.frame.trace_steps) - 1)
        self.host.send_tool(FetchToolStep(self.owner, int(self.frame.trace_steps[index])))

    def selected_proposal(self) -> np.ndarray | None:
        if self.frame is None:
            return None
        return self.frame.proposals[min(self.selected, len(self.frame.proposals) - 1)].copy()

    def shown_step(self) -> int | None:
        return None if self.frame is None else int(self.frame.step)
