"""The landscape view's numbers: log Z by quadrature, held-out NLL, both KLs, mass per mode.

The numbers (a :class:`~ebm_studio.worker.api.LandscapeNumbers`) come from
:func:`ebm_studio.core.landscape_render.numbers_at` at the view's temperature T (computed in the
engine while a model trains, in the GUI when the user moves T). :class:`NumbersPanel` shows them
as a small table and the masses per mode as a bar chart, model against truth.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

from ebm_studio.worker.api import LandscapeNumbers


TIPS = {
    "numbers": (
        "<b>log Z_T</b> = log Σ_cells exp(−E(x)/T)·ΔA (midpoint rule on the grid; only the box "
        "counts).<br><b>NLL</b> = mean over held-out data of −log p_T(x) = E(x)/T + log Z_T "
        "(nats; the truth's own NLL is the floor).<br>"
        "<b>KL(p_data‖p_T)</b> = Σ p_data·log(p_data/p_T)·ΔA "
        "(mode covering: large when the model misses data)<br>"
        "<b>KL(p_T‖p_data)</b> = Σ p_T·log(p_T/p_data)·ΔA "
        "(mode seeking: large when the model puts mass where there is no data)."
    ),
    "masses": "Probability mass of the cells nearest each mode centre: model p_T (bars) against "
              "the truth (outlines). Equal bars mean the model weighs the modes right.",
}


def _fmt(v: float | None, digits: int = 4) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:.{digits}g}"


class NumbersPanel(QWidget):
    """A table of the quadrature numbers and a bar chart of the mass per mode."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("landscape_numbers_panel")
        self.label = QLabel("No landscape yet.")
        self.label.setObjectName("landscape_numbers")
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.label.setToolTip(TIPS["numbers"])
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setMinimumWidth(300)
        self.masses = pg.PlotWidget()
        self.masses.setObjectName("mode_mass_plot")
        self.masses.setToolTip(TIPS["masses"])
        self.masses.setBackground("k")
        self.masses.setMinimumHeight(120)
        self.masses.setLabel("left", "mass %")
        self.masses.setLabel("bottom", "mode")
        self.masses.getPlotItem().setMouseEnabled(x=False, y=False)
        self.masses.getPlotItem().hideButtons()
        self.model_bars = pg.BarGraphItem(x=[], height=[], width=0.6, brush=(255, 190, 40, 200), pen=None)
        self.truth_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=pg.mkBrush(0, 0, 0, 0),
                                          pen=pg.mkPen((80, 220, 255), width=2))
        self.masses.addItem(self.model_bars)
        self.masses.addItem(self.truth_bars)
        self.masses.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label)
        lay.addWidget(self.masses, 1)
        self.values: LandscapeNumbers | None = None
        self._truth_heights: np.ndarray | None = None
        self._y_top = 0.0
        self._n_bars = 0

    def clear(self, text: str = "No landscape yet.") -> None:
        self.values = None
        self.label.setText(html.escape(text))
        self.model_bars.setOpts(x=[], height=[])
        self.truth_bars.setOpts(x=[], height=[])
        self._truth_heights, self._y_top, self._n_bars = None, 0.0, 0
        self.masses.setVisible(False)

    def show_numbers(self, v: LandscapeNumbers) -> None:
        self.values = v
        (x0, x1), (y0, y1) = v.box
        rows = [
            ("model", html.escape(v.model_name) + (f" · step {v.step:,}" if v.step else "")),
            ("temperature T", _fmt(v.temperature)),
            ("grid", f"{v.grid_n}×{v.grid_n} cells on [{x0:.3g}, {x1:.3g}]×[{y0:.3g}, {y1:.3g}]"),
            ("log Z_T (quadrature)", _fmt(v.log_z, 6)),
        ]
        if v.exact_log_z is not None:
            exact = v.exact_log_z
            rel = abs(v.log_z - exact) / max(abs(exact), 1e-300)
            rows.append(("log Z exact (T = 1)", f"{_fmt(exact, 6)} · rel. error {rel:.1e}"))
        if v.nll is not None:
            text = f"{_fmt(v.nll)} nats ({v.heldout_n:,} held-out points)"
            if v.nll_truth is not None:
                text += f" · truth {_fmt(v.nll_truth)}"
            rows.append(("NLL held-out", text))
        if v.kl_data_model is not None:
            rows.append(("KL(p_data‖p_T)", _fmt(v.kl_data_model) + " nats"))
            rows.append(("KL(p_T‖p_data)", _fmt(v.kl_model_data) + " nats"))
        elif v.nll is not None:
            rows.append(("KL", "no exact data density: see the histogram"))
        mm, mt = v.mass_model, v.mass_truth
        if mm is not None and mt is not None:
            dm = np.abs(np.asarray(mm) - np.asarray(mt))
            rows.append(("mass per mode", f"{len(dm)} modes · max |model − truth| {100 * dm.max():.2f} %"))
        if v.seconds is not None:
            rows.append(("engine time", f"{1000 * v.seconds:.0f} ms per refresh"))
        body = "".join(f"<tr><td style='padding-right:10px'><b>{k}</b></td><td>{val}</td></tr>"
                       for k, val in rows)
        self.label.setText(f"<table>{body}</table>")
        if mm is not None and mt is not None:
            x = np.arange(len(mm))
            mm_pc, mt_pc = 100.0 * np.asarray(mm), 100.0 * np.asarray(mt)
            self.model_bars.setOpts(x=x, height=mm_pc, width=0.6)
            if self._truth_heights is None or not np.array_equal(self._truth_heights, mt_pc):
                self._truth_heights = mt_pc
                self.truth_bars.setOpts(x=x, height=mt_pc, width=0.8)
            # change the axes only when the bars outgrow them or shrink a lot: an axis repaint
            # (tick text) costs more than the bars
            top = max(mm_pc.max(), mt_pc.max()) * 1.15 or 1.0
            if not (0.5 * self._y_top <= top <= self._y_top) or self._n_bars != len(mm):
                self._y_top, self._n_bars = top, len(mm)
                self.masses.setYRange(0.0, top, padding=0)
                self.masses.setXRange(-0.6, len(mm) - 0.4, padding=0)
            self.masses.setVisible(True)
        else:
            self.masses.setVisible(False)
