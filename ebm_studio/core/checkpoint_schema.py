"""The shape of a checkpoint's plain-data fields, checked once when it is read.

A file can be a valid torch archive and still hold nonsense (a string where a dict belongs, a
step of ``inf``, a replay buffer of a billion rows stored as one expanded value, NaN weights).
:func:`check_fields` refuses such a file with one message naming the field, before anything
allocates, samples or trains on it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ebm_studio.core.config import INT_RANGES, PRECISIONS

#: a replay buffer or weight tensor larger than this is refused (before it is materialised)
MAX_TENSOR_BYTES = 2 * 2**30
_POSITIVE = ("step_size", "temperature")
_NON_NEGATIVE = ("noise",)
_OPTIONAL_POSITIVE = ("clip_grad", "ref_sigma")
_SAMPLER_INTS = {"steps": INT_RANGES["sampler.steps"], "n_leapfrog": INT_RANGES["sampler.n_leapfrog"],
                 "level_steps": INT_RANGES["method.level_steps"]}


class FieldError(ValueError):
    """A field of a checkpoint that cannot be used; ``str()`` names it and says why."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _dict(raw: dict, key: str) -> dict:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldError(f"the field '{key}' must be a table of settings, got {type(value).__name__}")
    return value


def _tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def check_tensor(name: str, t: Any, *, finite: bool = True) -> None:
    if not isinstance(t, torch.Tensor):
        raise FieldError(f"the field '{name}' must be a tensor, got {type(t).__name__}")
    if _tensor_bytes(t) > MAX_TENSOR_BYTES:
        raise FieldError(f"the field '{name}' would need {_tensor_bytes(t) / 2**30:.1f} GB "
                         f"(shape {tuple(t.shape)}); refusing to load it")
    if finite and t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise FieldError(f"the field '{name}' holds NaN or infinite values")


def check_fields(raw: dict) -> None:
    """Raise :class:`FieldError` for the first field of ``raw`` that has the wrong type or value."""
    for key in ("data", "sampler", "metrics", "optimizer", "report"):
        _dict(raw, key)
    if raw.get("config") is not None and not isinstance(raw["config"], dict):
        raise FieldError(f"the field 'config' must be a table of settings, got {type(raw['config']).__name__}")
    for k, v in raw["state_dict"].items():
        check_tensor(f"state_dict.{k}", v, finite=False)  # NaN weights are reported, not refused
    data = _dict(raw, "data")
    vr = data.get("value_range")
    if vr is not None:
        nums = [_number(v) for v in vr] if isinstance(vr, (list, tuple)) and len(vr) == 2 else [None]
        if None in nums or not nums[0] < nums[1]:
            raise FieldError(f"the field 'data.value_range' must be two numbers low < high, got {vr!r}")
    shape = data.get("shape")
    if shape is not None and not (isinstance(shape, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise FieldError(f"the field 'data.shape' must be a list of positive whole numbers, got {shape!r}")
    sampler = _dict(raw, "sampler")
    kind = sampler.get("kind")
    if kind is not None:
        from ebm_studio.core.samplers import SAMPLER_KINDS

        if kind not in SAMPLER_KINDS:
            raise FieldError(f"the field 'sampler.kind' must be one of {', '.join(SAMPLER_KINDS)}, got {kind!r}")
    precision = sampler.get("precision", "auto")
    if precision not in PRECISIONS:
        raise FieldError(f"the field 'sampler.precision' must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    for key in _POSITIVE + _NON_NEGATIVE + _OPTIONAL_POSITIVE:
        if key not in sampler or (sampler[key] is None and key in _OPTIONAL_POSITIVE):
            continue
        v = _number(sampler[key])
        if v is None or v < 0 or (v == 0 and key not in _NON_NEGATIVE):
            what = "a non-negative" if key in _NON_NEGATIVE else "a positive"
            raise FieldError(f"the field 'sampler.{key}' must be {what} number, got {sampler[key]!r}")
    for key, (low, high) in _SAMPLER_INTS.items():
        if key in sampler:
            v = sampler[key]
            if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
                raise FieldError(f"the field 'sampler.{key}' must be a whole number in {low}..{high:,}, got {v!r}")
    for key, values in _dict(raw, "metrics").items():
        if not isinstance(values, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise FieldError(f"the field 'metrics.{key}' must be a list of numbers")
    if raw.get("buffer") is not None:
        check_tensor("buffer", raw["buffer"])
        if raw["buffer"].ndim < 2 or raw["buffer"].shape[0] < 1:
            raise FieldError(f"the field 'buffer' must hold a batch of samples, got shape {tuple(raw['buffer'].shape)}")
    if raw.get("rng") is not None:
        rng = raw["rng"]
        if not isinstance(rng, torch.Tensor) or rng.dtype != torch.uint8 or rng.ndim != 1:
            raise FieldError("the field 'rng' must be a random generator state (a 1-D byte tensor)")


def check_buffer_shape(buffer: torch.Tensor | None, event_shape: tuple[int, ...]) -> None:
    """The replay buffer must hold samples the model takes."""
    if buffer is not None and tuple(buffer.shape[1:]) != tuple(event_shape):
        raise FieldError(f"the field 'buffer' holds samples of shape {tuple(buffer.shape[1:])}, but the model "
                         f"takes {tuple(event_shape)}")
