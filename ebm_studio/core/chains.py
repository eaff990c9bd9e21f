"""Where Langevin chains start: noise, data (contrastive divergence), or a persistent replay buffer.

The three initialisations of the literature:

- *short-run*: fresh noise every time (uniform on the data box, or Gaussian);
- *contrastive divergence*: the current data batch;
- *persistent*: a replay buffer of past samples; each draw re-seeds a fraction with noise so the
  buffer keeps exploring (IGEBM, the UvA tutorial: 8192 entries, 5 %).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ebm_studio.core.errors import check_fraction, check_int_at_least

INIT_KINDS = ("noise", "data", "buffer")
INIT_LABELS = {
    "noise": "Short-run (from noise)",
    "data": "Contrastive divergence (from data)",
    "buffer": "Persistent (replay buffer)",
}
NOISE_KINDS = ("uniform", "gaussian")


def noise(
    n: int,
    shape: Sequence[int],
    kind: str = "uniform",
    *,
    low: float = -1.0,
    high: float = 1.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` samples of shape ``shape``: uniform on [low, high] or Gaussian N(0, std²)."""
    n = check_int_at_least("n", n, 1)
    size = (n, *[int(s) for s in shape])
    if kind == "uniform":
        if not low < high:
            raise ValueError(f"uniform noise needs low < high, got ({low!r}, {high!r})")
        return low + (high - low) * torch.rand(size, generator=generator, device=device)
    if kind == "gaussian":
        return std * torch.randn(size, generator=generator, device=device)
    raise ValueError(f"noise kind must be one of {', '.join(NOISE_KINDS)}; got {kind!r}")


class ReplayBuffer:
    """A persistent buffer of chain states: draw a batch (re-seeding a fraction), push it back.

    ``noise_fn(n)`` makes fresh starting points; the buffer begins full of them.
    """

    def __init__(
        self,
        size: int,
        noise_fn: Callable[[int], torch.Tensor],
        reseed_fraction: float = 0.05,
        generator: torch.Generator | None = None,
    ) -> None:
        self.size = check_int_at_least("buffer size", size, 1)
        self.reseed_fraction = check_fraction("reseed_fraction", reseed_fraction)
        self.noise_fn = noise_fn
        self.generator = generator
        self.data = noise_fn(self.size).detach().clone()
        self._last_idx: torch.Tensor | None = None

    def sample(self, n: int) -> torch.Tensor:
        """``n`` starting points: a random subset of the buffer, a fraction replaced by noise."""
        n = check_int_at_least("n", n, 1)
        if n > self.size:
            raise ValueError(f"cannot draw {n} chains from a buffer of {self.size}")
        idx = torch.randperm(self.size, generator=self.generator)[:n]
        x = self.data[idx].clone()
        n_new = int(round(self.reseed_fraction * n))
        if n_new:
            x[:n_new] = self.noise_fn(n_new).to(x.device)
        self._last_idx = idx
        return x

    def push(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> None:
        """Store ``x`` back where the last :meth:`sample` took it from (or at ``idx``)."""
        idx = self._last_idx if idx is None else idx
        if idx is None or idx.numel() != x.shape[0]:
            raise ValueError("push needs the indices of the last sample() or matching idx")
        self.data[idx] = x.detach().to(self.data.device, self.data.dtype)

    def state_dict(self) -> dict:
        return {"size": self.size, "reseed_fraction": self.reseed_fraction, "data": self.data}

    def load_state_dict(self, state: dict) -> None:
        data = state["data"]
        if tuple(data.shape[1:]) != tuple(self.data.shape[1:]):
            raise ValueError(
                f"replay buffer holds samples of shape {tuple(data.shape[1:])}, "
                f"expected {tuple(self.data.shape[1:])}"
            )
        self.data = data.detach().clone()
        self.size = data.shape[0]
        self.reseed_fraction = float(state.get("reseed_fraction", self.reseed_fraction))
