"""The pieces of a trajectory recording that do not depend on how it is kept: names, limits, errors,
the stored entry and its decoded form, how states are encoded, what a step costs in memory, and the
text of settings markers.

:mod:`.trajectory_recorder` records one run with these, :mod:`.trajectory_npz` writes and reads
them, :mod:`.trajectory_store` shares one budget between branches; :mod:`.trajectory` describes the
whole design and is the public name.
"""

from __future__ import annotations

import math
import operator
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from ebm_studio.core.errors import check_int_at_least, check_positive

DEFAULT_BUDGET_BYTES = 256 * 1024**2
POLICIES = ("thin", "newest")
POLICY_LABELS = {
    "thin": "Thin (every k-th step, whole run)",
    "newest": "Newest (ring buffer)",
}
IMAGE_DTYPES = ("uint8", "float16", "float32")
KINDS = ("points", "images")
FORMAT_NAME = "ebm-studio-trajectory"
FORMAT_VERSION = 1

#: short labels of well-known settings in marker text ("T 1.0→2.0")
SETTING_LABELS = {
    "temperature": "T",
    "step_size": "step size",
    "noise": "noise",
    "sampler": "sampler",
}

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


class TrajectoryFormatError(ValueError):
    """A file is not a readable EBM Studio trajectory (damaged, truncated, foreign)."""


class ExportCancelled(Exception):
    """A save or export was cancelled through ``should_cancel()``; no file was left behind."""


@dataclass
class RecordedStep:
    """One recorded step, decoded: ``state`` is float32 (images back in [-1, 1])."""

    step: int
    state: np.ndarray
    energies: np.ndarray
    accept: float | None
    settings: dict[str, float | str] = field(default_factory=dict)


class Entry:
    """One stored step. Never mutated after creation (snapshots and readers share entries)."""

    __slots__ = ("step", "state", "energies", "accept", "settings")

    def __init__(
        self, step: int, state: np.ndarray, energies: np.ndarray, accept: float, settings: dict
    ) -> None:
        self.step = step
        self.state = state
        self.energies = energies
        self.accept = accept  # NaN when the sampler reports none
        self.settings = settings  # shared between consecutive steps while unchanged


# Bookkeeping per stored step beyond the arrays' data: two numpy array headers, the entry object,
# its step (int) and acceptance (float) objects, a deque slot and one int64 in the cached ``steps``.
_ARRAY_HEADER = sys.getsizeof(np.empty(0, np.uint8))
STEP_OVERHEAD = (
    2 * _ARRAY_HEADER
    + sys.getsizeof(Entry(0, None, None, 0.0, {}))  # type: ignore[arg-type]
    + sys.getsizeof(2**40)
    + sys.getsizeof(0.5)
    + 8
    + 8
)
_MARKER_OVERHEAD = sys.getsizeof((0, "")) + sys.getsizeof(2**40) + 8


def settings_nbytes(d: Mapping[str, Any]) -> int:
    """Bytes one settings dict holds (counted once per run of unchanged settings)."""
    return sys.getsizeof(d) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in d.items())


def marker_nbytes(text: str) -> int:
    """Bytes one settings marker ``(step, text)`` holds."""
    return _MARKER_OVERHEAD + sys.getsizeof(text)


def entry_cost(e: Entry, prev: Entry | None = None) -> int:
    """Bytes a stored step holds: its arrays and bookkeeping, and its settings dict unless it
    shares that of the step before it (``prev``)."""
    cost = e.state.nbytes + e.energies.nbytes + STEP_OVERHEAD
    if prev is None or prev.settings is not e.settings:
        cost += settings_nbytes(e.settings)
    return cost


def check_budget(value: float) -> int:
    """A memory budget in whole bytes (``ValueError`` unless at least 1 byte)."""
    v = check_positive("budget_bytes", value)
    if v < 1 or v > 2**62:
        raise ValueError(f"budget_bytes must be at least 1 byte, got {value!r}")
    return int(v)


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """``value`` when it is one of ``choices``, else ``ValueError`` naming ``name``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return str(value)


def check_recording_options(budget_bytes: float, policy: object, every: object,
                            image_dtype: object) -> tuple[int, str, int, str]:
    """The options a recording and a store of recordings share, validated: (budget in bytes,
    policy, base stride, image dtype); ``ValueError`` naming the first bad one."""
    return (check_budget(budget_bytes), check_choice("policy", policy, POLICIES),
            check_int_at_least("every", every, 1), check_choice("image_dtype", image_dtype, IMAGE_DTYPES))


def check_step(value: object) -> int:
    """A step number as an int (integral floats too); ``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"step must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"step must be an integer, got {value!r}") from None


def to_numpy(x: Any) -> np.ndarray:
    """A numpy view or copy of ``x``; torch tensors are detached and moved to the CPU.

    Duck-typed, so this module never imports torch."""
    if hasattr(x, "detach"):
        x = x.detach()
        if str(getattr(x, "dtype", "")) not in ("torch.float32", "torch.float64"):
            x = x.float()  # bf16/fp16 tensors have no numpy counterpart worth keeping
        x = x.cpu().numpy()
    return np.asarray(x)


def shape_of(x: Any) -> tuple[int, ...]:
    """The shape of an array or tensor (or of nested sequences) as a tuple of ints."""
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    return tuple(int(s) for s in shape)


def clean_settings(settings: Mapping[str, Any]) -> dict[str, float | str]:
    """A copy of live settings with every value a float or a string (``ValueError`` otherwise)."""
    if not isinstance(settings, Mapping):
        raise ValueError(
            f"settings must be a dict of numbers/strings, got {type(settings).__name__}"
        )
    out: dict[str, float | str] = {}
    for k, v in settings.items():
        if not isinstance(k, str):
            raise ValueError(f"settings keys must be strings, got {k!r}")
        if isinstance(v, str):
            out[k] = v
            continue
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            raise ValueError(
                f"settings[{k!r}] must be a number or a string, got {type(v).__name__}"
            ) from None
    return out


def _fmt_value(v: float | str | None) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if math.isfinite(v) and v == int(v) and abs(v) < 1e6:
        return f"{v:.1f}"
    return f"{v:.4g}"


def describe_settings_change(old: Mapping[str, float | str], new: Mapping[str, float | str]) -> str:
    """Marker text for a change of live settings, e.g. ``"T 1.0→2.0, noise 0.01→0.02"``.

    Well-known keys come first, in the order of :data:`SETTING_LABELS`; an empty string means no
    change.
    """
    keys = [k for k in SETTING_LABELS if k in old or k in new]
    keys += sorted(k for k in set(old) | set(new) if k not in SETTING_LABELS)
    parts = []
    for k in keys:
        a, b = old.get(k), new.get(k)
        if a != b:
            parts.append(f"{SETTING_LABELS.get(k, k)} {_fmt_value(a)}→{_fmt_value(b)}")
    return ", ".join(parts)


def _to_uint8_fast(x: np.ndarray) -> np.ndarray:
    """``imaging.to_uint8`` bit for bit (same float32 operations), with one temporary instead of
    four: the engine pays this every recorded step (≈ 3× faster for 64 digit chains)."""
    t = np.subtract(x, -1.0, dtype=np.float32)
    t *= np.float32(127.5)
    np.rint(t, out=t)
    np.clip(t, 0, 255, out=t)
    return t.astype(np.uint8)


def encode_image(x: np.ndarray, dtype: str) -> np.ndarray:
    """Images in [-1, 1] in their storage ``dtype`` (uint8 codes, float16 or float32), as a copy."""
    if dtype == "uint8":
        return _to_uint8_fast(x)
    return np.array(x, dtype=np.float16 if dtype == "float16" else np.float32, copy=True)


def decode_state(arr: np.ndarray) -> np.ndarray:
    """A fresh float32 array; uint8 codes go back to [-1, 1] (the inverse of ``to_uint8``)."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return arr.astype(np.float32, copy=True)
