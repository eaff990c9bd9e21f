"""The small digit classifier behind the digit quality meter, and how the project trains it.

A three-block ConvNet (≈ 24 k parameters, shipped as float16 in ``resources/digit_classifier.pt``,
≈ 50 kB) trained by ``scripts/train_digit_classifier.py`` on the train split of the bundled
digits only, so held-out digits stay a fair reference. Besides the digits it sees "outliers"
(uniform and blurred noise, the mean digit, random blobs) with a uniform target: a meter that calls
noise a confident "8" would flatter every bad model.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ebm_studio.core.bundled import resources_dir

CLASSIFIER_FILE = "digit_classifier.pt"
FORMAT = "ebm-studio-digit-classifier"


class DigitClassifier(nn.Module):
    """(N, 1, 28, 28) images in [-1, 1] → (N, 10) logits."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.width = width
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.SiLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.SiLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(4 * width, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"the digit classifier takes (N, 1, 28, 28) images, got {tuple(x.shape)}")
        return self.head(self.features(x))


def _shift(x: torch.Tensor, g: torch.Generator, max_px: int = 2) -> torch.Tensor:
    """Random translations by up to ``max_px`` pixels (background −1 fills the border)."""
    n = x.shape[0]
    pad = F.pad(x, (max_px,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_px + 1, (n,), generator=g)
    dy = torch.randint(0, 2 * max_px + 1, (n,), generator=g)
    out = torch.empty_like(x)
    for i in range(n):
        out[i] = pad[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
    return out


def outlier_images(n: int, mean_digit: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Images that are no digit: uniform noise, blurred noise, the mean digit, blobs, blank."""
    kinds = torch.randint(0, 5, (n,), generator=g)
    u = torch.rand(n, 1, 28, 28, generator=g) * 2 - 1
    blurred = F.avg_pool2d(F.pad(u, (2,) * 4, mode="replicate"), 5, stride=1) * 2.5
    blobs = (F.avg_pool2d(F.pad(torch.rand(n, 1, 28, 28, generator=g), (4,) * 4, mode="replicate"), 9,
                          stride=1) > 0.55).float() * 2 - 1
    level = torch.rand(n, 1, 1, 1, generator=g) * 2 - 1
    mean = mean_digit.expand(n, 1, 28, 28) + 0.1 * torch.randn(n, 1, 28, 28, generator=g)
    choice = [u, blurred.clamp(-1, 1), mean.clamp(-1, 1), blobs, level.expand(n, 1, 28, 28)]
    out = torch.stack(choice)[kinds, torch.arange(n)]
    return out


def train_classifier(train_x: torch.Tensor, train_y: torch.Tensor, epochs: int = 12, seed: int = 0,
                     log=print) -> DigitClassifier:
    """Fit a :class:`DigitClassifier` on ``train_x`` (N, 1, 28, 28) with labels ``train_y``."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * (len(train_x) // 64 + 1))
    mean_digit = train_x.mean(0, keepdim=True)
    uniform = torch.full((1, 10), 0.1)
    for epoch in range(epochs):
        perm = torch.randperm(len(train_x), generator=g)
        model.train()
        total = 0.0
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            x = _shift(train_x[idx], g) + 0.05 * torch.randn(len(idx), 1, 28, 28, generator=g)
            logits = model(x.clamp(-1, 1))
            loss = F.cross_entropy(logits, train_y[idx])
            out = model(outlier_images(len(idx) // 4 + 1, mean_digit, g))
            # outlier exposure: noise and blobs get a flat prediction, not a confident class
            loss = loss + 0.5 * F.kl_div(F.log_softmax(out, -1), uniform.expand_as(out), reduction="batchmean")
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / len(train_x):.4f}")
    model.eval()
    return model


def save_classifier(model: DigitClassifier, path: str | Path, accuracy: float) -> None:
    state = {k: v.half() for k, v in model.state_dict().items()}
    torch.save({"format": FORMAT, "width": model.width, "state_dict": state, "heldout_accuracy": accuracy},
               path)


_CACHE: dict[str, DigitClassifier] = {}


def load_classifier(path: str | Path | None = None) -> DigitClassifier:
    """The shipped classifier (cached), in eval mode on the CPU; ``FileNotFoundError`` if missing."""
    p = Path(path) if path is not None else resources_dir() / CLASSIFIER_FILE
    key = str(p)
    if key not in _CACHE:
        if not p.is_file():
            raise FileNotFoundError(f"{p}: the digit classifier is missing; build it with "
                                    "scripts/train_digit_classifier.py")
        blob = torch.load(p, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ValueError(f"{p}: not a digit classifier file")
        model = DigitClassifier(int(blob["width"]))
        model.load_state_dict({k: v.float() for k, v in blob["state_dict"].items()})
        model.eval()
        for q in model.parameters():
            q.requires_grad_(False)
        _CACHE[key] = model
    return _CACHE[key]
