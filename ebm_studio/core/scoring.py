"""Inputs to score with a trained energy: point files, one image, a folder, or an image array.

Everything comes back as one float tensor of the model's sample shape, in input order (files of a
folder in sorted path order), so ``ebm-studio energy`` writes energies aligned with its input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ebm_studio.core.datasets import DatasetError, load_dataset


def load_inputs(path: str | Path, event_shape: tuple[int, ...]) -> torch.Tensor:
    """All inputs at ``path`` shaped ``(N, *event_shape)``; raises ``DatasetError`` when they don't fit."""
    from ebm_studio.core import image_data as im

    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if len(event_shape) == 3:
        c, size, _ = event_shape
        if p.is_file() and p.suffix.lower() in im.IMAGE_SUFFIXES:
            pixels = im._read_image(p, size)
            x = torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)
            x = x[:1] if c == 1 else x
            return x.unsqueeze(0).contiguous()
        ds = load_dataset(p, image_size=size, channels=c)
        if ds.kind != "images":
            raise DatasetError(f"{p}: holds points, but this model scores {c}×{size}×{size} images")
    else:
        ds = load_dataset(p)
        if ds.kind != "points":
            raise DatasetError(f"{p}: holds images, but this model scores points of shape {event_shape}")
    x = ds.items(torch.arange(ds.count))
    if tuple(x.shape[1:]) != tuple(event_shape):
        raise DatasetError(f"{p}: inputs have shape {tuple(x.shape[1:])}, the model expects {event_shape}")
    return x
