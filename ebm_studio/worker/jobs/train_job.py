"""Training job: analysis-by-synthesis steps with live learning rate and sampler settings.

Configuration keys: ``config`` (a :class:`~ebm_studio.core.config.TrainConfig` as a dict),
``resume`` (continue the engine's current trainer instead of starting afresh), ``autosave_every``
(steps; 0 = off), ``landscape_every`` (steps between 2-D landscape refreshes; 0 = off).

The trainer stays with the engine after the job ends, so Stop + Resume continues exactly, and Save
writes a resumable checkpoint. A divergence ends the job with the trainer rolled back to its last
good state and a message the panel shows.
"""

from __future__ import annotations

import numpy as np

from ebm_studio.core.config import TrainConfig
from ebm_studio.core.training import DivergenceError, StepAborted, Trainer
from ebm_studio.worker.frames import Frame, make_frame
from ebm_studio.worker.jobs.base import Job
from ebm_studio.worker.live import Settings

#: how many sample chains a training frame shows
SHOW_CHAINS = 64


class TrainJob(Job):
    kind = "train"
    paced = False  # training runs flat out; frames are still throttled by time

    def start(self) -> None:
        cfg = self.request.config
        engine = self.engine
        if cfg.get("resume") and engine.trainer is not None:
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
        self.metrics: dict = {}
        s = engine.live.snapshot()
        self._lr = self.trainer.config.optim.lr
        self._sampling = None
        self._apply(s)
        if self.step >= self.total:
            self.done = True
            self.message = f"already at step {self.step} of {self.total}; raise the number of steps to continue"

    def _apply(self, s: Settings) -> None:
        if s.lr is not None and s.lr != self._lr:
            self.trainer.set_lr(s.lr)
            self._lr = s.lr

    def advance(self, settings: Settings) -> None:
        self._apply(settings)
        try:
            m = self.trainer.step(should_stop=lambda: self.engine.live.stop_requested)
        except StepAborted:
            return
        except DivergenceError as exc:
            self.done = True
            self.diverged = True
            self.message = str(exc)
            self.engine.model.step = self.trainer.step_count
            return
        self.metrics = m
        self.engine.push_metrics(m)
        self.step = self.trainer.step_count
        self._count_step()
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
        ):
            self.engine.compute_landscape({})

    def frame(self, settings: Settings) -> Frame | None:
        x = self.trainer.last_samples
        if x is None:
            return None
        x = x[:SHOW_CHAINS] if self.trainer.dataset.kind == "images" else x
        xs = x.detach().cpu().numpy()
        e = self.trainer.model_energy(x).cpu().numpy()
        return make_frame(
            self.job_id, self.kind, self.step, xs, e, self.trainer.dataset.value_range,
            settings={**settings.as_dict(), "lr": self._lr}, steps_per_sec=self.steps_per_sec,
            metrics={**self.metrics, "total": self.total}, label="negatives",
        )

    diverged = False

    def finish(self) -> None:
        if self.engine.trainer is self.trainer and self.step > 0:
            self.engine.autosave(quiet=True)

    def current_state(self) -> np.ndarray | None:
        x = self.trainer.last_samples
        return None if x is None else x.detach().cpu().numpy().copy()
