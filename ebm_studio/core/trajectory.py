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

Modules
    This module is the public name; the code lives in :mod:`.trajectory_format` (names, limits,
    errors, the stored entry, state encoding, memory accounting, marker text),
    :mod:`.trajectory_recorder` (:class:`TrajectoryRecorder`), :mod:`.trajectory_npz` (the file)
    and :mod:`.trajectory_store` (:class:`TrajectoryStore`).
"""

from ebm_studio.core.trajectory_format import (
    DEFAULT_BUDGET_BYTES,
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_DTYPES,
    KINDS,
    POLICIES,
    POLICY_LABELS,
    SETTING_LABELS,
    CancelFn,
    ExportCancelled,
    ProgressFn,
    RecordedStep,
    TrajectoryFormatError,
    describe_settings_change,
)
from ebm_studio.core.trajectory_recorder import TrajectoryRecorder
from ebm_studio.core.trajectory_store import TrajectoryStore

__all__ = [
    "DEFAULT_BUDGET_BYTES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "IMAGE_DTYPES",
    "KINDS",
    "POLICIES",
    "POLICY_LABELS",
    "SETTING_LABELS",
    "CancelFn",
    "ExportCancelled",
    "ProgressFn",
    "RecordedStep",
    "TrajectoryFormatError",
    "TrajectoryRecorder",
    "TrajectoryStore",
    "describe_settings_change",
]
