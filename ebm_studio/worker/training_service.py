"""Engine-side handlers of the training panel's commands (:class:`~ebm_studio.worker.api.ResumeAndTrain`,
:class:`~ebm_studio.worker.api.RequestBufferFrame`), run in the worker thread.

They keep tensors out of the GUI: the panel asks, the engine answers with plain data as typed
events (:class:`~ebm_studio.worker.api.ResumeFailed`, :class:`~ebm_studio.worker.api.BufferFrame`).
Being served between training steps, they never race a running step.
"""

from __future__ import annotations

import numpy as np
import torch

from ebm_studio.worker.api import BufferFrame, RequestBufferFrame, ResumeAndTrain, ResumeFailed
from ebm_studio.worker.frames import make_frame

#: at most this many buffer points go into a points frame's histogram
MAX_BUFFER_POINTS = 16384


def resume_and_train(engine, cmd: ResumeAndTrain) -> None:
    """Rebuild the trainer from the last opened checkpoint, then start ``request`` on it.

    Both happen in one engine call, so a failed resume can never fall through to a job that would
    continue some other run; the panel hears :class:`ResumeFailed` (the engine's ``error`` says why).
    """
    before = engine.trainer
    engine.resume_from_checkpoint()
    if engine.trainer is None or engine.trainer is before:
        engine.emit_event(ResumeFailed())
        return
    engine.start_job(cmd.request)


def buffer_frame(engine, cmd: RequestBufferFrame) -> None:
    """A frame of the replay buffer's contents (a random ``n_images`` for image sets, up to
    ``MAX_BUFFER_POINTS`` for points); ``None`` when the run has no buffer."""
    trainer = engine.trainer
    if trainer is None:
        engine.emit_event(BufferFrame(_checkpoint_buffer_frame(engine.model, cmd, engine.device)))
        return
    if trainer.buffer is None:
        engine.emit_event(BufferFrame(None))
        return
    data = trainer.buffer.data
    size = int(data.shape[0])
    images = trainer.dataset.kind == "images"
    k = min(size, cmd.n_images if images else MAX_BUFFER_POINTS)
    # a private generator: drawing from the trainer's would change the run (exact resume)
    idx = np.sort(np.random.default_rng(cmd.seed).choice(size, k, replace=False))
    x = trainer.buffer_samples(torch.from_numpy(idx))
    energies = trainer.model_energy(x).cpu().numpy()
    frame = make_frame(-1, "train-buffer", trainer.step_count, x.cpu().numpy(), energies,
                       tuple(trainer.dataset.value_range), label=f"replay buffer: {k:,} of {size:,}")
    engine.emit_event(BufferFrame(frame))


def _checkpoint_buffer_frame(model, cmd: RequestBufferFrame, device):
    """The replay buffer an opened checkpoint brought (no run yet), or None when it has none."""
    if model.buffer is None or model.buffer.shape[0] == 0:
        return None
    size = int(model.buffer.shape[0])
    k = min(size, cmd.n_images if model.kind == "images" else MAX_BUFFER_POINTS)
    x = model.initial_state(k, "buffer", torch.Generator().manual_seed(int(cmd.seed)))
    with torch.no_grad():
        energies = model.energy(x.to(device)).cpu().numpy()
    return make_frame(-1, "train-buffer", model.step, x.numpy(), energies, tuple(model.value_range),
                      label=f"replay buffer of the checkpoint: {k:,} of {size:,}")
