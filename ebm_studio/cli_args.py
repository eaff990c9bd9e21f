"""Argument types and error kinds shared by the ``ebm-studio`` sub-commands."""

from __future__ import annotations

import argparse
import math


class UsageError(Exception):
    """Bad usage: exit code 2."""


class Failure(Exception):
    """A run that could not be done: exit code 1."""


def _number(low: float, inclusive: bool, what: str):
    """An argparse type: a finite float above ``low`` (or at least ``low`` when ``inclusive``)."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(v) or v < low or (v == low and not inclusive):
            raise argparse.ArgumentTypeError(f"expected a {what} number, got {text!r}")
        return v

    return parse


_positive_float = _number(0.0, False, "positive")
_non_negative_float = _number(0.0, True, "non-negative")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return v


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _bounded_int(low: int, high: int, what: str):
    """An argparse type: a whole number in ``low..high`` (a clear message instead of a crash)."""

    def parse(text: str) -> int:
        v = _positive_int(text) if low >= 1 else _int(text)
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"{what} must lie in {low}..{high:,}, got {text!r}")
        return v

    return parse


#: more threads than this many per core only add overhead (and libgomp aborts on absurd counts)
MAX_THREADS_PER_CORE = 4


def user_errors():
    """The exception types that are the user's mistake or the data's, reported without a trace."""
    from ebm_studio.core.checkpoint import CheckpointError
    from ebm_studio.core.config import ConfigError
    from ebm_studio.core.datasets import DatasetError

    return (CheckpointError, ConfigError, DatasetError, ValueError, OSError)


def load_ckpt(path: str):
    from ebm_studio.core.checkpoint import load_checkpoint

    try:
        return load_checkpoint(path)
    except user_errors() as exc:
        raise Failure(str(exc)) from None
