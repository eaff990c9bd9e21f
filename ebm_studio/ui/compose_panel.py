"""Composition: show ``w₁E₁ + w₂E₂`` (a product of experts, p ∝ p₁^{w₁}·p₂^{w₂}) and sample it.

Each of the two energies is the current model, an analytic energy, or a checkpoint file. "Compose"
asks the engine to install the sum as the current model (the viewer's chains restart on it);
afterwards the weight controls act live: the engine changes ``SumEnergy.weights`` in place, the
running chains feel it at their next step and a fresh landscape follows. Weight changes are
coalesced (one request in flight, the newest waiting), so a dragged slider never queues a backlog of
landscape evaluations. "Back to the model" restores the model (and training run) from before.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ebm_studio.worker.api import (
    ANALYTIC_LABELS,
    Compose,
    Composed,
    ModelInfo,
    RequestRefused,
    SetComposeWeights,
    Uncompose,
    Uncomposed,
    WeightsChanged,
)
from ebm_studio.worker.thread import EngineHost

WEIGHT_RANGE = (-1.0, 3.0)
SLIDER_STEPS = 400

TIPS = {
    "term": "An energy E<sub>i</sub>: the current model, an analytic energy with an exact density, or a "
            "checkpoint (.pt) of a 2-D model.",
    "weight": "Weight w<sub>i</sub> of E<sub>i</sub> in E = w₁E₁ + w₂E₂. The density is "
              "p ∝ exp(−E/T) = p₁<sup>w₁</sup>·p₂<sup>w₂</sup> (a product of experts): w = 0 "
              "ignores an expert, w > 1 sharpens it, "
              "w < 0 pushes mass away from it. Live once composed.",
    "compose": "Install w₁E₁ + w₂E₂ as the current model: the landscape and the viewer's chains "
               "switch to it (and Save checkpoint saves it).",
    "back": "Return to the model (and training run) that was current before composing.",
}


class TermPicker(QWidget):
    """One term: a source combo (+ a checkpoint path) and a weight (slider + spin box)."""

    changed = Signal()
    weight_changed = Signal(float)

    def __init__(self, index: int, default: str, weight: float, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(f"compose_term_{index}")
        self.index = index
        self.path: str | None = None
        self.source = QComboBox()
        self.source.setObjectName(f"compose_source_{index}")
        self.source.addItem("Current model", "current")
        for key, label in ANALYTIC_LABELS.items():
            self.source.addItem(label, f"analytic:{key}")
        self.source.addItem("Checkpoint file…", "checkpoint")
        self.source.setToolTip(TIPS["term"])
        # item data: "current", "analytic:<key>" or "checkpoint" (plain strings: findData compares them)
        i = self.source.findData(f"analytic:{default}") if default != "current" else 0
        self.source.setCurrentIndex(max(0, i))
        self.path_label = QLabel("")
        self.path_label.setWordWrap(True)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_STEPS)
        self.slider.setToolTip(TIPS["weight"])
        self.spin = QDoubleSpinBox()
        self.spin.setObjectName(f"compose_weight_{index}")
        self.spin.setRange(*WEIGHT_RANGE)
        self.spin.setDecimals(2)
        self.spin.setSingleStep(0.05)
        self.spin.setKeyboardTracking(False)
        self.spin.setToolTip(TIPS["weight"])
        self._sync = False
        self.set_weight(weight)
        row = QHBoxLayout()
        row.addWidget(QLabel(f"w{'₁₂'[index]}"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel(f"E{'₁₂'[index]}"))
        lay.addWidget(self.source)
        lay.addWidget(self.path_label)
        lay.addLayout(row)
        self.source.activated.connect(self._on_source)
        self.slider.valueChanged.connect(self._from_slider)
        self.spin.valueChanged.connect(self._from_spin)

    def _on_source(self, _index: int) -> None:
        if self.source.currentData() == "checkpoint":
            path, _ = QFileDialog.getOpenFileName(self, "Open a 2-D checkpoint", str(Path.cwd()),
                                                  "EBM Studio checkpoints (*.pt);;All files (*)")
            if path:
                self.set_checkpoint(path)
            elif self.path is None:
                self.source.setCurrentIndex(0)
        self.changed.emit()

    def set_checkpoint(self, path: str) -> None:
        self.path = str(path)
        self.source.setCurrentIndex(self.source.findData("checkpoint"))
        self.path_label.setText(Path(path).name)

    def set_source(self, kind: str, key: str | None = None) -> None:
        data = kind if key is None else f"{kind}:{key}"
        self.source.setCurrentIndex(max(0, self.source.findData(data)))

    def spec(self) -> dict:
        kind, _, key = str(self.source.currentData()).partition(":")
        if kind == "current":
            return {"source": "current"}
        if kind == "analytic":
            return {"source": "analytic", "name": key}
        return {"source": "checkpoint", "path": self.path or ""}

    # --- weight (slider ↔ spin box) ------------------------------------------------------------
    def weight(self) -> float:
        return self.spin.value()

    def set_weight(self, w: float) -> None:
        self._sync = True
        try:
            self.spin.setValue(w)
            lo, hi = WEIGHT_RANGE
            self.slider.setValue(round((w - lo) / (hi - lo) * SLIDER_STEPS))
        finally:
            self._sync = False

    def _from_slider(self, pos: int) -> None:
        if self._sync:
            return
        lo, hi = WEIGHT_RANGE
        self._sync = True
        try:
            self.spin.setValue(round(lo + (hi - lo) * pos / SLIDER_STEPS, 2))
        finally:
            self._sync = False
        self.weight_changed.emit(self.spin.value())

    def _from_spin(self, v: float) -> None:
        if self._sync:
            return
        self.set_weight(v)
        self.weight_changed.emit(v)


class ComposePanel(QWidget):
    """Two term pickers, Compose / Back, and a status line."""

    def __init__(self, host: EngineHost, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compose_panel")
        self.host = host
        self.active = False  # the engine shows our composition
        self._in_flight = False
        self._pending: list[float] | None = None
        self.terms = [TermPicker(0, "current", 1.0), TermPicker(1, "gaussian", 0.5)]
        self.compose_button = QPushButton("Compose")
        self.compose_button.setObjectName("compose_button")
        self.compose_button.setToolTip(TIPS["compose"])
        self.back_button = QPushButton("Back to the model")
        self.back_button.setObjectName("uncompose_button")
        self.back_button.setToolTip(TIPS["back"])
        self.back_button.setEnabled(False)
        self.status = QLabel(
            "E = w₁E₁ + w₂E₂, so p ∝ p₁<sup>w₁</sup>·p₂<sup>w₂</sup> (a product of experts).")
        self.status.setObjectName("compose_status")
        self.status.setWordWrap(True)
        buttons = QGridLayout()
        buttons.addWidget(self.compose_button, 0, 0)
        buttons.addWidget(self.back_button, 0, 1)
        lay = QVBoxLayout(self)
        for t in self.terms:
            lay.addWidget(t)
        lay.addLayout(buttons)
        lay.addWidget(self.status)
        lay.addStretch(1)
        self.compose_button.clicked.connect(self.compose)
        self.back_button.clicked.connect(self.uncompose)
        for t in self.terms:
            t.weight_changed.connect(lambda _v: self._weights_changed())

    def weights(self) -> list[float]:
        return [t.weight() for t in self.terms]

    def compose(self) -> None:
        for t in self.terms:
            spec = t.spec()
            if spec["source"] == "checkpoint" and not spec["path"]:
                self.status.setText(f"Choose a checkpoint file for E{'₁₂'[t.index]} first.")
                return
        self.status.setText("Composing…")
        self.host.send(Compose(tuple(t.spec() for t in self.terms), tuple(self.weights())))

    def uncompose(self) -> None:
        self.host.send(Uncompose())

    def _weights_changed(self) -> None:
        if not self.active:
            return
        if self._in_flight:
            self._pending = self.weights()  # latest wins
            return
        self._send(self.weights())

    def _send(self, weights: list[float]) -> None:
        self._in_flight = True
        self.host.send(SetComposeWeights(tuple(weights)))

    def landscape_arrived(self, request_id) -> None:
        """A landscape for a weight change arrived: send the newest waiting weights, if any."""
        if request_id != "weights":
            return
        self._in_flight = False
        if self._pending is not None and self.active:
            w, self._pending = self._pending, None
            self._send(w)

    def on_event(self, ev) -> None:
        """Engine answers that concern the composition."""
        if isinstance(ev, Composed):
            self.active = True
            self.back_button.setEnabled(True)
            self.status.setText(f"Showing {ev.name}. The weights now act live.")
        elif isinstance(ev, WeightsChanged):
            self.status.setText(f"Showing {ev.name}.")
        elif isinstance(ev, Uncomposed):
            self.active = False
            self.back_button.setEnabled(False)
            self.status.setText(f"Back to {ev.name}.")
        elif isinstance(ev, RequestRefused) and ev.request in ("compose", "weights", "uncompose"):
            self._in_flight = False
            self.status.setText(ev.message)

    def model_replaced(self, info: ModelInfo) -> None:
        """Another model became current (a checkpoint, a training run): the composition is gone."""
        if info.composition is None and self.active and info.source != "composition":
            self.active = False
            self._in_flight = False
            self._pending = None
            self.back_button.setEnabled(False)
