"""Live training curves: a numpy-backed metric history and a grid of pyqtgraph plots.

The history (:class:`MetricStore`) keeps every row of a run in growing numpy columns (amortised
doubling, so appending 100k rows never copies lists), and hands the plots a downsampled copy: block
means of equal-sized bins, as :meth:`ebm_studio.core.metrics_log.MetricsLog.series` does, so a
redraw costs the same few hundred points at step 100 and at step 100 000. The plots redraw on a
timer (at most ``REDRAW_HZ`` per second) and only when rows arrived, never once per row.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from ebm_studio.ui.widgets import RedrawTimer

#: the columns a training step reports (see ``core.training.METRIC_NAMES``) plus the step
COLUMNS = ("step", "loss", "e_data", "e_sample", "gap", "grad_norm", "accept", "lr", "sec_per_step")
#: points per curve after downsampling: well above the pixel width of a plot
MAX_POINTS = 1000
REDRAW_HZ = 2.0
#: with fewer rows than this, every row is also drawn as a dot
FEW_ROWS = 30

#: the quality plot's title names the figure it shows
QUALITY_TITLES = {"q_confident": "quality: confident share ↑", "q_spectrum": "quality: spectrum distance ↓",
                  "q_nll_gap": "quality: NLL gap (nats) ↓"}

DATA_PEN = (90, 170, 255)
SAMPLE_PEN = (255, 140, 60)
GAP_PEN = (120, 220, 120)
PLAIN_PEN = (230, 230, 230)


class MetricStore:
    """Per-step metric columns in numpy arrays that grow by doubling."""

    def __init__(self, capacity: int = 1024) -> None:
        self._cap = max(16, int(capacity))
        self._n = 0
        self._cols: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return self._n

    def clear(self) -> None:
        self._n = 0
        self._cols = {}

    def _column(self, name: str) -> np.ndarray:
        col = self._cols.get(name)
        if col is None:  # a metric that starts late: earlier rows are missing (NaN)
            col = self._cols[name] = np.full(self._cap, np.nan)
        return col

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        while self._cap < need:
            self._cap *= 2
        for name, col in self._cols.items():
            new = np.full(self._cap, np.nan)
            new[: self._n] = col[: self._n]
            self._cols[name] = new

    def extend(self, rows: list[dict]) -> None:
        """Append rows (dicts of numbers; missing or ``None`` values become NaN)."""
        if not rows:
            return
        start = self._n
        self._grow(start + len(rows))
        names = set(self._cols) | {k for r in rows for k in r}
        for name in names:
            col = self._column(name)
            col[start : start + len(rows)] = [_number(r.get(name)) for r in rows]
        self._n += len(rows)

    def load(self, history: dict) -> None:
        """Replace the contents by a ``MetricsLog.to_dict()`` history (columns of equal length)."""
        self.clear()
        cols = {k: v for k, v in (history or {}).items() if isinstance(v, (list, tuple))}
        if not cols or len({len(v) for v in cols.values()}) != 1:
            return
        n = len(next(iter(cols.values())))
        self._grow(n)
        for name, values in cols.items():
            self._column(name)[:n] = [_number(v) for v in values]
        self._n = n

    def last(self, name: str) -> float:
        col = self._cols.get(name)
        return float(col[self._n - 1]) if col is not None and self._n else math.nan

    def column(self, name: str) -> np.ndarray:
        """A view of one whole column (NaN where a row lacked it)."""
        col = self._cols.get(name)
        return col[: self._n] if col is not None else np.full(self._n, np.nan)

    def series(self, name: str, max_points: int | None = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values); with more rows than ``max_points``, block means of equal bins."""
        y = self.column(name)
        x = self.column("step") if "step" in self._cols else np.arange(1, self._n + 1, dtype=float)
        if max_points is None or len(y) <= max_points:
            return x.copy(), y.copy()
        k = math.ceil(len(y) / max_points)
        m = len(y) // k * k
        if m == len(y):
            m -= k  # the newest bin is drawn raw below
        # the tail that does not fill a bin is kept as it is, so the newest steps always show
        with np.errstate(invalid="ignore"), _quiet_nanmean():
            xs = np.concatenate([x[:m].reshape(-1, k).mean(1), x[m:]])
            ys = np.concatenate([np.nanmean(y[:m].reshape(-1, k), 1), y[m:]])
        return xs, ys


class _quiet_nanmean:
    """``np.nanmean`` of an all-NaN bin warns; an empty bin is simply NaN here."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _energy_title() -> str:
    """The energy plot's title doubles as its legend (a legend box would cover the curves)."""
    def colour(rgb: tuple[int, int, int], text: str) -> str:
        return f"<span style='color: #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}'>{text}</span>"

    return f"mean E: {colour(DATA_PEN, 'data x⁺')} · {colour(SAMPLE_PEN, 'samples x⁻')}"


def sticky_range(current: tuple[float, float] | None, lo: float, hi: float,
                 margin: float = 0.15, shrink_below: float = 0.4) -> tuple[float, float] | None:
    """A new axis range for data in [lo, hi], or ``None`` to keep ``current``.

    Live curves change their bounds at every redraw; an axis that followed them exactly would
    regenerate its ticks (the costliest part of a pyqtgraph repaint) every time and jitter. The
    range is kept while the data stays inside it and fills at least ``shrink_below`` of it;
    otherwise it is refitted with a ``margin`` on both sides.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        return None
    span = hi - lo
    if span <= 0.0:
        span = max(abs(hi), 1e-12) * 0.2
    if current is not None:
        c0, c1 = current
        if c0 <= lo and hi <= c1 and (hi - lo) >= shrink_below * (c1 - c0):
            return None
    return lo - margin * span, hi + margin * span


def growing_range(current: tuple[float, float] | None, first: float, last: float,
                  headroom: float = 0.5) -> tuple[float, float] | None:
    """An x range from the first step that grows by ``headroom`` of its span when the newest step
    reaches its end (relative to the first step, so a run resumed at step 10 000 is not squashed)."""
    if not (math.isfinite(first) and math.isfinite(last)):
        return None
    if current is not None and current[0] == first and last <= current[1]:
        return None
    return first, first + max(last - first, 1.0) * (1.0 + headroom)


def _number(v) -> float:
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


class MetricPlots(pg.GraphicsLayoutWidget):
    """Loss, mean energies of data and samples, their gap, the gradient norm, the acceptance and
    the sample quality."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("metric_plots")
        self.setBackground("k")
        self.store = MetricStore()
        self.redraws = 0
        self._dirty = False
        self._last_draw = 0.0
        self.plots: dict[str, pg.PlotItem] = {}
        specs = [
            ("loss", "loss", "E(data) − E(samples) + α(E(data)² + E(samples)²), minimised by Adam"),
            ("energy", _energy_title(), "mean E on the data batch (blue) and on the negative "
                                        "samples (orange); training pushes data down and samples up"),
            ("gap", "gap E(x⁻) − E(x⁺)", "mean E(samples) − mean E(data): ≈ 0 when the sampler "
                                        "matches the model; large and growing when samples lag behind"),
            ("grad_norm", "‖∇θ loss‖", "norm of the parameter gradient (before clipping)"),
            ("accept", "acceptance", "Metropolis acceptance rate (MALA and HMC; unadjusted "
                                     "samplers have none)"),
            ("quality", "quality", "The sample-quality meter on the newest samples, every few "
                                   "seconds: digits, the share the digit classifier calls with ≥ 90 % "
                                   "confidence; textures, the spectrum distance to held-out crops; 2-D "
                                   "toys, the held-out NLL gap to the exact density (nats)"),
        ]
        for i, (key, title, tip) in enumerate(specs):
            p = self.addPlot(row=i // 3, col=i % 3, title=title)
            p.showGrid(x=True, y=True, alpha=0.2)
            if i // 3 == 1:  # the axes are linked: "step" under the bottom row says it for both
                p.setLabel("bottom", "step")
            p.getAxis("left").setWidth(48)
            p.setToolTip(tip)
            p.setClipToView(True)
            p.setPreferredWidth(240)  # equal hints, so the equal stretch gives equal columns
            self.plots[key] = p
        for col in range(3):  # equal widths, whatever the tick labels need
            self.ci.layout.setColumnStretchFactor(col, 1)
        #: metric column → (plot it is drawn in, pen colour, legend name)
        curve_specs = {
            "loss": ("loss", PLAIN_PEN, None),
            "e_data": ("energy", DATA_PEN, "data"),
            "e_sample": ("energy", SAMPLE_PEN, "samples"),
            "gap": ("gap", GAP_PEN, None),
            "grad_norm": ("grad_norm", PLAIN_PEN, None),
            "accept": ("accept", SAMPLE_PEN, None),
            "q_confident": ("quality", GAP_PEN, None),
            "q_spectrum": ("quality", GAP_PEN, None),
            "q_nll_gap": ("quality", GAP_PEN, None),
        }
        self._plot_of = {key: plot for key, (plot, _, _) in curve_specs.items()}
        self.curves = {
            key: self.plots[plot].plot(pen=pg.mkPen(colour, width=1.5), name=name)
            for key, (plot, colour, name) in curve_specs.items()
        }
        self.plots["accept"].setYRange(0, 1, padding=0.05)
        self._accept_title = ""
        self._symbols = False
        self._tick_values = True
        self._show_tick_values(False)
        self._quality_title = ""
        for key in ("energy", "gap", "grad_norm", "accept", "quality"):
            self.plots[key].setXLink(self.plots["loss"])
        # ranges are set here (sticky, see ``sticky_range``) until the user zooms or pans a plot;
        # its "A" button (auto range) hands it back
        self._follow_all()
        for key, p in self.plots.items():
            p.disableAutoRange()
            p.vb.sigRangeChangedManually.connect(
                lambda mask, key=key: self._taken_over(key, mask))
        self._timer = RedrawTimer(self, REDRAW_HZ, self._maybe_redraw)

    # --- data -------------------------------------------------------------------------------------
    def add_rows(self, rows: list[dict]) -> None:
        self.store.extend(rows)
        self._dirty = True

    def load_history(self, history: dict) -> None:
        self.store.load(history)
        self._dirty = True

    def reset(self) -> None:
        """Forget the history (a new run). Not ``clear``: GraphicsLayoutWidget's ``clear`` removes
        the plots themselves."""
        self.store.clear()
        self._follow_all()
        self._dirty = True

    def _follow_all(self) -> None:
        """Axes follow the data (the acceptance axis stays 0…1)."""
        self._follow_x = True
        self._follow_y = {key: key != "accept" for key in self.plots}

    def _taken_over(self, key: str, mask) -> None:
        """The user zoomed or panned ``key``: leave that axis where they put it."""
        if mask[0]:
            self._follow_x = False
        if mask[1]:
            self._follow_y[key] = False

    # --- drawing ----------------------------------------------------------------------------------
    def _maybe_redraw(self) -> None:
        if self._dirty and self.isVisible():
            self.redraw()

    def redraw(self) -> None:
        bounds: dict[str, list[float]] = {}
        self._dirty = False
        self._last_draw = time.perf_counter()
        # a slow run (a ConvNet on a CPU) has few rows for a long time: mark them, or one row
        # would draw nothing at all
        symbols = len(self.store) < FEW_ROWS
        for key, curve in self.curves.items():
            x, y = self.store.series(key)
            if key.startswith("q_"):  # measured every few seconds: draw the measurements only
                keep = np.isfinite(y)
                x, y = x[keep], y[keep]
            if symbols != self._symbols:
                pen = curve.opts["pen"]
                curve.setSymbol("o" if symbols else None)
                curve.setSymbolSize(5)
                curve.setSymbolPen(pen)
                curve.setSymbolBrush(pen.color())
            if len(x) and np.isfinite(y).any():
                curve.setData(x, y, connect="finite")
                finite = y[np.isfinite(y)]
                bounds.setdefault(self._plot_of[key], []).extend((finite.min(), finite.max()))
            else:
                curve.setData([], [])
        self._symbols = symbols
        self._show_tick_values(len(self.store) > 0)
        self._update_ranges(bounds)
        has_accept = bool(np.isfinite(self.store.column("accept")).any())
        title = "acceptance" if has_accept or not len(self.store) else "acceptance: none (unadjusted)"
        if title != self._accept_title:
            self._accept_title = title
            self.plots["accept"].setTitle(title)
        quality = next((QUALITY_TITLES[k] for k in QUALITY_TITLES if np.isfinite(self.store.column(k)).any()),
                       "quality")
        if quality != self._quality_title:
            self._quality_title = quality
            self.plots["quality"].setTitle(quality)
        self.redraws += 1

    def _show_tick_values(self, show: bool) -> None:
        """Empty plots show no numbers: a placeholder 0…1 scale reads as data."""
        if show == self._tick_values:
            return
        self._tick_values = show
        for p in self.plots.values():
            for side in ("left", "bottom"):
                p.getAxis(side).setStyle(showValues=show)

    def _update_ranges(self, bounds: dict[str, list[float]]) -> None:
        for key, p in self.plots.items():
            auto = p.vb.state["autoRange"]  # the "A" button was pressed: follow the data again
            if auto[0]:
                self._follow_x = True
            if auto[1]:
                self._follow_y[key] = key != "accept"
            if any(auto):
                p.disableAutoRange()
        steps = self.store.column("step")
        if self._follow_x and len(steps):
            new = growing_range(tuple(self.plots["loss"].vb.viewRange()[0]), float(steps[0]),
                                float(steps[-1]))
            if new is not None:
                self.plots["loss"].setXRange(*new, padding=0)
        for key, values in bounds.items():
            if not self._follow_y.get(key):
                continue
            lo, hi = min(values), max(values)
            new = sticky_range(tuple(self.plots[key].vb.viewRange()[1]), lo, hi)
            if new is not None:
                self.plots[key].setYRange(new[0], new[1], padding=0)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        if self._dirty:
            self.redraw()
