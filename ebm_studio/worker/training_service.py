"""Engine-side helpers of the training panel, run in the worker thread through ``EngineHost.call``.

They keep tensors out of the GUI: the panel asks, the engine answers with plain data through
``Engine.result`` under :data:`TOPIC` (``{"event": ...}`` dicts) or :data:`BUFFER_TOPIC` (a frame).
Being served between training steps, they never race a running step.
"""

from __future__ import annotations

import numpy as np
import torch

from ebm_studio.worker.frames import make_frame
from ebm_studio.worker.requests import JobRequest

TOPIC = "training"
BUFFER_TOPIC = "training.buffer"
#: at most this many buffer points go into a points frame's histogram
MAX_BUFFER_POINTS = 16384


def resume_and_train(request: JobRequest, engine) -> None:
    """Rebuild the trainer from the last opened checkpoint, then start ``request`` on it.

    Both happen in one engine call, so a failed resume can never fall through to a job that would
    continue some other run; the panel hears ``resume_failed`` (the engine's ``error`` says why).
    """
    before = engine.trainer
    engine.resume_from_checkpoint({})
    if engine.trainer is None or engine.trainer is before:
        engine.emit_result(TOPIC, {"event": "resume_failed"})
        return
    engine.start_job(request)


def buffer_frame(n_images: int, seed: int, engine) -> None:
    """A frame of the replay buffer's contents (a random ``n_images`` for image sets, up to
    ``MAX_BUFFER_POINTS`` for points); ``None`` when the run has no buffer."""
    trainer = engine.trainer
    if trainer is None or trainer.buffer is None:
        engine.emit_result(BUFFER_TOPIC, None)
        return
    data = trainer.buffer.data
    size = int(data.shape[0])
    images = trainer.dataset.kind == "images"
    k = min(size, n_images if images else MAX_BUFFER_POINTS)
    # a private generator: drawing from the trainer's would change the run (exact resume)
    idx = np.sort(np.random.default_rng(seed).choice(size, k, replace=False))
    x = trainer.buffer_samples(torch.from_numpy(idx))
    energies = trainer.model_energy(x).cpu().numpy()
    frame = make_frame(-1, "train-buffer", trainer.step_count, x.cpu().numpy(), energies,
                       tuple(trainer.dataset.value_range), label=f"replay buffer: {k:,} of {size:,}")
    engine.emit_result(BUFFER_TOPIC, frame)
