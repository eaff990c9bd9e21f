"""The engine: one QObject living in one QThread; it owns every model, sampler, buffer and tensor.

Loop. The engine runs jobs in short slices driven by a zero-interval ``QTimer`` in its own thread:
each slice does steps for at most ~15 ms (reading the live settings at every step, checking stop
and pause), then returns to the thread's event loop, where queued requests from the GUI (open a
checkpoint, compute a landscape, fetch a recorded step) are served *between* steps, never in
parallel with them. A paused job stops the timer; ``wake`` restarts it.

Frames. When a frame is due (at most ``MAX_FPS`` per second) the job reduces its state to a
:class:`~ebm_studio.worker.frames.Frame` of numpy copies and the engine puts it into a one-slot
mailbox; ``frame_ready`` is emitted only when the slot was empty, so the GUI never has a backlog.
``steps_per_frame`` from the live settings caps how many steps a paced job (the viewer) runs per
frame, which makes it a speed control: 1 step per frame is 60 steps per second.

Errors inside a job (a NaN, a shape mismatch, CUDA out of memory) end that job and arrive in the
GUI as ``error`` text; the engine keeps running.
"""

from __future__ import annotations

import functools
import time
import traceback
from pathlib import Path

import numpy as np
import torch
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from ebm_studio.core.checkpoint import (
    CheckpointError,
    energy_checkpoint,
    load_checkpoint,
    sampler_defaults,
    save_checkpoint,
    trainer_checkpoint,
)
from ebm_studio.core.config import DataConfig
from ebm_studio.core.datasets import Dataset, DatasetError, load_dataset
from ebm_studio.core.device import device_label, resolve_device
from ebm_studio.core.metrics_log import MetricsLog
from ebm_studio.core.trajectory import TrajectoryStore
from ebm_studio.core.threads import (
    ThreadGovernor,
    engine_governor_reserve,
    engine_start_threads,
    pin_torch_threads,
)
from ebm_studio.core.warmup import warm_up_in_background
from ebm_studio.worker.api import (
    DataInfo,
    DataLoaded,
    FetchRecordedStep,
    JobState,
    LoadData,
    ModelInfo,
    RecordingsChanged,
)
from ebm_studio.worker.autosave import Autosaver
from ebm_studio.worker.command_table import HANDLERS
from ebm_studio.worker.frames import RecordedAt, make_frame
from ebm_studio.worker.jobs import JOB_TYPES
from ebm_studio.worker.jobs.base import Job
from ebm_studio.worker.job_slot import JobSlot
from ebm_studio.worker.landscape_service import LandscapeService
from ebm_studio.worker.live import LiveSettings
from ebm_studio.worker.mailbox import Mailbox
from ebm_studio.core.model import ModelState
from ebm_studio.worker.requests import JobRequest
from ebm_studio.worker.tool_api import TOOL_KINDS
from ebm_studio.worker.tool_runner import ToolSlot

MAX_FPS = 60.0
SLICE_S = 0.015  # longest stretch of steps before the engine returns to its event loop
METRICS_INTERVAL_S = 0.1
WARM_UP_DELAY_MS = 300  # after the window's first frames: see core/warmup.py


class Engine(QObject):
    frame_ready = Signal(str)  # take the frame from ``slots[name].frames``
    scrub_ready = Signal()  # take the recorded frame from ``scrub_frames``
    landscape_ready = Signal(object)  # an api.LandscapeResult (plain numpy)
    # the training metric rows since the last emission, each {name: value}: by name, because
    # every method reports its own (the same rows a checkpoint's MetricsLog holds)
    metrics_ready = Signal(object)
    job_state = Signal(object)  # an api.JobInfo
    error = Signal(str)
    model_changed = Signal(object)  # an api.ModelInfo
    saved = Signal(str)
    device_changed = Signal(str)
    #: the typed answers of ``api`` commands (an ``api.Event``)
    event = Signal(object)
    #: image tools (see ``tool_api``): typed events, and "a frame is waiting for this owner"
    tool_event = Signal(object)
    tool_frame_ready = Signal(str)

    def __init__(self, live: LiveSettings | None = None, device: str = "auto") -> None:
        super().__init__()
        self.live = live or LiveSettings()  # the viewer's (also the landscape's temperature)
        self.thread_governor: ThreadGovernor | None = None  # made in setup, in the engine thread
        # one place per kind of main job, each with its own live settings, mailbox and timer, so
        # training never ends the viewer's chains and a landscape fit never ends training
        self.slots: dict[str, JobSlot] = {
            "viewer": JobSlot("viewer", self.live),
            "training": JobSlot("training", LiveSettings()),
            "fit": JobSlot("fit", LiveSettings()),
        }
        self.scrub_frames: Mailbox = Mailbox()
        try:
            self.device = resolve_device(device)
        except ValueError:
            self.device = torch.device("cpu")
        self.model = ModelState.demo()
        self.trainer = None
        self.metrics_log = MetricsLog()
        self._metrics_pending: list[dict] = []
        self._metrics_t = 0.0
        self.trajectories = TrajectoryStore()
        self.autosaver = Autosaver()
        self._next_id = 1
        self._datasets: dict[tuple, Dataset] = {}
        # each image tool runs beside the main job, with its own live settings (made here, in the
        # GUI thread, so the host can hand them to the panels) and its own slot (made on first use)
        self.tool_live: dict[str, LiveSettings] = {owner: LiveSettings() for owner in TOOL_KINDS}
        self.tool_slots: dict[str, ToolSlot] = {}
        # services the engine owns (no state in module globals): the landscape view's grid and
        # cached data, the shown composition, the recordings' energy-summary cache
        self.landscape = LandscapeService()
        self.composition = None
        self.trace_cache: dict = {}

    # ------------------------------------------------------------------------------------------
    # set-up and shutdown (called in the worker thread)
    # ------------------------------------------------------------------------------------------
    @Slot()
    def setup(self) -> None:
        """Create the timer in the worker thread (a QTimer belongs to the thread that made it)."""
        for slot in self.slots.values():
            slot.timer = QTimer(self)
            slot.timer.setSingleShot(True)
            slot.timer.timeout.connect(functools.partial(self._tick, slot))
        self.announce_model()
        self.device_changed.emit(device_label(self.device))
        # once the first frames are out, take the first Train click's lazy imports off the click
        QTimer.singleShot(WARM_UP_DELAY_MS, warm_up_in_background)
        # in the app, torch's threads follow the cores other processes leave free
        reserve = engine_governor_reserve()
        if reserve is not None:
            # this thread's own count: the GUI thread keeps its one (see core/threads.py)
            pin_torch_threads(engine_start_threads())
            self.thread_governor = ThreadGovernor(torch.set_num_threads, torch.get_num_threads(),
                                                  reserve=reserve)

    def emit_event(self, event) -> None:
        """Send an ``api.Event`` (plain data only) to the GUI."""
        self.event.emit(event)

    @Slot(object)
    def handle(self, cmd) -> None:
        """Serve an ``api`` command by its type (between steps, in this thread)."""
        handler = HANDLERS.get(type(cmd))
        if handler is None:
            self.error.emit(f"unknown command {type(cmd).__name__}")
            return
        try:
            handler(self, cmd)
        except Exception as exc:
            self._report(f"{type(cmd).__name__} failed", exc)

    def show_change(self, slot_name: str = "viewer") -> None:
        """The chains changed outside a step (chains dropped): draw them at once, even paused."""
        self.slots[slot_name].dirty = True
        self.wake()

    def add_dataset(self, name: str, dataset: Dataset) -> None:
        """Make an in-memory data set (drawn points) what ``selected_dataset`` answers for ``name``."""
        self._datasets[(name, None, None)] = dataset

    @Slot(object)
    def run_callable(self, fn) -> None:
        """Run ``fn(engine)`` in the engine thread (shutdown, tests, one-off requests)."""
        try:
            fn(self)
        except Exception as exc:
            self._report("Engine request failed", exc)

    @Slot()
    def shutdown(self) -> None:
        """Stop the job cleanly (it finishes its current step) before the thread quits."""
        for tool in self.tool_slots.values():
            tool.shutdown()
        self.end_jobs("application closing")
        for slot in self.slots.values():
            if slot.timer is not None:
                slot.timer.stop()

    # ------------------------------------------------------------------------------------------
    # image tools
    # ------------------------------------------------------------------------------------------
    @Slot(object)
    def tool_command(self, cmd) -> None:
        """Route a ``tool_api`` command to its tool's slot (made on first use)."""
        owner = getattr(cmd, "owner", None)
        if owner not in TOOL_KINDS:
            self.error.emit(f"unknown tool {owner!r}")
            return
        slot = self.tool_slots.get(owner)
        if slot is None:
            slot = ToolSlot(owner, self.tool_event.emit, self.tool_frame_ready.emit, self.device,
                            self.tool_live[owner])
            slot.setParent(self)
            self.tool_slots[owner] = slot
        slot.handle(cmd)

    def tool_frames(self, owner: str, recorded: bool = False) -> Mailbox:
        """The live (or, with ``recorded``, the scrubbed) frame mailbox of a tool (empty until it ran)."""
        slot = self.tool_slots.get(owner)
        if slot is None:
            return Mailbox()
        return slot.scrub_frames if recorded else slot.frames

    # ------------------------------------------------------------------------------------------
    # main jobs, one per slot
    # ------------------------------------------------------------------------------------------
    @property
    def jobs(self) -> list[Job]:
        """The main jobs running now (viewer, training, fit)."""
        return [slot.job for slot in self.slots.values() if slot.job is not None]

    def slot_for(self, request: JobRequest) -> JobSlot:
        """The slot a request runs in: its purpose when that names one, else by kind."""
        if request.purpose in self.slots:
            return self.slots[request.purpose]
        return self.slots[{"train": "training", "fit": "fit"}.get(request.kind, "viewer")]

    def start_job(self, request: JobRequest) -> None:
        """Start ``request`` in its slot, ending the job that slot ran (if any); the other slots'
        jobs go on."""
        slot = self.slot_for(request)
        self._end_job(slot, "stopped", "replaced by a new job")
        slot.live.clear_stop()
        slot.live.clear_single_steps()
        cls = JOB_TYPES.get(request.kind)
        if cls is None:
            self.error.emit(f"unknown job kind {request.kind!r}")
            return
        job = cls(self, request, self._next_id, slot.live)
        self._next_id += 1
        try:
            job.start()
        except Exception as exc:  # a bad request: report, keep the engine alive
            self._report(f"Cannot start {request.purpose or request.kind}", exc)
            self.job_state.emit(job.info(JobState.ERROR, str(exc)))
            return
        slot.job = job
        slot.reported_paused = False
        slot.steps_since_frame = 0
        slot.dirty = True
        self.job_state.emit(job.info(JobState.RUNNING))
        if job.done:
            self._end_job(slot, "finished", job.message)
            return
        slot.schedule(0)

    def stop_job(self, slot_name: str = "viewer") -> None:
        slot = self.slots.get(slot_name)
        if slot is not None:
            self._end_job(slot, "stopped", "stopped by the user")

    def end_jobs(self, message: str, keep: tuple[str, ...] = ()) -> None:
        """End the main jobs (except the slots in ``keep``): the model under them changes."""
        for name, slot in self.slots.items():
            if name not in keep:
                self._end_job(slot, "stopped", message)

    @Slot()
    def wake(self) -> None:
        """Resume the loops after a pause, a single-step request or a settings change."""
        for slot in self.slots.values():
            if slot.job is not None and slot.timer is not None and not slot.timer.isActive():
                slot.schedule(0)

    def _end_job(self, slot: JobSlot, state: str, message: str) -> None:
        job, slot.job = slot.job, None
        if job is None:
            return
        if slot.timer is not None:
            slot.timer.stop()
        try:
            if slot.dirty:
                self._emit_frame(slot, job)
            job.finish()
        except Exception as exc:
            self._report("Error while finishing the job", exc)
        self._flush_metrics()
        if getattr(job, "diverged", False):
            state = "diverged"
        self.job_state.emit(job.info(JobState(state), message or job.message))
        if job.request.record:
            self.announce_recording()

    def _tick(self, slot: JobSlot) -> None:
        job = slot.job
        if job is None:
            return
        if self.thread_governor is not None:
            self.thread_governor.poll()
        live = slot.live
        t0 = time.perf_counter()
        single = False
        if slot.reported_paused and not live.snapshot().paused:
            slot.reported_paused = False
            self.job_state.emit(job.info(JobState.RUNNING, "resumed"))
        try:
            while True:
                if live.stop_requested:
                    live.clear_stop()
                    self._end_job(slot, "stopped", "stopped by the user")
                    return
                s = live.snapshot()
                if s.paused:
                    if not live.take_single_step():
                        break
                    single = True
                if not single and job.paced and slot.steps_since_frame >= s.steps_per_frame:
                    break
                job.advance(s)
                slot.steps_since_frame += 1
                slot.dirty = True
                if job.done:
                    self._end_job(slot, "finished", job.message)
                    return
                if single or time.perf_counter() - t0 > SLICE_S:
                    break
        except Exception as exc:
            self._report(f"The {job.kind} job stopped", exc)
            slot.job = job  # let _end_job finish it
            self._end_job(slot, "error", str(exc))
            return
        now = time.perf_counter()
        due = slot.last_frame_t + 1.0 / MAX_FPS
        paused = live.snapshot().paused
        if slot.dirty and (now >= due or single or paused):
            self._emit_frame(slot, job)
            now = time.perf_counter()
            due = now + 1.0 / MAX_FPS
        s = live.snapshot()
        if s.paused or single:
            self._flush_metrics()  # a paused run shows the step it stopped at, not an older one
        else:
            self._maybe_flush_metrics()
        if s.paused:
            if live.take_single_step():
                live.request_single_step()  # put it back: handled in the next slice
                slot.schedule(0)
            elif not slot.reported_paused:
                slot.reported_paused = True
                self.job_state.emit(job.info(JobState.PAUSED))
            return
        if job.paced and slot.steps_since_frame >= s.steps_per_frame:
            slot.schedule((due - now) * 1000.0)  # speed limit: wait for the next frame time
        else:
            slot.schedule(0)

    def _emit_frame(self, slot: JobSlot, job: Job) -> None:
        frame = job.frame(slot.live.snapshot())
        slot.last_frame_t = time.perf_counter()
        slot.steps_since_frame = 0
        slot.dirty = False
        if frame is not None and slot.frames.put(frame):
            self.frame_ready.emit(slot.name)

    def _report(self, what: str, exc: BaseException) -> None:
        user_errors = (ValueError, DatasetError, CheckpointError, FloatingPointError, KeyError)
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            msg = f"{what}: the GPU ran out of memory; use fewer chains or switch to the CPU."
        elif isinstance(exc, user_errors):
            msg = f"{what}: {exc}"
        else:
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            msg = f"{what}: {detail}"
            traceback.print_exc()
        self.error.emit(msg)

    # ------------------------------------------------------------------------------------------
    # models, data, device
    # ------------------------------------------------------------------------------------------
    def open_checkpoint(self, path: str) -> None:
        """Load a checkpoint; on failure the current model stays and ``error`` says why."""
        try:
            ckpt = load_checkpoint(path)
            model = ModelState.from_checkpoint(ckpt, self.device)
        except (CheckpointError, ValueError, OSError) as exc:
            self.error.emit(f"Cannot open {Path(path).name}: {exc}")
            return
        self.end_jobs("a checkpoint was opened")
        self.model = model
        self.trainer = None
        self.metrics_log = MetricsLog.from_dict(ckpt.metrics)
        self.loaded_checkpoint = ckpt
        self.announce_model(path=str(path), resumable=ckpt.optimizer is not None, config=ckpt.config,
                            metrics=self.metrics_log.to_dict())

    def resume_from_checkpoint(self) -> None:
        """Rebuild a trainer from the last opened checkpoint (optimizer, RNG, buffer) to resume."""
        ckpt = getattr(self, "loaded_checkpoint", None)
        if ckpt is None or ckpt.config is None:
            self.error.emit("This checkpoint holds no training configuration; it can only be sampled.")
            return
        from ebm_studio.core.training import Trainer

        try:
            config = ckpt.train_config()
            dataset = self.selected_dataset(config.data)
            trainer = Trainer(config, dataset, device=self.device)
            trainer.load_state(ckpt.trainer_state())
        except Exception as exc:
            self._report("Cannot resume training", exc)
            return
        self.adopt_trainer(trainer, keep_metrics=True)

    def adopt_trainer(self, trainer, keep_metrics: bool = False) -> None:
        """Make ``trainer``'s model the current model (viewer, landscape and saving use it)."""
        self.trainer = trainer
        ds = trainer.dataset
        self.model = ModelState(
            energy=trainer.model,
            name=f"{ds.name} (training)",
            kind=ds.kind,
            event_shape=tuple(ds.event_shape),
            value_range=tuple(ds.value_range),
            data_desc=ds.describe(),
            sampler_defaults=sampler_defaults(trainer.config),
            buffer=trainer.buffer_samples(),
            step=trainer.step_count,
            ref_sigma=trainer.config.model.ref_sigma,
            _dataset=ds,
        )
        if not keep_metrics:
            self.metrics_log = MetricsLog()
        self.autosaver.start_run(ds.name)
        self.announce_model(training=True, config=trainer.config.to_dict(), metrics=self.metrics_log.to_dict(),
                            resumable=True)

    def describe_model(self, **announcement) -> ModelInfo:
        """The current model as plain data for the GUI; ``announcement`` sets the fields that say
        what the announcement is about (``path``, ``training``, ``config``, …)."""
        m = self.model
        return ModelInfo(
            name=m.name,
            kind=m.kind,
            event_shape=tuple(int(s) for s in m.event_shape),
            value_range=(float(m.value_range[0]), float(m.value_range[1])),
            sampler_defaults=dict(m.sampler_defaults),
            has_buffer=m.buffer is not None,
            has_data=bool(m.data_desc),
            method=m.method,
            source=m.source,
            step=int(m.step),
            **announcement,
        )

    def announce_model(self, **announcement) -> None:
        """Tell the GUI the current model (``model_changed``): after every change of model."""
        self.model_changed.emit(self.describe_model(**announcement))

    def selected_dataset(self, data: DataConfig) -> Dataset:
        key = (data.name, data.image_size, data.channels)
        ds = self._datasets.get(key)
        if ds is None:
            ds = load_dataset(data.name, image_size=data.image_size, channels=data.channels)
            self._datasets = {key: ds}  # keep one: image sets can be large
        return ds

    def load_data(self, cmd: LoadData) -> None:
        """Load a data set for the training panel and answer with its description and a preview."""
        data = DataConfig(name=cmd.name, image_size=cmd.image_size, channels=cmd.channels)
        try:
            ds = self.selected_dataset(data)
            preview = ds.preview(int(cmd.n_preview))
        except (DatasetError, ValueError, OSError) as exc:
            self.error.emit(f"Cannot use {data.name}: {exc}")
            self.emit_event(DataLoaded(cmd.request_id, error=str(exc)))
            return
        self.emit_event(DataLoaded(cmd.request_id, _data_info(ds), np.array(preview, copy=True)))

    def set_device(self, name: str) -> None:
        try:
            dev = resolve_device(name)
        except ValueError as exc:
            self.error.emit(str(exc))
            return
        if dev == self.device:
            return
        self.end_jobs(f"moving to {dev}")
        self.device = dev
        self.model.energy.to(dev)
        for slot in self.tool_slots.values():
            slot.move_to(dev)
        if self.trainer is not None:
            self.trainer.device = dev
            self.trainer.model.to(dev)
            for state in self.trainer.optimizer.state.values():
                for k, v in state.items():
                    if isinstance(v, torch.Tensor):
                        state[k] = v.to(dev)
        self.device_changed.emit(device_label(dev))
        self.announce_model()

    def save_checkpoint(self, path: str) -> None:
        try:
            ckpt = self._checkpoint()
            save_checkpoint(ckpt, path)
        except (CheckpointError, ValueError, OSError) as exc:
            self.error.emit(f"Cannot save {Path(path).name}: {exc}")
            return
        self.saved.emit(str(path))

    def _checkpoint(self):
        if self.trainer is not None:
            return trainer_checkpoint(self.trainer, self.metrics_log.to_dict())
        m = self.model
        ckpt = energy_checkpoint(m.energy, m.data_desc, m.sampler_defaults)
        ckpt.step = m.step
        ckpt.buffer = m.buffer
        ckpt.metrics = self.metrics_log.to_dict()
        return ckpt

    def autosave(self, quiet: bool = False) -> None:
        """Autosave the training run, but only a verified state (finite weights, sane energies)."""
        if self.trainer is None:
            return
        from ebm_studio.core.training import DivergenceError

        try:
            self.trainer.verify()
        except DivergenceError as exc:  # the trainer went back to its last verified state
            self.error.emit(f"Not autosaved: {exc}")
            return
        try:
            path = self.autosaver.save(self._checkpoint(), self.trainer.step_count)
        except (CheckpointError, OSError) as exc:
            self.error.emit(f"Autosave failed: {exc}")
            return
        if not quiet:
            self.saved.emit(str(path))

    def rollback(self, lr: float) -> None:
        """After a divergence: go back to a verified state (the newest good one in memory, else the
        last autosave, which is verified before it is written) and lower the learning rate."""
        if self.trainer is None:
            self.error.emit("There is no training run to roll back.")
            return
        from ebm_studio.core.training import DivergenceError

        where = ""
        for _ in range(2):  # a failed check falls back to the last verified update, then re-checks
            try:
                self.trainer.verify()
                where = f"the last good state in memory (step {self.trainer.step_count})"
                break
            except DivergenceError:
                continue
        if not where:
            last = self.autosaver.latest()
            if last is None:
                self.error.emit("There is no verified state to roll back to; start a new run.")
                return
            try:
                self.trainer.load_state(load_checkpoint(last).trainer_state())
                where = f"{last.name} (step {self.trainer.step_count})"
            except CheckpointError as exc:
                self.error.emit(f"Cannot read the autosave {last.name}: {exc}")
                return
        try:
            self.trainer.set_lr(lr)
        except ValueError as exc:
            self.error.emit(str(exc))
            return
        self.model.step = self.trainer.step_count
        self.slots["training"].live.update(lr=lr)
        self.announce_model(training=True, config=self.trainer.config.to_dict(), rolled_back=where,
                            resumable=True, metrics=self.metrics_log.to_dict())

    # ------------------------------------------------------------------------------------------
    # metrics
    # ------------------------------------------------------------------------------------------
    def push_metrics(self, m: dict) -> None:
        self.metrics_log.append(m)
        self._metrics_pending.append(dict(m))

    def _maybe_flush_metrics(self) -> None:
        if self._metrics_pending and time.perf_counter() - self._metrics_t >= METRICS_INTERVAL_S:
            self._flush_metrics()

    def _flush_metrics(self) -> None:
        if self._metrics_pending:
            rows, self._metrics_pending = self._metrics_pending, []
            self._metrics_t = time.perf_counter()
            self.metrics_ready.emit(rows)

    # ------------------------------------------------------------------------------------------
    # landscapes (2-D), served between steps
    # ------------------------------------------------------------------------------------------
    def compute_landscape(self, params: dict) -> None:
        if self.model.kind != "points":
            return
        try:
            result = self.landscape.compute(self.model, params, self.live.snapshot())
        except Exception as exc:
            self._report("Cannot compute the landscape", exc)
            return
        self.landscape_ready.emit(result)

    # ------------------------------------------------------------------------------------------
    # recordings (trajectory scrubbing)
    # ------------------------------------------------------------------------------------------
    def announce_recording(self) -> None:
        """The recordings changed: the scrubber asks for them again (``RequestRecordingInfo``)."""
        self.emit_event(RecordingsChanged())

    def fetch_recorded(self, cmd: FetchRecordedStep) -> None:
        """Answer a scrub request with the recorded state of that step as a frame."""
        try:
            rec = self.trajectories.branch(int(cmd.branch))
            if len(rec) == 0:
                return
            i = rec.index_of(int(cmd.step))
            r = rec.get(i)
        except (KeyError, ValueError, IndexError) as exc:
            self.error.emit(f"Cannot show the recorded step: {exc}")
            return
        box = self.model.value_range
        frame = make_frame(-1, "recorded", r.step, r.state, r.energies, box,
                           settings=dict(r.settings), accept=r.accept,
                           recorded=RecordedAt(rec.branch_id, cmd.t_request),
                           label=f"recorded step {r.step} (branch {rec.branch_id})")
        if self.scrub_frames.put(frame):
            self.scrub_ready.emit()


def _data_info(ds: Dataset) -> DataInfo:
    """What the Training tab shows of a data set, from its description."""
    d = ds.describe()
    held = d.get("heldout_count")
    return DataInfo(
        name=str(d["name"]),
        kind=str(d["kind"]),
        shape=tuple(int(s) for s in d["shape"]),
        count=None if d["count"] is None else int(d["count"]),
        value_range=(float(d["value_range"][0]), float(d["value_range"][1])),
        source=str(d["source"]),
        normalisation=str(d["normalisation"]),
        heldout_count=None if held is None else int(held),
    )
