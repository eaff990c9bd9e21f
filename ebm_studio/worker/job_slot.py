"""One place for a main job in the engine: the job, its live settings, its mailbox and its timer.

The engine keeps one slot per kind of main job (``viewer``, ``training``, ``fit``). Each runs its
job in short slices driven by its own single-shot timer in the engine thread, so the jobs of
different slots interleave: a training run, the viewer's chains and a landscape fit all advance,
and requests from the GUI are served between any two slices.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer

from ebm_studio.worker.jobs.base import Job
from ebm_studio.worker.live import LiveSettings
from ebm_studio.worker.mailbox import Mailbox


class JobSlot:
    def __init__(self, name: str, live: LiveSettings) -> None:
        self.name = name
        self.live = live
        self.job: Job | None = None
        #: the newest frame of this slot's job (one slot: the GUI never has a backlog)
        self.frames: Mailbox = Mailbox()
        self.timer: QTimer | None = None  # made in the engine thread (``Engine.setup``)
        self.last_frame_t = 0.0
        self.steps_since_frame = 0
        self.dirty = False  # a step happened since the last frame
        self.reported_paused = False

    def schedule(self, ms: float) -> None:
        if self.timer is not None:
            self.timer.start(max(0, int(ms)))
