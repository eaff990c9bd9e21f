"""The engine side of the image tools: one :class:`ToolSlot` per tool, beside the main job.

A slot owns its model (loaded from a checkpoint, independent of the viewer's), its run (a masked
or unmasked sampler over ``n`` proposals), a record of every step's state for scrubbing, its own
live settings and its own one-slot frame mailbox. It is driven by its own single-shot timer in the
engine thread: each tick does at most ``SLICE_S`` of steps and returns to the event loop, so the
viewer's chains, a training run and every tool interleave and the engine still serves requests
between steps. Nothing here touches Qt widgets; events go out through ``emit`` (plain data).
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PySide6.QtCore import QObject, QTimer

from ebm_studio.core.checkpoint import CheckpointError, load_checkpoint
from ebm_studio.core.datasets import DatasetError, load_dataset
from ebm_studio.core.image_tools import (
    ImageInputError,
    check_image_model,
    data_background,
    fit_image,
    inpaint_start,
    masked_view,
    read_image_file,
    save_arrays,
    save_image_rows,
)
from ebm_studio.core.model import ModelState
from ebm_studio.worker.live import LiveSettings
from ebm_studio.worker.mailbox import Mailbox
from ebm_studio.worker.tool_api import (
    FetchToolStep,
    LoadToolImage,
    OpenToolModel,
    RunState,
    SaveToolResult,
    StartToolRun,
    StopToolRun,
    ToolError,
    ToolFrame,
    ToolImageReady,
    ToolModelChanged,
    ToolModelInfo,
    ToolRunChanged,
    ToolSaved,
    WakeTool,
)

SLICE_S = 0.015
MAX_FPS = 30.0
MAX_PROPOSALS = 64
MAX_STEPS = 100_000
#: recorded states kept per run, by count and by bytes; longer runs keep every k-th step
MAX_RECORDED = 2000
RECORD_BUDGET_BYTES = 256 * 2**20
#: held-out items offered for a texture model (its held-out rows give any number of crops)
HELDOUT_CROPS = 256
_USER_ERRORS = (ImageInputError, CheckpointError, DatasetError, ValueError, OSError, FloatingPointError)


class ToolRun:
    """One run: the sampler, the start state, and the recorded states, energies and distances."""

    def __init__(self, cmd: StartToolRun, model: ModelState, live: LiveSettings, device) -> None:
        if cmd.kind not in ("inpaint", "translate"):
            raise ValueError(f"unknown tool run {cmd.kind!r}")
        if not 1 <= int(cmd.n) <= MAX_PROPOSALS:
            raise ValueError(f"the number of proposals must lie in 1..{MAX_PROPOSALS}, got {cmd.n}")
        if not 0 <= int(cmd.steps) <= MAX_STEPS:
            raise ValueError(f"the number of steps must lie in 0..{MAX_STEPS}, got {cmd.steps}")
        check_image_model(model)
        image = torch.from_numpy(np.array(cmd.image, dtype=np.float32, copy=True))
        if tuple(image.shape) != tuple(model.event_shape):
            raise ImageInputError(
                f"the image is {tuple(image.shape)} but '{model.name}' takes {tuple(model.event_shape)}; "
                "load it again so it is converted")
        self.kind, self.n, self.steps = cmd.kind, int(cmd.n), int(cmd.steps)
        self.image = image
        self.mask = None
        free = None
        if cmd.kind == "inpaint":
            if cmd.mask is None:
                raise ImageInputError("inpainting needs a mask: paint the part to fill in")
            self.mask = np.array(cmd.mask, dtype=bool, copy=True)
            x0, free = inpaint_start(model, image, self.mask, self.n, cmd.fill, cmd.seed)
        else:
            x0 = image.unsqueeze(0).repeat(self.n, 1, 1, 1)
        s = live.snapshot()
        self.sampler = model.make_sampler(
            x0, temperature=s.temperature, step_size=s.step_size, noise=s.noise,
            seed=int(cmd.seed), device=device, mask=free)
        self.start = x0.numpy().copy()
        per_record = x0.numel() * 4
        budget_records = max(2, RECORD_BUDGET_BYTES // max(per_record, 1))
        self.every = max(1, -(-max(self.steps, 1) // min(MAX_RECORDED, budget_records)))
        self.rec_steps: list[int] = []
        self.rec_states: list[np.ndarray] = []
        self.energy_trace: list[np.ndarray] = []
        self.distance_trace: list[np.ndarray] = []
        self.step = 0
        self._record(self.sampler.current_energy())

    def _record(self, energies: torch.Tensor) -> None:
        x = self.sampler.x.detach().cpu().numpy()
        ref = self.image.numpy()[None]
        self.rec_steps.append(self.step)
        self.rec_states.append(x.copy())
        self.energy_trace.append(energies.detach().cpu().numpy().astype(np.float32))
        self.distance_trace.append(np.sqrt(((x - ref) ** 2).reshape(len(x), -1).mean(1)).astype(np.float32))

    def record_now(self) -> None:
        """Record the current state if it is not yet (a pause, a stop, the end): what is saved or
        kept is then always the newest state."""
        if self.rec_steps[-1] != self.step:
            self._record(self.sampler.current_energy())

    def apply(self, live: LiveSettings) -> None:
        s = live.snapshot()
        smp = self.sampler
        smp.temperature, smp.step_size, smp.noise = s.temperature, s.step_size, s.noise

    def advance(self) -> None:
        r = self.sampler.step()
        self.step += 1
        if self.step % self.every == 0 or self.step == self.steps:
            self._record(r.energy)

    @property
    def done(self) -> bool:
        return self.step >= self.steps

    def frame(self, owner: str, index: int | None = None, rate: float = 0.0) -> ToolFrame:
        """The live state (``index`` None: the sampler's newest state, recorded or not) or a
        recorded step, with the recorded traces."""
        if index is None:
            step, x = self.step, self.sampler.x.detach().cpu().numpy().copy()
            e = self.sampler.current_energy().detach().cpu().numpy().astype(np.float32)
        else:
            step, x, e = self.rec_steps[index], self.rec_states[index].copy(), self.energy_trace[index].copy()
        return ToolFrame(
            owner=owner,
            step=step,
            proposals=x,
            energies=e,
            trace_steps=np.asarray(self.rec_steps, dtype=np.int64),
            energy_trace=np.stack(self.energy_trace).astype(np.float32),
            distance_trace=np.stack(self.distance_trace).astype(np.float32),
            recorded=index is not None,
            steps_per_sec=rate,
        )

    def index_of(self, step: int) -> int:
        steps = np.asarray(self.rec_steps)
        return int(np.abs(steps - int(step)).argmin())


class ToolSlot(QObject):
    """One tool's model, run, live settings and mailbox; lives in the engine thread."""

    def __init__(self, owner: str, emit: Callable[[object], None], notify_frame: Callable[[str], None],
                 device, live: LiveSettings) -> None:
        super().__init__()
        self.owner = owner
        self._emit = emit
        self._notify = notify_frame
        self.device = device
        self.live = live
        self.frames: Mailbox[ToolFrame] = Mailbox()
        #: recorded steps asked for by the scrubber (their own slot: a live frame never replaces one)
        self.scrub_frames: Mailbox[ToolFrame] = Mailbox()
        self.model: ModelState | None = None
        self.model_path = ""
        self.run: ToolRun | None = None
        self.state = RunState.IDLE
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._tick)
        self._last_frame = 0.0
        self._rate_t, self._rate_steps, self.steps_per_sec = time.perf_counter(), 0, 0.0
        self._reported_pause = False

    # --- commands --------------------------------------------------------------------------------
    def handle(self, cmd) -> None:
        try:
            if isinstance(cmd, OpenToolModel):
                self._open(cmd)
            elif isinstance(cmd, LoadToolImage):
                self._load_image(cmd)
            elif isinstance(cmd, StartToolRun):
                self._start(cmd)
            elif isinstance(cmd, StopToolRun):
                self._end(RunState.STOPPED, "stopped")
            elif isinstance(cmd, FetchToolStep):
                self._fetch(cmd)
            elif isinstance(cmd, SaveToolResult):
                self._save(cmd)
            elif isinstance(cmd, WakeTool):
                self.wake()
            else:
                raise ValueError(f"the image tools do not understand {type(cmd).__name__}")
        except _USER_ERRORS as exc:
            self._emit(ToolError(self.owner, str(exc)))
        except Exception as exc:  # a defect or an out-of-memory: say so, keep the engine alive
            traceback.print_exc()
            self._emit(ToolError(self.owner, f"{type(exc).__name__}: {exc}"))

    def _open(self, cmd: OpenToolModel) -> None:
        try:
            model = ModelState.from_checkpoint(load_checkpoint(cmd.path), self.device)
        except (CheckpointError, ValueError, OSError) as exc:
            raise ValueError(f"Cannot open {Path(cmd.path).name}: {exc}") from None
        check_image_model(model)
        self._end(RunState.STOPPED, "another model was opened")
        self.model, self.model_path = model, str(cmd.path)
        try:
            ds = model.dataset()
        except DatasetError:
            held = 0
        else:  # a stored set has a fixed held-out split; a texture gives endless held-out crops
            held = len(ds.heldout_indices) if hasattr(ds, "heldout_indices") else HELDOUT_CROPS
        info = ToolModelInfo(name=model.name, path=str(cmd.path), kind=model.kind,
                             event_shape=tuple(model.event_shape), sampler=dict(model.sampler_defaults),
                             heldout_count=held)
        self._emit(ToolModelChanged(self.owner, info))

    def _need_model(self) -> ModelState:
        if self.model is None:
            raise ImageInputError("open an image model first")
        return self.model

    def _load_image(self, cmd: LoadToolImage) -> None:
        model = self._need_model()
        if cmd.heldout is not None and cmd.dataset is not None:
            item = load_dataset(cmd.dataset).heldout(int(cmd.heldout) + 1)[-1]
            pixels = np.clip((item.numpy().transpose(1, 2, 0) + 1.0) * 127.5, 0, 255).astype(np.uint8)
            t, notes = fit_image(pixels, model.event_shape, data_background(model.data_desc))
            image, source = t.numpy(), cmd.label or f"{cmd.dataset} item"
        elif cmd.heldout is not None:
            held = model.dataset().heldout(int(cmd.heldout) + 1)
            k = int(cmd.heldout) % max(len(held), 1)
            image, notes, source = held[k].numpy(), [], f"held-out item {k}"
        else:
            if cmd.path is not None:
                pixels, source = read_image_file(cmd.path), Path(cmd.path).name
            elif cmd.pixels is not None:
                pixels, source = np.asarray(cmd.pixels), cmd.label or "pasted image"
            else:
                raise ImageInputError("no image given")
            t, notes = fit_image(pixels, model.event_shape, data_background(model.data_desc))
            image = t.numpy()
        self._emit(ToolImageReady(self.owner, np.array(image, np.float32, copy=True), tuple(notes), source,
                                  cmd.request))

    def _start(self, cmd: StartToolRun) -> None:
        model = self._need_model()
        self._end(RunState.STOPPED, "replaced by a new run")
        self.run = ToolRun(cmd, model, self.live, self.device)
        self.live.clear_single_steps()
        self.state = RunState.RUNNING
        self._reported_pause = False
        self._rate_t, self._rate_steps = time.perf_counter(), 0
        self._publish()
        self._emit(ToolRunChanged(self.owner, RunState.RUNNING, 0, self.run.steps))
        if self.run.done:
            self._end(RunState.FINISHED, "finished")
            return
        self._timer.start(0)

    def wake(self) -> None:
        if self.state in (RunState.RUNNING, RunState.PAUSED) and not self._timer.isActive():
            self._timer.start(0)

    def _end(self, state: RunState, message: str) -> None:
        self._timer.stop()
        if self.run is None or self.state not in (RunState.RUNNING, RunState.PAUSED):
            return
        try:
            self.run.record_now()
        except FloatingPointError:
            pass  # the newest state is not finite: the recorded ones stay
        self.state = state
        self._publish()
        self._emit(ToolRunChanged(self.owner, state, self.run.step, self.run.steps, message))

    def _fetch(self, cmd: FetchToolStep) -> None:
        if self.run is None:
            return
        frame = self.run.frame(self.owner, self.run.index_of(cmd.step))
        if self.scrub_frames.put(frame):
            self._notify(self.owner)

    def _save(self, cmd: SaveToolResult) -> None:
        run = self.run
        if run is None:
            raise ValueError("nothing to save yet: run the tool first")
        i = len(run.rec_steps) - 1 if cmd.step is None else run.index_of(cmd.step)
        x, e = run.rec_states[i], run.energy_trace[i]
        path = Path(cmd.path)
        source = run.image.numpy()
        if path.suffix.lower() == ".npz":
            extra = {"mask": run.mask} if run.mask is not None else {}
            save_arrays(path, source=source, proposals=x, energies=e, step=np.int64(run.rec_steps[i]),
                        trace_steps=np.asarray(run.rec_steps), energy_trace=np.stack(run.energy_trace),
                        distance_trace=np.stack(run.distance_trace), **extra)
        elif path.suffix.lower() == ".png":
            first = masked_view(source, run.mask) if run.mask is not None else source
            save_image_rows([np.concatenate([first[None], x])], path, scale=4)
        elif path.suffix.lower() == ".gif":
            self._save_gif(path, run)
        else:
            raise ValueError(f"save as .png, .npz or .gif, not {path.suffix or 'a file without suffix'}")
        self._emit(ToolSaved(self.owner, str(path)))

    def _save_gif(self, path: Path, run: ToolRun) -> None:
        from PIL import Image

        from ebm_studio.core.fileio import atomic_path
        from ebm_studio.core.imaging import image_grid

        picks = np.unique(np.linspace(0, len(run.rec_steps) - 1, min(len(run.rec_steps), 60)).round().astype(int))
        frames = []
        for i in picks:
            g = image_grid(np.concatenate([run.image.numpy()[None], run.rec_states[i]]), ncols=run.n + 1)
            g = g.repeat(4, 0).repeat(4, 1)
            frames.append(Image.fromarray(g[..., 0] if g.shape[-1] == 1 else g))
        with atomic_path(path) as tmp:
            frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)

    # --- the loop ----------------------------------------------------------------------------------
    def _tick(self) -> None:
        run = self.run
        if run is None or self.state not in (RunState.RUNNING, RunState.PAUSED):
            return
        t0 = time.perf_counter()
        try:
            while not run.done:
                s = self.live.snapshot()
                if s.paused and not self.live.take_single_step():
                    break
                run.apply(self.live)
                run.advance()
                self._count()
                if s.paused or time.perf_counter() - t0 > SLICE_S:
                    break
        except Exception as exc:
            if isinstance(exc, FloatingPointError):
                why = f"sampling failed: {exc}; lower the step size or raise the temperature"
            elif isinstance(exc, torch.cuda.OutOfMemoryError):
                why = "the GPU ran out of memory; use fewer proposals or switch to the CPU"
            else:
                traceback.print_exc()
                why = f"the run stopped: {type(exc).__name__}: {exc}"
            self.state = RunState.ERROR
            self._emit(ToolRunChanged(self.owner, RunState.ERROR, run.step, run.steps, why))
            return
        now = time.perf_counter()
        paused = self.live.snapshot().paused
        if now - self._last_frame >= 1.0 / MAX_FPS or paused or run.done:
            self._publish()
        if run.done:
            self._end(RunState.FINISHED, "finished")
            return
        if paused:
            run.record_now()
            if self.state != RunState.PAUSED:
                self.state = RunState.PAUSED
                self._emit(ToolRunChanged(self.owner, RunState.PAUSED, run.step, run.steps))
            if self.live.has_single_steps():
                self._timer.start(0)  # more single steps were asked for
            return  # wake() restarts the timer on resume or a single step
        if self.state == RunState.PAUSED:
            self.state = RunState.RUNNING
            self._emit(ToolRunChanged(self.owner, RunState.RUNNING, run.step, run.steps, "resumed"))
        self._timer.start(0)

    def _count(self) -> None:
        self._rate_steps += 1
        dt = time.perf_counter() - self._rate_t
        if dt >= 0.5:
            self.steps_per_sec = self._rate_steps / dt
            self._rate_t, self._rate_steps = time.perf_counter(), 0

    def _publish(self) -> None:
        if self.run is None:
            return
        self._last_frame = time.perf_counter()
        if self.frames.put(self.run.frame(self.owner, rate=self.steps_per_sec)):
            self._notify(self.owner)

    def move_to(self, device) -> None:
        """Follow the engine to another device (the run stops: its tensors live on the old one)."""
        self._end(RunState.STOPPED, f"moving to {device}")
        self.device = device
        if self.model is not None:
            self.model.energy.to(device)

    def shutdown(self) -> None:
        self._end(RunState.STOPPED, "application closing")
