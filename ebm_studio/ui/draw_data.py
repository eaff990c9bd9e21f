"""Draw your own data: spray 2-D points with the mouse, clear, load, save, and train on them.

While the "Draw data" tab is open, pressing and dragging on the landscape sprays points: dabs are
laid along the stroke one brush radius apart (so a fast stroke, whose mouse events are far apart,
is covered as evenly as a slow one), each adding ``density`` points uniformly in a disc of the brush
radius; a click adds one dab. The points live here, in the GUI, as a plain numpy array; loading a file goes
through the engine thread (the same reader as the data picker, so a file that is not points gets the
same clear message), saving writes a small CSV or .npy atomically, and "Train on these points"
hands a copy to the engine, which trains the 2-D preset on them as a new in-memory data set.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ebm_studio.core.fileio import atomic_write
from ebm_studio.worker.api import (
    DRAWN_STEPS,
    MAX_DRAWN,
    LoadPointsFile,
    PointsLoaded,
    RequestRefused,
    TrainingOnPoints,
    TrainOnPoints,
)
from ebm_studio.worker.thread import EngineHost

TIPS = {
    "radius": "Brush radius r in data units: each dab scatters points uniformly in a disc of radius r "
              "around the cursor (x = c + r·√u·(cos θ, sin θ), u, θ uniform).",
    "density": "Points added per dab. Dabs are laid one brush radius apart along a stroke; a click "
               "adds one.",
    "train": "Train the 2-D preset (MLP energy, persistent Langevin chains) on these points; 10 % are "
             "held out for the NLL. The landscape refreshes every 25 steps while it learns.",
    "steps": "Training steps of that run.",
    "load": "Load points from a .csv/.txt (two columns x, y; an optional header line), .npy (N, 2) or "
            ".npz (array 'points' or 'x'). They replace the drawn points.",
    "save": "Save the points as .csv (x,y per line) or .npy.",
}


class DrawDataPanel(QWidget):
    """Controls and store of the drawn points; the view forwards brush strokes to :meth:`spray`."""

    points_changed = Signal()
    message = Signal(str)

    def __init__(self, host: EngineHost, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("draw_data_panel")
        self.host = host
        self.points = np.zeros((0, 2), dtype=np.float32)
        self._rng = np.random.default_rng(0)  # seeded: the same strokes give the same points
        self.last_dir = str(Path.cwd())
        self._last: tuple[float, float] | None = None  # where the current stroke has got to

        self.radius = QDoubleSpinBox()
        self.radius.setObjectName("brush_radius")
        self.radius.setRange(0.005, 10.0)
        self.radius.setDecimals(3)
        self.radius.setSingleStep(0.05)
        self.radius.setValue(0.25)
        self.radius.setToolTip(TIPS["radius"])
        self.density = QSpinBox()
        self.density.setObjectName("brush_density")
        self.density.setRange(1, 200)
        self.density.setValue(6)
        self.density.setToolTip(TIPS["density"])
        self.steps = QSpinBox()
        self.steps.setObjectName("drawn_train_steps")
        self.steps.setRange(10, 100000)
        self.steps.setSingleStep(100)
        self.steps.setValue(DRAWN_STEPS)
        self.steps.setToolTip(TIPS["steps"])
        self.count_label = QLabel("0 points")
        self.count_label.setObjectName("drawn_count")
        self.clear_button = QPushButton("Clear")
        self.clear_button.setObjectName("drawn_clear")
        self.clear_button.setToolTip("Remove every drawn point")
        self.load_button = QPushButton("Load…")
        self.load_button.setObjectName("drawn_load")
        self.load_button.setToolTip(TIPS["load"])
        self.save_button = QPushButton("Save…")
        self.save_button.setObjectName("drawn_save")
        self.save_button.setToolTip(TIPS["save"])
        self.train_button = QPushButton("Train on these points")
        self.train_button.setObjectName("drawn_train")
        self.train_button.setToolTip(TIPS["train"])
        self.status = QLabel("Press and drag on the landscape to spray points.")
        self.status.setObjectName("drawn_status")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Brush radius r", self.radius)
        form.addRow("Points per dab", self.density)
        form.addRow("Training steps", self.steps)
        buttons = QGridLayout()
        buttons.addWidget(self.clear_button, 0, 0)
        buttons.addWidget(self.load_button, 0, 1)
        buttons.addWidget(self.save_button, 0, 2)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.count_label)
        lay.addWidget(self.train_button)
        lay.addWidget(self.status)
        lay.addStretch(1)

        self.clear_button.clicked.connect(self.clear)
        self.load_button.clicked.connect(lambda: self.load_dialog())
        self.save_button.clicked.connect(lambda: self.save_dialog())
        self.train_button.clicked.connect(self.train)

    # --- the store -----------------------------------------------------------------------------
    def stroke_to(self, x: float, y: float, first: bool) -> int:
        """Continue the stroke to (x, y) (or start one there): dabs every brush radius."""
        if first or self._last is None:
            self._last = (x, y)
            return self.spray(x, y)
        x0, y0 = self._last
        dist = math.hypot(x - x0, y - y0)
        n = min(int(math.ceil(dist / self.radius.value())), 500)
        if n == 0:
            return 0  # still inside the last dab
        added = 0
        for k in range(1, n + 1):
            added += self.spray(x0 + (x - x0) * k / n, y0 + (y - y0) * k / n, emit=False)
        self._last = (x, y)
        self._changed()
        return added

    def end_stroke(self) -> None:
        self._last = None

    def spray(self, x: float, y: float, emit: bool = True) -> int:
        """One dab at (x, y): ``density`` points uniform in the brush disc; returns how many."""
        n = self.density.value()
        room = MAX_DRAWN - len(self.points)
        if room <= 0:
            self._say(f"At most {MAX_DRAWN:,} points can be drawn.")
            return 0
        n = min(n, room)
        r = self.radius.value() * np.sqrt(self._rng.random(n))  # √u: uniform over the disc's area
        theta = self._rng.random(n) * 2.0 * math.pi
        new = np.stack([x + r * np.cos(theta), y + r * np.sin(theta)], 1).astype(np.float32)
        self.points = np.concatenate([self.points, new])
        if emit:
            self._changed()
        return n

    def set_points(self, points: np.ndarray) -> None:
        self.points = np.asarray(points, dtype=np.float32).reshape(-1, 2).copy()
        self._changed()

    def clear(self) -> None:
        self.points = np.zeros((0, 2), dtype=np.float32)
        self._changed()
        self._say("Cleared.")

    def _changed(self) -> None:
        self.count_label.setText(f"{len(self.points):,} points")
        self.points_changed.emit()

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.message.emit(text)

    # --- files ---------------------------------------------------------------------------------
    def load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load points", self.last_dir,
                                              "Points (*.csv *.txt *.tsv *.npy *.npz);;All files (*)")
        if path:
            self.load(path)

    def load(self, path: str) -> None:
        """Ask the engine to read ``path``; the answer arrives in :meth:`on_event`."""
        self.last_dir = str(Path(path).parent)
        self._say(f"Loading {Path(path).name}…")
        self.host.send(LoadPointsFile(str(path)))

    def save_dialog(self) -> None:
        if len(self.points) == 0:
            self._say("There are no points to save.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save points", str(Path(self.last_dir) / "points.csv"),
                                              "CSV (*.csv);;NumPy (*.npy)")
        if path:
            self.save(path)

    def save(self, path: str) -> bool:
        """Write the points to ``path`` (.npy, else CSV with an x,y header), atomically."""
        p = Path(path)
        if p.suffix.lower() not in (".npy", ".csv", ".txt"):
            p = p.with_suffix(".csv")
        pts = self.points.copy()
        try:
            if p.suffix.lower() == ".npy":
                # np.save appends ".npy" to names without it: write through an open file instead
                def write(tmp: Path) -> None:
                    with open(tmp, "wb") as f:
                        np.save(f, pts)
            else:
                def write(tmp: Path) -> None:
                    np.savetxt(tmp, pts, delimiter=",", header="x,y", comments="", fmt="%.7g")
            atomic_write(p, write)
        except OSError as exc:
            self._say(f"Cannot save {p.name}: {exc}")
            return False
        self.last_dir = str(p.parent)
        self._say(f"Saved {len(pts):,} points to {p.name}.")
        return True

    # --- persistence ---------------------------------------------------------------------------
    def restore_settings(self, settings) -> None:
        try:
            self.radius.setValue(float(settings.value("landscape/brush_radius", self.radius.value())))
            self.density.setValue(int(settings.value("landscape/brush_density", self.density.value())))
            self.steps.setValue(int(settings.value("landscape/drawn_steps", self.steps.value())))
        except (TypeError, ValueError):
            pass  # a damaged settings file: keep the defaults
        self.last_dir = str(settings.value("landscape/points_dir", self.last_dir))

    def save_settings(self, settings) -> None:
        settings.setValue("landscape/brush_radius", self.radius.value())
        settings.setValue("landscape/brush_density", self.density.value())
        settings.setValue("landscape/drawn_steps", self.steps.value())
        settings.setValue("landscape/points_dir", self.last_dir)

    # --- training ------------------------------------------------------------------------------
    def train(self) -> None:
        n = len(self.points)
        if n < 2:
            self._say(f"Training needs at least 2 points; there {'is' if n == 1 else 'are'} {n}. "
                      "Spray some first.")
            return
        self._say(f"Starting a training run on {n:,} points…")
        self.host.send(TrainOnPoints(self.points.copy(), self.steps.value()))

    def on_event(self, ev) -> None:
        """Engine answers that concern drawn data."""
        if isinstance(ev, PointsLoaded):
            self.set_points(ev.points)
            self._say(f"Loaded {len(self.points):,} points from {Path(ev.path).name}.")
        elif isinstance(ev, RequestRefused) and ev.request in ("points", "train"):
            self._say(ev.message)
        elif isinstance(ev, TrainingOnPoints):
            self._say(f"Training on {ev.n_points:,} points ({ev.name}).")
