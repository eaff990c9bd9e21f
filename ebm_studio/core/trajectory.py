"""Record MCMC runs so they can be scrubbed like a video, branched, saved and reloaded.

Every sampling job hands its states to a :class:`TrajectoryRecorder` (engine side). The GUI asks for
step k, the engine answers with :meth:`TrajectoryRecorder.get` (``index_of(k)`` finds the nearest
recorded step) and turns the :class:`RecordedStep` into a frame like any other.

Storage
    Images (N, C, H, W) in [-1, 1] are stored compactly: ``uint8`` (default; values outside [-1, 1]
    are clipped, error ≤ 0.5/127.5) or ``float16`` (or ``float32``); 2-D points (N, D) always as
    ``float32``, so scrubbing returns them bit for bit. Per step also: energies (float32 (N,)),
    the step number, an optional acceptance rate and the live settings in force.

Memory budget
    ``nbytes`` counts what the recording really holds: the arrays' ``nbytes`` plus a per-step
    bookkeeping estimate (numpy array headers, the entry object, deque slot, step and acceptance
    numbers, the cached ``steps`` array), one settings dict per run of unchanged settings, and the
    markers.
    It never exceeds ``budget_bytes`` (default 256 MiB, settable at any time: lowering it evicts at
    once). When the budget is full the *policy* decides what goes:

    ``thin``    keep every k-th step: double the stride and drop every other stored step, so the
                recording always spans the whole run (from the first step to within one stride of
                the last) with a uniform stride;
    ``newest``  a ring buffer: drop the oldest steps.

    Thinning works on step numbers: a step is kept when ``(step - origin) % stride == 0``, where
    ``origin`` is the first stored step. ``every=K`` starts the stride at K (the CLI's ``--every``).
    :meth:`TrajectoryRecorder.wants` tells the engine whether a step would be kept, so it can skip
    the device-to-host copy of states that would be dropped anyway.

Markers
    Changes of the live settings (temperature, step size, noise, sampler, ...) become markers
    ``(step, "T 1.0→2.0")``. They are computed at ``record()`` / ``note_settings()`` time from
    consecutive *calls*, not from the stored (possibly thinned) steps, so they survive thinning and
    mark the exact step of a change even when that step itself was not stored.

Branches
    A :class:`TrajectoryStore` holds several recordings (branches) sharing one budget.
    ``new_branch(parent_id, parent_step)`` starts a branch at a recorded step of its parent. Its
    first entry holds the parent's state at that step *decoded to float32 and stored as float32*
    (not re-compressed): ``branch.start_state`` is exactly the array the engine resumes sampling
    from, and scrubbing to the branch point returns the very same bits, so a resumed run is
    reproducible from the file alone. (For image recordings the parent itself only holds the uint8
    state; the branch cannot be "more exact" than what was recorded, but it never adds a second
    rounding.) When the budget needs space, whole inactive branches are evicted first, oldest
    first; then the branch being recorded applies its own policy. Each branch knows its parent
    ``(branch_id, step)``.

Files
    :meth:`TrajectoryRecorder.save_npz` writes a plain ``.npz`` that ``numpy.load`` reads without
    pickles: ``states`` (T, N, ...) in the storage dtype, ``steps`` (T,), ``energies`` (T, N),
    ``accept`` (T,) (NaN = none), ``settings_json`` (JSON list of distinct settings dicts) with
    ``settings_index`` (T,), ``marker_steps``/``marker_text``, optionally ``branch_state`` (the
    exact float32 branch-point state of an image branch) and a JSON ``metadata`` string (format,
    version, kind, storage dtype, policy, stride, parent, ...). The file is streamed entry by entry
    (no second copy of a 256 MB recording) to a temp file and moved into place with ``os.replace``.
    A damaged or foreign file raises :class:`TrajectoryFormatError` (a ``ValueError``).

Threads
    The recorder is meant to live on the engine thread, but every public method takes a lock (one
    per store), and stored entries are never mutated, so ``get()``/``snapshot()`` from another
    thread are safe; :meth:`snapshot` copies only references.
"""

from __future__ import annotations

import json
import math
import operator
import os
import sys
import threading
import zipfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ebm_studio.core.fileio import atomic_write_stream
from ebm_studio.core.npz_reading import ArchiveTooLarge, check_fits_in_memory, iter_rows, member_header

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


class _Entry:
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
_STEP_OVERHEAD = (
    2 * _ARRAY_HEADER
    + sys.getsizeof(_Entry(0, None, None, 0.0, {}))  # type: ignore[arg-type]
    + sys.getsizeof(2**40)
    + sys.getsizeof(0.5)
    + 8
    + 8
)
_MARKER_OVERHEAD = sys.getsizeof((0, "")) + sys.getsizeof(2**40) + 8


def _settings_nbytes(d: Mapping[str, Any]) -> int:
    return sys.getsizeof(d) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in d.items())


def _marker_nbytes(text: str) -> int:
    return _MARKER_OVERHEAD + sys.getsizeof(text)


def _check_budget(value: float) -> int:
    v = check_positive("budget_bytes", value)
    if v < 1 or v > 2**62:
        raise ValueError(f"budget_bytes must be at least 1 byte, got {value!r}")
    return int(v)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return str(value)


def _check_step(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"step must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"step must be an integer, got {value!r}") from None


def _to_numpy(x: Any) -> np.ndarray:
    """A numpy view or copy of ``x``; torch tensors are detached and moved to the CPU.

    Duck-typed, so this module never imports torch."""
    if hasattr(x, "detach"):
        x = x.detach()
        if str(getattr(x, "dtype", "")) not in ("torch.float32", "torch.float64"):
            x = x.float()  # bf16/fp16 tensors have no numpy counterpart worth keeping
        x = x.cpu().numpy()
    return np.asarray(x)


def _shape_of(x: Any) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    if shape is None:
        shape = np.shape(x)
    return tuple(int(s) for s in shape)


def _clean_settings(settings: Mapping[str, Any]) -> dict[str, float | str]:
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


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def _fmt_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _to_uint8_fast(x: np.ndarray) -> np.ndarray:
    """``imaging.to_uint8`` bit for bit (same float32 operations), with one temporary instead of
    four: the engine pays this every recorded step (≈ 3× faster for 64 digit chains)."""
    t = np.subtract(x, -1.0, dtype=np.float32)
    t *= np.float32(127.5)
    np.rint(t, out=t)
    np.clip(t, 0, 255, out=t)
    return t.astype(np.uint8)


def _encode_image(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "uint8":
        return _to_uint8_fast(x)
    return np.array(x, dtype=np.float16 if dtype == "float16" else np.float32, copy=True)


def _decode(arr: np.ndarray) -> np.ndarray:
    """A fresh float32 array; uint8 codes go back to [-1, 1] (the inverse of ``to_uint8``)."""
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return arr.astype(np.float32, copy=True)


class TrajectoryRecorder:
    """A bounded recording of one MCMC run (one branch).

    Standalone (e.g. the headless CLI)::

        rec = TrajectoryRecorder(every=10)
        for step in range(n):
            res = sampler.step()
            if rec.wants(res.step):
                rec.record(res.step, res.x, res.energy, accept=res.accept, settings=live)
            else:
                rec.note_settings(res.step, live)  # keeps settings markers exact
        rec.save_npz("run.npz")

    Inside a :class:`TrajectoryStore` (the app), the recorder is made by the store and shares its
    budget; setting ``budget_bytes`` on it sets the store's.
    """

    def __init__(
        self,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        *,
        policy: str = "thin",
        every: int = 1,
        image_dtype: str = "uint8",
        kind: str | None = None,
    ) -> None:
        self._budget = _check_budget(budget_bytes)
        self._policy = _check_choice("policy", policy, POLICIES)
        self._every = check_int_at_least("every", every, 1)
        self._image_dtype = _check_choice("image_dtype", image_dtype, IMAGE_DTYPES)
        self._kind: str | None = None if kind is None else _check_choice("kind", kind, KINDS)
        self._lock: threading.RLock = threading.RLock()
        self._store: TrajectoryStore | None = None
        self.branch_id = 0
        #: (parent branch id, parent step) for a branch; None for a root recording
        self.parent: tuple[int, int] | None = None
        #: the model the chains ran under, as its owner names it (saved with the recording)
        self.model = ""
        #: which loaded model that was, in the owner's count (not saved: it means nothing later)
        self.model_id: int | None = None
        self._frozen = False
        self._evicted = False
        self._reset()

    def _reset(self) -> None:
        self._n_chains: int | None = None
        self._chain_shape: tuple[int, ...] | None = None
        self._entries: deque[_Entry] = deque()
        self._stride = self._every
        self._origin: int | None = None
        self._last_seen: int | None = None
        self._last_settings: dict[str, float | str] = {}
        self._markers: list[tuple[int, str]] = []
        self._nbytes = 0
        self._steps_cache: np.ndarray | None = None
        self._dropped = 0
        self._too_small = False

    # ----------------------------------------------------------------- configuration
    @property
    def budget_bytes(self) -> int:
        """Memory budget in bytes (the store's when the recorder belongs to one)."""
        return self._store.budget_bytes if self._store is not None else self._budget

    @budget_bytes.setter
    def budget_bytes(self, value: int) -> None:
        if self._store is not None:
            self._store.budget_bytes = value
            return
        v = _check_budget(value)
        with self._lock:
            self._budget = v
            self._enforce_budget()

    @property
    def policy(self) -> str:
        """``"thin"`` or ``"newest"``; may change at any time."""
        return self._policy

    @policy.setter
    def policy(self, value: str) -> None:
        value = _check_choice("policy", value, POLICIES)
        with self._lock:
            if value == self._policy:
                return
            if value == "newest":
                # a ring buffer is about recent detail: record at the base rate again
                self._stride = self._every
            self._policy = value

    @property
    def every(self) -> int:
        """Base stride: only steps ``origin + m·every`` are ever recorded."""
        return self._every

    @property
    def stride(self) -> int:
        """Current stride in steps (``every`` times the thinning factor)."""
        return self._stride

    @property
    def image_dtype(self) -> str:
        return self._image_dtype

    @property
    def kind(self) -> str | None:
        """``"images"`` or ``"points"``; None until the first state is recorded."""
        return self._kind

    @property
    def storage_dtype(self) -> str:
        """dtype of stored states: float32 for points, ``image_dtype`` for images."""
        return "float32" if self._kind == "points" else self._image_dtype

    @property
    def n_chains(self) -> int | None:
        return self._n_chains

    @property
    def chain_shape(self) -> tuple[int, ...] | None:
        """Shape of one chain's state: (C, H, W) or (D,)."""
        return self._chain_shape

    @property
    def frozen(self) -> bool:
        """True for a snapshot: read-only."""
        return self._frozen

    @property
    def evicted(self) -> bool:
        """True once a store evicted this branch to free memory (it is then empty)."""
        return self._evicted

    # ----------------------------------------------------------------- sizes
    @property
    def nbytes(self) -> int:
        """Bytes held: arrays' data plus bookkeeping (see the module docstring)."""
        return self._nbytes

    @property
    def bytes_per_step(self) -> int:
        """Bytes one more stored step costs at the current chain count and shape (0 if unknown)."""
        if self._n_chains is None or self._chain_shape is None:
            return 0
        itemsize = np.dtype(self.storage_dtype).itemsize
        n = self._n_chains
        return n * math.prod(self._chain_shape) * itemsize + 4 * n + _STEP_OVERHEAD

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def steps(self) -> np.ndarray:
        """Recorded step numbers, sorted (int64, read-only)."""
        with self._lock:
            if self._steps_cache is None:
                arr = np.fromiter((e.step for e in self._entries), np.int64, len(self._entries))
                arr.setflags(write=False)
                self._steps_cache = arr
            return self._steps_cache

    @property
    def last_seen_step(self) -> int | None:
        """The last step given to ``record``/``note_settings`` (stored or not)."""
        return self._last_seen

    @property
    def markers(self) -> list[tuple[int, str]]:
        """Settings changes ``(step, description)``, oldest first."""
        with self._lock:
            return list(self._markers)

    @property
    def kept_description(self) -> str:
        """A sentence for the UI saying what the recording keeps."""
        with self._lock:
            n = len(self._entries)
            if self._too_small and n == 0:
                need = _fmt_bytes(self.bytes_per_step)
                return f"budget too small for one step ({need} needed)"
            if n == 0:
                return "nothing recorded yet"
            every = "every step" if self._stride == 1 else f"every {_ordinal(self._stride)} step"
            if self._policy == "thin":
                if self._stride > self._every or self._dropped:
                    return f"keeping {every} (budget full)"
                return f"keeping {every}"
            if self._dropped:
                tail = "" if self._stride == 1 else f" ({every})"
                return f"keeping the newest {n:,} steps{tail}"
            return f"keeping {every}"

    def index_of(self, step: float) -> int:
        """Index of the recorded step nearest to ``step`` (the earlier one on a tie)."""
        steps = self.steps
        if len(steps) == 0:
            raise IndexError("no steps recorded yet")
        i = int(np.searchsorted(steps, step))
        if i == 0:
            return 0
        if i == len(steps):
            return len(steps) - 1
        return i if steps[i] - step < step - steps[i - 1] else i - 1

    def get(self, index: int) -> RecordedStep:
        """The recorded step at ``index`` (negative counts from the end), decoded to float32."""
        i = operator.index(index)
        with self._lock:
            n = len(self._entries)
            if i < 0:
                i += n
            if not 0 <= i < n:
                raise IndexError(f"index {index} out of range for {n} recorded steps")
            e = self._entries[i]
        # decoding allocates; entries are immutable, so do it outside the lock
        accept = None if math.isnan(e.accept) else e.accept
        return RecordedStep(e.step, _decode(e.state), e.energies.copy(), accept, dict(e.settings))

    def get_step(self, step: float) -> RecordedStep:
        """The recorded step nearest to step number ``step`` (atomic against concurrent records)."""
        with self._lock:
            return self.get(self.index_of(step))

    def stored_state(self, index: int) -> np.ndarray:
        """The state at ``index`` exactly as stored (uint8/float16/float32), read-only view."""
        with self._lock:
            arr = self._entries[operator.index(index)].state
        view = arr.view()
        view.setflags(write=False)
        return view

    @property
    def start_state(self) -> np.ndarray | None:
        """For a branch: the exact float32 state it starts from (None once the policy drops it)."""
        with self._lock:
            if self.parent is None or not self._entries:
                return None
            e = self._entries[0]
            if e.step != self.parent[1] or e.state.dtype != np.float32:
                return None
            return e.state.copy()

    # ----------------------------------------------------------------- recording
    def wants(self, step: int) -> bool:
        """Whether ``record(step, ...)`` would store the step (with room), so the caller can skip
        copying states off the device for steps that would be dropped."""
        step = _check_step(step)
        with self._lock:
            if self._frozen or self._evicted:
                return False
            if self._last_seen is not None and step <= self._last_seen:
                return False
            return self._on_grid(step)

    def note_settings(self, step: int, settings: Mapping[str, Any] | None) -> None:
        """Track the live settings at a step that is not recorded (keeps markers exact)."""
        step = _check_step(step)
        with self._lock:
            self._check_writable()
            self._check_order(step)
            self._apply_settings(step, None if settings is None else _clean_settings(settings))
            self._last_seen = step
            self._enforce_budget()

    def record(
        self,
        step: int,
        state: Any,
        energies: Any = None,
        *,
        accept: float | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> bool:
        """Record the chains' ``state`` at ``step``; True if it was stored.

        ``state``: images (N, C, H, W) in [-1, 1] or points (N, D), numpy or torch. ``energies``:
        (N,) per-chain energies (None: NaN). ``accept``: the step's acceptance rate, if any.
        ``settings``: the live settings (floats/strings); keys not given keep their previous values,
        None means unchanged. Steps must increase. A step off the current stride grid is not stored
        (its settings still count for the markers).
        """
        step = _check_step(step)
        with self._lock:
            self._check_writable()
            self._check_order(step)
            kind, n, chain_shape = self._check_shape(_shape_of(state))
            e_arr = self._parse_energies(energies, n)
            acc = self._parse_accept(accept)
            clean = None if settings is None else _clean_settings(settings)
            # all checks passed: from here on the call changes the recording
            if self._n_chains is None:
                self._kind, self._n_chains, self._chain_shape = kind, n, chain_shape
            cur = self._apply_settings(step, clean)
            self._last_seen = step
            if not self._on_grid(step):
                self._enforce_budget()  # a new marker may have used the last free bytes
                return False
            x = _to_numpy(state)
            if kind == "points":
                stored = np.array(x, np.float32)
            else:
                stored = _encode_image(x, self._image_dtype)
            return self._append(_Entry(step, stored, e_arr, acc, cur))

    def clear(self) -> None:
        """Forget everything recorded (configuration stays)."""
        with self._lock:
            self._check_writable()
            self._reset()

    def snapshot(self) -> TrajectoryRecorder:
        """A read-only copy sharing the stored arrays (cheap): export it while recording goes on."""
        with self._lock:
            snap = TrajectoryRecorder.__new__(TrajectoryRecorder)
            snap.__dict__.update(self.__dict__)
            snap._budget = self.budget_bytes
            snap._entries = deque(self._entries)
            snap._markers = list(self._markers)
            snap._lock = threading.RLock()
            snap._store = None
            snap._frozen = True
            return snap

    # ----------------------------------------------------------------- internals
    def _check_writable(self) -> None:
        if self._frozen:
            raise RuntimeError("this trajectory is a read-only snapshot")
        if self._evicted:
            raise RuntimeError(f"branch {self.branch_id} was evicted to free memory")

    def _check_order(self, step: int) -> None:
        if self._last_seen is not None and step <= self._last_seen:
            raise ValueError(
                f"step must increase: got {step} after {self._last_seen} "
                "(start a new recording or branch to go back)"
            )

    def _check_shape(self, shape: tuple[int, ...]) -> tuple[str, int, tuple[int, ...]]:
        if self._n_chains is not None and self._chain_shape is not None:
            expected = (self._n_chains, *self._chain_shape)
            if shape != expected:
                raise ValueError(
                    f"state has shape {shape}, but this recording holds shape {expected}; "
                    "start a new recording for a different chain count or shape"
                )
            return self._kind or "points", self._n_chains, self._chain_shape
        kind = self._kind
        if kind is None:
            kind = "images" if len(shape) == 4 else "points" if len(shape) == 2 else None
        if kind == "images" and len(shape) != 4 or kind == "points" and len(shape) != 2 or not kind:
            raise ValueError(
                f"state must be images (N, C, H, W) or points (N, D), got shape {shape}"
            )
        if shape[0] < 1 or 0 in shape:
            raise ValueError(f"state must hold at least one chain with data, got shape {shape}")
        return kind, shape[0], tuple(shape[1:])

    @staticmethod
    def _parse_energies(energies: Any, n: int) -> np.ndarray:
        if energies is None:
            return np.full(n, np.nan, np.float32)
        arr = np.array(_to_numpy(energies), dtype=np.float32, copy=True)
        if arr.shape != (n,):
            raise ValueError(f"energies must have shape ({n},) (one per chain), got {arr.shape}")
        return arr

    @staticmethod
    def _parse_accept(accept: Any) -> float:
        if accept is None:
            return math.nan
        try:
            return float(accept)
        except (TypeError, ValueError):
            raise ValueError(f"accept must be a number or None, got {accept!r}") from None

    def _apply_settings(self, step: int, settings: dict[str, float | str] | None) -> dict:
        if settings is None:
            return self._last_settings
        merged = {**self._last_settings, **settings}
        if merged == self._last_settings:
            return self._last_settings  # the same object: runs of equal settings cost one dict
        if self._last_seen is not None:  # the first settings of a run are no change
            text = describe_settings_change(self._last_settings, merged)
            if text:
                self._markers.append((step, text))
                self._nbytes += _marker_nbytes(text)
        self._last_settings = merged
        return merged

    def _on_grid(self, step: int) -> bool:
        return self._origin is None or (step - self._origin) % self._stride == 0

    def _entry_cost(self, e: _Entry, prev: _Entry | None) -> int:
        cost = e.state.nbytes + e.energies.nbytes + _STEP_OVERHEAD
        if prev is None or prev.settings is not e.settings:
            cost += _settings_nbytes(e.settings)
        return cost

    def _recount(self) -> None:
        total, prev = 0, None
        for e in self._entries:
            total += self._entry_cost(e, prev)
            prev = e
        total += sum(_marker_nbytes(t) for _, t in self._markers)
        self._nbytes = total
        self._steps_cache = None

    def _used(self) -> int:
        return self._store.nbytes if self._store is not None else self._nbytes

    def _append(self, entry: _Entry) -> bool:
        while True:
            cost = self._entry_cost(entry, self._entries[-1] if self._entries else None)
            if cost > self.budget_bytes:
                self._too_small = True  # could never fit, even alone: evict nothing for it
                self._enforce_budget()
                return False
            if self._used() + cost <= self.budget_bytes:
                break
            if not self._free_once(incoming=True):
                self._too_small = True
                return False
            if not self._on_grid(entry.step):
                return False  # thinning moved this step off the grid
        if self._origin is None:
            self._origin = entry.step
        self._entries.append(entry)
        self._nbytes += cost
        self._steps_cache = None
        self._too_small = False
        return True

    def _free_once(self, incoming: bool) -> bool:
        """Free memory (``thin`` with one step: coarsen the grid instead); False if nothing left."""
        if self._store is not None and self._store._evict_oldest_inactive(keep=self):
            return True
        n = len(self._entries)
        if self._policy == "thin" and n >= 2:
            self._thin()
            return True
        if self._policy == "thin" and n == 1 and incoming:
            # keep the first step (the span starts there); the incoming step moves off the grid
            self._stride *= 2
            return True
        if n >= 1:
            self._popleft()
            if not self._entries:
                self._stride = self._every  # nothing left to span: start afresh at the base rate
            return True
        if self._markers:
            _, text = self._markers.pop(0)
            self._nbytes -= _marker_nbytes(text)
            return True
        return False

    def _thin(self) -> None:
        first = self._entries[0].step
        self._origin = first  # the first stored step always stays: the recording spans the run
        self._stride *= 2
        kept = deque(e for e in self._entries if (e.step - first) % self._stride == 0)
        self._dropped += len(self._entries) - len(kept)
        self._entries = kept
        self._recount()

    def _popleft(self) -> None:
        e = self._entries.popleft()
        freed = e.state.nbytes + e.energies.nbytes + _STEP_OVERHEAD
        if not (self._entries and self._entries[0].settings is e.settings):
            freed += _settings_nbytes(e.settings)
        # else: the run's settings dict is now counted at the new first entry
        self._nbytes -= freed
        self._dropped += 1
        self._steps_cache = None

    def _enforce_budget(self) -> None:
        if self._store is not None:
            self._store._enforce_budget()
            return
        while self._nbytes > self._budget:
            if not self._free_once(incoming=False):
                break

    # ----------------------------------------------------------------- files
    def _metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "kind": self._kind,
            "storage_dtype": self.storage_dtype,
            "image_dtype": self._image_dtype,
            "n_chains": self._n_chains,
            "chain_shape": list(self._chain_shape) if self._chain_shape is not None else None,
            "policy": self._policy,
            "every": self._every,
            "stride": self._stride,
            "origin": self._origin,
            "last_seen_step": self._last_seen,
            "last_settings": self._last_settings,
            "budget_bytes": self.budget_bytes,
            "dropped": self._dropped,
            "branch_id": self.branch_id,
            "parent": list(self.parent) if self.parent is not None else None,
            "model": self.model,
            "kept": self.kept_description,
        }

    def save_npz(
        self,
        path: str | os.PathLike[str],
        *,
        progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None,
    ) -> Path:
        """Write the recording to ``path`` (a plain ``.npz``), atomically.

        The states are streamed entry by entry into the archive, so saving needs no second copy of
        the recording. ``progress(done, total)`` is called at most about 200 times (total = number
        of steps); when ``should_cancel()`` returns True the temp file is removed and
        :class:`ExportCancelled` raised. Safe to call while another thread records (it saves a
        snapshot).
        """
        snap = self if self._frozen else self.snapshot()
        path = Path(path)
        entries = list(snap._entries)
        t = len(entries)
        meta = snap._metadata()
        # settings: a table of distinct dicts plus one index per step (columnar, JSON-readable)
        table: list[dict] = []
        ids: dict[int, int] = {}
        index = np.empty(t, np.int32)
        for i, e in enumerate(entries):
            k = ids.get(id(e.settings))
            if k is None:
                k = ids[id(e.settings)] = len(table)
                table.append(e.settings)
            index[i] = k
        chain_shape = snap._chain_shape or ()
        n = snap._n_chains or 0
        storage = np.dtype(snap.storage_dtype)
        branch_state = None
        if entries and snap.parent is not None and entries[0].step == snap.parent[1]:
            if entries[0].state.dtype != storage:  # an image branch point kept exactly as float32
                branch_state = entries[0].state
        arrays: dict[str, np.ndarray] = {
            "metadata": np.array(json.dumps(meta, ensure_ascii=False)),
            "steps": np.fromiter((e.step for e in entries), np.int64, t),
            "energies": (
                np.stack([e.energies for e in entries]) if t else np.zeros((0, n), np.float32)
            ),
            "accept": np.fromiter((e.accept for e in entries), np.float64, t),
            "settings_json": np.array(json.dumps(table, ensure_ascii=False)),
            "settings_index": index,
            "marker_steps": np.array([s for s, _ in snap._markers], np.int64),
            "marker_text": np.array([m for _, m in snap._markers], dtype=np.str_).reshape(-1),
        }
        if branch_state is not None:
            arrays["branch_state"] = branch_state

        def write_states(zf: zipfile.ZipFile) -> None:
            header = {
                "descr": np.lib.format.dtype_to_descr(storage),
                "fortran_order": False,
                "shape": (t, n, *chain_shape) if snap._kind is not None else (0,),
            }
            report = max(1, t // 200)
            with zf.open("states.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_2_0(f, header)
                for i, e in enumerate(entries):
                    if should_cancel is not None and should_cancel():
                        raise ExportCancelled("save cancelled")
                    arr = e.state
                    if arr.dtype != storage:  # the float32 branch point: its compact form here
                        arr = _encode_image(_decode(arr), snap.storage_dtype)
                    f.write(np.ascontiguousarray(arr).tobytes())
                    if progress is not None and ((i + 1) % report == 0 or i + 1 == t):
                        progress(i + 1, t)

        def write(fh: Any) -> None:
            with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                write_states(zf)
                for name, arr in arrays.items():
                    with zf.open(name + ".npy", "w", force_zip64=True) as f:
                        np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)

        atomic_write_stream(path, write)
        if progress is not None and t == 0:
            progress(0, 0)
        return path

    @classmethod
    def load_npz(
        cls, path: str | os.PathLike[str], *, budget_bytes: int | None = None
    ) -> TrajectoryRecorder:
        """Read a file written by :meth:`save_npz` into a standalone recorder.

        The budget is ``budget_bytes`` if given, else the saved one (raised to fit the data).
        Raises :class:`TrajectoryFormatError` for damaged or foreign files (a missing file raises
        ``FileNotFoundError``).
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such trajectory file: {path}")
        if not path.is_file():  # reading a pipe or device would block
            raise TrajectoryFormatError(f"{path}: not a regular file (a folder, pipe or device)")
        try:
            with np.load(path, allow_pickle=False) as z:
                if not hasattr(z, "files"):
                    raise TrajectoryFormatError("a single .npy array, not an .npz archive")
                return cls._from_npz(z, budget_bytes)
        except ArchiveTooLarge as e:
            raise TrajectoryFormatError(f"{path}: cannot load it: {e}") from None
        except TrajectoryFormatError as e:
            raise TrajectoryFormatError(f"{path}: not a valid EBM Studio trajectory: {e}") from e
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
            raise TrajectoryFormatError(
                f"{path}: not a readable EBM Studio trajectory ({type(e).__name__}: {e})"
            ) from e
        except AttributeError as e:  # np.load returned a non-archive object
            raise TrajectoryFormatError(f"{path}: not an .npz archive ({e})") from e

    @classmethod
    def _from_npz(cls, z: Any, budget_bytes: int | None) -> TrajectoryRecorder:
        def need(name: str) -> np.ndarray:
            if name not in z.files:
                raise TrajectoryFormatError(f"missing array {name!r}")
            return z[name]

        def need_json(name: str):
            try:
                return json.loads(str(need(name)[()]))
            except json.JSONDecodeError as e:
                raise TrajectoryFormatError(f"{name!r} is not JSON ({e})") from None
            except RecursionError:
                raise TrajectoryFormatError(f"{name!r} is nested too deeply") from None

        check_fits_in_memory(z, "this trajectory")  # before anything is unpacked
        meta = need_json("metadata")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise TrajectoryFormatError(f"metadata does not name the format {FORMAT_NAME!r}")
        if meta.get("version") != FORMAT_VERSION:
            raise TrajectoryFormatError(f"unsupported format version {meta.get('version')!r}")
        steps = need("steps")
        if "states" not in z.files:
            raise TrajectoryFormatError("missing array 'states'")
        states_shape, states_dtype = member_header(z, "states")  # read row by row below
        energies = need("energies")
        accept = need("accept")
        sindex = need("settings_index")
        table = need_json("settings_json")
        mk_steps, mk_text = need("marker_steps"), need("marker_text")
        t = len(steps)
        kind = meta.get("kind")
        storage = meta.get("storage_dtype")
        if kind is not None and kind not in KINDS:
            raise TrajectoryFormatError(f"unknown kind {kind!r}")
        if steps.ndim != 1 or steps.dtype.kind not in "iu":
            raise TrajectoryFormatError("'steps' must be a 1-D integer array")
        if t and np.any(np.diff(steps) <= 0):
            raise TrajectoryFormatError("'steps' must increase")
        if kind is None:
            if t:
                raise TrajectoryFormatError("steps recorded but no kind given")
        else:
            n = int(meta["n_chains"])
            cs = tuple(int(s) for s in meta["chain_shape"])
            if states_shape != (t, n, *cs) or str(states_dtype) != storage:
                raise TrajectoryFormatError(
                    f"'states' has shape {states_shape} and dtype {states_dtype}, expected "
                    f"{(t, n, *cs)} {storage}"
                )
            if energies.shape != (t, n) or energies.dtype != np.float32:
                raise TrajectoryFormatError(
                    f"'energies' has shape {energies.shape}, expected {(t, n)}"
                )
        if accept.shape != (t,) or sindex.shape != (t,):
            raise TrajectoryFormatError("'accept' and 'settings_index' need one value per step")
        if not isinstance(table, list) or (t and (sindex.min() < 0 or sindex.max() >= len(table))):
            raise TrajectoryFormatError("'settings_index' points outside 'settings_json'")
        if mk_steps.shape != mk_text.shape or mk_steps.ndim != 1:
            raise TrajectoryFormatError("'marker_steps' and 'marker_text' do not match")

        budget = budget_bytes if budget_bytes is not None else int(meta.get("budget_bytes") or 1)
        rec = cls(
            max(1, budget),
            policy=meta.get("policy", "thin"),
            every=int(meta.get("every", 1)),
            image_dtype=meta.get("image_dtype", "uint8"),
            kind=kind,
        )
        settings = [_clean_settings(d) for d in table]
        if kind is not None:
            rec._n_chains, rec._chain_shape = n, cs
        # one fresh array per step, read one at a time: eviction frees real memory, and the whole
        # array is never held twice
        rows = iter_rows(z, "states") if t else iter(())
        for i, state in zip(range(t), rows):
            rec._entries.append(
                _Entry(int(steps[i]), state, np.array(energies[i], np.float32), float(accept[i]),
                       settings[int(sindex[i])])
            )
        parent = meta.get("parent")
        rec.parent = (int(parent[0]), int(parent[1])) if parent else None
        rec.branch_id = int(meta.get("branch_id") or 0)
        rec.model = str(meta.get("model") or "")
        if "branch_state" in z.files and t:
            bs = z["branch_state"]
            if bs.shape != states_shape[1:] or bs.dtype != np.float32:
                raise TrajectoryFormatError("'branch_state' does not match the states")
            e0 = rec._entries[0]
            rec._entries[0] = _Entry(e0.step, np.array(bs), e0.energies, e0.accept, e0.settings)
        rec._markers = [(int(s), str(m)) for s, m in zip(mk_steps, mk_text, strict=True)]
        rec._stride = int(meta.get("stride", rec._every))
        rec._origin = None if meta.get("origin") is None else int(meta["origin"])
        rec._last_seen = None if meta.get("last_seen_step") is None else int(meta["last_seen_step"])
        last = _clean_settings(meta.get("last_settings") or {})
        # share the object with the last entry when equal, so a continued run adds no dict cost
        if t and rec._entries[-1].settings == last:
            last = rec._entries[-1].settings
        rec._last_settings = last
        rec._dropped = int(meta.get("dropped", 0))
        rec._recount()
        if budget_bytes is None and rec._nbytes > rec._budget:
            rec._budget = rec._nbytes
        else:
            rec._enforce_budget()
        return rec


class TrajectoryStore:
    """Several recordings (branches) sharing one memory budget.

    ``new_recording()`` starts a root branch, ``new_branch(parent_id, step)`` one that continues
    from a recorded step of another; either becomes the *active* branch (the one being recorded).
    When the budget needs space, whole inactive branches go first, oldest first (their ids land in
    ``evicted_ids``); then the branch being recorded applies its policy.
    """

    def __init__(
        self,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        *,
        policy: str = "thin",
        every: int = 1,
        image_dtype: str = "uint8",
    ) -> None:
        self._budget = _check_budget(budget_bytes)
        self.policy = _check_choice("policy", policy, POLICIES)
        self.every = check_int_at_least("every", every, 1)
        self.image_dtype = _check_choice("image_dtype", image_dtype, IMAGE_DTYPES)
        self._lock = threading.RLock()
        self._branches: list[TrajectoryRecorder] = []  # creation order = eviction order
        self._active: TrajectoryRecorder | None = None
        self._next_id = 0
        self.evicted_ids: list[int] = []

    @property
    def budget_bytes(self) -> int:
        return self._budget

    @budget_bytes.setter
    def budget_bytes(self, value: int) -> None:
        v = _check_budget(value)
        with self._lock:
            self._budget = v
            self._enforce_budget()

    @property
    def nbytes(self) -> int:
        """Bytes held by all branches together (≤ ``budget_bytes``)."""
        with self._lock:
            return sum(b._nbytes for b in self._branches)

    @property
    def branches(self) -> list[TrajectoryRecorder]:
        """Live branches, oldest first."""
        with self._lock:
            return list(self._branches)

    @property
    def active(self) -> TrajectoryRecorder | None:
        return self._active

    @property
    def active_id(self) -> int | None:
        return None if self._active is None else self._active.branch_id

    def branch(self, branch_id: int) -> TrajectoryRecorder:
        """The live branch with this id (ValueError if unknown or evicted)."""
        return self._find("branch_id", branch_id)

    def _find(self, name: str, branch_id: int) -> TrajectoryRecorder:
        with self._lock:
            for b in self._branches:
                if b.branch_id == branch_id:
                    return b
            gone = " (evicted to free memory)" if branch_id in self.evicted_ids else ""
            raise ValueError(f"{name} {branch_id!r} is not a branch of this store{gone}")

    def set_active(self, branch_id: int) -> TrajectoryRecorder:
        with self._lock:
            self._active = self.branch(branch_id)
            return self._active

    def _attach(self, rec: TrajectoryRecorder) -> TrajectoryRecorder:
        rec._store = self
        rec._lock = self._lock
        rec.branch_id = self._next_id
        self._next_id += 1
        self._branches.append(rec)
        self._active = rec
        return rec

    def new_recording(
        self,
        *,
        kind: str | None = None,
        policy: str | None = None,
        every: int | None = None,
        image_dtype: str | None = None,
        model: str = "",
        model_id: int | None = None,
    ) -> TrajectoryRecorder:
        """Start a root branch (no parent) and make it active; ``model``/``model_id`` say which
        model the chains run under (branches inherit them)."""
        rec = TrajectoryRecorder(
            self._budget,
            policy=policy or self.policy,
            every=every or self.every,
            image_dtype=image_dtype or self.image_dtype,
            kind=kind,
        )
        rec.model, rec.model_id = str(model), model_id
        with self._lock:
            return self._attach(rec)

    def new_branch(
        self,
        parent_branch_id: int,
        parent_step: int,
        *,
        policy: str | None = None,
        every: int | None = None,
    ) -> TrajectoryRecorder:
        """Start a branch at recorded step ``parent_step`` of branch ``parent_branch_id``.

        Its first entry is the parent's state at that step as exact float32 (``start_state``); the
        branch becomes active, and later ``record`` calls need steps > ``parent_step``.
        """
        step = _check_step(parent_step)
        with self._lock:
            parent = self._find("parent_branch_id", parent_branch_id)
            steps = parent.steps
            i = int(np.searchsorted(steps, step))
            if i >= len(steps) or steps[i] != step:
                near = ""
                if len(steps):
                    near = f"; nearest recorded is {steps[parent.index_of(step)]}"
                raise ValueError(
                    f"parent_step {step} is not a recorded step of branch {parent_branch_id}{near}"
                )
            src = parent._entries[i]
            child = TrajectoryRecorder(
                self._budget,
                policy=policy or parent.policy,
                every=every or parent.every,
                image_dtype=parent.image_dtype,
                kind=parent.kind,
            )
            child._n_chains, child._chain_shape = parent._n_chains, parent._chain_shape
            state = _decode(src.state)  # float32, exactly what scrubbing the parent returns
            entry = _Entry(src.step, state, src.energies.copy(), src.accept, src.settings)
            if child._entry_cost(entry, None) > self._budget:
                raise ValueError(
                    f"budget_bytes {self._budget:,} is too small to hold the branch point "
                    f"({child._entry_cost(entry, None):,} bytes as float32)"
                )
            child.parent = (parent.branch_id, src.step)
            child.model, child.model_id = parent.model, parent.model_id
            child._last_settings = src.settings
            child._last_seen = src.step
            self._attach(child)
            stored = child._append(entry)  # may evict old inactive branches (the parent too)
            assert stored, "branch point fits the budget alone"
            return child

    def remove_branch(self, branch_id: int) -> None:
        """Drop a branch and free its memory."""
        with self._lock:
            b = self.branch(branch_id)
            self._drop(b)

    def _drop(self, b: TrajectoryRecorder) -> None:
        self._branches.remove(b)
        if self._active is b:
            self._active = None
        b._entries = deque()
        b._markers = []
        b._nbytes = 0
        b._steps_cache = None
        b._store = None
        b._evicted = True

    def _evict_oldest_inactive(self, keep: TrajectoryRecorder) -> bool:
        for b in self._branches:
            if b is not keep and b is not self._active:
                self._drop(b)
                self.evicted_ids.append(b.branch_id)
                return True
        return False

    def _enforce_budget(self) -> None:
        while self.nbytes > self._budget:
            if self._evict_oldest_inactive(keep=self._active):  # type: ignore[arg-type]
                continue
            target = self._active or (self._branches[0] if self._branches else None)
            if target is None or not target._free_once(incoming=False):
                break

    def record(self, step: int, state: Any, energies: Any = None, **kwargs: Any) -> bool:
        """Record into the active branch (see :meth:`TrajectoryRecorder.record`)."""
        if self._active is None:
            raise RuntimeError("no active recording: call new_recording() or new_branch() first")
        return self._active.record(step, state, energies, **kwargs)

    def open_npz(self, path: str | os.PathLike[str]) -> TrajectoryRecorder:
        """Load a saved recording as a new root branch of this store and make it active.

        Its saved ``parent`` is kept as information; the ids refer to the store that saved it.
        """
        loaded = TrajectoryRecorder.load_npz(path, budget_bytes=self._budget)
        with self._lock:
            saved_parent = loaded.parent
            self._attach(loaded)
            loaded.parent = saved_parent
            self._enforce_budget()
            return loaded
