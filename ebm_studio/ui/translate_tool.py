"""One-sided image translation: start Langevin at a source image under a target-domain model.

The source is a picture (file, paste, drop), a held-out item, or a sketch drawn on the canvas
(white or black ink, brush size, undo). The run view shows the source followed by the results,
the energy under the target model and the distance from the source along the run; scrubbing the
recorded steps picks how far the translation goes, and Save writes the step shown. One-click demos
and a batch over a folder sit below.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
)

from ebm_studio.core.bundled import resources_dir
from ebm_studio.core.masks import PICTURE_SUFFIXES, capsule, output_names
from ebm_studio.ui.image_tool_base import ImageToolBase
from ebm_studio.ui.paint_canvas import PaintCanvas
from ebm_studio.ui.tool_run_view import ToolRunView
from ebm_studio.worker.tool_api import (
    RunState,
    SaveToolResult,
    StartToolRun,
    StopToolRun,
    ToolError,
    ToolImageReady,
    ToolModelInfo,
    ToolRunChanged,
    ToolSaved,
)

#: one-click demos: (label, model name, source) — source: "sketch:N" (a drawn digit), a photo in
#: resources/photos, or "digit" (a held-out handwritten digit)
DEMOS = (
    ("Sketch → digit", "digits", "sketch:7"),
    ("Photo → brick", "texture-brick", "photo:camera.png"),
    ("Photo → grass", "texture-grass", "photo:coffee.png"),
    ("Digit → gravel", "texture-gravel", "digit"),
)


def sketch_digit(digit: int, size: int = 28) -> np.ndarray:
    """A rough sketch of a digit as a user would draw it: a few straight white strokes on black."""
    strokes = {
        0: [((9, 6), (19, 6)), ((19, 6), (20, 22)), ((20, 22), (9, 22)), ((9, 22), (9, 6))],
        1: [((14, 5), (14, 23))],
        7: [((8, 6), (20, 6)), ((20, 6), (12, 23))],
        4: [((9, 5), (8, 15)), ((8, 15), (20, 15)), ((17, 6), (17, 23))],
    }[digit]
    m = np.zeros((size, size), bool)
    for p0, p1 in strokes:
        m |= capsule((size, size), p0, p1, 1.5)
    return np.where(m, 1.0, -1.0).astype(np.float32)[None]


class TranslateTool(ImageToolBase):
    def __init__(self, session, parent=None) -> None:
        super().__init__(session, "translate", parent)
        self.setObjectName("translate_tool")
        canvas = PaintCanvas("image")
        canvas.setObjectName("translate_canvas")
        canvas.setMinimumSize(200, 200)
        self._canvas_controls(canvas, brush=2)
        self.run_view = ToolRunView(self.host, "translate", second_curve="distance")
        self.run_view.steps_spin.setValue(100)
        self._pending_demo: tuple[str, str] | None = None
        self._batch: list[Path] = []
        self._batch_out: Path | None = None
        self._batch_phase = ""  # load → run → save, for the picture at the head of the batch
        self._batch_names: dict = {}
        self._batch_done = 0
        self._batch_failed: list[str] = []

        sketch = QGroupBox("Sketch on the source")
        g = QGridLayout(sketch)
        self.ink_box = QComboBox()
        self.ink_box.addItem("White ink", 1.0)
        self.ink_box.addItem("Black ink", -1.0)
        self.blank_button = QPushButton("Blank")
        self.blank_button.setToolTip("Start a sketch on an empty canvas")
        g.addWidget(self.ink_box, 0, 0)
        g.addWidget(self.brush_slider, 0, 1)
        g.addWidget(self.brush_label, 0, 2)
        row = QHBoxLayout()
        for b in (self.blank_button, self.undo_button, self.redo_button):
            row.addWidget(b)
        g.addLayout(row, 1, 0, 1, 3)

        demos = QGroupBox("Demos and batch")
        dg = QGridLayout(demos)
        self.demo_buttons = []
        for i, (label, model, source) in enumerate(DEMOS):
            b = QPushButton(label)
            b.clicked.connect(lambda _=False, m=model, s=source: self.demo(m, s))
            self.demo_buttons.append(b)
            dg.addWidget(b, i // 2, i % 2)
        self.batch_button = QPushButton("Translate a folder…")
        self.batch_button.setToolTip("Translate every picture in a folder with these settings")
        self.batch_cancel = QPushButton("Cancel")
        self.batch_cancel.setEnabled(False)
        self.batch_bar = QProgressBar()
        self.batch_bar.setTextVisible(True)
        self.batch_bar.hide()  # shown while a batch runs
        dg.addWidget(self.batch_button, 2, 0)
        dg.addWidget(self.batch_cancel, 2, 1)
        dg.addWidget(self.batch_bar, 3, 0, 1, 2)

        self.keep_button = QPushButton("Use result as source")
        self.keep_button.setToolTip("Continue from the selected result (click it)")
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Save source and results of the step shown: PNG, npz, or a GIF of the run")
        top_right = QHBoxLayout()
        top_right.addStretch(1)
        top_right.addWidget(self.keep_button)
        top_right.addWidget(self.save_button)

        self._assemble([sketch, demos], top_right)

        self.ink_box.currentIndexChanged.connect(lambda _: setattr(self.canvas, "ink", self.ink_box.currentData()))
        self.blank_button.clicked.connect(self.blank)
        self.canvas.changed.connect(self._sync)
        self.canvas.changed.connect(self.supersede_images)  # the user's strokes win over pending loads
        self.run_view.run_requested.connect(self.run)
        self.keep_button.clicked.connect(self.keep)
        self.save_button.clicked.connect(self.save_dialog)
        self.batch_button.clicked.connect(self._batch_dialog)
        self.batch_cancel.clicked.connect(self.cancel_batch)
        self._sync()

    # --- source --------------------------------------------------------------------------------------
    def blank(self) -> None:
        if self.model is None:
            self._show_error("open a target model first")
            return
        c, h, w = self.model.event_shape
        ink = float(self.ink_box.currentData())
        self.supersede_images()
        self.image = np.full((c, h, w), -ink, np.float32)
        self.canvas.set_image(self.image)
        self.note.setText("blank canvas: draw with the mouse")
        self._sync()

    def _sync(self) -> None:
        self._sync_undo()
        self.run_view.reference = self.canvas.image.copy()
        self.run_view.run_button.setEnabled(self.model is not None and self.image is not None
                                            and not getattr(self, "_busy", False))

    def on_model(self, info: ToolModelInfo) -> None:
        self.run_view.use_model(info)
        self.run_view.clear_results()  # results of another model cannot be kept or continued
        if self._pending_demo is not None and self._pending_demo[0] == Path(info.path).stem:
            self._load_demo_source(self._pending_demo[1])
        elif self.image is None:
            self.load_heldout(self.heldout_spin.value())
        elif self.image.shape != tuple(info.event_shape):
            # the sketch or picture belongs to another model: fit it to this one
            pixels = np.clip((self.canvas.image.transpose(1, 2, 0) + 1) * 127.5, 0, 255).astype(np.uint8)
            self.request_image(pixels=pixels, label="previous source")

    def on_image(self, image: np.ndarray) -> None:
        self.canvas.set_image(image)
        self._sync()
        if self._pending_demo is not None:
            self._pending_demo = None
            QTimer.singleShot(0, self.run)

    # --- demos ------------------------------------------------------------------------------------------
    def demo(self, model: str, source: str) -> None:
        """Open the demo's model (if needed), load its source, and run."""
        i = self.model_box.findText(model)
        if i < 0:
            self._show_error(f"the bundled model '{model}' is not installed")
            return
        self._pending_demo = (model, source)
        if self.model is not None and Path(self.model.path).stem == model:
            self._load_demo_source(source)
        else:
            self.open_model(self.model_box.itemData(i))

    def _load_demo_source(self, source: str) -> None:
        if source.startswith("sketch:"):
            sketch = sketch_digit(int(source.split(":")[1]), self.model.event_shape[-1])
            pixels = np.clip((sketch[0] + 1) * 127.5, 0, 255).astype(np.uint8)
            self.request_image(pixels=pixels, label=f"a rough sketch of a {source.split(':')[1]}")
        elif source.startswith("photo:"):
            self.request_image(path=str(resources_dir() / "photos" / source[6:]))
        else:  # a held-out handwritten digit, fitted to the texture model
            self.request_image(heldout=7, dataset="digits", label="a held-out digit")

    # --- run ----------------------------------------------------------------------------------------------
    def run(self) -> None:
        if self.model is None or self.image is None:
            self._show_error("open a target model and a source first")
            return
        self.run_view.prepare_run()
        self._sync()
        self.host.send_tool(StartToolRun(
            self.owner, "translate", image=self.canvas.image.copy(), n=self.run_view.n_spin.value(),
            steps=self.run_view.steps_spin.value(), seed=self.run_view.seed_spin.value()))

    def keep(self) -> None:
        chosen = self.run_view.selected_proposal()
        if chosen is None:
            self._show_error("run first, then click a result to continue from it")
            return
        self.image = chosen
        self.canvas.set_image(chosen)
        self._sync()

    def saved_step(self) -> int | None:
        return self.run_view.shown_step()

    def on_run_changed(self, ev: ToolRunChanged) -> None:
        self.run_view.on_run_changed(ev)
        if ev.state == RunState.ERROR:
            self._show_error(ev.message)

    def on_saved(self, path: str) -> None:
        if self._batch_out is not None and Path(path).parent == self._batch_out:
            return  # a batch result: the batch summary stays in the note
        super().on_saved(path)

    def on_tool_frame(self, frame) -> None:
        self.run_view.show_frame(frame)

    # --- batch --------------------------------------------------------------------------------------------
    def _batch_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of pictures to translate")
        if not folder:
            return
        out = QFileDialog.getExistingDirectory(self, "Write the results into")
        if out:
            self.start_batch(folder, out)

    def start_batch(self, folder: str, out_dir: str) -> None:
        """Translate every picture in ``folder`` with the current settings, one after the other.

        One step at a time, each waiting for the engine's answer: load → (image) → run →
        (finished) → save → (saved) → next; an error at any step skips that picture only.
        """
        if self.run_view.state in (RunState.RUNNING, RunState.PAUSED):
            self._show_error("stop the current run first; the batch uses this tool's engine slot")
            return
        try:
            files = sorted(p for p in Path(folder).iterdir()
                           if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES and not p.name.startswith("."))
        except OSError as exc:
            self._show_error(f"cannot read {folder}: {exc}")
            return
        if not files:
            self._show_error(f"{folder} holds no pictures")
            return
        if self.model is None:
            self._show_error("open a target model first")
            return
        self._batch, self._batch_out = list(files), Path(out_dir)
        self._batch_names = output_names(files)
        self._batch_done, self._batch_failed = 0, []
        self._batch_total = len(files)
        self.batch_bar.setRange(0, len(files))
        self.batch_bar.setValue(0)
        self.batch_bar.show()
        self.batch_cancel.setEnabled(True)
        self._set_busy(True)
        self._batch_load()

    def _set_busy(self, busy: bool) -> None:
        """While a batch runs, nothing else may start a run, change the model or load an image."""
        self._busy = busy
        for w in (self.batch_button, self.run_view.run_button, *self.demo_buttons, self.model_box,
                  self.open_model_button, self.prev_button, self.next_button, self.heldout_spin,
                  self.file_button, self.paste_button, self.live_button, self.blank_button,
                  self.keep_button):
            w.setEnabled(not busy)

    def _batch_load(self) -> None:
        self._batch_phase = "load"
        self.request_image(path=str(self._batch[0]))

    def _on_event(self, ev) -> None:
        if self._batch and getattr(ev, "owner", None) == self.owner and self._batch_step(ev):
            return
        if isinstance(ev, ToolError):
            self._pending_demo = None  # a demo whose model or source failed does not start later
        super()._on_event(ev)

    def _batch_step(self, ev) -> bool:
        """Advance the batch on an engine event; True when the event was the batch's own."""
        phase, name = self._batch_phase, self._batch[0].name
        if phase == "load" and isinstance(ev, ToolImageReady) and ev.request == self._image_request:
            super()._on_event(ev)
            self._batch_phase = "run"
            self.run()
            return True
        if phase == "run" and isinstance(ev, ToolRunChanged) and ev.state == RunState.FINISHED:
            self.on_run_changed(ev)
            self._batch_phase = "save"
            self.host.send_tool(SaveToolResult(self.owner, str(self._batch_out / self._batch_names[self._batch[0]])))
            return True
        if phase == "run" and isinstance(ev, ToolRunChanged) and ev.state in (RunState.ERROR, RunState.STOPPED):
            self.on_run_changed(ev)
            self._batch_failed.append(f"{name}: {ev.message or ev.state.value}")
            self._batch_advance()
            return True
        if phase == "save" and isinstance(ev, ToolSaved):
            self._batch_done += 1
            self._batch_advance()
            return True
        if isinstance(ev, ToolError):
            self._batch_failed.append(f"{name}: {ev.message}")
            self._batch_advance()
            return True
        return False

    def _batch_advance(self) -> None:
        self._batch.pop(0)
        self.batch_bar.setValue(self._batch_total - len(self._batch))
        if self._batch:
            self._batch_load()
            return
        self._finish_batch()

    def cancel_batch(self) -> None:
        if self._batch:
            self._batch_failed.append(f"cancelled with {len(self._batch)} left")
            self._batch = []
            self.host.send_tool(StopToolRun(self.owner))
        self._finish_batch()

    def _finish_batch(self) -> None:
        self._batch = []
        self.batch_bar.hide()
        self.batch_cancel.setEnabled(False)
        self._set_busy(False)
        text = f"translated {self._batch_done} of {getattr(self, '_batch_total', 0)} into {self._batch_out}"
        if self._batch_failed:
            text += "; skipped " + "; ".join(self._batch_failed)
        self.note.setText(text)
        self.note.setToolTip(text)
        self.status.emit(text)

