"""The frame both image tools are built in: a model picker, an image source row, and the wiring to
the engine's tool events (one owner per tool).

A tool opens with a bundled image model (digits first) in its own engine slot, so it never
disturbs the viewer's model or a training run. Images come from the model's held-out data, a file
(dialog, drag and drop), the clipboard, or the newest frame of the live chains; the engine fits
them to the model and says what it changed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QImage, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ebm_studio.core.bundled import example_checkpoints
from ebm_studio.worker.tool_api import (
    LoadToolImage,
    OpenToolModel,
    SaveToolResult,
    ToolError,
    ToolImageReady,
    ToolModelChanged,
    ToolModelInfo,
    ToolRunChanged,
    ToolSaved,
)

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff);;All files (*)"
#: bundled examples the image tools open first, best first
PREFERRED_MODELS = ("digits", "texture-brick", "texture-grass", "texture-gravel")


def qimage_to_array(image: QImage) -> np.ndarray:
    """A QImage as uint8 (H, W, 3) RGB (alpha dropped)."""
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, stride = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=stride * h).reshape(h, stride)
    return buf[:, : 3 * w].reshape(h, w, 3).copy()


def image_models() -> dict[str, str]:
    """Bundled image checkpoints by display name → path, preferred ones first."""
    found = {name: str(p) for name, p in example_checkpoints().items()
             if name == "digits" or name.startswith(("texture", "digits"))}
    order = [n for n in PREFERRED_MODELS if n in found] + sorted(n for n in found if n not in PREFERRED_MODELS)
    return {n: found[n] for n in order}


class ImageToolBase(QWidget):
    """Base of the inpainting and translation tabs: model, image source, engine events."""

    status = Signal(str)

    def __init__(self, session, owner: str, parent=None) -> None:
        super().__init__(parent)
        host = session.host
        self.session = session
        self.host = host
        self.owner = owner
        self.model: ToolModelInfo | None = None
        self.image: np.ndarray | None = None
        self.live_frame = None  # the newest frame of the live chains (for "From live chains")
        self.heldout_index = 0
        self.last_error = ""
        self._image_request = 0  # only the answer to the newest image request is shown
        self.setAcceptDrops(True)

        self.model_box = QComboBox()
        self.model_box.setObjectName(f"{owner}_model")
        self.model_box.setToolTip("The image model this tool samples under (independent of the Live tab)")
        self.model_box.setMinimumContentsLength(12)
        self.model_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        for name, path in image_models().items():
            self.model_box.addItem(name, path)
        self.open_model_button = QPushButton("Open model…")
        self.model_label = QLabel("")
        self.model_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.prev_button = QPushButton("◀")
        self.next_button = QPushButton("▶")
        for b in (self.prev_button, self.next_button):
            b.setFixedWidth(32)
        self.prev_button.setToolTip("Previous held-out item of the model's data set")
        self.next_button.setToolTip("Next held-out item of the model's data set")
        self.heldout_spin = QSpinBox()
        self.heldout_spin.setRange(0, 9999)
        self.heldout_spin.setToolTip("Index of the held-out item (never seen in training)")
        self.file_button = QPushButton("Open image…")
        self.paste_button = QPushButton("Paste")
        self.paste_button.setToolTip("Use the image on the clipboard")
        self.live_button = QPushButton("From live chains")
        self.live_button.setToolTip("Use the first chain of the Live tab (an image model must be running there)")
        self.note = QLabel("")
        self.note.setObjectName(f"{owner}_note")
        self.note.setWordWrap(True)
        self.note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.model_row = QHBoxLayout()
        self.model_row.addWidget(QLabel("Model"))
        self.model_row.addWidget(self.model_box, 1)
        self.model_row.addWidget(self.open_model_button)
        self.source_row = QHBoxLayout()
        self.source_row.addWidget(QLabel("Held-out"))
        for w in (self.prev_button, self.heldout_spin, self.next_button, self.file_button, self.paste_button,
                  self.live_button):
            self.source_row.addWidget(w)
        self.source_row.addStretch(1)

        self.model_box.activated.connect(lambda _: self.open_model(self.model_box.currentData()))
        self.open_model_button.clicked.connect(self._open_model_dialog)
        self.prev_button.clicked.connect(lambda: self.load_heldout(self.heldout_spin.value() - 1))
        self.next_button.clicked.connect(lambda: self.load_heldout(self.heldout_spin.value() + 1))
        self.heldout_spin.editingFinished.connect(lambda: self.load_heldout(self.heldout_spin.value()))
        self.file_button.clicked.connect(self._open_image_dialog)
        self.paste_button.clicked.connect(self.paste)
        self.live_button.clicked.connect(self.from_live_chains)
        session.tool_event.connect(self._on_event)
        session.tool_frame_ready.connect(self._on_frame_ready)
        session.frame.connect(self.on_frame)

    # --- what both tabs build the same way ----------------------------------------------------------
    def _canvas_controls(self, canvas, brush: int) -> None:
        """The brush slider and label, Undo / Redo and the keys of the tool's painting canvas."""
        self.canvas = canvas
        canvas.brush = float(brush)
        self.brush_slider = QSlider(Qt.Orientation.Horizontal)
        self.brush_slider.setRange(1, 40)
        self.brush_slider.setValue(brush)
        self.brush_slider.setToolTip("Brush diameter in image pixels ( [ and ] change it)")
        self.brush_label = QLabel(f"{brush} px")
        self.brush_label.setMinimumWidth(40)
        self.undo_button = QPushButton("Undo")
        self.redo_button = QPushButton("Redo")
        self.undo_button.setToolTip("Undo the last stroke (Ctrl+Z)")
        self.redo_button.setToolTip("Redo (Ctrl+Shift+Z)")
        self.brush_slider.valueChanged.connect(self._set_brush)
        self.undo_button.clicked.connect(canvas.undo)
        self.redo_button.clicked.connect(canvas.redo)
        for keys, slot in ((QKeySequence.StandardKey.Undo, canvas.undo),
                           (QKeySequence.StandardKey.Redo, canvas.redo),
                           (QKeySequence("Ctrl+Shift+Z"), canvas.redo),
                           (QKeySequence("["), lambda: self.brush_slider.setValue(self.brush_slider.value() - 1)),
                           (QKeySequence("]"), lambda: self.brush_slider.setValue(self.brush_slider.value() + 1))):
            sc = QShortcut(keys, self)
            sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            sc.activated.connect(slot)

    def _set_brush(self, size: int) -> None:
        self.canvas.brush = float(size)
        self.brush_label.setText(f"{size} px")

    def _sync_undo(self) -> None:
        self.undo_button.setEnabled(self.canvas.can_undo)
        self.redo_button.setEnabled(self.canvas.can_redo)

    def _assemble(self, below_canvas: list[QWidget], above_run: QHBoxLayout, equal_halves: bool = False) -> None:
        """Model, source, note and canvas (then ``below_canvas``) on the left; ``above_run`` and
        the run view on the right; a splitter between them."""
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addLayout(self.model_row)
        ll.addWidget(self.model_label)
        ll.addLayout(self.source_row)
        ll.addWidget(self.note)
        ll.addWidget(self.canvas, 1)
        for w in below_canvas:
            ll.addWidget(w)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(above_run)
        rl.addWidget(self.run_view, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        if equal_halves:
            split.setStretchFactor(0, 1)
            split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.addWidget(split)

    # --- start-up ------------------------------------------------------------------------------
    def start(self) -> None:
        """Open the first bundled image model (called once the engine runs)."""
        if self.model is None and self.model_box.count():
            self.open_model(self.model_box.itemData(0))

    def open_model(self, path: str | None) -> None:
        if path:
            self.host.send_tool(OpenToolModel(self.owner, str(path)))

    def _open_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image model", "", "EBM Studio checkpoints (*.pt)")
        if path:
            self.open_model(path)

    # --- image sources ---------------------------------------------------------------------------
    def request_image(self, **fields) -> None:
        """Ask the engine for an image fitted to the model; an older pending answer is then dropped."""
        self._image_request += 1
        self.host.send_tool(LoadToolImage(self.owner, request=self._image_request, **fields))

    def supersede_images(self) -> None:
        """The user made the image themselves (a sketch): pending answers must not replace it."""
        self._image_request += 1

    def load_heldout(self, index: int) -> None:
        count = self.model.heldout_count if self.model is not None else 0
        if count <= 0:
            self._show_error("this model's data set has no held-out items; open an image instead")
            return
        index %= count
        self.heldout_spin.setValue(index)
        self.request_image(heldout=index)

    def load_file(self, path: str) -> None:
        self.request_image(path=str(path))

    def _open_image_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", IMAGE_FILTER)
        if path:
            self.load_file(path)

    def paste(self) -> None:
        clip = QGuiApplication.clipboard()
        image = clip.image()
        if image.isNull():
            urls = clip.mimeData().urls() if clip.mimeData() is not None else []
            if urls and urls[0].isLocalFile():
                self.load_file(urls[0].toLocalFile())
                return
            self._show_error("the clipboard holds no image")
            return
        self.request_image(pixels=qimage_to_array(image), label="pasted image")

    def from_live_chains(self) -> None:
        frame = self.live_frame
        if frame is None or frame.kind != "images" or frame.tile_shape is None:
            self._show_error("the Live tab shows no image chains; open an image model there first")
            return
        h, w = frame.tile_shape
        tile = frame.grid[1:1 + h, 1:1 + w] if frame.grid.shape[0] > h else frame.grid[:h, :w]
        self.request_image(pixels=np.array(tile, copy=True), label="live chain")

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        md = event.mimeData()
        if md.hasUrls() and md.urls()[0].isLocalFile():
            self.load_file(md.urls()[0].toLocalFile())
        elif md.hasImage():
            self.request_image(pixels=qimage_to_array(QImage(md.imageData())), label="dropped image")
        event.acceptProposedAction()

    def save_dialog(self) -> None:
        path, chosen = QFileDialog.getSaveFileName(
            self, "Save results", f"{self.owner}.png",
            "Picture strip (*.png);;Arrays (*.npz);;Animation of the run (*.gif)")
        if not path:
            return
        if Path(path).suffix.lower() not in (".png", ".npz", ".gif"):
            path += {"Arrays (*.npz)": ".npz", "Animation of the run (*.gif)": ".gif"}.get(chosen, ".png")
        self.host.send_tool(SaveToolResult(self.owner, path, self.saved_step()))

    def saved_step(self) -> int | None:
        return None

    # --- engine events ---------------------------------------------------------------------------
    def _on_event(self, ev) -> None:
        if getattr(ev, "owner", None) != self.owner:
            return
        if isinstance(ev, ToolModelChanged):
            self.model = ev.model
            i = self.model_box.findData(ev.model.path)
            if i < 0:
                self.model_box.addItem(Path(ev.model.path).stem, ev.model.path)
                i = self.model_box.count() - 1
            self.model_box.setCurrentIndex(i)
            c, h, w = ev.model.event_shape
            kind = ev.model.sampler.get("kind", "langevin")
            self.model_label.setText(f"{w}×{h}, {'grey' if c == 1 else 'colour'} · {kind} Langevin")
            self.heldout_spin.setMaximum(max(ev.model.heldout_count - 1, 0))
            self.on_model(ev.model)
        elif isinstance(ev, ToolImageReady):
            if ev.request != self._image_request:
                return  # superseded by a newer request or by the user's own drawing
            self.image = ev.image
            text = ev.source + (": " + "; ".join(ev.notes) if ev.notes else "")
            self.note.setText(text)
            self.note.setToolTip(text)
            self.on_image(ev.image)
        elif isinstance(ev, ToolRunChanged):
            self.on_run_changed(ev)
        elif isinstance(ev, ToolSaved):
            self.status.emit(f"Saved {ev.path}")
            self.on_saved(ev.path)
        elif isinstance(ev, ToolError):
            self._show_error(ev.message)

    def _on_frame_ready(self, owner: str) -> None:
        if owner != self.owner:
            return
        for recorded in (False, True):  # a scrubbed step last: it is what the user asked for
            frame = self.host.engine.tool_frames(owner, recorded).take()
            if frame is not None:
                self.on_tool_frame(frame)

    def on_frame(self, frame) -> None:
        """Every frame of the main job passes here: keep the newest image chains for "From live chains"."""
        if frame.kind == "images" and frame.job_kind == "sample":
            self.live_frame = frame

    def save_settings(self, settings) -> None:
        """Nothing to keep between sessions: a model brings its own settings."""

    def _show_error(self, message: str) -> None:
        self.last_error = message
        self.note.setText(message)
        self.note.setToolTip(message)
        self.status.emit(message)

    # --- for subclasses ------------------------------------------------------------------------
    def on_model(self, info: ToolModelInfo) -> None:
        """A model was opened: take its settings, load a first image."""

    def on_image(self, image: np.ndarray) -> None:
        """An image arrived, fitted to the model."""

    def on_run_changed(self, ev: ToolRunChanged) -> None:
        """The run changed state."""

    def on_saved(self, path: str) -> None:
        """A result was written."""
        self.note.setText(f"saved {Path(path).name}")

    def on_tool_frame(self, frame) -> None:
        """A live or recorded frame of this tool's run."""
