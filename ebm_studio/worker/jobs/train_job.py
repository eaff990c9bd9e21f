"""Training job: analysis-by-synthesis steps with live learning rate and sampler settings.

Configuration keys: ``config`` (a :class:`~ebm_studio.core.config.TrainConfig` as a dict),
``resume`` (continue the engine's current trainer instead of starting afresh; an error when there
is none), ``autosave_every`` (steps; 0 = off), ``landscape_every`` (steps between 2-D landscape
refreshes, which are also spaced in time; 0 = off).

Live settings: the learning rate, sampler step size, noise and temperature are applied when they
change while the job runs (the settings are shared with the chain viewer, so values that were
already there when the job started do not override the run's configuration).

The trainer stays with the engine after the job ends, so Stop + Resume continues exactly, and Save
writes a resumable checkpoint. A divergence ends the job with the trainer rolled back to its last
good state and a message the panel shows.
"""

from __future__ import annotations

import time

import numpy as np

from ebm_studio.core.config import TrainConfig
from ebm_studio.core.quality import LiveMeter
from ebm_studio.core.training import DivergenceError, StepAborted, Trainer
from ebm_studio.worker.frames import Frame, level_images, make_frame
from ebm_studio.worker.jobs.base import Job
from ebm_studio.worker.live import Settings

#: how many sample chains a training frame shows
SHOW_CHAINS = 64
#: live settings a running training job applies (all others need a new run)
LIVE_KEYS = ("lr", "step_size", "noise", "temperature")
#: 2-D landscapes during training: at most one per this many seconds, and at most this share of time
LANDSCAPE_MIN_INTERVAL_S = 1.0
LANDSCAPE_MAX_SHARE = 0.2
#: the quality meter runs at most once per this many seconds (and at the end of a run)
QUALITY_INTERVAL_S = 5.0


class TrainJob(Job):
    kind = "train"
    paced = False  # training runs flat out; frames are still throttled by time

    def start(self) -> None:
        cfg = self.request.config
        engine = self.engine
        if cfg.get("resume") and engine.trainer is None:
            # never fall back to a fresh run silently: the user asked to continue one
            raise ValueError(
                "there is no training run to continue; open a resumable checkpoint or press Train"
            )
        if cfg.get("resume"):
            self.trainer = engine.trainer
            if cfg.get("config"):
                new = TrainConfig.from_dict(cfg["config"])
                self.trainer.set_lr(new.optim.lr)
                self.trainer.set_sampling(
                    step_size=new.sampler.step_size,
                    noise=new.sampler.noise,
                    temperature=new.sampler.temperature,
                )
                self.trainer.config.steps = new.steps
        else:
            config = TrainConfig.from_dict(cfg.get("config") or {})
            dataset = engine.selected_dataset(config.data)
            self.trainer = Trainer(config, dataset, device=engine.device)
            engine.adopt_trainer(self.trainer)
        self.step = self.trainer.step_count
        self.total = self.trainer.config.steps
        self.autosave_every = int(cfg.get("autosave_every", 500))
        self.landscape_every = int(cfg.get("landscape_every", 25))
        self.recorder = None
        every = int(cfg.get("record_negatives", 0) or 0)
        if every > 0:
            # the negatives of every K-th step, scrubbable like a sampling run
            self.recorder = engine.trajectories.new_recording(
                kind=self.trainer.dataset.kind, every=every, model=engine.model.name,
                model_id=engine.model.serial)
            engine.announce_recording()
        self._landscape_due = 0.0
        self._quality_due = time.perf_counter() + QUALITY_INTERVAL_S
        try:
            self.meter = LiveMeter(self.trainer.dataset, ref_sigma=self.trainer.config.model.ref_sigma)
        except (ValueError, OSError, FileNotFoundError):
            self.meter = None  # no meter for this data (or its classifier is missing): no curve
        self.metrics: dict = {}
        s = self.live.snapshot()
        self._lr = self.trainer.config.optim.lr
        # Live settings are shared with the chain viewer, so values left over from it (or from an
        # earlier run) must not override this run's configuration: only changes made after the
        # job started are applied. The training panel writes its values before it starts a job.
        self._seen: dict = {key: getattr(s, key) for key in LIVE_KEYS}
        if self.step >= self.total:
            self.done = True
            self.message = f"already at step {self.step} of {self.total}; raise the number of steps to continue"

    def _apply(self, s: Settings) -> None:
        changed = {key: getattr(s, key) for key in LIVE_KEYS if getattr(s, key) != self._seen[key]}
        if not changed:
            return
        self._seen.update(changed)
        lr = changed.pop("lr", None)
        if lr is not None and lr != self._lr:
            self.trainer.set_lr(lr)
            self._lr = lr
        if changed:  # sampler step size, noise, temperature: used from the next training step on
            self.trainer.set_sampling(**changed)

    def advance(self, settings: Settings) -> None:
        self._apply(settings)
        try:
            m = self.trainer.step(should_stop=lambda: self.live.stop_requested)
        except StepAborted:
            return
        except DivergenceError as exc:
            self.done = True
            self.diverged = True
            self.message = str(exc)
            self.engine.model.step = self.trainer.step_count
            return
        self.step = self.trainer.step_count
        if self.step >= self.total or time.perf_counter() >= self._quality_due:
            m = {**m, **self._quality()}
        self.metrics = m
        self.engine.push_metrics(m)
        if self.recorder is not None:
            self._record(settings)
        self._count_step()
        self.step = self.trainer.step_count  # completed steps: the rate counter must not add one
        self.engine.model.step = self.step
        if self.step >= self.total:
            self.done = True
            self.message = f"finished: step {self.step} of {self.total}"
        if self.autosave_every and self.step % self.autosave_every == 0:
            self.engine.autosave()
        if (
            self.landscape_every
            and self.trainer.dataset.kind == "points"
            and (self.step % self.landscape_every == 0 or self.done)
            and (self.done or time.perf_counter() >= self._landscape_due)
        ):
            t0 = time.perf_counter()
            self.engine.compute_landscape({})
            cost = time.perf_counter() - t0
            # a 256² landscape with its numbers costs about as much as 25 quick 2-D steps: space
            # them in time too, so they never take more than a fifth of the run
            wait = max(LANDSCAPE_MIN_INTERVAL_S, cost / LANDSCAPE_MAX_SHARE)
            self._landscape_due = time.perf_counter() + wait

    def _quality(self) -> dict:
        """The live meter on the newest negatives; its cost is kept to a small share of the run."""
        if self.meter is None or self.meter.kind is None or self.trainer.last_samples is None:
            return {}
        t0 = time.perf_counter()
        try:
            q = self.meter.measure(self.trainer.model, self.trainer.meter_samples(self.meter.n))
        except (ValueError, FloatingPointError):
            q = {}
        self._quality_due = time.perf_counter() + max(QUALITY_INTERVAL_S, 20 * (time.perf_counter() - t0))
        return q

    def _record(self, settings: Settings) -> None:
        live = {"lr": self._lr, "step_size": settings.step_size, "noise": settings.noise,
                "temperature": settings.temperature}
        if not self.recorder.wants(self.step):
            self.recorder.note_settings(self.step, live)
            return
        x = self._shown(self.trainer.last_samples)
        self.recorder.record(self.step, x.detach().cpu().numpy(), self.trainer.model_energy(x).cpu().numpy(),
                             settings=live)

    def _shown(self, x):
        """The chains a frame or recording shows: all points, the first SHOW_CHAINS images."""
        return x[:SHOW_CHAINS] if self.trainer.dataset.kind == "images" else x

    def frame(self, settings: Settings) -> Frame | None:
        x = self.trainer.last_samples
        if x is None:
            return None
        x = self._shown(x)
        xs = x.detach().cpu().numpy()
        e = self.trainer.model_energy(x).cpu().numpy()
        return make_frame(
            self.job_id, self.kind, self.step, xs, e, self.trainer.dataset.value_range,
            settings={**settings.as_dict(), "lr": self._lr}, steps_per_sec=self.steps_per_sec,
            metrics=dict(self.metrics), total_steps=self.total, label="negatives",
            levels=level_images(self.trainer.last_levels, self.trainer.dataset.value_range)
            if xs.ndim == 4 else [],
        )

    diverged = False

    def finish(self) -> None:
        if self.engine.trainer is self.trainer and self.step > 0:
            self.engine.autosave(quiet=True)

    def current_state(self) -> np.ndarray | None:
        x = self.trainer.last_samples
        return None if x is None else x.detach().cpu().numpy().copy()
