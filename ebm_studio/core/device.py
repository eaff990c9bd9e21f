"""Which torch device a job runs on: CUDA if available, else MPS, else CPU, unless the user says."""

from __future__ import annotations

import torch


def available_devices() -> list[str]:
    """Device names this machine can use, best first (``cuda``, ``cuda:1``, ``mps``, ``cpu``)."""
    names = []
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        names += ["cuda"] + [f"cuda:{i}" for i in range(1, n)]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    names.append("cpu")
    return names


def resolve_device(name: str | None = "auto") -> torch.device:
    """``auto`` → the best available device; otherwise the named one, if this machine has it."""
    if name in (None, "", "auto"):
        return torch.device(available_devices()[0])
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps; got {name!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} does not exist ({torch.cuda.device_count()} GPU(s))")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {name!r} requested but MPS is not available on this machine")
    elif dev.type != "cpu":
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps; got {name!r}")
    return dev


def device_label(dev: torch.device) -> str:
    """A short label for the status bar, e.g. ``CUDA (NVIDIA H200)`` or ``CPU``."""
    if dev.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(dev)})"
    return dev.type.upper()


def torch_version() -> str:
    """The torch version, for the GUI's About box (which never imports torch itself)."""
    return torch.__version__
