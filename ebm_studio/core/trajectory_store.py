"""Several recordings (branches) of MCMC runs sharing one memory budget, in the engine.

A branch continues a recorded step of another branch (see :mod:`.trajectory` for the design);
each branch is a :class:`~.trajectory_recorder.TrajectoryRecorder` that uses this store as its
budget pool: when one needs room, whole inactive branches are evicted first, oldest first, then
the branch being recorded applies its own policy.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from ebm_studio.core.trajectory_format import (
    DEFAULT_BUDGET_BYTES,
    check_budget,
    check_recording_options,
    check_step,
    entry_cost,
)
from ebm_studio.core.trajectory_recorder import TrajectoryRecorder


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
        self._budget, self.policy, self.every, self.image_dtype = check_recording_options(
            budget_bytes, policy, every, image_dtype)
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
        v = check_budget(value)
        with self._lock:
            self._budget = v
            self.enforce_budget()

    @property
    def nbytes(self) -> int:
        """Bytes held by all branches together (≤ ``budget_bytes``)."""
        with self._lock:
            return sum(b.nbytes for b in self._branches)

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
        rec.join(self, self._lock, self._next_id)
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
        step = check_step(parent_step)
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
            point = parent.branch_point(i)  # float32, exactly what scrubbing the parent returns
            cost = entry_cost(point)
            if cost > self._budget:
                raise ValueError(
                    f"budget_bytes {self._budget:,} is too small to hold the branch point "
                    f"({cost:,} bytes as float32)"
                )
            child = TrajectoryRecorder(
                self._budget,
                policy=policy or parent.policy,
                every=every or parent.every,
                image_dtype=parent.image_dtype,
                kind=parent.kind,
            )
            child.model, child.model_id = parent.model, parent.model_id
            self._attach(child)
            stored = child.start_branch(parent, point)  # may evict old inactive branches (the parent too)
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
        b.evict()

    def evict_oldest_inactive(self, keep: TrajectoryRecorder) -> bool:
        """Evict the oldest branch that is neither ``keep`` nor the active one (its id goes to
        ``evicted_ids``); False when there is none."""
        for b in self._branches:
            if b is not keep and b is not self._active:
                self._drop(b)
                self.evicted_ids.append(b.branch_id)
                return True
        return False

    def enforce_budget(self) -> None:
        """Free memory until all branches fit the budget: whole inactive branches first, oldest
        first, then by the policy of the active branch."""
        while self.nbytes > self._budget:
            if self.evict_oldest_inactive(keep=self._active):  # type: ignore[arg-type]
                continue
            target = self._active or (self._branches[0] if self._branches else None)
            if target is None or not target.free_some():
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
            self.enforce_budget()
            return loaded
