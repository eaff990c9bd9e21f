"""Training metrics history: one list per metric, appended every step, stored in checkpoints.

Plots over 100k steps stay fast because views ask for a downsampled copy (:meth:`MetricsLog.series`
with ``max_points``), never for the whole history.
"""

from __future__ import annotations

import math

import numpy as np


class MetricsLog:
    """Per-step metric values keyed by name; ``step`` holds the training step of each row."""

    def __init__(self) -> None:
        self.columns: dict[str, list[float]] = {}

    def append(self, metrics: dict) -> None:
        n = len(self)
        for key, value in metrics.items():
            col = self.columns.get(key)
            if col is None:
                col = self.columns[key] = [math.nan] * n  # a metric that starts late
            col.append(float(value) if value is not None else math.nan)
        for key, col in self.columns.items():
            if key not in metrics:
                col.append(math.nan)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def last(self) -> dict[str, float]:
        return {k: v[-1] for k, v in self.columns.items() if v}

    def series(self, name: str, max_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one metric; with ``max_points``, block means of equal-sized bins."""
        y = np.asarray(self.columns.get(name, []), dtype=np.float64)
        x = np.asarray(self.columns.get("step", range(1, len(y) + 1)), dtype=np.float64)
        if max_points is None or len(y) <= max_points:
            return x, y
        k = math.ceil(len(y) / max_points)
        m = len(y) // k * k
        with np.errstate(invalid="ignore"):
            return x[:m].reshape(-1, k).mean(1), np.nanmean(y[:m].reshape(-1, k), 1)

    def to_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.columns.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "MetricsLog":
        log = cls()
        cols = {k: [float(x) for x in v] for k, v in (data or {}).items() if isinstance(v, list)}
        if cols and len({len(v) for v in cols.values()}) == 1:
            log.columns = cols
        return log
