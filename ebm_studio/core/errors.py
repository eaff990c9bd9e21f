"""Argument checks shared by the core: every bad value raises ``ValueError`` naming it."""

from __future__ import annotations

import math

import torch


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as float if it is a finite number > 0, else raise ``ValueError``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def check_non_negative(name: str, value: float) -> float:
    """Return ``value`` as float if it is finite and >= 0, else raise ``ValueError``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {value!r}")
    return v


def check_int_at_least(name: str, value: int, low: int) -> int:
    """Return ``value`` as int if it is an integer >= ``low``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        isinstance(value, float) and value.is_integer()
    ):
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    v = int(value)
    if v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return v


def check_fraction(name: str, value: float) -> float:
    """Return ``value`` if it lies in [0, 1], else raise ``ValueError``."""
    v = check_non_negative(name, value)
    if v > 1:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return v


def check_finite_tensor(name: str, x: torch.Tensor) -> None:
    """Raise ``ValueError`` if ``x`` holds a NaN or an infinity."""
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")


def first_sentence(exc: BaseException, limit: int = 160) -> str:
    """The first sentence of an exception's message (libraries append paragraphs of advice),
    never cut inside a word; the exception's type when it has no message."""
    text = str(exc).strip().splitlines()[0].strip() if str(exc).strip() else type(exc).__name__
    end = text.find(". ")
    if end != -1:
        text = text[:end]
    text = text.rstrip(".")
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return text
