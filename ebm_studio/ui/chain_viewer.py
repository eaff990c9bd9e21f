"""The live Langevin viewer: chains moving under the current model, with controls that act live.

Every control either changes a live setting (read by the engine at the next step: temperature,
step size, noise, sampler, leapfrog steps, steps per frame) or restarts the chains (number of
chains, initialisation, seed, Reset). The widget never touches tensors: it sends requests and
draws the frames it gets.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ebm_studio.core.chains import INIT_LABELS
from ebm_studio.core.samplers import SAMPLER_KINDS, SAMPLER_LABELS
from ebm_studio.ui.frame_views import EnergyTrace, FrameView
from ebm_studio.ui.level_strip import LevelStrip
from ebm_studio.ui.widgets import LogSlider, format_rate
from ebm_studio.worker.frames import Frame
from ebm_studio.worker.api import MAX_CHAINS, MAX_IMAGE_CHAINS, ModelInfo, StartJob
from ebm_studio.worker.requests import JobRequest
from ebm_studio.worker.thread import EngineHost

TIPS = {
    "sampler": (
        "<b>Langevin</b>: x ← x − (ε/2)∇U(x) + √ε·ξ, U = E/T (+|x|²/2σ²): samples p_T as ε → 0.<br>"
        "<b>Tuned Langevin</b>: x ← x − α∇U(x) + σ·ξ with α and σ set independently: a heuristic "
        "used for images, <i>not</i> an exact sampler.<br>"
        "<b>MALA</b>: the Langevin proposal accepted with Metropolis–Hastings: exact for any ε.<br>"
        "<b>HMC</b>: L leapfrog steps of size ε with unit mass, then accept/reject: exact."
    ),
    "temperature": "Temperature T: chains sample p_T(x) ∝ exp(−E(x)/T). T < 1 sharpens the modes, "
    "T > 1 flattens the landscape. Enters the update through ∇U = ∇E/T.",
    "step_size": "Step size: ε in x ← x − (ε/2)∇U + √ε·ξ (Langevin, MALA), the leapfrog step ε (HMC), "
    "or α in x ← x − α∇U + σ·ξ (tuned Langevin).",
    "noise": "Noise σ of tuned Langevin: x ← x − α∇U + σ·ξ. (Langevin and MALA use √ε; HMC draws "
    "fresh momenta.)",
    "leapfrog": "HMC: number L of leapfrog steps per proposal (trajectory length L·ε).",
    "spf": "At most this many MCMC steps per drawn frame (frames are drawn ≤ 60 per second), "
    "so 1 shows every step at 60 steps/s; large values run at full speed.",
    "chains": "Number of chains N run in parallel (restarts the chains).",
    "init": "Where chains start: uniform noise on the data box, real data (as contrastive "
    "divergence), or the model's replay buffer (when the checkpoint has one). Restarts the chains.",
    "seed": "Random seed of the chains' start and noise: the same seed repeats the same run.",
}


class ChainViewer(QWidget):
    """Live chains: a frame view, an energy trace and the controls."""

    status = Signal(str)

    def __init__(self, host: EngineHost, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chain_viewer")
        self.host = host
        self.model_info: ModelInfo | None = None  # the model whose chains this runs
        self.job_id: int | None = None
        self.paused = False

        self.view = FrameView()
        self.levels = LevelStrip()
        self.trace = EnergyTrace()
        self.trace.setMaximumHeight(220)
        self.accept_label = QLabel("")
        self.step_label = QLabel("step 0")
        self.step_label.setToolTip(
            "Steps, chains and speed of the chains shown; bf16 or fp32 is what the network computes "
            "in while sampling (the model's precision setting, see Training ▸ Run ▸ Precision).")
        self.note_label = QLabel("")
        self.note_label.setObjectName("viewer_note")
        self.note_label.setWordWrap(True)
        self.note_label.setVisible(False)
        self.accept_label.setObjectName("accept_label")

        # --- controls -------------------------------------------------------------------------
        self.sampler_box = QComboBox()
        for k in SAMPLER_KINDS:
            self.sampler_box.addItem(SAMPLER_LABELS[k], k)
        self.sampler_box.setToolTip(TIPS["sampler"])
        self.init_box = QComboBox()
        for k, label in INIT_LABELS.items():
            self.init_box.addItem(label, k)
        self.init_box.setToolTip(TIPS["init"])
        self.chains_spin = QSpinBox()
        self.chains_spin.setRange(1, MAX_CHAINS)
        self.chains_spin.setValue(2048)
        self.chains_spin.setKeyboardTracking(False)
        self.chains_spin.setToolTip(TIPS["chains"])
        self.temperature = LogSlider(0.01, 100.0, 1.0, decimals=3)
        self.temperature.setToolTip(TIPS["temperature"])
        self.step_size = LogSlider(1e-5, 100.0, 0.01, decimals=5)
        self.step_size.setToolTip(TIPS["step_size"])
        self.noise = LogSlider(1e-4, 1.0, 0.005, decimals=4)
        self.noise.setToolTip(TIPS["noise"])
        self.leapfrog = QSpinBox()
        self.leapfrog.setRange(1, 100)
        self.leapfrog.setValue(5)
        self.leapfrog.setToolTip(TIPS["leapfrog"])
        self.spf = QSpinBox()
        self.spf.setRange(1, 1000)
        self.spf.setValue(5)
        self.spf.setToolTip(TIPS["spf"])
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip(TIPS["seed"])

        self.play_button = QPushButton("Pause")
        self.play_button.setObjectName("play_button")
        self.play_button.setToolTip("Play / pause the chains (Space)")
        self.step_button = QPushButton("Step")
        self.step_button.setToolTip("Advance one MCMC step (Right arrow)")
        self.reset_button = QPushButton("Reset chains")
        self.reset_button.setToolTip("Restart the chains from the chosen initialisation")

        form = QFormLayout()
        form.addRow("Sampler", self.sampler_box)
        form.addRow("Start from", self.init_box)
        form.addRow("Chains", self.chains_spin)
        form.addRow("Temperature T", self.temperature)
        form.addRow("Step size ε / α", self.step_size)
        self.noise_label = QLabel("Noise σ")
        form.addRow(self.noise_label, self.noise)
        self.leapfrog_label = QLabel("Leapfrog steps L")
        form.addRow(self.leapfrog_label, self.leapfrog)
        form.addRow("Steps per frame", self.spf)
        form.addRow("Seed", self.seed)
        buttons = QHBoxLayout()
        for b in (self.play_button, self.step_button, self.reset_button):
            buttons.addWidget(b)
        box = QGroupBox("Sampler")
        vb = QVBoxLayout(box)
        vb.addLayout(form)
        vb.addLayout(buttons)
        vb.addWidget(self.step_label)
        vb.addWidget(self.note_label)
        vb.addWidget(self.accept_label)
        vb.addStretch(1)
        box.setMinimumWidth(330)

        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.view)
        right.addWidget(self.levels)
        right.addWidget(self.trace)
        right.setStretchFactor(0, 4)
        right.setStretchFactor(2, 1)
        lay = QHBoxLayout(self)
        lay.addWidget(box)
        lay.addWidget(right, 1)

        # --- wiring ---------------------------------------------------------------------------
        self.temperature.valueChanged.connect(lambda v: self._live(temperature=v))
        self.step_size.valueChanged.connect(lambda v: self._live(step_size=v))
        self.noise.valueChanged.connect(lambda v: self._live(noise=v))
        self.leapfrog.valueChanged.connect(lambda v: self._live(n_leapfrog=v))
        self.spf.valueChanged.connect(lambda v: self._live(steps_per_frame=v))
        self.sampler_box.currentIndexChanged.connect(self._sampler_changed)
        self.chains_spin.valueChanged.connect(lambda _: self.restart())
        self.init_box.currentIndexChanged.connect(lambda _: self.restart())
        self.seed.valueChanged.connect(lambda _: self.restart())
        self.play_button.clicked.connect(self.toggle_pause)
        self.step_button.clicked.connect(self.single_step)
        self.reset_button.clicked.connect(lambda: self.restart())  # not clicked(checked)
        self._sampler_changed()
        self._push_all_live()

    # --- live settings --------------------------------------------------------------------------
    def _live(self, **changes) -> None:
        try:
            self.host.update_live(**changes)
        except ValueError as exc:
            self.status.emit(str(exc))

    def _push_all_live(self) -> None:
        self._live(
            temperature=self.temperature.value(),
            step_size=self.step_size.value(),
            noise=self.noise.value(),
            sampler=self.sampler_box.currentData(),
            n_leapfrog=self.leapfrog.value(),
            steps_per_frame=self.spf.value(),
        )

    def _sampler_changed(self) -> None:
        kind = self.sampler_box.currentData()
        tuned, hmc = kind == "tuned", kind == "hmc"
        for w in (self.noise, self.noise_label):
            w.setEnabled(tuned)
        for w in (self.leapfrog, self.leapfrog_label):
            w.setEnabled(hmc)
        self._live(sampler=kind)

    # --- jobs -----------------------------------------------------------------------------------
    def restart(self, init_state=None, mask=None, purpose: str = "viewer") -> None:
        """(Re)start the viewer's chains under the current model."""
        if self.model_info is None:
            return
        self._push_all_live()
        self.trace.clear_trace()
        cfg = {"n_chains": self.chains_spin.value(), "init": self.init_box.currentData()}
        self.host.live.update(paused=self.paused)
        self.host.send(StartJob(JobRequest(
            "sample", cfg, init_state=init_state, mask=mask, seed=self.seed.value(), purpose=purpose,
        )))

    def toggle_pause(self) -> None:
        self.set_paused(not self.paused)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.play_button.setText("Play" if paused else "Pause")
        self.host.pause(paused)
        if not paused:
            self.set_note("")  # moving again: what held the chains no longer does

    def single_step(self) -> None:
        self.set_paused(True)
        self.host.single_step(1)

    def set_note(self, text: str) -> None:
        """A sentence under the controls about what the chains do now (empty: none)."""
        self.note_label.setText(text)
        self.note_label.setVisible(bool(text))

    def give_way(self, note: str) -> None:
        """Pause the chains for a job that needs the processor, and say so."""
        self.set_note(note)
        self.set_paused(True)

    # --- model and frames -----------------------------------------------------------------------
    def set_model(self, info: ModelInfo) -> None:
        """A new model: adopt its sampler defaults and restart the chains."""
        self.model_info = info
        images = info.kind == "images"
        d = info.sampler_defaults
        widgets = (self.sampler_box, self.init_box, self.chains_spin, self.step_size, self.noise,
                   self.temperature)
        for w in widgets:
            w.blockSignals(True)
        try:
            kind = d.get("kind", "tuned" if images else "langevin")
            self.sampler_box.setCurrentIndex(max(0, self.sampler_box.findData(kind)))
            self.step_size.setValue(float(d.get("step_size", 10.0 if images else 0.01)))
            self.noise.setValue(float(d.get("noise", 0.005)))
            self.temperature.setValue(float(d.get("temperature", 1.0)))
            self.chains_spin.setMaximum(MAX_IMAGE_CHAINS if images else MAX_CHAINS)
            self.chains_spin.setValue(64 if images else 2048)
            init = "buffer" if info.has_buffer else "noise"
            model_has = {"buffer": info.has_buffer, "data": info.has_data}
            for i, k in enumerate(INIT_LABELS):
                item = self.init_box.model().item(i)
                item.setEnabled(k == "noise" or model_has.get(k, False))
            self.init_box.setCurrentIndex(self.init_box.findData(init))
        finally:
            for w in widgets:
                w.blockSignals(False)
        # a diffusion-recovery model samples each level with plain Langevin, step ε = c·s_t²
        drl = info.method == "drl"
        self.sampler_box.setEnabled(not drl)
        self.step_size.setToolTip(TIPS["step_size"] + (
            "<br><b>This model</b> (diffusion recovery): c in ε_t = c·s_t², relative to each "
            "noise level's variance s_t²." if drl else ""))
        self._sampler_changed()
        if images:
            self.spf.setValue(1)
        self.restart()

    def show_frame(self, frame: Frame) -> None:
        caption = f"step {frame.step}"
        if frame.kind == "points" and frame.points is not None and len(frame.points):
            lo, hi = frame.box
            outside = float(((frame.points < lo) | (frame.points > hi)).any(axis=1).mean())
            if outside > 0.5:
                # runaway chains leave an empty plot: say why instead of showing nothing
                caption += (f"\n{outside:.0%} of the chains are off the plot: step size too large?"
                            "\nLower it, then Reset chains.")
        self.view.show_frame(frame, caption)
        self.levels.show_levels(frame.levels)
        self.trace.add(frame.step, frame.energies)
        self.step_label.setText(
            f"step {frame.step:,} · {frame.n_chains:,} chains · {format_rate(frame.steps_per_sec)}"
            + (f" · {frame.precision}" if frame.precision else "")
        )
        if frame.accept is not None:
            mean = frame.mean_accept
            text = f"acceptance {frame.accept:.2f}"
            if mean is not None:
                text += f" (mean {mean:.2f})"
            self.accept_label.setText(text)
        else:
            self.accept_label.setText("")

    def save_settings(self, settings) -> None:
        """Nothing to keep between sessions: a model brings its own settings."""

    def settings_state(self) -> dict:
        return {
            "sampler": self.sampler_box.currentData(),
            "temperature": self.temperature.value(),
            "step_size": self.step_size.value(),
            "noise": self.noise.value(),
            "steps_per_frame": self.spf.value(),
            "seed": self.seed.value(),
        }
