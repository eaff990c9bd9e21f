"""How samplers evaluate an energy: E(x) and ∇ₓE(x) with parameters frozen, and the checks and
stop requests around a step.

Kept apart from ``samplers.py`` so that both the samplers and the CUDA-graph blocks of
``langevin_block.py`` (which ``Sampler.run`` uses on a GPU) build on it without importing each other.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch

from ebm_studio.core.energies import Energy

#: large particle sets are evaluated in chunks of this many chains (faster on CPU caches)
DEFAULT_CHUNK = 4096


class Stopped(Exception):
    """``should_stop`` asked to abandon the current step; the chains are left as they were."""


def poll_stop(should_stop: Callable[[], bool] | None) -> None:
    """Raise :class:`Stopped` when ``should_stop`` says so (polled between inner steps)."""
    if should_stop is not None and should_stop():
        raise Stopped


#: use closed-form input gradients where an energy has them (a switch for benchmarks and tests)
USE_CLOSED_FORM = True


@contextlib.contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Temporarily stop ``module``'s parameters from requiring gradients."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def energy_and_grad(
    energy: Energy, x: torch.Tensor, chunk: int = DEFAULT_CHUNK, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x) and ∇ₓE(x) for a batch, parameters frozen, evaluated in chunks of ``chunk`` chains.

    An energy with a closed-form ``energy_and_input_grad`` (the MLP, the ConvNet) skips autograd altogether.
    ``dtype=torch.bfloat16`` runs the network in bf16 (see ``precision.py``); E and ∇E come back
    float32 either way.
    """
    chunks = x.split(chunk) if x.shape[0] > chunk else (x,)
    fast = getattr(energy, "energy_and_input_grad", None) if USE_CLOSED_FORM else None
    if fast is not None and not _float32_network(energy, x):
        fast = None  # the closed forms are written for float32 networks; others take autograd
    if fast is not None:
        parts = [fast(xs, dtype) for xs in chunks]
    else:
        with frozen(energy):
            parts = [_autograd_energy_and_grad(energy, xs, dtype) for xs in chunks]
    if len(parts) == 1:
        return parts[0]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _float32_network(energy: Energy, x: torch.Tensor) -> bool:
    first = next(energy.parameters(), None)
    return x.dtype == torch.float32 and (first is None or first.dtype == torch.float32)


def _autograd_energy_and_grad(
    energy: Energy, x: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad(), torch.autocast(x.device.type, dtype, enabled=dtype != torch.float32):
        x = x.detach().requires_grad_(True)
        e = energy(x)
        (g,) = torch.autograd.grad(e.sum(), x)
    return e.detach().float(), g


def check_finite_energy(e: torch.Tensor, step: int, grad: torch.Tensor | None = None) -> None:
    """Raise ``FloatingPointError`` when a sampler's energies (or gradients) stopped being finite."""
    if not torch.isfinite(e).all() or (grad is not None and not torch.isfinite(grad).all()):
        raise FloatingPointError(
            f"the energy became non-finite at step {step} (step size too large for this temperature?)"
        )


__all__ = ["DEFAULT_CHUNK", "Stopped", "check_finite_energy", "energy_and_grad", "frozen", "poll_stop"]
