"""Test-wide set-up: Qt runs offscreen (set before anything imports Qt) and torch uses few threads."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("EBM_STUDIO_SETTINGS_ORG", "EBMStudioTests")

import torch  # noqa: E402

# One intra-op thread: the test tensors are small, and OpenMP spin-waiting on a loaded 2-core
# machine slowed small steps down by an order of magnitude.
torch.set_num_threads(1)
