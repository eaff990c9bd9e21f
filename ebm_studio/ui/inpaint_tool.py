"""Brush inpainting: paint a mask on an image, watch masked Langevin fill it in, live.

The canvas (left) shows the image with the mask painted over it; the run view (right) shows the
masked input followed by the proposals, each proposal's energy along the run, and a scrubber over
the recorded steps. Observed pixels stay exactly as given (the samplers re-set them every step).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
)

from ebm_studio.core.masks import MASK_LABELS, MASK_PRESETS, MaskError, mask_preset
from ebm_studio.ui.image_tool_base import ImageToolBase
from ebm_studio.ui.paint_canvas import PaintCanvas
from ebm_studio.ui.tool_run_view import ToolRunView
from ebm_studio.worker.tool_api import RunState, StartToolRun, ToolModelInfo, ToolRunChanged

FILL_LABELS = {"noise": "Noise", "blur": "Blur of the surroundings", "mean": "Mean of the observed"}


class InpaintTool(ImageToolBase):
    def __init__(self, session, parent=None) -> None:
        super().__init__(session, "inpaint", parent)
        self.setObjectName("inpaint_tool")
        canvas = PaintCanvas("mask")
        canvas.setObjectName("inpaint_canvas")
        canvas.setMinimumSize(220, 220)
        self._canvas_controls(canvas, brush=3)
        self.run_view = ToolRunView(self.host, "inpaint")

        # --- brush --------------------------------------------------------------------------
        brush = QGroupBox("Mask (painted = fill in)")
        g = QGridLayout(brush)
        self.eraser_button = QPushButton("Eraser")
        self.eraser_button.setCheckable(True)
        self.eraser_button.setToolTip("Erase the mask (or hold Shift while painting)")
        self.rect_button = QPushButton("Rectangle")
        self.rect_button.setCheckable(True)
        self.rect_button.setToolTip("Drag a rectangle to fill")
        self.clear_button = QPushButton("Clear")
        self.invert_button = QPushButton("Invert")
        self.preset_box = QComboBox()
        for key in MASK_PRESETS:
            self.preset_box.addItem(MASK_LABELS[key], key)
        self.random_spin = QSpinBox()
        self.random_spin.setRange(1, 100)
        self.random_spin.setValue(50)
        self.random_spin.setSuffix(" %")
        self.random_spin.setToolTip("Share of pixels for the random mask")
        self.preset_button = QPushButton("Apply")
        self.colour_button = QPushButton("Colour…")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(55)
        self.opacity_slider.setToolTip("Opacity of the mask overlay")
        g.addWidget(QLabel("Brush"), 0, 0)
        g.addWidget(self.brush_slider, 0, 1, 1, 2)
        g.addWidget(self.brush_label, 0, 3)
        tools = QHBoxLayout()
        for b in (self.eraser_button, self.rect_button, self.clear_button, self.invert_button,
                  self.undo_button, self.redo_button):
            tools.addWidget(b)
        g.addLayout(tools, 1, 0, 1, 4)
        g.addWidget(QLabel("Preset"), 2, 0)
        g.addWidget(self.preset_box, 2, 1)
        g.addWidget(self.random_spin, 2, 2)
        g.addWidget(self.preset_button, 2, 3)
        g.addWidget(QLabel("Overlay"), 3, 0)
        g.addWidget(self.opacity_slider, 3, 1, 1, 2)
        g.addWidget(self.colour_button, 3, 3)

        self.fill_box = QComboBox()
        for key, label in FILL_LABELS.items():
            self.fill_box.addItem(label, key)
        self.fill_box.setToolTip("How the masked pixels start before Langevin refines them")
        self.keep_button = QPushButton("Keep selected")
        self.keep_button.setToolTip("Make the selected proposal (click it) the image; the mask stays")
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Save the input, mask and proposals: PNG strip, npz arrays or a GIF of the run")
        fill_row = QHBoxLayout()
        fill_row.addWidget(QLabel("Start fill"))
        fill_row.addWidget(self.fill_box, 1)
        fill_row.addWidget(self.keep_button)
        fill_row.addWidget(self.save_button)

        self._assemble([brush], fill_row, equal_halves=True)

        # --- wiring -------------------------------------------------------------------------------
        self.eraser_button.toggled.connect(lambda on: setattr(self.canvas, "eraser", on))
        self.rect_button.toggled.connect(lambda on: setattr(self.canvas, "rect_mode", on))
        self.clear_button.clicked.connect(self.canvas.clear_layer)
        self.invert_button.clicked.connect(self.canvas.invert)
        self.preset_button.clicked.connect(self.apply_preset)
        self.colour_button.clicked.connect(self._pick_colour)
        self.opacity_slider.valueChanged.connect(lambda v: self.canvas.set_overlay(opacity=v / 100))
        self.canvas.changed.connect(self._sync)
        self.run_view.run_requested.connect(self.run)
        self.keep_button.clicked.connect(self.keep)
        self.save_button.clicked.connect(self.save_dialog)
        self._sync()

    # --- painting ------------------------------------------------------------------------------------
    def _pick_colour(self) -> None:
        colour = QColorDialog.getColor(self.canvas.colour, self, "Mask colour")
        if colour.isValid():
            self.canvas.set_overlay(colour=QColor(colour))

    def apply_preset(self) -> None:
        size = self.canvas.mask.shape[0]
        try:
            mask = mask_preset(self.preset_box.currentData(), size, self.random_spin.value() / 100,
                               seed=self.run_view.seed_spin.value())
        except MaskError as exc:
            self._show_error(str(exc))
            return
        self.canvas.set_mask(mask)

    def _sync(self) -> None:
        self._sync_undo()
        m = self.canvas.mask
        self.run_view.reference = np.where(m[None], 0.0, self.canvas.image).astype(np.float32)
        share = 100.0 * m.mean() if m.size else 0.0
        self.run_view.run_button.setEnabled(self.model is not None and self.image is not None)
        self.run_view.run_button.setToolTip(f"Fill in the {share:.0f} % of pixels under the mask")

    # --- engine -------------------------------------------------------------------------------------
    def on_model(self, info: ToolModelInfo) -> None:
        self.run_view.use_model(info)
        self.run_view.clear_results()  # results of another model cannot be kept or continued
        self.run_view.steps_spin.setValue(max(int(info.sampler.get("steps", 60)) * 5, 100))
        self.load_heldout(self.heldout_spin.value())

    def on_image(self, image: np.ndarray) -> None:
        previous = self.canvas.mask.copy()
        self.canvas.set_image(image, keep_mask=True)
        if not self.canvas.mask.any():
            if previous.any():  # another model's size: the painted mask follows, resized
                rows = (np.arange(image.shape[1]) * previous.shape[0]) // image.shape[1]
                cols = (np.arange(image.shape[2]) * previous.shape[1]) // image.shape[2]
                self.canvas.set_mask(previous[rows][:, cols], undoable=False)
            else:  # a first image opens with a mask to try at once; painting replaces it
                self.canvas.set_mask(mask_preset("lower-half", image.shape[-1]), undoable=False)
        self._sync()

    def run(self) -> None:
        if self.model is None or self.image is None:
            self._show_error("open an image model and an image first")
            return
        mask = self.canvas.mask
        if not mask.any():
            self._show_error("the mask is empty: paint the part of the image to fill in")
            return
        if mask.all():
            self.note.setText("the mask covers the whole image, so nothing is observed: this is plain sampling")
        self.run_view.prepare_run()
        self._sync()
        self.host.send_tool(StartToolRun(
            self.owner, "inpaint", image=self.canvas.image.copy(), mask=mask.copy(),
            n=self.run_view.n_spin.value(), steps=self.run_view.steps_spin.value(),
            fill=self.fill_box.currentData(), seed=self.run_view.seed_spin.value()))

    def keep(self) -> None:
        chosen = self.run_view.selected_proposal()
        if chosen is None:
            self._show_error("run first, then click a proposal to keep it")
            return
        self.image = chosen
        self.canvas.set_image(chosen, keep_mask=True)
        self._sync()
        self.note.setText("kept the selected proposal as the image")

    def saved_step(self) -> int | None:
        return self.run_view.shown_step()

    def on_run_changed(self, ev: ToolRunChanged) -> None:
        self.run_view.on_run_changed(ev)
        if ev.state == RunState.ERROR:
            self._show_error(ev.message)

    def on_tool_frame(self, frame) -> None:
        self.run_view.show_frame(frame)
