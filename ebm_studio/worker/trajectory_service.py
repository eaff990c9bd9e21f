"""Engine-side services of the trajectory scrubber: recording summaries, chain picking, exports.

Every handler here takes the engine (the one that calls it) and its command (see
:mod:`ebm_studio.worker.api`) and runs in the engine thread; answers are typed events with plain
numpy payloads. Scrubbing itself (step k → frame) is the engine's ``FetchRecordedStep`` handler
and ``scrub_frames`` mailbox.

Events
    ``RecordingInfo``      its ``Recordings``: the store (branches, memory, budget, policy)
                           plus the detail of one branch: its recorded step numbers, settings
                           markers, what the budget keeps, an energy trace (mean and 10–90 %
                           band per recorded step) and, when a chain is followed, that chain's
                           energy and (points) positions over the steps;
    ``ChainPicked``        the chain nearest to a clicked point at a recorded step;
    ``ExportProgress``     done of total, at most ~20 per second;
    ``ExportDone``         always sent exactly once per export, whatever happened.

Trace cache
    The energy summary of a recorded step never changes (stored entries are immutable), so it is
    computed once per (branch, step) and kept in the engine's ``trace_cache``; a poll while a job records only
    summarises the new steps. Steps that thinning or the ring buffer dropped leave the cache with
    them. A first summary of a long recording is spread over several calls (``TIME_SLICE_S`` each),
    so the engine never stalls its sampling loop for long; the reply says ``complete=False`` and
    the GUI asks again.

Exports run in the engine thread (the engine loop pauses meanwhile, so the recording cannot move
under the export), on a snapshot of the branch, with the ``threading.Event`` the GUI holds as the
cancel switch: setting it stops the export at the next frame and leaves no file behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ebm_studio.worker.api import (
    BranchDetail,
    BranchSummary,
    ChainPicked,
    ChainTrack,
    EnergyTrace,
    ExportDone,
    ExportProgress,
    ExportTrajectory,
    PickChain,
    RecordingInfo,
    Recordings,
    RequestRecordingInfo,
    SetRecordingBudget,
    SetRecordingPolicy,
)
from ebm_studio.core.export import (  # noqa: F401  (formats re-exported)
    EXPORT_FORMATS,
    FORMAT_NAMES,
    check_target,
    export_apng,
    export_gif,
    export_npz,
    export_png_strip,
)
from ebm_studio.core.trajectory import (
    POLICIES,
    ExportCancelled,
    TrajectoryRecorder,
    TrajectoryStore,
)


#: longest stretch one info request spends summarising new steps (the sampler waits meanwhile)
TIME_SLICE_S = 0.03
#: the trace sent to the GUI holds at most this many points (evenly thinned, last one kept)
MAX_TRACE_POINTS = 4000
#: exports report progress at most this often (seconds)
PROGRESS_INTERVAL_S = 0.05
#: a PNG strip with no steps given shows this many evenly spaced recorded steps
DEFAULT_STRIP_STEPS = 8


# ------------------------------------------------------------------------------------------------
# the per-engine cache of per-step summaries
# ------------------------------------------------------------------------------------------------
class _Columns:
    """Values per recorded step, filled incrementally: ``steps`` plus named columns."""

    def __init__(self) -> None:
        self.steps = np.zeros(0, np.int64)
        self.cols: dict[str, np.ndarray] = {}

    def sync(self, steps: np.ndarray) -> int:
        """Drop the steps no longer recorded; the index in ``steps`` to continue from."""
        if not len(self.steps):
            return 0
        keep = np.isin(self.steps, steps, assume_unique=True)
        self.steps = self.steps[keep]
        self.cols = {k: v[keep] for k, v in self.cols.items()}
        if not len(self.steps):
            return 0
        start = int(np.searchsorted(steps, self.steps[-1], side="right"))
        if start != len(self.steps):
            # a recorded step before the last cached one is missing here (recordings only ever
            # append, so this cannot happen; but a mismatch must never show wrong numbers)
            self.__init__()  # type: ignore[misc]
            return 0
        return start

    def append(self, steps: np.ndarray, **columns: np.ndarray) -> None:
        self.steps = np.concatenate([self.steps, steps])
        for k, v in columns.items():
            old = self.cols.get(k)
            self.cols[k] = v if old is None else np.concatenate([old, v])

    def col(self, name: str, dtype=np.float32) -> np.ndarray:
        return self.cols.get(name, np.zeros(0, dtype))


@dataclass
class _BranchCache:
    """Summaries per recorded step of one branch: the energy trace (mean, 10 %, 90 %) and, apart
    from it (so following another chain never recomputes the trace), the followed chain's energy
    and, for points, its positions."""

    trace: _Columns = field(default_factory=_Columns)
    chain: int | None = None
    track: _Columns = field(default_factory=_Columns)


def _cache_of(engine) -> dict[int, _BranchCache]:
    return engine.trace_cache


def _summarise(energies: np.ndarray) -> tuple[float, float, float]:
    """Mean and 10/90 % percentiles of the finite energies (NaN when there are none)."""
    e = energies[np.isfinite(energies)]
    if e.size == 0:
        return (np.nan, np.nan, np.nan)
    lo, hi = np.percentile(e, (10, 90))
    return (float(e.mean()), float(lo), float(hi))


def _update_cache(
    cache: _BranchCache, rec: TrajectoryRecorder, chain: int | None, deadline: float
) -> bool:
    """Bring ``cache`` up to date with ``rec`` (a snapshot); False when time ran out first."""
    steps = rec.steps
    if chain != cache.chain:
        cache.chain, cache.track = chain, _Columns()  # the trace stays
    t0 = cache.trace.sync(steps)
    c0 = cache.track.sync(steps) if chain is not None else len(steps)
    points = rec.kind == "points"
    rows: list[tuple[float, float, float]] = []
    chain_e: list[float] = []
    chain_x: list[np.ndarray] = []
    done = True
    for i in range(min(t0, c0), len(steps)):
        if (rows or chain_e) and time.perf_counter() > deadline:
            done = False
            break
        r = rec.get(i)
        if i >= t0:
            rows.append(_summarise(r.energies))
        if i >= c0:
            chain_e.append(float(r.energies[chain]))
            if points:
                chain_x.append(r.state[chain])
    if rows:
        a = np.asarray(rows, np.float32)
        cache.trace.append(steps[t0 : t0 + len(rows)], mean=a[:, 0], lo=a[:, 1], hi=a[:, 2])
    if chain_e:
        n = len(chain_e)
        extra = {"state": np.asarray(chain_x, np.float32).reshape(n, -1)} if points else {}
        cache.track.append(steps[c0 : c0 + n], energy=np.float32(chain_e), **extra)
    return done


def _thin_for_display(n: int, limit: int = MAX_TRACE_POINTS) -> np.ndarray:
    """Indices of at most ``limit`` evenly spaced entries of ``n`` (first and last kept)."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


# ------------------------------------------------------------------------------------------------
# recording summaries
# ------------------------------------------------------------------------------------------------
def _branch_row(b: TrajectoryRecorder) -> BranchSummary:
    steps = b.steps
    return BranchSummary(
        branch_id=b.branch_id,
        parent=b.parent,
        n_steps=len(steps),
        first=int(steps[0]) if len(steps) else None,
        last=int(steps[-1]) if len(steps) else None,
        kind=b.kind,
        n_chains=b.n_chains,
        model=b.model,
    )


def recording_info(
    engine, branch_id: int | None = None, chain: int | None = None
) -> Recordings:
    """What the scrubber shows: the store and the detail of ``branch_id`` (default: the active one).

    An unknown or evicted ``branch_id`` falls back to the active branch (``fallback`` says so).
    """
    store: TrajectoryStore = engine.trajectories
    branches = store.branches
    summary = Recordings(
        branches=tuple(_branch_row(b) for b in branches),
        active=store.active_id,
        nbytes=store.nbytes,
        budget=store.budget_bytes,
        policy=store.policy,
        evicted=tuple(store.evicted_ids),
        recording=store.active is not None
        and any(getattr(job, "recorder", None) is store.active for job in engine.jobs),
    )
    rec = None
    fallback = ""
    if branch_id is not None:
        try:
            rec = store.branch(int(branch_id))
        except ValueError as exc:
            fallback = str(exc)
    if rec is None:
        rec = store.active or (branches[-1] if branches else None)
    if rec is None:
        return replace(summary, fallback=fallback)
    snap = rec.snapshot()  # a consistent view: steps, entries and markers of one moment
    n = snap.n_chains
    if chain is not None and (n is None or not 0 <= int(chain) < n):
        chain = None
    cache_all = _cache_of(engine)
    live_ids = {b.branch_id for b in branches}
    for stale in [k for k in cache_all if k not in live_ids]:
        del cache_all[stale]  # evicted or removed branches free their summaries too
    cache = cache_all.setdefault(rec.branch_id, _BranchCache())
    complete = _update_cache(cache, snap, chain, time.perf_counter() + TIME_SLICE_S)
    trace = cache.trace
    idx = _thin_for_display(len(trace.steps))
    track = None
    if chain is not None:
        tr = cache.track
        track = ChainTrack(
            chain=int(chain),
            steps=tr.steps.copy(),
            energy=tr.col("energy").copy(),
            state=tr.cols["state"].copy() if "state" in tr.cols else None,
        )
    detail = BranchDetail(
        branch_id=rec.branch_id,
        parent=rec.parent,
        kind=snap.kind,
        n_chains=n,
        chain_shape=snap.chain_shape,
        steps=snap.steps,  # read-only and replaced (never mutated) by the recorder: no copy
        markers=tuple(snap.markers),
        kept=snap.kept_description,
        policy=snap.policy,
        stride=snap.stride,
        every=snap.every,
        nbytes=snap.nbytes,
        bytes_per_step=snap.bytes_per_step,
        storage_dtype=snap.storage_dtype if snap.kind else None,
        active=rec is store.active,
        trace=EnergyTrace(
            steps=trace.steps[idx],
            mean=trace.col("mean")[idx],
            lo=trace.col("lo")[idx],
            hi=trace.col("hi")[idx],
        ),
        track=track,
    )
    return replace(summary, branch=detail, fallback=fallback, complete=complete)


def publish_info(engine, cmd: RequestRecordingInfo) -> None:
    """Answer an info request with :class:`RecordingInfo`."""
    engine.emit_event(RecordingInfo(recording_info(engine, cmd.branch_id, cmd.chain), cmd.request_id))


def set_budget(engine, cmd: SetRecordingBudget) -> None:
    """Set the recordings' shared memory budget (lowering it evicts at once), then publish."""
    try:
        engine.trajectories.budget_bytes = int(cmd.budget_bytes)
    except ValueError as exc:
        engine.error.emit(f"Cannot set the recording budget: {exc}")
    engine.announce_recording()
    publish_info(engine, RequestRecordingInfo(request_id=cmd.request_id))


def set_policy(engine, cmd: SetRecordingPolicy) -> None:
    """What to keep when the budget is full (``thin`` or ``newest``), for every branch from now."""
    store = engine.trajectories
    policy = cmd.policy
    if policy not in POLICIES:
        engine.error.emit(f"Cannot set the recording policy: {policy!r} is not one of {POLICIES}")
        return
    store.policy = policy
    for b in store.branches:  # a branch inherits its parent's policy, so keep them all in step
        b.policy = policy
    engine.announce_recording()
    publish_info(engine, RequestRecordingInfo(request_id=cmd.request_id))


def pick_chain(engine, cmd: PickChain) -> None:
    """The chain recorded nearest to (x, y) at ``step``; answers :class:`ChainPicked`."""
    try:
        rec = engine.trajectories.branch(int(cmd.branch_id))
        r = rec.get_step(int(cmd.step))
    except (ValueError, IndexError) as exc:
        engine.emit_event(ChainPicked(None, str(exc)))
        return
    if rec.kind != "points" or r.state.ndim != 2 or r.state.shape[1] < 2:
        engine.emit_event(ChainPicked(None, "not a 2-D points recording"))
        return
    d2 = (r.state[:, 0] - np.float32(cmd.x)) ** 2 + (r.state[:, 1] - np.float32(cmd.y)) ** 2
    i = int(np.argmin(d2))
    engine.emit_event(ChainPicked(i, "", rec.branch_id, r.step, float(np.sqrt(d2[i])), r.state[i].copy()))


# ------------------------------------------------------------------------------------------------
# exports
# ------------------------------------------------------------------------------------------------
def _even_steps(steps: np.ndarray, limit: int) -> list[int]:
    return [int(s) for s in steps[_thin_for_display(len(steps), max(1, limit))]]


def run_export(engine, cmd: ExportTrajectory) -> None:
    """Write one export (see :class:`ExportTrajectory`); reports :class:`ExportProgress` and,
    always exactly once, :class:`ExportDone`."""
    export_id, fmt, path = cmd.export_id, cmd.fmt, cmd.path
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done >= total or now - last[0] >= PROGRESS_INTERVAL_S:
            last[0] = now
            engine.emit_event(ExportProgress(export_id, int(done), int(total)))

    def finish(ok: bool, message: str, cancelled: bool = False, frames: int = 0) -> None:
        engine.emit_event(ExportDone(export_id, ok, cancelled, message, path, fmt, frames))

    what = FORMAT_NAMES.get(fmt, fmt)
    problem = check_target(path, fmt)
    if problem is not None:
        finish(False, f"Cannot export the {what}: {problem}.")
        return
    try:
        rec = engine.trajectories.branch(int(cmd.branch))
    except (ValueError, TypeError) as exc:
        finish(False, f"Cannot export: {exc}.")
        return
    snap = rec.snapshot()
    if len(snap) == 0:
        finish(False, "Cannot export: nothing is recorded in this branch yet.")
        return
    chain = cmd.chain
    kwargs: dict[str, Any] = {"progress": progress, "should_cancel": cmd.cancel.is_set}
    labels = cmd.labels
    frames = 0
    try:
        if fmt in ("gif", "apng"):
            steps = _even_steps(snap.steps, int(cmd.max_frames))
            frames = len(steps)
            exporter = export_gif if fmt == "gif" else export_apng
            exporter(snap, path, steps=steps, chain=chain, fps=float(cmd.fps),
                     labels=labels, **kwargs)
        elif fmt == "png":
            steps = list(cmd.steps) if cmd.steps else _even_steps(snap.steps, DEFAULT_STRIP_STEPS)
            frames = len(steps)
            export_png_strip(snap, path, steps, chain=chain, labels=labels, **kwargs)
        else:
            frames = len(snap)
            export_npz(snap, path, **kwargs)
    except ExportCancelled:
        finish(False, f"{what} export cancelled; no file was written.", cancelled=True)
        return
    except OSError as exc:
        reason = exc.strerror or str(exc)
        finish(False, f"Cannot write {path}: {reason}. Nothing was written.")
        return
    except (ValueError, IndexError) as exc:
        finish(False, f"Cannot export the {what}: {exc}.")
        return
    except Exception as exc:  # never leave the GUI waiting for an answer
        finish(False, f"The {what} export failed: {type(exc).__name__}: {exc}")
        raise
    extra = f" of chain #{chain}" if chain is not None else ""
    unit = "steps" if fmt == "npz" else "frames"
    finish(True, f"Saved the {what}{extra} ({frames:,} {unit}) to {path}.", frames=frames)


__all__ = [
    "EXPORT_FORMATS",
    "check_target",
    "pick_chain",
    "publish_info",
    "recording_info",
    "run_export",
    "set_budget",
    "set_policy",
]
