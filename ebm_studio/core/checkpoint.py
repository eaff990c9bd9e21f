"""Checkpoint files: one ``.pt`` holding only tensors and plain data, never code.

Layout (a dict): ``format`` (``"ebm-studio-checkpoint"``), ``version``, ``model`` (the energy's
plain-data description), ``state_dict``, ``data`` (data-set description), ``config`` (the training
configuration as a nested dict), ``sampler`` (default sampling settings), ``step``, ``metrics``
(history of training metrics), and optionally ``optimizer``, ``rng`` and ``buffer`` (the replay
buffer). Files are written atomically (temporary file, then ``os.replace``) and read with
``torch.load(..., weights_only=True)``, so opening a checkpoint can never run code.
"""

from __future__ import annotations

import copy

import datetime as _dt
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ebm_studio import __version__
from ebm_studio.core.checkpoint_schema import FieldError, check_buffer_shape, check_fields
from ebm_studio.core.config import ConfigError, TrainConfig
from ebm_studio.core.energies import Energy, build_energy
from ebm_studio.core.errors import first_sentence
from ebm_studio.core.fileio import atomic_path

FORMAT = "ebm-studio-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A file that is not a usable checkpoint; the message says which file and why."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file, as plain data and tensors."""

    model: dict
    state_dict: dict
    data: dict = field(default_factory=dict)
    config: dict | None = None
    sampler: dict = field(default_factory=dict)
    step: int = 0
    metrics: dict = field(default_factory=dict)
    optimizer: dict | None = None
    rng: torch.Tensor | None = None
    buffer: torch.Tensor | None = None
    #: how the model was made and how good it is: ``quality`` (meter figures, ``n``, ``meter``),
    #: ``train_seconds``, ``machine`` (plain data, written by ``ebm-studio train --quality``)
    report: dict = field(default_factory=dict)
    #: the file stored its image buffer compactly (uint8 subset); saving it again keeps it so
    compact_buffer: bool = False
    created: str = ""
    app_version: str = __version__
    path: Path | None = None

    def build_energy(self, device: torch.device | str = "cpu") -> Energy:
        """The energy network with its trained weights, in eval-ready state."""
        try:
            energy = build_energy(self.model)
            energy.load_state_dict(self.state_dict)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise CheckpointError(f"{self._name()}: the model cannot be rebuilt: {exc}") from None
        return energy.to(device)

    def train_config(self) -> TrainConfig | None:
        if self.config is None:
            return None
        try:
            return TrainConfig.from_dict(self.config)
        except ConfigError as exc:
            raise CheckpointError(f"{self._name()}: stored configuration is invalid: {exc}") from None

    def trainer_state(self) -> dict:
        """The part :meth:`Trainer.load_state` takes."""
        return {
            "step": self.step,
            "model_state": self.state_dict,
            "optimizer": self.optimizer,
            "rng": self.rng,
            "buffer": self.buffer,
        }

    def summary(self) -> str:
        """A human-readable description, as ``ebm-studio info`` prints it."""
        n_params = sum(int(t.numel()) for t in self.state_dict.values())
        shape = self.data.get("shape")
        lines = [
            f"checkpoint   {self.path or '(in memory)'}",
            f"format       {FORMAT} v{VERSION}, written by EBM Studio {self.app_version} {self.created}",
            f"model        {_describe_model(self.model)} ({n_params:,} numbers)",
            f"data         {self.data.get('name', '?')} ({self.data.get('kind', '?')}, shape "
            f"{tuple(shape) if shape else '?'}, {self.data.get('normalisation', '')})",
            f"step         {self.step:,}",
            "sampler      " + (", ".join(f"{k}={v}" for k, v in self.sampler.items()) or "-"),
        ]
        quality = self.report.get("quality")
        if isinstance(quality, dict) and quality:
            figures = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in quality.items())
            lines.append(f"quality      {figures}")
        if self.report.get("train_seconds"):
            lines.append(f"trained in   {float(self.report['train_seconds']):.0f} s on {self.report.get('machine', '?')}")
        last = {k: v[-1] for k, v in self.metrics.items() if isinstance(v, list) and v}
        if last:
            lines.append("last metrics " + ", ".join(f"{k}={v:.4g}" for k, v in last.items()))
        extras = [
            name
            for name, present in (
                ("optimizer state", self.optimizer is not None),
                ("RNG state", self.rng is not None),
                (f"replay buffer ({self.buffer.shape[0]:,} samples)" if self.buffer is not None else "", self.buffer is not None),
            )
            if present
        ]
        broken = [k for k, v in self.state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if broken:
            lines.append(f"WARNING      weights hold NaN or infinite values ({', '.join(broken[:4])}): "
                         "the model diverged and cannot be used")
        lines.append("resumable    " + ("yes: " + ", ".join(extras) if self.optimizer is not None else "no (weights only)"))
        return "\n".join(lines)

    def _name(self) -> str:
        return str(self.path) if self.path else "checkpoint"


def _describe_model(spec: dict) -> str:
    kind = spec.get("kind", "?")
    args = ", ".join(f"{k}={v}" for k, v in spec.items() if k not in ("kind", "terms"))
    return f"{kind}({args})" if len(args) < 120 else kind


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write ``ckpt`` to ``path`` atomically; returns the path."""
    path = Path(path)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "app_version": __version__,
        "created": ckpt.created or _dt.datetime.now().isoformat(timespec="seconds"),
        "model": ckpt.model,
        "state_dict": {k: v.detach().cpu() for k, v in ckpt.state_dict.items()},
        "data": ckpt.data,
        "config": ckpt.config,
        "sampler": ckpt.sampler,
        "step": int(ckpt.step),
        "metrics": ckpt.metrics,
        "optimizer": ckpt.optimizer,
        "rng": ckpt.rng,
        "buffer": ckpt.buffer,
        "report": ckpt.report,
    }
    existed = path.exists()
    kept = f" The earlier {path.name} is unchanged." if existed else ""
    try:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc}.{kept}") from None
    except RuntimeError as exc:  # torch's zip writer reports a full disk as a RuntimeError
        raise CheckpointError(f"cannot write checkpoint {path} (is the disk full?): {first_sentence(exc)}."
                              f"{kept}") from None
    return path


_NOT_TORCH = ("{path}: not a checkpoint file: it is not in PyTorch's format (a text file, an image, "
              "or a file from another program?)")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint safely; raises :class:`CheckpointError` for anything else."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():  # reading a pipe or device would block
        raise CheckpointError(f"{path}: not a regular file (a pipe or device), not a checkpoint")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # only a named global is code; other unpickling errors are bytes that are not a pickle
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        if found is None:
            raise CheckpointError(_NOT_TORCH.format(path=path)) from None
        raise CheckpointError(
            f"{path}: refused: the file contains Python objects that could run code (it names "
            f"{found.group(1)}), not only tensors and plain data. Only open checkpoints written by "
            "EBM Studio."
        ) from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or damaged?): "
                              f"{first_sentence(exc)}") from None
    except Exception:  # torch raises assorted types (KeyError, ...) for foreign files
        raise CheckpointError(_NOT_TORCH.format(path=path)) from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an EBM Studio checkpoint (no '{FORMAT}' marker)")
    version = raw.get("version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: checkpoint has no valid version number")
    if version > VERSION:
        raise CheckpointError(
            f"{path}: written by a newer EBM Studio (format v{version}; this version reads up to "
            f"v{VERSION}). Update EBM Studio to open it."
        )
    missing = [k for k in ("model", "state_dict") if not isinstance(raw.get(k), dict)]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is incomplete: missing {', '.join(missing)}")
    bad = [k for k, v in raw["state_dict"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state_dict entries are not tensors: {', '.join(bad[:5])}")
    step = raw.get("step") or 0
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path}: the field 'step' must be a whole number >= 0, got {step!r}")
    try:
        check_fields(raw)
    except FieldError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    ckpt = Checkpoint(
        model=raw["model"],
        state_dict=raw["state_dict"],
        data=raw.get("data") or {},
        config=raw.get("config"),
        sampler=raw.get("sampler") or {},
        step=step,
        metrics=raw.get("metrics") or {},
        optimizer=raw.get("optimizer"),
        rng=raw.get("rng"),
        buffer=expand_buffer(raw.get("buffer"), raw.get("data") or {}),
        compact_buffer=isinstance(raw.get("buffer"), torch.Tensor) and raw["buffer"].dtype == torch.uint8,
        report=raw.get("report") if isinstance(raw.get("report"), dict) else {},
        created=str(raw.get("created", "")),
        app_version=str(raw.get("app_version", "?")),
        path=path,
    )
    energy = ckpt.build_energy()  # fail now, with a clear message, rather than later in the GUI
    try:
        if hasattr(energy, "event_shape"):
            check_buffer_shape(ckpt.buffer, tuple(energy.event_shape))
    except FieldError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return ckpt


#: image replay buffers in compact checkpoints: at most this many samples, stored as uint8
COMPACT_BUFFER = 1024


def compact(ckpt: Checkpoint, max_items: int = COMPACT_BUFFER) -> Checkpoint:
    """A smaller copy for shipping and autosaves: an image buffer becomes a uint8 subset.

    Quantising to 256 levels is below what a sample grid shows, and a resumed run refills the
    buffer with its own chains; points buffers are small and stay exact.
    """
    buf = ckpt.buffer
    if buf is None or buf.ndim != 4 or buf.dtype == torch.uint8:
        return ckpt
    lo, hi = (ckpt.data.get("value_range") or (-1.0, 1.0))[:2]
    if buf.shape[0] > max_items:
        idx = torch.randperm(buf.shape[0], generator=torch.Generator().manual_seed(0))[:max_items]
        buf = buf[idx.sort().values]
    q = ((buf.float() - lo) / (hi - lo) * 255.0).round().clamp(0, 255).to(torch.uint8)
    out = copy.copy(ckpt)
    out.buffer = q
    return out


def expand_buffer(buf, data: dict):
    """A uint8 (compact) image buffer back to floats in the data's value range."""
    if isinstance(buf, torch.Tensor) and buf.dtype == torch.uint8:
        lo, hi = (data.get("value_range") or (-1.0, 1.0))[:2]
        return buf.float() * ((hi - lo) / 255.0) + lo
    return buf


def sampler_defaults(config) -> dict:
    """The sampler settings a model trained under ``config`` carries (checkpoint, viewer, tools)."""
    s = config.sampler
    return {
        "kind": s.kind,
        "step_size": s.step_size,
        "noise": s.noise,
        "temperature": s.temperature,
        "steps": s.steps,
        "n_leapfrog": s.n_leapfrog,
        **({"clip_grad": s.clip_grad} if s.clip_grad is not None else {}),
        **({"ref_sigma": config.model.ref_sigma} if config.model.ref_sigma else {}),
        **({"level_steps": config.method.level_steps} if config.method.name != "plain" else {}),
        **({"precision": s.precision} if s.precision != "auto" else {}),
    }


def trainer_checkpoint(trainer, metrics: dict | None = None, include_buffer: bool = True) -> Checkpoint:
    """A checkpoint of a :class:`~ebm_studio.core.training.Trainer`, resumable exactly."""
    state = trainer.state(include_buffer=include_buffer)
    return Checkpoint(
        model=trainer.model.describe(),
        state_dict=state["model_state"],
        data=trainer.dataset.describe(),
        config=trainer.config.to_dict(),
        sampler=sampler_defaults(trainer.config),
        step=state["step"],
        metrics=metrics or {},
        optimizer=state["optimizer"],
        rng=state["rng"],
        buffer=state["buffer"],
    )


def energy_checkpoint(energy: Energy, data: dict | None = None, sampler: dict | None = None) -> Checkpoint:
    """A weights-only checkpoint of any describable energy (analytic ones included)."""
    return Checkpoint(
        model=energy.describe(),
        state_dict=dict(energy.state_dict()),
        data=data or {},
        sampler=sampler or {},
    )
