"""Test-wide set-up: Qt runs offscreen (set before anything imports Qt) and torch uses few threads."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("EBM_STUDIO_SETTINGS_ORG", "EBMStudioTests")

import torch  # noqa: E402

# One intra-op thread: the test tensors are small, and OpenMP spin-waiting on a loaded 2-core
# machine slowed small steps down by an order of magnitude.
torch.set_num_threads(1)

import pytest  # noqa: E402

from ebm_studio.core.checkpoint import save_checkpoint, trainer_checkpoint  # noqa: E402
from ebm_studio.core.config import preset_digits  # noqa: E402
from ebm_studio.core.training import Trainer  # noqa: E402


@pytest.fixture(scope="session")
def tiny_digits(tmp_path_factory):
    """A digits model trained for one step: enough for the image tools' plumbing, quickly."""
    cfg = preset_digits()
    cfg.device = "cpu"
    cfg.model.width = 4
    cfg.optim.batch_size = 16
    cfg.sampler.steps = 2
    cfg.sampler.buffer_size = 64
    trainer = Trainer(cfg)
    trainer.step()
    path = tmp_path_factory.mktemp("ckpt") / "tiny-digits.pt"
    save_checkpoint(trainer_checkpoint(trainer), path)
    return path
