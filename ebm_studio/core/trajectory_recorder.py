"""One recording of an MCMC run (one branch): bounded by a memory budget, thinned or ring-buffered
when full, with exact settings markers, random access by step, cheap snapshots and ``.npz`` files.

See :mod:`.trajectory` for the design (storage, budget, policies, markers, branches, threads);
the file format is :mod:`.trajectory_npz`, the shared pieces :mod:`.trajectory_format`. A recorder
works alone (the headless CLI) or as a branch of a :class:`~.trajectory_store.TrajectoryStore`,
which it meets only as a :class:`BudgetPool`.
"""

from __future__ import annotations

import math
import operator
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np

from ebm_studio.core.trajectory_format import (
    DEFAULT_BUDGET_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    KINDS,
    POLICIES,
    STEP_OVERHEAD,
    CancelFn,
    Entry,
    ProgressFn,
    RecordedStep,
    check_budget,
    check_choice,
    check_recording_options,
    check_step,
    clean_settings,
    decode_state,
    describe_settings_change,
    encode_image,
    entry_cost,
    marker_nbytes,
    settings_nbytes,
    shape_of,
    to_numpy,
)
from ebm_studio.core.trajectory_npz import SavedRecording, open_npz, read_npz, write_npz


class BudgetPool(Protocol):
    """What a recorder needs of the store it is a branch of: one budget shared by all branches."""

    @property
    def budget_bytes(self) -> int: ...

    @property
    def nbytes(self) -> int: ...

    def evict_oldest_inactive(self, keep: TrajectoryRecorder) -> bool:
        """Evict the oldest branch that is neither ``keep`` nor being recorded; False if none."""
        ...

    def enforce_budget(self) -> None:
        """Free memory until every branch together fits the budget."""
        ...


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
        self._budget, self._policy, self._every, self._image_dtype = check_recording_options(
            budget_bytes, policy, every, image_dtype)
        self._kind: str | None = None if kind is None else check_choice("kind", kind, KINDS)
        self._lock: threading.RLock = threading.RLock()
        self._store: BudgetPool | None = None
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
        self._entries: deque[Entry] = deque()
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
        v = check_budget(value)
        with self._lock:
            self._budget = v
            self._enforce_budget()

    @property
    def policy(self) -> str:
        """``"thin"`` or ``"newest"``; may change at any time."""
        return self._policy

    @policy.setter
    def policy(self, value: str) -> None:
        value = check_choice("policy", value, POLICIES)
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
        return n * math.prod(self._chain_shape) * itemsize + 4 * n + STEP_OVERHEAD

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
        return RecordedStep(e.step, decode_state(e.state), e.energies.copy(), accept, dict(e.settings))

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
        step = check_step(step)
        with self._lock:
            if self._frozen or self._evicted:
                return False
            if self._last_seen is not None and step <= self._last_seen:
                return False
            return self._on_grid(step)

    def note_settings(self, step: int, settings: Mapping[str, Any] | None) -> None:
        """Track the live settings at a step that is not recorded (keeps markers exact)."""
        step = check_step(step)
        with self._lock:
            self._check_writable()
            self._check_order(step)
            self._apply_settings(step, None if settings is None else clean_settings(settings))
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
        step = check_step(step)
        with self._lock:
            self._check_writable()
            self._check_order(step)
            kind, n, chain_shape = self._check_shape(shape_of(state))
            e_arr = self._parse_energies(energies, n)
            acc = self._parse_accept(accept)
            clean = None if settings is None else clean_settings(settings)
            # all checks passed: from here on the call changes the recording
            if self._n_chains is None:
                self._kind, self._n_chains, self._chain_shape = kind, n, chain_shape
            cur = self._apply_settings(step, clean)
            self._last_seen = step
            if not self._on_grid(step):
                self._enforce_budget()  # a new marker may have used the last free bytes
                return False
            x = to_numpy(state)
            if kind == "points":
                stored = np.array(x, np.float32)
            else:
                stored = encode_image(x, self._image_dtype)
            return self._append(Entry(step, stored, e_arr, acc, cur))

    def clear(self) -> None:
        """Forget everything recorded (configuration stays)."""
        with self._lock:
            self._check_writable()
            self._reset()

    def entries(self) -> list[Entry]:
        """The stored steps, oldest first (immutable, so they may be read while recording goes on)."""
        with self._lock:
            return list(self._entries)

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

    # ----------------------------------------------------------------- branches of a store
    def join(self, pool: BudgetPool, lock: threading.RLock, branch_id: int) -> None:
        """Become branch ``branch_id`` of ``pool``: from now on its budget and lock are this
        recording's too."""
        self._store = pool
        self._lock = lock
        self.branch_id = branch_id

    def branch_point(self, index: int) -> Entry:
        """The stored step at ``index`` as a branch starts from it: its state decoded to float32,
        exactly what scrubbing to it returns."""
        with self._lock:
            src = self._entries[operator.index(index)]
        return Entry(src.step, decode_state(src.state), src.energies.copy(), src.accept, src.settings)

    def start_branch(self, parent: TrajectoryRecorder, point: Entry) -> bool:
        """Start this (empty) recording at ``point``, a :meth:`branch_point` of ``parent``; later
        steps must come after it. False when the budget cannot hold it."""
        with self._lock:
            self._check_writable()
            if self._entries or self._last_seen is not None:
                raise RuntimeError("a branch starts an empty recording")
            self._n_chains, self._chain_shape = parent.n_chains, parent.chain_shape
            self.parent = (parent.branch_id, point.step)
            self._last_settings = point.settings
            self._last_seen = point.step
            return self._append(point)

    def free_some(self) -> bool:
        """Free memory by this recording's policy (thin or drop its oldest step); False when there
        is nothing left to free."""
        with self._lock:
            return self._free_once(incoming=False)

    def evict(self) -> None:
        """Forget every step: the store freed this branch to make room for another."""
        with self._lock:
            self._entries = deque()
            self._markers = []
            self._nbytes = 0
            self._steps_cache = None
            self._store = None
            self._evicted = True

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
        arr = np.array(to_numpy(energies), dtype=np.float32, copy=True)
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
                self._nbytes += marker_nbytes(text)
        self._last_settings = merged
        return merged

    def _on_grid(self, step: int) -> bool:
        return self._origin is None or (step - self._origin) % self._stride == 0

    def _recount(self) -> None:
        total, prev = 0, None
        for e in self._entries:
            total += entry_cost(e, prev)
            prev = e
        total += sum(marker_nbytes(t) for _, t in self._markers)
        self._nbytes = total
        self._steps_cache = None

    def _used(self) -> int:
        return self._store.nbytes if self._store is not None else self._nbytes

    def _append(self, entry: Entry) -> bool:
        while True:
            cost = entry_cost(entry, self._entries[-1] if self._entries else None)
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
        if self._store is not None and self._store.evict_oldest_inactive(keep=self):
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
            self._nbytes -= marker_nbytes(text)
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
        freed = e.state.nbytes + e.energies.nbytes + STEP_OVERHEAD
        if not (self._entries and self._entries[0].settings is e.settings):
            freed += settings_nbytes(e.settings)
        # else: the run's settings dict is now counted at the new first entry
        self._nbytes -= freed
        self._dropped += 1
        self._steps_cache = None

    def _enforce_budget(self) -> None:
        if self._store is not None:
            self._store.enforce_budget()
            return
        while self._nbytes > self._budget:
            if not self._free_once(incoming=False):
                break


    # ----------------------------------------------------------------- files
    def metadata(self) -> dict[str, Any]:
        """What a saved file says about the recording besides its steps (plain JSON data)."""
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
        """Write the recording to ``path`` (a plain ``.npz``, see :mod:`.trajectory_npz`), atomically.

        The states are streamed entry by entry into the archive, so saving needs no second copy of
        the recording. ``progress(done, total)`` is called at most about 200 times (total = number
        of steps); when ``should_cancel()`` returns True the temp file is removed and
        :class:`ExportCancelled` raised. Safe to call while another thread records (it saves a
        snapshot).
        """
        snap = self if self._frozen else self.snapshot()
        return write_npz(path, snap.metadata(), snap.entries(), snap.markers,
                         progress=progress, should_cancel=should_cancel)

    @classmethod
    def load_npz(
        cls, path: str | os.PathLike[str], *, budget_bytes: int | None = None
    ) -> TrajectoryRecorder:
        """Read a file written by :meth:`save_npz` into a standalone recorder.

        The budget is ``budget_bytes`` if given, else the saved one (raised to fit the data).
        Raises :class:`TrajectoryFormatError` for damaged or foreign files (a missing file raises
        ``FileNotFoundError``).
        """
        with open_npz(path) as z:
            return cls._restore(read_npz(z), budget_bytes)

    @classmethod
    def _restore(cls, saved: SavedRecording, budget_bytes: int | None) -> TrajectoryRecorder:
        meta = saved.meta
        kind = meta.get("kind")
        budget = budget_bytes if budget_bytes is not None else int(meta.get("budget_bytes") or 1)
        rec = cls(
            max(1, budget),
            policy=meta.get("policy", "thin"),
            every=int(meta.get("every", 1)),
            image_dtype=meta.get("image_dtype", "uint8"),
            kind=kind,
        )
        if kind is not None:
            rec._n_chains = int(meta["n_chains"])
            rec._chain_shape = tuple(int(s) for s in meta["chain_shape"])
        rec._entries = deque(saved.entries)
        parent = meta.get("parent")
        rec.parent = (int(parent[0]), int(parent[1])) if parent else None
        rec.branch_id = int(meta.get("branch_id") or 0)
        rec.model = str(meta.get("model") or "")
        rec._markers = saved.markers
        rec._stride = int(meta.get("stride", rec._every))
        rec._origin = None if meta.get("origin") is None else int(meta["origin"])
        rec._last_seen = None if meta.get("last_seen_step") is None else int(meta["last_seen_step"])
        last = clean_settings(meta.get("last_settings") or {})
        # share the object with the last entry when equal, so a continued run adds no dict cost
        if rec._entries and rec._entries[-1].settings == last:
            last = rec._entries[-1].settings
        rec._last_settings = last
        rec._dropped = int(meta.get("dropped", 0))
        rec._recount()
        if budget_bytes is None and rec._nbytes > rec._budget:
            rec._budget = rec._nbytes
        else:
            rec._enforce_budget()
        return rec
