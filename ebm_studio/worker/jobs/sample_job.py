"""Sampling job: chains under the current model, live settings applied at every step, recorded.

Serves the live viewer, inpainting (an initial image + a mask of free pixels), translation (an
initial image under another model) and trajectory branches (the exact recorded state of a step).

Configuration keys: ``n_chains`` (default 64), ``init`` (``noise``/``data``/``buffer``), and
``branch_from`` (``[branch_id, step]``: start from a recorded state as a new branch).
"""

from __future__ import annotations

import numpy as np
import torch

from ebm_studio.core.npz_reading import available_memory
from ebm_studio.core.samplers import switch_sampler
from ebm_studio.worker.api import MAX_CHAINS, MAX_IMAGE_CHAINS
from ebm_studio.worker.frames import Frame, level_images, make_frame
from ebm_studio.worker.jobs.base import Job
from ebm_studio.worker.live import Settings



#: bytes a chain's step holds per value of its state: the state, its gradient and noise, the
#: network's activations and their gradients (a ConvNet's are several times the image), and the
#: recorded copy
BYTES_PER_VALUE = 4 * 24


def free_memory(device: torch.device) -> int | None:
    """Bytes free where the chains live: the GPU's memory on CUDA, the machine's elsewhere."""
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
        except (RuntimeError, AssertionError):
            return None
    return available_memory()


def check_chain_count(n: int, event_shape, device: torch.device, added: int | None = None) -> None:
    """Refuse ``n`` chains beyond the viewer's limits or (the ``added`` new ones, when chains
    join a run) beyond the free memory, before allocating any."""
    images = len(event_shape) == 3
    limit = MAX_IMAGE_CHAINS if images else MAX_CHAINS
    if not 1 <= n <= limit:
        raise ValueError(f"the number of {'image ' if images else ''}chains must lie in 1..{limit:,}, "
                         f"got {n:,}")
    new = n if added is None else added
    need = new * int(np.prod(event_shape)) * BYTES_PER_VALUE
    free = free_memory(device)
    if free is not None and need > free:
        shape = "×".join(map(str, event_shape))
        raise ValueError(f"{new:,} chains of {shape} need about {need / 2**30:,.1f} GB while sampling; "
                         f"{free / 2**30:,.1f} GB are free. Run fewer chains.")


def precision_name(sampler) -> str:
    """``bf16`` or ``fp32`` for what ``sampler`` computes its network in ("" for level samplers,
    whose levels decide for themselves)."""
    dtype = getattr(sampler, "compute_dtype", None)
    return "" if dtype is None else ("bf16" if dtype == torch.bfloat16 else "fp32")


class SampleJob(Job):
    kind = "sample"

    def start(self) -> None:
        model = self.engine.model
        cfg = self.request.config
        init = cfg.get("init", "noise")
        gen = torch.Generator().manual_seed(int(self.request.seed))
        branch = cfg.get("branch_from")
        store = self.engine.trajectories
        self.recorder = None
        if branch is not None:
            parent = store.branch(int(branch[0]))
            if parent.model_id is not None and parent.model_id != model.serial:
                raise ValueError(
                    f"branch {parent.branch_id} was recorded under the model '{parent.model}', "
                    f"but the model now loaded is '{model.name}'. Open that model again to "
                    "branch from this recording."
                )
            # the branch's first entry is the parent's recorded state, stored exactly as float32
            self.recorder = store.new_branch(int(branch[0]), int(branch[1]))
            x0 = torch.from_numpy(np.array(self.recorder.start_state, dtype=np.float32))
            self.step = int(branch[1])
        elif self.request.init_state is not None:
            x0 = torch.from_numpy(self.request.init_state)
            check_chain_count(x0.shape[0], model.event_shape, self.engine.device)
        else:
            n = int(cfg.get("n_chains", 64))
            check_chain_count(n, model.event_shape, self.engine.device)
            x0 = model.initial_state(n, init, gen)
        if tuple(x0.shape[1:]) != tuple(model.event_shape):
            raise ValueError(
                f"the initial state has samples of shape {tuple(x0.shape[1:])}, but the model "
                f"expects {tuple(model.event_shape)}"
            )
        mask = None
        if self.request.mask is not None:
            mask = torch.from_numpy(self.request.mask)
        s = self.live.snapshot()
        self.box = model.value_range
        self.sampler = model.make_sampler(
            x0, kind=s.sampler, temperature=s.temperature, step_size=s.step_size, noise=s.noise,
            n_leapfrog=s.n_leapfrog, seed=int(self.request.seed), device=self.engine.device, mask=mask,
        )
        self.sampler.steps_done = self.step
        if self.recorder is None and self.request.record:
            self.recorder = store.new_recording(kind=model.kind, model=model.name,
                                                model_id=model.serial)
            self._record(None, s)
        if self.recorder is not None:
            self.engine.announce_recording()
        self._last = None

    def _apply(self, s: Settings) -> None:
        if s.sampler != self.sampler.kind:
            self.sampler = switch_sampler(self.sampler, s.sampler)
        smp = self.sampler
        smp.temperature, smp.step_size, smp.noise, smp.n_leapfrog = (
            s.temperature, s.step_size, s.noise, s.n_leapfrog,
        )

    def _record(self, result, s: Settings) -> None:
        rec = self.recorder
        step = self.sampler.steps_done
        live = {"sampler": s.sampler, "temperature": s.temperature, "step_size": s.step_size,
                "noise": s.noise}
        names = getattr(self.sampler, "level_names", None)
        if names:  # a ladder or recovery walk: each new level is a marker on the scrubber
            live["level"] = names[self.sampler.level]
        if not rec.wants(step):
            rec.note_settings(step, live)
            return
        x = self.sampler.x.detach().cpu().numpy()
        e = self.sampler.current_energy().cpu().numpy() if result is None else result.energy.cpu().numpy()
        rec.record(step, x, e, accept=None if result is None else result.accept_rate, settings=live)

    def advance(self, settings: Settings) -> None:
        self._apply(settings)
        self._last = self.sampler.step()
        if self.recorder is not None:
            self._record(self._last, settings)
        self._count_step()

    def frame(self, settings: Settings) -> Frame | None:
        x = self.sampler.x.detach().cpu().numpy()
        e = self.sampler.current_energy().cpu().numpy()
        acc = self._last.accept_rate if self._last is not None else None
        mean_acc = self.sampler.mean_accept_rate
        return make_frame(
            self.job_id, self.kind, self.step, x, e, self.box,
            settings=settings.as_dict(), accept=acc, steps_per_sec=self.steps_per_sec,
            mean_accept=mean_acc,
            label=self.request.purpose,
            precision=precision_name(self.sampler),
            levels=level_images(self.sampler.snapshots(), self.box)
            if hasattr(self.sampler, "snapshots") and x.ndim == 4 else [],
        )

    def add_chains(self, points: np.ndarray) -> int:
        """Add chains starting at ``points`` (k, *event_shape); returns the new chain count.

        The new chains go *first*: a points frame highlights its first chains as points, so the
        ones the user just dropped are drawn. A recording holds one chain count, so a recorded run
        continues in a new recording from here.
        """
        model = self.engine.model
        new = torch.from_numpy(np.array(points, dtype=np.float32))
        if new.ndim < 2 or new.shape[0] < 1 or tuple(new.shape[1:]) != tuple(model.event_shape):
            raise ValueError(
                f"new chains must have shape (k, {', '.join(map(str, model.event_shape))}), "
                f"got {tuple(new.shape)}"
            )
        if self.sampler.mask is not None:
            raise ValueError("chains cannot be added to a masked (inpainting) run")
        x = self.sampler.x
        n = x.shape[0] + new.shape[0]
        check_chain_count(n, model.event_shape, self.engine.device, added=new.shape[0])
        self.sampler.set_state(torch.cat([new.to(x.device), x.detach()]))
        if self.recorder is not None:
            self.recorder = self.engine.trajectories.new_recording(
                kind=model.kind, model=model.name, model_id=model.serial)
            self._record(None, self.live.snapshot())
            self.engine.announce_recording()
        return n

    def current_state(self) -> np.ndarray:
        """A copy of the chains (for saving or handing to another tool)."""
        return self.sampler.x.detach().cpu().numpy().copy()
