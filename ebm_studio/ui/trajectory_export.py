"""The export group of the Trajectories tab: GIF, APNG, PNG strip and raw ``.npz`` of a recording.

The export itself runs in the engine thread (an ``ExportTrajectory`` command), on a snapshot of
the branch, and reports with ``ExportProgress`` and ``ExportDone`` events. This
widget checks what it can before sending (a file name that can be written, a chain when one chain
is asked for, well-formed strip steps), shows an inline progress bar with Cancel (a
``threading.Event`` the export polls at every frame), and turns every outcome into one message.
"""

from __future__ import annotations

import re
import threading
from functools import partial
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)

from ebm_studio.core.export import EXPORT_FORMATS, FORMAT_NAMES, check_target
from ebm_studio.worker.api import ExportDone, ExportProgress, ExportTrajectory
from ebm_studio.worker.thread import EngineHost

EXPORT_FILTERS = {
    "gif": "Animated GIF (*.gif)",
    "apng": "Animated PNG (*.png *.apng)",
    "png": "PNG image (*.png)",
    "npz": "NumPy archive (*.npz)",
}
TIPS = {
    "scope": "Export all chains (the grid, or all particles) or only the followed chain.",
    "frames": "Animations use at most this many recorded steps, evenly spaced over the branch; "
    "they play at the playback rate (fps).",
    "strip": "Step numbers for the PNG strip, e.g. '0, 100, 200' or '0:1000:100' (start:stop:step, "
    "stop included). Each is shown at the nearest recorded step. Empty: 8 evenly spaced steps.",
}


def parse_steps(text: str) -> list[int]:
    """Step numbers from '0, 100, 200' or '0:1000:100' (stop included); ValueError if malformed."""
    out: list[int] = []
    for part in re.split(r"[,\s;]+", text.strip()):
        if not part:
            continue
        if ":" in part:
            bits = part.split(":")
            if len(bits) not in (2, 3) or not all(b.strip().lstrip("-").isdigit() for b in bits):
                raise ValueError(f"'{part}' is not a range like 0:1000:100")
            start, stop = int(bits[0]), int(bits[1])
            step = int(bits[2]) if len(bits) == 3 else 1
            if step <= 0:
                raise ValueError(f"'{part}': the step of a range must be positive")
            if stop < start:
                raise ValueError(f"'{part}': the range ends before it starts")
            if (stop - start) // step > 10000:
                raise ValueError(f"'{part}' names more than 10,000 steps")
            out.extend(range(start, stop + 1, step))
        else:
            try:
                out.append(int(part))
            except ValueError:
                raise ValueError(f"'{part}' is not a whole step number") from None
    if not out:
        raise ValueError("no step numbers given")
    if len(out) > 1000:
        raise ValueError(f"{len(out):,} steps are too many for one strip (at most 1,000)")
    return out


class ExportBox(QGroupBox):
    """Scope, frame limit, strip steps, the four export buttons, and progress with Cancel.

    ``source()`` tells what to export: ``{"branch": id or None, "n_steps": recorded steps,
    "chain": followed chain or None, "fps": playback rate}``. Outcomes and refusals are emitted as
    ``message(text, is_error)``.
    """

    message = Signal(str, bool)

    def __init__(self, host: EngineHost, source: Callable[[], dict],
                 parent: QWidget | None = None) -> None:
        super().__init__("Export", parent)
        self.setObjectName("trajectory_export_box")
        self.host = host
        self.source = source
        self.last_dir = str(Path.cwd())
        self.last_export: ExportDone | None = None  # the answer to the last export
        self._cancel: threading.Event | None = None
        self._export_id = 0

        self.scope_box = QComboBox()
        self.scope_box.setObjectName("trajectory_export_scope")
        self.scope_box.addItem("All chains", "all")
        self.scope_box.addItem("Followed chain", "chain")
        self.scope_box.setToolTip(TIPS["scope"])
        self.frames_spin = QSpinBox()
        self.frames_spin.setObjectName("trajectory_export_frames")
        self.frames_spin.setRange(2, 5000)
        self.frames_spin.setValue(200)
        self.frames_spin.setToolTip(TIPS["frames"])
        self.strip_edit = QLineEdit()
        self.strip_edit.setObjectName("trajectory_strip_steps")
        self.strip_edit.setPlaceholderText("empty: 8 evenly spaced")
        self.strip_edit.setToolTip(TIPS["strip"])
        self.buttons: dict[str, QPushButton] = {}
        for fmt, text, tip in (
            ("gif", "GIF…", "Animated GIF of the recording (256 colours)"),
            ("apng", "APNG…", "Animated PNG of the recording (lossless)"),
            ("png", "PNG strip…", "The chosen steps side by side in one PNG"),
            ("npz", ".npz…", "The raw recording: states, energies, steps, settings and markers "
             "(numpy.load reads it)"),
        ):
            b = QPushButton(text)
            b.setObjectName(f"trajectory_export_{fmt}")
            b.setToolTip(tip)
            b.clicked.connect(partial(self.export_dialog, fmt))
            self.buttons[fmt] = b
        self.progress = QProgressBar()
        self.progress.setObjectName("trajectory_export_progress")
        self.progress.setRange(0, 100)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("trajectory_export_cancel")
        self.cancel_button.setToolTip("Stop the export; no file is left behind")
        self.cancel_button.clicked.connect(self.cancel)

        form = QFormLayout(self)
        form.addRow("Chains", self.scope_box)
        self.labels_check = QCheckBox("labels")
        self.labels_check.setObjectName("trajectory_export_labels")
        self.labels_check.setChecked(True)
        self.labels_check.setToolTip("GIF, APNG and PNG strips get a caption band under every frame: "
                                     "the step, the (mean) energy, and for points the axes' ranges")
        frames_row = QHBoxLayout()  # one row: the panel must fit 1100×700
        frames_row.setContentsMargins(0, 0, 0, 0)
        frames_row.addWidget(self.frames_spin, 1)
        frames_row.addWidget(self.labels_check)
        form.addRow("Frames ≤", frames_row)
        form.addRow("Strip steps", self.strip_edit)
        row1, row2 = QHBoxLayout(), QHBoxLayout()
        row1.addWidget(self.buttons["gif"])
        row1.addWidget(self.buttons["apng"])
        row2.addWidget(self.buttons["png"])
        row2.addWidget(self.buttons["npz"])
        form.addRow(row1)
        form.addRow(row2)
        prow = QHBoxLayout()
        prow.setContentsMargins(0, 0, 0, 0)
        prow.addWidget(self.progress, 1)
        prow.addWidget(self.cancel_button)
        self.progress_row = QWidget()
        self.progress_row.setLayout(prow)
        self.progress_row.setVisible(False)
        form.addRow(self.progress_row)

    # ------------------------------------------------------------------------------------------
    @property
    def exporting(self) -> bool:
        return self._cancel is not None

    def set_available(self, available: bool) -> None:
        """Enable the buttons when there is something to export (and no export runs)."""
        for b in self.buttons.values():
            b.setEnabled(available and not self.exporting)

    def export_dialog(self, fmt: str) -> None:
        """Ask for a file name, then export (GIF/APNG/PNG strip/npz)."""
        src = self.source()
        if src["branch"] is None or not src["n_steps"]:
            self.message.emit("Nothing is recorded yet: there is nothing to export.", True)
            return
        ext = EXPORT_FORMATS[fmt]
        suffix = "-strip" if fmt == "png" else ""
        start = Path(self.last_dir) / f"trajectory-{src['branch']}{suffix}{ext}"
        path, _ = QFileDialog.getSaveFileName(self, f"Export {FORMAT_NAMES[fmt]}",
                                              str(start), EXPORT_FILTERS[fmt])
        if not path:
            return
        if not Path(path).suffix:
            path += ext
        self.last_dir = str(Path(path).parent)
        self.export_to(fmt, path)

    def export_to(self, fmt: str, path: str) -> bool:
        """Start an export to ``path`` in the engine thread; False (with a message) if it cannot."""
        def refuse(text: str) -> bool:
            self.message.emit(text, True)
            return False

        if self.exporting:
            return refuse("An export is already running; wait for it or cancel it.")
        src = self.source()
        if src["branch"] is None or not src["n_steps"]:
            return refuse("Nothing is recorded yet: there is nothing to export.")
        problem = check_target(path, fmt)
        if problem is not None:
            return refuse(f"Cannot export to {path}: {problem}.")
        chain = None
        if self.scope_box.currentData() == "chain" and fmt != "npz":
            if src["chain"] is None:
                return refuse("Choose a chain to follow first (click one, or set Chain #), or "
                              "export all chains.")
            chain = src["chain"]
        steps = None
        if fmt == "png" and self.strip_edit.text().strip():
            try:
                steps = parse_steps(self.strip_edit.text())
            except ValueError as exc:
                return refuse(f"Strip steps: {exc}.")
        self._export_id += 1
        cancel = threading.Event()
        self._cancel = cancel
        command = ExportTrajectory(
            fmt=fmt, path=str(path), branch=int(src["branch"]), export_id=self._export_id, cancel=cancel,
            chain=chain, fps=float(src["fps"]), max_frames=self.frames_spin.value(),
            steps=tuple(steps) if steps else None, labels=self.labels_check.isChecked(),
        )
        self.progress.setValue(0)
        self.progress.setFormat(f"{FORMAT_NAMES[fmt]}: %p%")
        self.progress_row.setVisible(True)
        self.set_available(False)
        self.message.emit(f"Exporting the {FORMAT_NAMES[fmt]} to {path}…", False)
        self.host.send(command)
        return True

    def cancel(self) -> None:
        """Stop the running export at its next frame (no file is left behind)."""
        if self._cancel is not None:
            self._cancel.set()
            self.progress.setFormat("cancelling…")

    def on_event(self, ev: ExportProgress | ExportDone) -> None:
        """Progress and completion from the engine."""
        if ev.export_id != self._export_id:
            return  # an earlier export, or another panel's
        if isinstance(ev, ExportProgress) and self.exporting:
            self.progress.setValue(int(100 * ev.done / max(1, ev.total)))
        elif isinstance(ev, ExportDone):
            self._cancel = None
            self.progress_row.setVisible(False)
            src = self.source()
            self.set_available(src["branch"] is not None and bool(src["n_steps"]))
            self.last_export = ev
            self.message.emit(ev.message, not ev.ok and not ev.cancelled)
