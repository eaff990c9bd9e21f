"""The controls of the Landscape tab: what to show, the overlays, the grid and box, and the tool
tabs (view, draw data, compose, KL fits).

A mixin of :class:`~ebm_studio.ui.landscape_view.LandscapeView`, which draws and talks to the
engine; this module only builds the widgets and says what each one does (``TIPS``).
"""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ebm_studio.ui.widgets import LogSlider

GRID_SIZES = (64, 128, 256, 512)
COLORMAPS = ("viridis", "inferno", "magma", "cividis", "turbo", "CET-L17")

MODES = {
    "energy": "Energy E/T",
    "density": "Density p_T",
    "log_density": "Log density log p_T",
}
TIPS = {
    "mode": "<b>Energy</b>: U(x) = E(x)/T (+ |x|²/2σ² with a reference), low = likely.<br>"
            "<b>Density</b>: p_T(x) = exp(−U(x)) / Z_T, Z_T by quadrature on the grid.<br>"
            "<b>Log density</b>: log p_T = −U − log Z_T, shown down to 12 nats below its maximum.",
    "temperature": "Temperature T of p_T(x) ∝ exp(−E(x)/T). T → 0: the mass collapses onto the "
                   "minima of E; T large: p_T flattens towards uniform on the box. Re-rendered at "
                   "once from the last energy grid (no recomputation).",
    "follow": "Also set the chains' live temperature to T, so the particles sample the p_T shown. "
              "Off while a training run is going (the run's sampler would change).",
    "contours": "Contour lines of the shown quantity: N levels evenly inside the colour range, or "
                "the levels typed below (in the units of the shown quantity).",
    "levels": "Contour levels, e.g. '1, 2, 5' (in the shown quantity's units); empty = automatic.",
    "arrows": "The force −∇E(x) on a coarse grid: where a chain is pushed (Langevin drift "
              "−(ε/2)∇E/T). Length grows with |∇E| up to one grid cell.",
    "arrow_n": "Arrows per side of the coarse grid.",
    "chains": "The live chains (the first 256 of the viewer's chains, or a training run's "
              "negatives). Click on the landscape to drop new chains there.",
    "trails": "Short trails: each chain's positions over the last frames (viewer and fit chains; "
              "a training run's negatives are fresh buffer draws each step, so they get none).",
    "data": "Training data points (up to 1000) on both plots.",
    "truth": "The exact data density beside the model (same colour scale), or a 2-D histogram "
             "of the data when there is no exact density.",
    "grid": "Cells per side of the quadrature grid: log Z_T = log Σ exp(−E/T)·ΔA over the box.",
    "drop": "Chains dropped per click (scattered by 1 % of the box around the click).",
    "refresh": "Evaluate the model on the grid again now.",
    "reset": "Back to the data set's box (grid and view).",
    "zoom_grid": "Put the quadrature grid on the visible box (a finer picture of a zoomed region; "
                 "log Z then covers only that box).",
}


def _label(text: str, tip: str) -> QLabel:
    lab = QLabel(text)
    lab.setToolTip(tip)
    return lab


class LandscapeControls:
    # ==============================================================================================
    # controls
    # ==============================================================================================
    def _build_controls(self) -> None:
        self.view_controls = QWidget()
        self.view_controls.setObjectName("landscape_view_controls")
        self.mode_box = QComboBox()
        self.mode_box.setObjectName("landscape_mode")
        for key, label in MODES.items():
            self.mode_box.addItem(label, key)
        self.mode_box.setCurrentIndex(self.mode_box.findData("log_density"))
        self.mode_box.setToolTip(TIPS["mode"])
        self.temperature = LogSlider(0.05, 20.0, 1.0, decimals=3)
        self.temperature.setObjectName("landscape_temperature")
        self.temperature.setToolTip(TIPS["temperature"])
        self.follow_t = QCheckBox("Chains follow T")
        self.follow_t.setObjectName("landscape_follow_t")
        self.follow_t.setChecked(True)
        self.follow_t.setToolTip(TIPS["follow"])
        self.cmap_box = QComboBox()
        self.cmap_box.setObjectName("landscape_cmap")
        for name in COLORMAPS:
            self.cmap_box.addItem(name)
        self.cmap_box.setToolTip("Colour map of both heatmaps (one colour bar)")

        self.contours_box = QCheckBox("Contour lines")
        self.contours_box.setObjectName("landscape_contours")
        self.contours_box.setChecked(True)
        self.contours_box.setToolTip(TIPS["contours"])
        self.contour_n = QSpinBox()
        self.contour_n.setRange(1, 40)
        self.contour_n.setValue(8)
        self.contour_n.setToolTip(TIPS["contours"])
        self.levels_edit = QLineEdit()
        self.levels_edit.setObjectName("landscape_levels")
        self.levels_edit.setPlaceholderText("automatic")
        self.levels_edit.setToolTip(TIPS["levels"])
        self.arrows_box = QCheckBox("Gradient field −∇E")
        self.arrows_box.setObjectName("landscape_arrows")
        self.arrows_box.setToolTip(TIPS["arrows"])
        self.arrow_n = QSpinBox()
        self.arrow_n.setObjectName("landscape_arrow_n")
        self.arrow_n.setRange(6, 48)
        self.arrow_n.setValue(24)
        self.arrow_n.setToolTip(TIPS["arrow_n"])
        self.chains_box = QCheckBox("Live chains")
        self.chains_box.setObjectName("landscape_chains")
        self.chains_box.setChecked(True)
        self.chains_box.setToolTip(TIPS["chains"])
        self.trails_box = QCheckBox("Trails")
        self.trails_box.setObjectName("landscape_trails")
        self.trails_box.setToolTip(TIPS["trails"])
        self.trail_len = QSpinBox()
        self.trail_len.setRange(2, 60)
        self.trail_len.setValue(12)
        self.trail_len.setSuffix(" frames")
        self.trail_len.setToolTip(TIPS["trails"])
        self.data_box = QCheckBox("Training data points")
        self.data_box.setObjectName("landscape_data")
        self.data_box.setToolTip(TIPS["data"])
        self.truth_box = QCheckBox("Truth beside the model")
        self.truth_box.setObjectName("landscape_truth")
        self.truth_box.setChecked(True)
        self.truth_box.setToolTip(TIPS["truth"])
        self.grid_box = QComboBox()
        self.grid_box.setObjectName("landscape_grid")
        for n in GRID_SIZES:
            self.grid_box.addItem(f"{n} × {n}", n)
        self.grid_box.setCurrentIndex(GRID_SIZES.index(256))
        self.grid_box.setToolTip(TIPS["grid"])
        self.drop_n = QSpinBox()
        self.drop_n.setObjectName("landscape_drop_n")
        self.drop_n.setRange(1, 512)
        self.drop_n.setValue(16)
        self.drop_n.setToolTip(TIPS["drop"])
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setObjectName("landscape_refresh")
        self.refresh_button.setToolTip(TIPS["refresh"])
        self.reset_button = QPushButton("Reset view")
        self.reset_button.setObjectName("landscape_reset")
        self.reset_button.setToolTip(TIPS["reset"])
        self.zoom_grid_button = QPushButton("Grid on view")
        self.zoom_grid_button.setObjectName("landscape_zoom_grid")
        self.zoom_grid_button.setToolTip(TIPS["zoom_grid"])
        self.status = QLabel("")
        self.status.setObjectName("landscape_status")
        self.status.setWordWrap(True)

        show = QGroupBox("Show")
        f = QFormLayout(show)
        f.addRow(_label("Quantity", TIPS["mode"]), self.mode_box)
        f.addRow(_label("Temperature T", TIPS["temperature"]), self.temperature)
        f.addRow("", self.follow_t)
        f.addRow("Colour map", self.cmap_box)
        over = QGroupBox("Overlays")
        g = QGridLayout(over)
        g.addWidget(self.contours_box, 0, 0)
        g.addWidget(self.contour_n, 0, 1)
        g.addWidget(_label("Levels", TIPS["levels"]), 1, 0)
        g.addWidget(self.levels_edit, 1, 1)
        g.addWidget(self.arrows_box, 2, 0)
        g.addWidget(self.arrow_n, 2, 1)
        g.addWidget(self.chains_box, 3, 0)
        g.addWidget(self.trails_box, 4, 0)
        g.addWidget(self.trail_len, 4, 1)
        g.addWidget(self.data_box, 5, 0, 1, 2)
        g.addWidget(self.truth_box, 6, 0, 1, 2)
        grid = QGroupBox("Grid and box")
        f2 = QFormLayout(grid)
        f2.addRow(_label("Quadrature grid", TIPS["grid"]), self.grid_box)
        f2.addRow(_label("Chains per click", TIPS["drop"]), self.drop_n)
        buttons = QGridLayout()
        buttons.addWidget(self.refresh_button, 0, 0)
        buttons.addWidget(self.reset_button, 0, 1)
        buttons.addWidget(self.zoom_grid_button, 1, 0, 1, 2)
        f2.addRow(buttons)
        lay = QVBoxLayout(self.view_controls)
        lay.addWidget(show)
        lay.addWidget(over)
        lay.addWidget(grid)
        lay.addWidget(self.status)
        lay.addStretch(1)

        spec_changed = self._spec_changed
        self.mode_box.currentIndexChanged.connect(lambda _i: spec_changed())
        self.temperature.valueChanged.connect(self._on_temperature)
        self.cmap_box.currentTextChanged.connect(lambda name: self.plots.set_colormap(name))
        for w in (self.contours_box, self.truth_box):
            w.toggled.connect(lambda _on: spec_changed())
        self.contour_n.valueChanged.connect(lambda _v: spec_changed())
        self.levels_edit.editingFinished.connect(spec_changed)
        self.arrows_box.toggled.connect(lambda _on: self._draw_arrows(force=True))
        self.arrow_n.valueChanged.connect(lambda _v: self.request_landscape())
        self.chains_box.toggled.connect(lambda _on: self._draw_particles())
        self.trails_box.toggled.connect(lambda _on: self._draw_particles())
        self.data_box.toggled.connect(lambda _on: self._draw_data_points())
        self.grid_box.currentIndexChanged.connect(lambda _i: self.request_landscape())
        self.refresh_button.clicked.connect(lambda: self.request_landscape(force=True))
        self.reset_button.clicked.connect(self.reset_view)
        self.zoom_grid_button.clicked.connect(self.grid_on_view)
        self.plots.set_colormap(self.cmap_box.currentText())

