"""The job interface the engine loop drives, one unit of work at a time.

A job is created from a :class:`~ebm_studio.worker.requests.JobRequest` in the worker thread. The
engine calls :meth:`Job.start` once, then :meth:`Job.advance` with the live settings of that moment
for every step (checking stop and pause in between), :meth:`Job.frame` when a frame is due, and
:meth:`Job.finish` at the end, whatever the reason.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import torch

from ebm_studio.core.config import DataConfig
from ebm_studio.core.datasets import Dataset
from ebm_studio.core.model import ModelState
from ebm_studio.core.trajectory import TrajectoryStore
from ebm_studio.worker.api import JobInfo, JobState
from ebm_studio.worker.frames import Frame
from ebm_studio.worker.live import LiveSettings, Settings
from ebm_studio.worker.requests import JobRequest


class JobContext(Protocol):
    """What a job may use of the engine that runs it, and nothing more (the engine satisfies it)."""

    model: ModelState
    trainer: Any  # the current core.training.Trainer, or None
    device: torch.device
    live: LiveSettings
    trajectories: TrajectoryStore
    landscape: Any  # the engine's landscape_service.LandscapeService

    def selected_dataset(self, data: DataConfig) -> Dataset: ...
    def adopt_trainer(self, trainer, keep_metrics: bool = False) -> None: ...
    def announce_recording(self) -> None: ...
    def push_metrics(self, m: dict) -> None: ...
    def autosave(self, quiet: bool = False) -> None: ...
    def compute_landscape(self, params: dict) -> None: ...
    def emit_event(self, event) -> None: ...


class Job:
    kind = "base"
    #: whether ``steps_per_frame`` limits the pace (viewers), or the job runs flat out (training)
    paced = True

    def __init__(self, engine: JobContext, request: JobRequest, job_id: int,
                 live: LiveSettings | None = None) -> None:
        self.engine = engine
        #: this job's live settings (its slot's): pause, stop, single steps and the sampler's knobs
        self.live = live if live is not None else engine.live
        self.request = request
        self.job_id = job_id
        self.step = 0
        self.done = False
        self.message = ""  # why the job ended, when it ended by itself
        self._rate_t0 = time.perf_counter()
        self._rate_steps = 0
        self.steps_per_sec = 0.0

    def start(self) -> None:
        """Set up (build sampler/trainer); raise ``ValueError`` & co. for a bad request."""

    def advance(self, settings: Settings) -> None:
        """Do one step under ``settings``."""
        raise TypeError(f"{type(self).__name__} cannot advance")

    def frame(self, settings: Settings) -> Frame | None:
        """A frame of the current state (fresh copies), or None when there is nothing to show."""
        return None

    def finish(self) -> None:
        """Release resources; called once, after the last step or on stop/error."""

    def info(self, state: JobState, message: str = "") -> JobInfo:
        """This job's state, as the engine announces it."""
        return JobInfo(self.job_id, self.kind, self.request.purpose, self.step, JobState(state), message)

    def _count_step(self) -> None:
        self.step += 1
        self._rate_steps += 1
        now = time.perf_counter()
        dt = now - self._rate_t0
        if dt >= 0.5:  # a half-second window: steady numbers, quick reaction
            self.steps_per_sec = self._rate_steps / dt
            self._rate_t0, self._rate_steps = now, 0
        if self.request.max_steps is not None and self.step >= self.request.max_steps:
            self.done = True
            self.message = f"finished {self.step} steps"
