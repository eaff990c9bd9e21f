"""Live settings: a small lock-protected object the GUI writes and the engine reads every step.

Latest value wins. Writing never blocks on the engine (the lock is held for a dict copy only), so a
slider can move as fast as the user likes and the chain sees the newest value at its next step.
Every write bumps ``version``; frames carry the settings they were computed with.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, replace

from ebm_studio.core.samplers import SAMPLER_KINDS


@dataclass(frozen=True)
class Settings:
    """One consistent snapshot of the live settings."""

    temperature: float = 1.0
    step_size: float = 0.01
    noise: float = 0.005
    sampler: str = "langevin"
    n_leapfrog: int = 5
    #: at most this many steps per displayed frame (frames are ≤ 60/s), so it is also a speed limit
    steps_per_frame: int = 10
    paused: bool = False
    #: learning rate of a running training job (None: leave it)
    lr: float | None = None
    version: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


_POSITIVE = ("temperature", "step_size")


def validate(changes: dict) -> dict:
    """Check and normalise a dict of changes; raises ``ValueError`` naming a bad setting."""
    out = {}
    for key, value in changes.items():
        if key in _POSITIVE or key == "lr":
            v = float(value)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{key} must be a positive number, got {value!r}")
            out[key] = v
        elif key == "noise":
            v = float(value)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"noise must be a non-negative number, got {value!r}")
            out[key] = v
        elif key == "sampler":
            if value not in SAMPLER_KINDS:
                raise ValueError(f"sampler must be one of {', '.join(SAMPLER_KINDS)}, got {value!r}")
            out[key] = value
        elif key in ("n_leapfrog", "steps_per_frame"):
            v = int(value)
            if v < 1:
                raise ValueError(f"{key} must be a whole number >= 1, got {value!r}")
            out[key] = v
        elif key == "paused":
            out[key] = bool(value)
        else:
            raise ValueError(f"unknown live setting {key!r}")
    return out


class LiveSettings:
    """Thread-safe holder of :class:`Settings` plus a counter of requested single steps."""

    def __init__(self, **initial) -> None:
        self._lock = threading.Lock()
        self._settings = replace(Settings(), **validate(initial))
        self._single_steps = 0
        self._stop = False

    def update(self, **changes) -> Settings:
        """Apply changes (validated); returns the new snapshot."""
        clean = validate(changes)
        with self._lock:
            self._settings = replace(self._settings, **clean, version=self._settings.version + 1)
            return self._settings

    def snapshot(self) -> Settings:
        with self._lock:
            return self._settings

    def request_single_step(self, n: int = 1) -> None:
        """Ask a paused job to advance ``n`` steps."""
        with self._lock:
            self._single_steps += int(n)

    def take_single_step(self) -> bool:
        """Consume one requested single step, if any."""
        with self._lock:
            if self._single_steps > 0:
                self._single_steps -= 1
                return True
            return False

    def has_single_steps(self) -> bool:
        with self._lock:
            return self._single_steps > 0

    def clear_single_steps(self) -> None:
        with self._lock:
            self._single_steps = 0

    # stop flag: set by the GUI, checked by the engine at every step (also inside long steps)
    def request_stop(self) -> None:
        with self._lock:
            self._stop = True

    def clear_stop(self) -> None:
        with self._lock:
            self._stop = False

    @property
    def stop_requested(self) -> bool:
        with self._lock:
            return self._stop
