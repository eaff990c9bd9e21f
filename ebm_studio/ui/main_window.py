"""The EBM Studio main window: hosts the panels, owns the engine thread, routes frames.

The window creates one :class:`~ebm_studio.worker.thread.EngineHost` (the engine QObject on its
QThread), routes what the engine emits to the panels, and keeps menus, shortcuts, the status bar
and persistent settings. Closing it stops the running job and joins the thread.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QWidget,
)

from ebm_studio import __version__
from ebm_studio.core.bundled import example_checkpoints
from ebm_studio.core.device import available_devices, torch_version
from ebm_studio.ui.chain_viewer import ChainViewer
from ebm_studio.ui.widgets import ElidingStatusBar, format_rate
from ebm_studio.worker.api import JobInfo, JobState, ModelInfo, OpenCheckpoint, SaveCheckpoint, SetDevice
from ebm_studio.worker.frames import Frame
from ebm_studio.ui.panel import Panel
from ebm_studio.ui.session import Session
from ebm_studio.worker.thread import EngineHost

MAX_RECENT = 8


def app_settings() -> QSettings:
    """Persistent settings (INI format; tests point the organisation elsewhere)."""
    org = os.environ.get("EBM_STUDIO_SETTINGS_ORG", "EBMStudio")
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, org, "EBM Studio")


class MainWindow(QMainWindow):
    def __init__(self, device: str = "auto", start_demo: bool = True) -> None:
        super().__init__()
        self.setObjectName("main_window")
        self.setWindowTitle("EBM Studio")
        self.settings = app_settings()
        self.host = EngineHost(device, parent=self)
        self.engine = self.host.engine
        #: the one subscriber to the engine: the panels observe it (see ``ui/session.py``)
        self.session = Session(self.host, self)
        self.last_error = ""
        self.error_box: QMessageBox | None = None
        self._start_demo = start_demo
        self._closing = False
        self._close_confirmed = False  # the user chose Save or Discard for a run's unsaved steps
        self._close_after_save = False  # close once the engine reports the requested save

        self.tabs = QTabWidget()
        self.tabs.setObjectName("main_tabs")
        self.viewer = ChainViewer(self.host)  # sends only; the window passes it frames and models
        self.tabs.addTab(self.viewer, "Live chains")
        self.setCentralWidget(self.tabs)
        self.panels: dict[str, Panel] = {"viewer": self.viewer}
        self.docks: dict = {}

        self._build_status_bar()
        self._build_menus()
        self._connect_engine()
        self.viewer.status.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self._restore_settings()
        self.host.start()

    # --- panels ---------------------------------------------------------------------------------
    def add_tab(self, key: str, widget: Panel, title: str) -> None:
        """Host another tool as a tab (training, landscape, trajectories, inpainting...)."""
        if not isinstance(widget, Panel):
            raise TypeError(f"{type(widget).__name__} is not a Panel: it has no save_settings")
        self.panels[key] = widget
        self.tabs.addTab(widget, title)
        action = QAction(title, self, checkable=True, checked=True)
        action.toggled.connect(lambda on, w=widget, t=title: self._toggle_tab(w, t, on))
        self.view_menu.addAction(action)

    def _toggle_tab(self, widget: QWidget, title: str, on: bool) -> None:
        index = self.tabs.indexOf(widget)
        if on and index < 0:
            # back in its own place: after the tabs that come before it and are shown
            order = list(self.panels.values())
            before = order[: order.index(widget)] if widget in order else order
            at = sum(1 for w in before if self.tabs.indexOf(w) >= 0)
            self.tabs.insertTab(at, widget, title)
        elif not on and index >= 0:
            self.tabs.removeTab(index)

    # --- status bar -----------------------------------------------------------------------------
    def _build_status_bar(self) -> None:
        sb = ElidingStatusBar()
        self.setStatusBar(sb)
        self.device_box = QComboBox()
        self.device_box.setObjectName("device_box")
        self.device_box.addItem("auto", "auto")
        for name in available_devices():
            self.device_box.addItem(name.upper() if ":" not in name else name, name)
        self.device_box.setToolTip("Device the engine computes on (CUDA, then MPS, then CPU)")
        self.device_label = QLabel("")
        self.job_label = QLabel("starting…")
        self.rate_label = QLabel("")
        self.step_label = QLabel("")
        self.energy_label = QLabel("")
        # fixed widths for the numbers that change every frame: a label that grows or shrinks
        # re-lays out the status bar (and repaints the window) many times a second
        for w, width in ((self.job_label, 130), (self.rate_label, 130), (self.step_label, 110),
                         (self.energy_label, 130)):
            w.setMinimumWidth(width)
        for w in (self.device_label, self.device_box, self.job_label, self.rate_label,
                  self.step_label, self.energy_label):
            sb.addPermanentWidget(w)
        self.device_box.activated.connect(
            lambda _: self.host.send(SetDevice(self.device_box.currentData()))
        )

    # --- menus ----------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        mb = self.menuBar()
        file_menu = mb.addMenu("&File")
        self.open_action = file_menu.addAction("&Open checkpoint…", self.open_dialog)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.save_action = file_menu.addAction("&Save checkpoint…", self.save_dialog)
        self.save_action.setShortcut(QKeySequence.StandardKey.Save)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.examples_menu = file_menu.addMenu("&Examples")
        self._fill_examples()
        file_menu.addSeparator()
        quit_action = file_menu.addAction("&Quit", self.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)

        sampling = mb.addMenu("&Sampling")
        self.play_action = sampling.addAction("Play / pause", self.viewer.toggle_pause)
        self.play_action.setShortcut(QKeySequence(Qt.Key.Key_Space))
        self.step_action = sampling.addAction("Single step", self.viewer.single_step)
        self.step_action.setShortcut(QKeySequence(Qt.Key.Key_Right))
        sampling.addAction("Reset chains", self.viewer.restart)
        for a in (self.play_action, self.step_action):
            # window-wide, but text fields and spin boxes still get their own keys first
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)

        self.view_menu = mb.addMenu("&View")
        help_menu = mb.addMenu("&Help")
        help_menu.addAction("&About EBM Studio", self.about)
        self._refresh_recent()

    def _fill_examples(self) -> None:
        """The bundled, trained checkpoints, each with a thumbnail of its samples when there is one."""
        from PySide6.QtGui import QIcon

        examples = example_checkpoints()
        for name, path in examples.items():
            thumb = path.with_suffix(".png")
            action = self.examples_menu.addAction(name, lambda p=str(path): self.open_checkpoint(p))
            if thumb.is_file():
                action.setIcon(QIcon(str(thumb)))
        self.examples_menu.setEnabled(bool(examples))

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for path in files:
            self.recent_menu.addAction(path, lambda p=path: self.open_checkpoint(p))
        self.recent_menu.setEnabled(bool(files))

    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])]

    def _remember(self, path: str) -> None:
        files = [path] + [f for f in self.recent_files() if f != path]
        self.settings.setValue("recent_files", files[:MAX_RECENT])
        self._refresh_recent()

    def open_dialog(self) -> None:
        start = self.settings.value("last_dir", str(Path.cwd()))
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", str(start),
                                              "EBM Studio checkpoints (*.pt);;All files (*)")
        if path:
            self.settings.setValue("last_dir", str(Path(path).parent))
            self.open_checkpoint(path)

    def open_checkpoint(self, path: str) -> None:
        self._pending_open = path
        self.host.send(OpenCheckpoint(path))

    def save_dialog(self) -> None:
        start = Path(str(self.settings.value("last_dir", str(Path.cwd()))))
        name = ((self.model_info.name if self.model_info is not None else "") or "model").split(" ")[0]
        path, _ = QFileDialog.getSaveFileName(self, "Save checkpoint", str(start / f"{name}.pt"),
                                              "EBM Studio checkpoints (*.pt)")
        if path:
            if not path.endswith(".pt"):
                path += ".pt"
            self.settings.setValue("last_dir", str(Path(path).parent))
            self.host.send(SaveCheckpoint(path))

    def about(self) -> None:
        import pyqtgraph
        from PySide6 import __version__ as pyside_version
        from PySide6.QtCore import qVersion

        QMessageBox.about(
            self,
            "About EBM Studio",
            f"<h3>EBM Studio {__version__}</h3>"
            "<p>Train and explore energy-based models: p(x) ∝ exp(−E(x)/T)·q(x).</p>"
            f"<p>Device in use: {self.device_label.text()}<br>"
            f"PyTorch {torch_version()} · Qt {qVersion()} · PySide6 {pyside_version} · "
            f"pyqtgraph {pyqtgraph.__version__}<br>Python {platform.python_version()}</p>",
        )

    # --- engine signals -------------------------------------------------------------------------
    def _connect_engine(self) -> None:
        s = self.session
        s.frame.connect(self._on_frame)
        s.model_changed.connect(self._on_model_changed)
        s.job_changed.connect(self._on_job_state)
        s.error.connect(self._on_error)
        s.saved.connect(self._on_saved)
        s.device_changed.connect(self.device_label.setText)

    @property
    def model_info(self) -> ModelInfo | None:
        """The current model (None until the engine announced one)."""
        return self.session.model_info

    @property
    def job_info(self) -> JobInfo:
        """The newest job state of any slot."""
        return self.session.job_info

    @property
    def jobs(self) -> dict[str, JobInfo]:
        """The newest state of each slot's job, by purpose."""
        return self.session.jobs

    def _on_frame(self, frame: Frame) -> None:
        if frame.job_kind == "sample" and frame.label == "viewer":
            self.viewer.show_frame(frame)
        self.rate_label.setText(format_rate(frame.steps_per_sec))
        self.step_label.setText(f"step {frame.step:,}")
        if frame.energies.size:
            self.energy_label.setText(f"mean E {float(frame.energies.mean()):.4g}")

    @property
    def on_cpu(self) -> bool:
        return self.device_label.text().upper().startswith("CPU")

    def _on_model_changed(self, info: ModelInfo) -> None:
        first = self.viewer.model_info is None  # the engine's start-up model
        if info.path:
            self._remember(info.path)
            self.statusBar().showMessage(f"Opened {Path(info.path).name}", 5000)
        self.setWindowTitle(f"EBM Studio — {info.name}")
        if info.training:
            # the Live tab shows the model being trained; on one CPU its chains give way to the
            # run (paused, saying so) and continue on the trained model when the run ends
            if self.on_cpu:
                self.viewer.give_way("Paused while the Training tab trains on the CPU: Play runs "
                                     "these chains beside it (the run slows down). They continue "
                                     "on the trained model when the run ends.")
            else:
                self.viewer.set_note("Chains of the model being trained, beside the run.")
            self.viewer.set_model(info)
            return
        if first and not self._start_demo:
            self.viewer.model_info = info
            return
        self.viewer.set_note("")
        self.viewer.set_model(info)

    def _on_job_state(self, info: JobInfo) -> None:
        self.job_label.setText(self.session.running_jobs())
        ended = info.ended and (info.state != JobState.ERROR or info.step > 0)
        model = self.model_info
        if info.kind == "train" and ended and not self._closing and model is not None and model.training:
            # the run is over: the viewer takes the trained model, with the sampler settings it
            # was trained with, and its chains move again
            def take_back() -> None:
                self.viewer.set_note("")
                self.viewer.set_paused(False)
                self.viewer.set_model(self.model_info)

            QTimer.singleShot(0, take_back)

    def _on_error(self, message: str) -> None:
        self.last_error = message
        self._close_after_save = False  # a failed save leaves the window open
        self.statusBar().showMessage(message, 10000)
        if self._closing:
            return
        box = self.error_box
        if box is not None and box.isVisible():  # one box, showing the newest message, not a pile
            box.setText(message)
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "EBM Studio", message, parent=self)
        box.setObjectName("error_dialog")
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()  # not exec(): the engine keeps delivering frames meanwhile
        self.error_box = box

    def _on_saved(self, path: str) -> None:
        self.statusBar().showMessage(f"Saved {path}", 5000)
        if path.endswith(".pt") and "autosave-" not in Path(path).name:
            self._remember(path)
            if self._close_after_save:  # Save was the answer to closing: the file is written now
                self._close_after_save = False
                self._close_confirmed = True
                QTimer.singleShot(0, self.close)

    # --- persistence and closing ----------------------------------------------------------------
    def _restore_settings(self) -> None:
        geo = self.settings.value("geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        else:
            self.resize(1280, 820)
        state = self.settings.value("window_state")
        if state is not None:
            self.restoreState(state)
        device = self.settings.value("device")
        if device:
            i = self.device_box.findData(device)
            if i >= 0:
                self.device_box.setCurrentIndex(i)
                QTimer.singleShot(0, lambda: self.host.send(SetDevice(str(device))))

    def ask_unsaved(self, steps: int) -> str:
        """Ask what to do with a run's unsaved steps: ``save``, ``discard`` or ``cancel``."""
        box = QMessageBox(QMessageBox.Icon.Question, "EBM Studio",
                          f"The training run has {steps:,} steps that are not saved in a checkpoint "
                          "of yours. Save them before closing?", parent=self)
        box.setStandardButtons(QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                               | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        answer = box.exec()
        return {QMessageBox.StandardButton.Save: "save",
                QMessageBox.StandardButton.Discard: "discard"}.get(QMessageBox.StandardButton(answer), "cancel")

    def _confirm_close(self) -> bool:
        """True when the window may close now; a run with unsaved steps asks first, and Save
        closes only once the engine reports the file written."""
        training = self.panels.get("training")
        steps = training.unsaved_steps() if training is not None and not self._close_confirmed else 0
        if steps == 0:
            return True
        choice = self.ask_unsaved(steps)
        if choice == "discard":
            return True
        if choice == "save":
            # the engine writes between steps; ``_on_saved`` closes the window once it has
            self._close_after_save = training.save_checkpoint()  # False: the dialog was cancelled
        return False

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        if not self._confirm_close():
            event.ignore()
            return
        self._closing = True
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.setValue("device", self.device_box.currentData())
        for panel in self.panels.values():
            panel.save_settings(self.settings)
        self.settings.sync()
        for timer in self.findChildren(QTimer):  # no redraw or poll may fire into a closed window
            timer.stop()
        self.host.shutdown(2000)
        event.accept()
