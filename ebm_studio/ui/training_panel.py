"""The Training panel: choose data, model and sampler, press Train, watch the run evolve.

Layout: on the left the data picker (:mod:`.training_data`) and the settings form
(:mod:`.training_form`, presets as defaults); on the right the run controls (Train / Pause / Stop /
Continue, a progress bar with steps per second and ETA), the checkpoint and TOML buttons, the live
negatives (or the replay buffer) with the 2-D landscape beside them, and the curves
(:mod:`.metric_plots`).

The panel never touches tensors. It sends requests (a ``train`` :class:`JobRequest`, live settings,
pause/stop, save/open, rollback) and draws what the engine answers: ``metrics_ready`` rows,
``job_state`` changes, train frames (``on_frame``), ``landscape_ready`` for 2-D sets and
``model_changed`` (a new run, a resumed checkpoint, a rollback). Drawing is throttled by time
(``REDRAW_HZ``): frames and landscapes are kept as "latest wins" and drawn by a timer, only while
the panel is visible.

Which settings change live: learning rate, sampler step size, noise and temperature go into the
engine's live settings and the running job applies them at its next step. Everything else shapes
the run itself (data, network, chain initialisation, batch...) and is locked while it runs.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ebm_studio.core.config import (
    METHOD_LABELS,
    PRESET_METHOD,
    PRESETS,
    ConfigError,
    TrainConfig,
    preset_for,
    preset_for_method,
    preset_name_for,
)
from ebm_studio.ui.frame_views import FrameView
from ebm_studio.ui.level_strip import LevelStrip
from ebm_studio.ui.metric_plots import MetricPlots
from ebm_studio.ui.training_data import DataPicker
from ebm_studio.ui.training_form import SettingsForm
from ebm_studio.ui.widgets import LogSlider, RedrawTimer, format_rate
from ebm_studio.worker.frames import Frame
from ebm_studio.worker.requests import JobRequest
from ebm_studio.ui.session import Session
from ebm_studio.ui.training_files import TrainingFiles
from ebm_studio.worker.api import (
    BufferFrame,
    JobInfo,
    JobState,
    ComputeLandscape,
    LandscapeResult,
    ModelInfo,
    RequestBufferFrame,
    ResumeAndTrain,
    ResumeFailed,
    SetDevice,
)

REDRAW_HZ = 10.0
#: how often the buffer view asks the engine for a new buffer snapshot
BUFFER_POLL_S = 1.0
#: steps between 2-D landscape refreshes (the job also spaces them in time)
LANDSCAPE_EVERY = 25
#: seconds of history the steps-per-second estimate averages over
RATE_WINDOW_S = 5.0
#: the engine slot this panel's runs use (its own live settings, beside the viewer's)
TRAINING = "training"
LANDSCAPE_CMAP = "viridis"
#: the landscape shows log p_T down to this far below its maximum (the rest is one colour)
LANDSCAPE_RANGE = 12.0

#: the data set selected at start-up (the 2-D preset's)
DEFAULT_DATA = PRESETS["2-D quick"]().data.name

LOCK_NOTE = (
    "While the run is going, only the learning rate, step size, noise and temperature change "
    "(live, at the next step). Data, network, chain start, MCMC steps, batch and the rest shape "
    "the run itself: Stop, then Train to start a new run with them."
)


def _fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TrainingPanel(TrainingFiles, QWidget):
    """Model training: data, settings, run controls, live samples, landscape and curves."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        host = session.host
        self.session = session
        self.setObjectName("training_panel")
        self.host = host
        #: the run's state as the engine last reported it (IDLE before a run, and while starting)
        self.state = JobState.IDLE
        #: a run was asked for and the engine has not reported it yet
        self.starting = False
        self.step = 0
        self.total = 0
        self.last_message = ""
        #: what "Continue training" continues: the engine's run, an opened checkpoint, or nothing
        self.continue_mode: str | None = None
        self.run_config: dict = {}
        self.has_run = False  # the engine's current model is a training run of this panel
        self.has_model = False  # an opened checkpoint is shown (its buffer and landscape)
        self._kept_step = 0  # the run's step that is safe in a file the user chose (or opened)
        self.checkpoint_dir = str(Path.cwd())
        self._rate_points: list[tuple[float, int]] = []
        self._latest_frame: Frame | None = None
        self._frame_dirty = False
        self._landscape: LandscapeResult | None = None
        self._landscape_dirty = False
        self._buffer_t = 0.0
        self._buffer_seed = 0
        self._buffer_waiting = False
        self.frames_drawn = 0
        self.landscapes_drawn = 0

        # --- left: data and settings -------------------------------------------------------------
        self.data = DataPicker(session)
        self.form = SettingsForm()
        left_inner = QWidget()
        left_lay = QVBoxLayout(left_inner)
        left_lay.setContentsMargins(4, 4, 4, 4)
        left_lay.addWidget(self.data)
        left_lay.addWidget(self.form)
        left_lay.addStretch(1)
        left = QScrollArea()
        left.setObjectName("training_settings_scroll")
        left.setWidget(left_inner)
        left.setWidgetResizable(True)
        left.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        left.setMinimumWidth(400)

        # --- right: controls ---------------------------------------------------------------------
        def button(text: str, name: str, tip: str) -> QPushButton:
            b = QPushButton(text)
            b.setObjectName(name)
            b.setToolTip(tip)
            return b

        self.train_button = button("Train", "train_button",
                                   "Start a new run from these settings (a fresh model)")
        self.pause_button = button("Pause", "pause_button",
                                   "Pause the run after the current step / resume it")
        self.stop_button = button("Stop", "stop_button",
                                  "Stop the run; it stays in memory (and is autosaved), so "
                                  "Continue training picks it up exactly where it stopped")
        self.continue_button = button("Continue training", "continue_button",
                                      "Continue the stopped run, or resume training an opened "
                                      "checkpoint, up to 'Training steps'")
        self.save_button = button("Save checkpoint…", "save_button",
                                  "Save a resumable checkpoint of the run (Ctrl+S)")
        self.open_button = button("Open checkpoint…", "open_button",
                                  "Open a checkpoint (Ctrl+O): sample it in Live chains, or press "
                                  "Continue training to resume its run")
        self.export_button = button("Export TOML…", "export_button",
                                    "Write these settings as a TOML file that "
                                    "'ebm-studio train --config FILE' runs headless")
        self.import_button = button("Import TOML…", "import_button",
                                    "Fill the settings from a TOML configuration file")
        for b in (self.train_button, self.continue_button):
            # room for the label and the button's margins, whatever the font
            b.setMinimumWidth(max(110, b.fontMetrics().horizontalAdvance(b.text()) + 20))
        self.progress = QProgressBar()
        self.progress.setObjectName("train_progress")
        self.progress.setFormat("step %v of %m")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.rate_label = QLabel("")
        self.rate_label.setObjectName("train_rate")
        self.status_label = QLabel("Pick a preset or data set, then press Train.")
        self.status_label.setObjectName("train_status")
        self.status_label.setWordWrap(True)
        self.message_label = QLabel("")
        self.message_label.setObjectName("train_message")
        self.message_label.setWordWrap(True)
        self.message_label.setStyleSheet("color: #e0504a;")
        self.message_label.hide()
        self.lock_note = QLabel(LOCK_NOTE)
        self.lock_note.setObjectName("lock_note")
        self.lock_note.setWordWrap(True)
        self.lock_note.setStyleSheet("color: #9a9a9a;")
        self.lock_note.hide()
        self.autosave_label = QLabel(f"Autosaves go to {host.engine.autosaver.folder}")
        self.autosave_label.setObjectName("autosave_label")
        self.autosave_label.setStyleSheet("color: #9a9a9a;")

        # divergence: what happened, and the offer to roll back with a lower learning rate
        self.banner = QFrame()
        self.banner.setObjectName("divergence_banner")
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        self.banner.setStyleSheet("#divergence_banner { background: #4a2320; border: 1px solid #c0504a; }")
        self.divergence_label = QLabel("")
        self.divergence_label.setObjectName("divergence_label")
        self.divergence_label.setWordWrap(True)
        self.rollback_lr = LogSlider(1e-8, 10.0, 1e-4, decimals=8)
        self.rollback_lr.setObjectName("rollback_lr")
        self.rollback_lr.setToolTip("The learning rate η to continue with after the rollback "
                                    "(θ ← θ − η·Adam(∇θ loss)); a tenth of the one that diverged "
                                    "is suggested.")
        self.rollback_button = button("Roll back to the last good checkpoint and lower the learning rate",
                                      "rollback_button",
                                      "Reload the newest autosave (or the last good state in memory) "
                                      "and set the learning rate below; then Continue training")
        bl = QGridLayout(self.banner)
        bl.addWidget(self.divergence_label, 0, 0, 1, 3)
        bl.addWidget(QLabel("New learning rate"), 1, 0)
        bl.addWidget(self.rollback_lr, 1, 1)
        bl.addWidget(self.rollback_button, 1, 2)
        self.banner.hide()

        # two rows, so the panel fits a 1100-pixel-wide window: run controls and checkpoints, then
        # progress and the TOML configuration
        run_row = QHBoxLayout()
        for b in (self.train_button, self.pause_button, self.stop_button, self.continue_button):
            run_row.addWidget(b)
        run_row.addStretch(1)
        for b in (self.save_button, self.open_button):
            run_row.addWidget(b)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.rate_label)
        for b in (self.export_button, self.import_button):
            progress_row.addWidget(b)

        # --- right: views ------------------------------------------------------------------------
        self.samples_view = FrameView()
        self.samples_view.setObjectName("samples_view")
        self.samples_view.setToolTip("The newest negatives x⁻ of the run (or the replay buffer)")
        self.level_strip = LevelStrip()
        self.show_box = QComboBox()
        self.show_box.setObjectName("samples_source_box")
        self.show_box.addItem("newest negatives", "negatives")
        self.show_box.addItem("replay buffer", "buffer")
        self.show_box.setToolTip("Show the samples of the latest training step, or a random "
                                 "draw from the replay buffer (refreshed every second)")
        self.landscape_view = pg.GraphicsLayoutWidget()
        self.landscape_view.setObjectName("landscape_view")
        self.landscape_view.setBackground("k")
        self.landscape_view.setToolTip("2-D data: log p_T(x) of the model, normalised by "
                                       "quadrature, with the newest negatives on top; NLL is the "
                                       "negative log-likelihood of held-out data")
        self.landscape_plot = self.landscape_view.addPlot(title="landscape log p_T")
        self.landscape_plot.setAspectLocked(True)
        self.landscape_plot.hideButtons()
        for side in ("left", "bottom"):  # shown with the first landscape
            self.landscape_plot.showAxis(side, False)
        self.landscape_image = pg.ImageItem()  # [ix, iy] arrays: column-major is right
        self.landscape_image.setColorMap(pg.colormap.get(LANDSCAPE_CMAP))
        self.landscape_points = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(255, 200, 60, 200))
        self.landscape_plot.addItem(self.landscape_image)
        self.landscape_plot.addItem(self.landscape_points)
        self.plots = MetricPlots()

        samples_box = QWidget()
        sl = QVBoxLayout(samples_box)
        sl.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        self.samples_title = QLabel("Samples")
        head.addWidget(self.samples_title, 1)
        head.addWidget(QLabel("Show"))
        head.addWidget(self.show_box)
        sl.addLayout(head)
        sl.addWidget(self.samples_view, 1)
        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(samples_box)
        views.addWidget(self.landscape_view)
        views.setStretchFactor(0, 1)  # samples and landscape share the width equally
        views.setStretchFactor(1, 1)
        self.views_splitter = views
        right_split = QSplitter(Qt.Orientation.Vertical)
        right_split.addWidget(views)
        right_split.addWidget(self.level_strip)
        right_split.addWidget(self.plots)
        right_split.setStretchFactor(0, 3)
        right_split.setStretchFactor(2, 2)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(run_row)
        rl.addLayout(progress_row)
        rl.addWidget(self.status_label)
        rl.addWidget(self.message_label)
        rl.addWidget(self.lock_note)
        rl.addWidget(self.banner)
        rl.addWidget(right_split, 1)
        rl.addWidget(self.autosave_label)

        lay = QHBoxLayout(self)
        lay.addWidget(left)
        lay.addWidget(right, 1)

        # --- wiring ------------------------------------------------------------------------------
        self.train_button.clicked.connect(self.train)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stop)
        self.continue_button.clicked.connect(self.continue_training)
        self.save_button.clicked.connect(lambda: self.save_checkpoint())
        self.open_button.clicked.connect(lambda: self.open_checkpoint())
        self.export_button.clicked.connect(lambda: self.export_config())
        self.import_button.clicked.connect(lambda: self.import_config())
        self.rollback_button.clicked.connect(self.rollback)
        self.show_box.currentIndexChanged.connect(self._on_show_changed)
        self.form.live_changed.connect(self._on_live_changed)
        self.form.preset_chosen.connect(self.apply_preset)
        self.form.method_chosen.connect(self.apply_method)
        self.data.data_changed.connect(self._on_data_changed)
        self.form.device_box.activated.connect(self._on_device_chosen)
        s = session
        s.metrics.connect(self._on_metrics)
        s.job_changed.connect(self._on_job_state)
        s.model_changed.connect(self._on_model_changed)
        s.saved.connect(self._on_saved)
        s.landscape_ready.connect(self._on_landscape)
        s.event.connect(self._on_event)
        s.frame.connect(self.on_frame)
        self._timer = RedrawTimer(self, REDRAW_HZ, self._refresh)

        self._restore_settings()
        self._set_state(JobState.IDLE)
        self.data.select(DEFAULT_DATA)

    # ==============================================================================================
    # presets and data
    # ==============================================================================================
    def apply_preset(self, name: str) -> None:
        """Fill the form with preset ``name`` (see ``core.config.PRESETS``) and pick its data set."""
        if name not in PRESETS:
            self._show_message(f"Unknown preset {name!r}; choose one of {', '.join(PRESETS)}.")
            return
        current = self.data.name or ""
        kind = self.data.kind
        if name == "2-D quick" and kind == "points":
            cfg = PRESETS[name](current)  # keep the user's 2-D set
        elif name == "texture" and current.startswith("texture:"):
            cfg = PRESETS[name](current)
        elif name in PRESET_METHOD and kind == "images":
            cfg = PRESETS[name](current)  # a method for the images shown
        else:
            cfg = PRESETS[name]()
        self.form.set_config(cfg)
        i = self.form.preset_box.findData(name)
        self.form.preset_box.setCurrentIndex(max(0, i))
        self.status_label.setText(f"Preset '{name}' loaded.")
        if cfg.data.name != current or cfg.data.image_size != self.data.image_size:
            self.data.select(cfg.data.name, cfg.data.image_size)

    def apply_method(self, method: str) -> None:
        """Load the tested settings of a training method for the data set shown."""
        current = self.data.name or ""
        kind = self.data.kind
        try:
            cfg = preset_for_method(method, current, kind)
            cfg.data.image_size = self.data.image_size
            cfg.validate()
        except (ConfigError, ValueError) as exc:
            self.form.set_config(self.form.base_config())  # back to the method the form had
            self._show_message(f"{METHOD_LABELS.get(method, method)}: {exc}")
            return
        self.form.set_config(cfg)
        name = next((n for n, m in PRESET_METHOD.items() if m == method), preset_name_for(current, kind))
        self.form.preset_box.setCurrentIndex(max(0, self.form.preset_box.findData(name)))
        self.status_label.setText(f"Method: {METHOD_LABELS.get(method, method)}, with its tested "
                                  "settings.")

    def _on_data_changed(self) -> None:
        name, kind = self.data.name, self.data.kind
        preset = preset_name_for(name, kind)
        shown = self.form.preset_box.currentData()
        # points and images need different networks and samplers, and textures their own set-up:
        # start from the fitting preset. Within one family (moons after rings, your own images
        # after digits) the user's settings stay.
        if kind != self.form.data_kind or (shown and shown != preset and shown not in PRESET_METHOD):
            cfg = preset_for(name, kind)
            cfg.data.image_size = self.data.image_size
            self.form.set_config(cfg)
            self.form.preset_box.setCurrentIndex(max(0, self.form.preset_box.findData(preset)))
            self.status_label.setText(f"The settings switched to the '{preset}' preset for "
                                      f"{'image' if kind == 'images' else '2-D'} data.")
            if kind != self.form.data_kind and not self.active:
                self.samples_view.clear_frame()  # the previous kind's samples mean nothing now
                self._latest_frame = None
                self.samples_title.setText("Samples")
        self.form.set_data_kind(kind)
        self.landscape_view.setVisible(kind == "points")

    # ==============================================================================================
    # run control
    # ==============================================================================================
    def train(self) -> None:
        """Start a new run from the form (a fresh model)."""
        cfg = self._form_config()
        if cfg is None:
            return
        self.plots.reset()
        self._kept_step = 0
        self._start(cfg, resume=False)

    def continue_training(self) -> None:
        """Continue the engine's run, or resume the opened checkpoint, up to 'Training steps'."""
        if self.continue_mode is None:
            self._show_message("There is no run to continue: press Train, or open a resumable checkpoint.")
            return
        cfg = self._form_config()
        if cfg is None:
            return
        if cfg.steps <= self.step:
            self._show_message(f"The run is at step {self.step:,}: raise 'Training steps' above it "
                               "to continue.")
            return
        diffs = self.form.structural_differences(self.run_config, cfg.data.name, cfg.data.image_size)
        if diffs and not self._confirm(
            "Continue training",
            "These settings differ from the run's and only take effect in a new run (Train): "
            f"{', '.join(diffs)}.\n\nContinue the run with its own settings?",
        ):
            return
        self._start(cfg, resume=True, from_checkpoint=self.continue_mode == "checkpoint")

    def _form_config(self) -> TrainConfig | None:
        if self.data.name is None:
            self._show_message("Choose a data set first (it has not loaded yet).")
            return None
        if self.data.busy:
            self._show_message("The data set is still loading; press again in a moment.")
            return None
        data_kind = self.data.kind
        if data_kind and data_kind != self.form.data_kind:
            # e.g. an image preset whose data set failed to load: the network would not fit
            def what(kind: str) -> str:
                return "2-D points" if kind == "points" else "images"

            self._show_message(f"These settings are for {what(self.form.data_kind)}, but the "
                               f"selected data set ({self.data.name}) holds {what(data_kind)}: "
                               "pick a preset that fits it, or another data set.")
            return None
        try:
            return self.form.config(self.data.name, self.data.image_size)
        except ConfigError as exc:
            self._show_message(f"Cannot train with these settings: {exc}")
            return None

    def _start(self, cfg: TrainConfig, resume: bool, from_checkpoint: bool = False) -> None:
        self._hide_message()
        self.banner.hide()
        try:
            # the run's own live settings (not the viewer's) start from this form's values
            self.host.slot_live(TRAINING).update(**self.form.live_values())
        except ValueError as exc:
            self._show_message(str(exc))
            return
        request = JobRequest(
            "train",
            {
                "config": cfg.to_dict(),
                "resume": resume,
                "autosave_every": self.form.autosave.value(),
                "landscape_every": LANDSCAPE_EVERY,
                "record_negatives": self.form.record.value(),
            },
            seed=cfg.seed,
            record=self.form.record.value() > 0,
            purpose=TRAINING,
        )
        self.total = cfg.steps
        self._rate_points = []
        self._set_starting()
        if from_checkpoint:
            self.host.slot_live(TRAINING).update(paused=False)
            self.host.send(ResumeAndTrain(request))
        else:
            self.host.run(request)

    def toggle_pause(self) -> None:
        if self.state == JobState.RUNNING:
            self.host.pause(True, slot=TRAINING)
            # the engine pauses between steps: a ConvNet step on a CPU can take seconds
            self.pause_button.setText("Pausing…")
            self.pause_button.setEnabled(False)
        elif self.state == JobState.PAUSED:
            self.host.pause(False, slot=TRAINING)
            self._set_state(JobState.RUNNING)

    def stop(self) -> None:
        if self.active:
            self.host.stop(TRAINING)

    def _confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text)
        return answer == QMessageBox.StandardButton.Yes

    def _on_device_chosen(self, _index: int) -> None:
        name = self.form.device_box.currentData()
        if name != "auto" and not self.active:
            self.host.send(SetDevice(str(name)))  # as the status bar's device box does

    def _on_live_changed(self, change: dict) -> None:
        if not self.active:
            return  # idle: the value goes into the next run's configuration
        try:
            self.host.update_live(slot=TRAINING, **change)
        except ValueError as exc:
            self._show_message(str(exc))

    # ==============================================================================================
    # engine answers
    # ==============================================================================================
    def _on_job_state(self, info: JobInfo) -> None:
        if info.kind != "train":
            return
        state = info.state
        if info.active:
            self._set_state(state)
        elif info.ended:
            if state != JobState.ERROR or info.step:
                self.continue_mode = "run"
            self._set_state(state, info.message)
            if state == JobState.DIVERGED:
                self._show_divergence(info.message)
            elif state == JobState.ERROR:
                self._show_message(f"The run stopped with an error: {info.message}")

    def _on_metrics(self, rows: list) -> None:
        if not rows:
            return
        self.plots.add_rows(rows)
        last = rows[-1]
        self.step = int(last.get("step", self.step))
        now = time.perf_counter()
        self._rate_points.append((now, self.step))
        while len(self._rate_points) > 2 and now - self._rate_points[0][0] > RATE_WINDOW_S:
            self._rate_points.pop(0)
        self._update_progress(last.get("sec_per_step"))

    def on_frame(self, frame: Frame) -> None:
        """Called by the main window for every frame; this panel keeps the newest train frame."""
        if frame.job_kind != "train":
            return
        self._latest_frame = frame
        self._frame_dirty = True
        if frame.total_steps:
            self.total = frame.total_steps

    def _on_model_changed(self, info: ModelInfo) -> None:
        if info.training:
            self.has_run = True
            self.has_model = False
            self.continue_mode = "run"
            self.run_config = dict(info.config or {})
            self.step = info.step
            if info.rolled_back:
                lr = float(self.run_config.get("optim", {}).get("lr", self.form.lr.value()))
                self.form.set_lr(lr)
                self.banner.hide()
                self._set_state(JobState.IDLE, f"Rolled back to {info.rolled_back}; learning rate now "
                                        f"{lr:.3g}. Press Continue training to go on.")
            else:
                self.plots.load_history(info.metrics)
                self._follow_run_data(info)
            self._update_progress()
            return
        if not info.path:
            return  # the demo, a device move: the engine's run (if any) is unchanged
        self.has_run = False
        self.has_model = True
        self._clear_views()
        self._buffer_t = 0.0  # its replay buffer at the next redraw
        if info.kind == "points":
            self.host.send(ComputeLandscape(request_id="training"))
        self.step = info.step
        self._kept_step = self.step
        self.plots.load_history(info.metrics)
        cfg_dict = info.config
        name = Path(info.path).name
        self.data.clear_error()  # an earlier failed pick is moot: the checkpoint brings its data
        if cfg_dict:
            try:
                cfg = TrainConfig.from_dict(cfg_dict)
            except ConfigError as exc:
                cfg = None
                self._show_message(f"{name}: its stored configuration cannot be shown: {exc}")
            if cfg is not None:
                self.run_config = cfg.to_dict()
                beyond = self.form.set_config(cfg)
                if beyond:
                    self._show_message(f"{name}: some stored settings are beyond the form's limits and "
                                       "are shown clamped: " + "; ".join(beyond) + ".")
                self.total = cfg.steps
                if cfg.data.name != self.data.name or cfg.data.image_size != self.data.image_size:
                    self.data.select(cfg.data.name, cfg.data.image_size)
        if info.resumable and cfg_dict:
            self.continue_mode = "checkpoint"
            self._set_state(JobState.IDLE, f"Opened {name} at step {self.step:,}: press Continue training "
                                    "to resume its run (raise 'Training steps' to go further), or "
                                    "sample it in Live chains.")
        else:
            self.continue_mode = None
            self._set_state(JobState.IDLE, f"Opened {name} (weights only, step {self.step:,}): it can be "
                                    "sampled in Live chains but holds no optimiser state to resume.")
        self._update_progress()

    def _follow_run_data(self, info: ModelInfo) -> None:
        """A run started elsewhere (e.g. on points drawn in the Landscape tab): the form names its
        data set, and the footer no longer names an earlier run's autosave."""
        data = (info.config or {}).get("data") or {}
        name = data.get("name")
        if name and (name != self.data.name or data.get("image_size") != self.data.image_size):
            self.data.select(name, data.get("image_size"))
        if info.step == 0:
            self.autosave_label.setText(f"Autosaves go to {self.host.engine.autosaver.folder}")

    def _on_saved(self, path: str) -> None:
        name = Path(path).name
        if name.startswith("autosave-"):
            self.autosave_label.setText(f"Autosaved {name} in {Path(path).parent}")
        elif path.endswith(".pt"):
            self.status_label.setText(f"Saved {path} at step {self.step:,}.")
            self._kept_step = self.step

    def _on_landscape(self, result: LandscapeResult) -> None:
        if not (self.has_run or self.has_model):
            return
        self._landscape = result
        self._landscape_dirty = True

    def _on_event(self, ev) -> None:
        if isinstance(ev, ResumeFailed):
            self._set_state(JobState.IDLE, "Could not resume the checkpoint's run (see the error message).")
        elif isinstance(ev, BufferFrame):
            self._buffer_waiting = False
            if ev.frame is None:
                self.samples_title.setText("Samples: this run has no replay buffer")
            elif self._showing_buffer():
                self._latest_frame = ev.frame
                self._frame_dirty = True

    # ==============================================================================================
    # display
    # ==============================================================================================
    @property
    def active(self) -> bool:
        """A run is starting, running or paused: what shapes it is locked."""
        return self.starting or self.state in (JobState.RUNNING, JobState.PAUSED)

    def _set_starting(self) -> None:
        """A run was asked for; until the engine reports it, it can be stopped but not paused."""
        self.starting = True
        self._show_state(JobState.IDLE)

    def _set_state(self, state: JobState, message: str = "") -> None:
        """The run's state as the engine reports it (IDLE with ``message``: a checkpoint opened,
        a rollback, a failed resume)."""
        self.starting = False
        self._show_state(state, message)

    def _show_state(self, state: JobState, message: str = "") -> None:
        self.state = state
        active = self.active
        self.form.set_running(active)
        self.data.setEnabled(not active)
        self.lock_note.setVisible(active)
        self.train_button.setEnabled(not active)
        self.continue_button.setEnabled(not active and self.continue_mode is not None)
        self.pause_button.setEnabled(state in (JobState.RUNNING, JobState.PAUSED))
        self.pause_button.setText("Resume" if state == JobState.PAUSED else "Pause")
        self.stop_button.setEnabled(active)
        self.open_button.setEnabled(True)
        self.import_button.setEnabled(not active)
        self.rollback_button.setEnabled(True)
        texts = {
            JobState.RUNNING: "Training…",
            JobState.PAUSED: f"Paused at step {self.step:,}: Resume to go on.",
            JobState.FINISHED: f"Finished at step {self.step:,}.",
            JobState.STOPPED: f"Stopped at step {self.step:,}: Continue training picks it up from here.",
            JobState.DIVERGED: "The run diverged (see below).",
            JobState.ERROR: "The run stopped with an error.",
        }
        if self.starting:
            text = "Starting the run…"
        elif state in (JobState.IDLE, JobState.FINISHED) and message:
            text = message
        else:
            text = texts.get(state, "")
        if state == JobState.STOPPED and message and "user" not in message:
            text = f"Stopped at step {self.step:,} ({message}): Continue training picks it up from here."
        if text:
            self.status_label.setText(text)
        self.last_message = message
        if not active:  # keep the last throughput, drop the ETA
            rate = self.steps_per_second()
            self.rate_label.setText(f"last {format_rate(rate, 1)}" if rate > 0 else "")

    def _update_progress(self, sec_per_step: float | None = None) -> None:
        total = max(1, int(self.total or 1))
        self.progress.setRange(0, total)
        self.progress.setValue(min(self.step, total))
        rate = self.steps_per_second(sec_per_step)
        if rate > 0 and self.active:
            eta = (total - self.step) / rate
            self.rate_label.setText(f"{format_rate(rate, 1)} · ETA {_fmt_duration(eta)}")

    def steps_per_second(self, sec_per_step: float | None = None) -> float:
        """Throughput over the last few seconds of metric rows (wall clock, all overheads in)."""
        pts = self._rate_points
        if len(pts) >= 2 and pts[-1][0] > pts[0][0] and pts[-1][1] > pts[0][1]:
            return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
        if sec_per_step and sec_per_step > 0:
            return 1.0 / sec_per_step
        return 0.0

    def _show_message(self, text: str) -> None:
        self.message_label.setText(text)
        self.message_label.show()

    def _hide_message(self) -> None:
        self.message_label.hide()
        self.message_label.setText("")

    def _on_show_changed(self, _index: int) -> None:
        self._buffer_t = 0.0
        self._buffer_waiting = False
        self.samples_title.setText("Samples")

    def _showing_buffer(self) -> bool:
        """The samples view shows the replay buffer: when asked, and for an opened checkpoint
        before any run (there are no negatives yet)."""
        return self.show_box.currentData() == "buffer" or (self.has_model and not self.has_run)

    def _refresh(self) -> None:
        """The redraw timer: newest frame and landscape (latest wins), buffer polling."""
        if not self.isVisible():
            return
        want_buffer = self._showing_buffer()
        now = time.perf_counter()
        if want_buffer and (self.has_run or self.has_model or self.continue_mode == "run") \
                and not self._buffer_waiting \
                and now - self._buffer_t >= BUFFER_POLL_S:
            self._buffer_t = now
            self._buffer_seed += 1
            self._buffer_waiting = True
            self.host.send(RequestBufferFrame(64, self._buffer_seed))
        frame = self._latest_frame
        if self._frame_dirty and frame is not None:
            self._frame_dirty = False
            is_buffer = frame.job_kind == "train-buffer"
            if is_buffer == want_buffer:
                caption = frame.label if is_buffer else f"negatives · step {frame.step:,}"
                self.samples_view.show_frame(frame, caption)
                self.level_strip.show_levels(frame.levels)
                self.samples_title.setText(
                    f"Samples: {caption} · mean E {float(np.mean(frame.energies)):.4g}"
                    if frame.energies.size else f"Samples: {caption}")
                self.frames_drawn += 1
            if frame.kind == "points" and not is_buffer and frame.points is not None:
                self.landscape_points.setData(frame.points[:, 0], frame.points[:, 1])
        if self._landscape_dirty and self._landscape is not None:
            self._landscape_dirty = False
            self._draw_landscape(self._landscape)

    def _clear_views(self) -> None:
        """Forget what the previous model drew: its samples, buffer and landscape."""
        self._landscape = None
        self._landscape_dirty = False
        self._latest_frame = None
        self._frame_dirty = False
        for item in (self.samples_view.image, self.samples_view.hist, self.landscape_image):
            item.clear()
        self.samples_view.scatter.clear()
        self.landscape_points.setData([], [])
        self.landscape_plot.setTitle("")
        self.samples_title.setText("Samples")
        self.level_strip.show_levels([])

    def _draw_landscape(self, result: LandscapeResult) -> None:
        ls = result.landscape
        for side in ("left", "bottom"):
            self.landscape_plot.showAxis(side, True)
        logp = np.asarray(ls.log_density, dtype=np.float32)
        finite = logp[np.isfinite(logp)]
        if finite.size == 0:
            return
        top = float(finite.max())
        self.landscape_image.setImage(np.nan_to_num(logp, nan=top - LANDSCAPE_RANGE,
                                                    neginf=top - LANDSCAPE_RANGE),
                                      autoLevels=False, levels=(top - LANDSCAPE_RANGE, top))
        x, y, w, h = ls.grid.rect
        self.landscape_image.setRect(x, y, w, h)
        self.landscape_plot.setRange(xRange=(x, x + w), yRange=(y, y + h), padding=0.02)
        # short: the title must fit half the panel (the tooltip says what NLL is measured on)
        title = f"log p_T · step {result.step:,}"
        nll = result.nll
        if nll is not None and math.isfinite(nll):
            title += f" · NLL {nll:.3f}"
        self.landscape_plot.setTitle(title)
        self.landscapes_drawn += 1

    # ==============================================================================================
    # persistence
    # ==============================================================================================
    def _restore_settings(self) -> None:
        from ebm_studio.ui.main_window import app_settings

        s = app_settings()
        self.checkpoint_dir = str(s.value("training/checkpoint_dir", self.checkpoint_dir))
        self.data.restore_settings(s)
        autosave = s.value("training/autosave_every")
        if autosave is not None:
            try:
                self.form.autosave.setValue(int(autosave))
            except (TypeError, ValueError):
                pass  # a damaged settings file: keep the default

    def save_settings(self, settings: QSettings) -> None:
        """Called by the main window when it closes."""
        settings.setValue("training/checkpoint_dir", self.checkpoint_dir)
        settings.setValue("training/autosave_every", self.form.autosave.value())
        self.data.save_settings(settings)
