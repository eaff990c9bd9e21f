"""The training panel's data-set picker: built-in sets or the user's own, with a preview.

Choosing a set asks the engine to load it (a ``LoadData`` command); the engine answers with a
description and a small preview draw (a ``DataLoaded`` event). Only a successful answer changes the
selection: a failure shows its reason inline and puts the picker back on the set that was selected
before, so bad data (an empty folder, a corrupt PNG, an array of the wrong shape) never leaves the
panel without a usable data set.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ebm_studio.core.datasets import IMAGE_NAMES, dataset_names
from ebm_studio.core.imaging import image_grid
from ebm_studio.ui.session import Session
from ebm_studio.worker.api import DataInfo, DataLoaded, LoadData

#: preview draw: all of it as points for 2-D sets, the first ``PREVIEW_IMAGES`` as a grid for images
N_PREVIEW = 400
PREVIEW_IMAGES = 36
#: the image-size spin box shows this value as "as stored" (the set's own size)
SIZE_AS_STORED = 15
_ids = itertools.count(1)

TIPS = {
    "data": "The data distribution p_data the model learns: each training step draws a batch "
    "x⁺ ~ p_data and lowers E(x⁺). Built-in 2-D toys, MNIST digits, textures, or your own "
    "(Open folder… / Open file…).",
    "folder": "A folder of images (.png, .jpg, .bmp; sub-folders become class labels), resized to "
    "the image size and scaled to [-1, 1].",
    "file": "A .npy/.npz array: (N, 2) points, or images (N, H, W), (N, H, W, C) or (N, C, H, W); "
    "or a .csv/.txt with two columns x, y.",
    "size": "Image side in pixels the images are resized to (16–64): the size of x in E(x). "
    "'as stored' keeps the set's own size.",
}


class DataPicker(QGroupBox):
    """Pick a data set; ``data_changed`` fires when a new set was loaded successfully (then
    ``name``, ``image_size`` and ``info`` describe it)."""

    data_changed = Signal()

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__("Data", parent)
        self.setObjectName("data_picker")
        self.host = session.host
        #: the committed (successfully loaded) selection
        self.name: str | None = None
        self.image_size: int | None = None
        self.info: DataInfo | None = None
        self.preview_data: np.ndarray | None = None
        self._pending: str | None = None  # request id of the newest load
        self._pending_name = ""
        self._pending_size: int | None = None
        self.last_dir = str(Path.home())

        self.combo = QComboBox()
        self.combo.setObjectName("data_box")
        self.combo.setToolTip(TIPS["data"])
        for name in dataset_names():
            self.combo.addItem(name, name)
        self.combo.insertSeparator(self.combo.count())
        self.folder_button = QPushButton("Open folder…")
        self.folder_button.setObjectName("data_folder_button")
        self.folder_button.setToolTip(TIPS["folder"])
        self.file_button = QPushButton("Open file…")
        self.file_button.setObjectName("data_file_button")
        self.file_button.setToolTip(TIPS["file"])
        self.size_spin = QSpinBox()
        self.size_spin.setObjectName("image_size_spin")
        self.size_spin.setRange(SIZE_AS_STORED, 64)
        self.size_spin.setSpecialValueText("as stored")
        self.size_spin.setSuffix(" px")
        self.size_spin.setValue(SIZE_AS_STORED)
        self.size_spin.setKeyboardTracking(False)
        self.size_spin.setToolTip(TIPS["size"])

        self.preview = pg.GraphicsLayoutWidget()
        self.preview.setObjectName("data_preview")
        self.preview.setBackground("k")
        self.preview.setFixedHeight(170)
        self.preview_plot = self.preview.addPlot()
        self.preview_plot.setAspectLocked(True)
        self.preview_plot.hideButtons()
        self.preview_plot.setMenuEnabled(False)
        self.preview_image = pg.ImageItem(axisOrder="row-major")
        self.preview_scatter = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(120, 190, 255, 200))
        self.preview_plot.addItem(self.preview_image)
        self.preview_plot.addItem(self.preview_scatter)
        self.info_label = QLabel("")
        self.info_label.setObjectName("data_info")
        self.info_label.setWordWrap(True)
        self.error_label = QLabel("")
        self.error_label.setObjectName("data_error")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #e0504a;")
        self.error_label.hide()

        row = QHBoxLayout()
        row.addWidget(self.folder_button)
        row.addWidget(self.file_button)
        form = QFormLayout()
        form.addRow("Data set", self.combo)
        form.addRow("", row)
        self.size_label = QLabel("Image size")
        form.addRow(self.size_label, self.size_spin)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.preview)
        lay.addWidget(self.info_label)
        lay.addWidget(self.error_label)

        self.combo.activated.connect(self._on_activated)
        self.size_spin.valueChanged.connect(self._on_size_changed)
        self.folder_button.clicked.connect(lambda: self.open_folder())
        self.file_button.clicked.connect(lambda: self.open_file())
        session.event.connect(self._on_event)

    # --- requests -----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._pending is not None

    @property
    def kind(self) -> str | None:
        """``points`` or ``images`` for the selected set (None before one has loaded)."""
        return self.info.kind if self.info is not None else None

    def select(self, name: str, image_size: int | None = None) -> None:
        """Ask the engine to load ``name`` (a built-in name or a path); the selection changes only
        when it succeeds."""
        name = str(name).strip()
        if not name:
            self._show_error("No data set given.")
            return
        rid = f"training-data-{next(_ids)}"
        self._pending, self._pending_name, self._pending_size = rid, name, image_size
        self.info_label.setText(f"Loading {self._short(name)}…")
        # image sets only show a few tiles: do not ship hundreds of images across the thread
        images = name in IMAGE_NAMES or name.startswith("texture:") or Path(name).is_dir()
        n_preview = PREVIEW_IMAGES if images else N_PREVIEW
        self.host.send(LoadData(name, image_size, n_preview=n_preview, request_id=rid))

    def open_folder(self, path: str | None = None) -> None:
        """Use a folder of images; without ``path``, ask with a dialog."""
        if path is None:
            path = QFileDialog.getExistingDirectory(self, "Open a folder of images", self.last_dir)
            if not path:
                return
        self.last_dir = str(Path(path).parent)
        self.select(str(path), self._size())

    def open_file(self, path: str | None = None) -> None:
        """Use a points/images file (.npy, .npz, .csv, .txt); without ``path``, ask with a dialog."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open points or images", self.last_dir,
                "Arrays and point lists (*.npy *.npz *.csv *.txt *.tsv);;All files (*)",
            )
            if not path:
                return
        self.last_dir = str(Path(path).parent)
        self.select(str(path), self._size())

    def _size(self) -> int | None:
        v = self.size_spin.value()
        return None if v == SIZE_AS_STORED else int(v)

    def _on_activated(self, index: int) -> None:
        name = self.combo.itemData(index)
        if name:
            self.select(str(name), self._size())

    def _on_size_changed(self, _value: int) -> None:
        if self.name is not None and self.kind == "images":
            self.select(self.name, self._size())

    # --- answers ------------------------------------------------------------------------------------
    def _on_event(self, ev) -> None:
        if not isinstance(ev, DataLoaded) or ev.request_id != self._pending or self._pending is None:
            return  # not an answer, somebody else's request, or one superseded by a newer choice
        self._pending = None
        name = self._pending_name
        if ev.error or ev.data is None:
            error = ev.error
            if error.startswith(f"{name}: "):  # the loader names the path itself: say it once
                error = error[len(name) + 2:]
            self._show_error(f"Cannot use {self._short(name)}: {error}")
            self._restore_selection()
            return
        self.clear_error()
        self.name, self.image_size = name, self._pending_size
        self.info = ev.data
        self.preview_data = ev.preview
        self._select_in_combo(name)
        self._show_info()
        self._draw_preview()
        self.data_changed.emit()

    def clear_error(self) -> None:
        """Hide the last loading error (something else has since succeeded)."""
        self.error_label.hide()
        self.error_label.setText("")

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.show()

    def _restore_selection(self) -> None:
        """Put the combo (and the info text) back on the set that was selected before."""
        if self.name is None:
            self.info_label.setText("No data set loaded yet.")
            return
        self._select_in_combo(self.name)
        self._show_info()

    def _select_in_combo(self, name: str) -> None:
        i = self.combo.findData(name)
        if i < 0:  # the user's own data: listed once it has loaded
            p = Path(name)
            label = f"{'folder' if p.is_dir() else 'file'}: {p.name or name}"
            self.combo.addItem(label, name)
            i = self.combo.count() - 1
            self.combo.setItemData(i, name, Qt.ItemDataRole.ToolTipRole)  # the full path
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(i)
        self.combo.blockSignals(False)
        images = self.kind == "images"
        self.size_spin.setEnabled(images)
        self.size_label.setEnabled(images)

    def _show_info(self) -> None:
        d = self.info
        if d is None:
            return
        shape = "×".join(str(s) for s in d.shape)
        lo, hi = d.value_range
        if d.kind == "images":
            what = f"{d.count or 0:,} images, {'grey' if d.shape[0] == 1 else 'RGB'} {shape}"
        elif d.count is None:
            what = f"2-D points, shape {shape}, endless sampler (a toy density)"
        else:
            what = f"{d.count:,} points, shape {shape}"
        extra = f" · {d.normalisation}" if d.normalisation not in ("", "none") else ""
        held = f" · {d.heldout_count:,} held out" if d.heldout_count else ""
        self.info_label.setText(f"{what}{held}\nvalues in [{lo:.3g}, {hi:.3g}]{extra}")
        self.info_label.setToolTip(d.source)

    def _draw_preview(self) -> None:
        x = self.preview_data
        if x is None:
            return
        x = np.asarray(x)
        if x.ndim == 4:
            lo, hi = self.info.value_range
            grid = image_grid(x[:PREVIEW_IMAGES], low=lo, high=hi)
            img = grid[..., 0] if grid.shape[-1] == 1 else grid
            self.preview_image.setImage(img, autoLevels=False, levels=(0, 255))
            self.preview_image.show()
            self.preview_scatter.hide()
            self.preview_plot.invertY(True)
            for axis in ("left", "bottom"):  # pixel indices say nothing about images
                self.preview_plot.showAxis(axis, False)
            self.preview_plot.setRange(xRange=(0, img.shape[1]), yRange=(0, img.shape[0]), padding=0.01)
        else:
            self.preview_scatter.setData(x[:, 0], x[:, 1])
            self.preview_scatter.show()
            self.preview_image.hide()
            self.preview_plot.invertY(False)
            for axis in ("left", "bottom"):
                self.preview_plot.showAxis(axis, True)
            lo, hi = self.info.value_range
            self.preview_plot.setRange(xRange=(lo, hi), yRange=(lo, hi), padding=0.02)

    @staticmethod
    def _short(name: str) -> str:
        p = Path(name)
        return p.name if len(p.parts) > 1 else name

    # --- persistence --------------------------------------------------------------------------------
    def save_settings(self, settings: QSettings) -> None:
        settings.setValue("training/data_dir", self.last_dir)

    def restore_settings(self, settings: QSettings) -> None:
        self.last_dir = str(settings.value("training/data_dir", self.last_dir))
