"""A trajectory on disk: the plain ``.npz`` file a recording is saved to and read back from.

The archive holds ``states`` (T, N, ...) in the storage dtype, ``steps`` (T,), ``energies`` (T, N),
``accept`` (T,) (NaN = none), ``settings_json`` (a JSON list of the distinct settings dicts) with
``settings_index`` (T,), ``marker_steps``/``marker_text``, optionally ``branch_state`` (the exact
float32 branch point of an image branch) and a JSON ``metadata`` string (format, version, kind,
storage dtype, policy, stride, parent, …; see ``TrajectoryRecorder.metadata``). ``numpy.load``
reads it without pickles.

Writing streams the states entry by entry (no second copy of a 256 MB recording) into a temp file
that replaces the target only when complete. Reading checks every array against the metadata
before a recorder is built from it, and reads the states one step at a time, so each step owns
its array. A damaged or foreign file raises :class:`TrajectoryFormatError`.
"""

from __future__ import annotations

import json
import os
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ebm_studio.core.fileio import atomic_write_stream
from ebm_studio.core.npz_reading import ArchiveTooLarge, check_fits_in_memory, iter_rows, member_header
from ebm_studio.core.trajectory_format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    KINDS,
    CancelFn,
    Entry,
    ExportCancelled,
    ProgressFn,
    TrajectoryFormatError,
    clean_settings,
    decode_state,
    encode_image,
)


def write_npz(
    path: str | os.PathLike[str],
    meta: dict[str, Any],
    entries: Sequence[Entry],
    markers: Sequence[tuple[int, str]],
    *,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
) -> Path:
    """Write a recording (its ``meta``, stored ``entries`` and settings ``markers``) to ``path``.

    ``progress(done, total)`` is called at most about 200 times (total = number of steps); when
    ``should_cancel()`` returns True the temp file is removed and :class:`ExportCancelled` raised.
    """
    path = Path(path)
    t = len(entries)
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
    chain_shape = tuple(meta["chain_shape"] or ())
    n = meta["n_chains"] or 0
    storage = np.dtype(meta["storage_dtype"])
    parent = meta["parent"]
    branch_state = None
    if entries and parent is not None and entries[0].step == parent[1]:
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
        "marker_steps": np.array([s for s, _ in markers], np.int64),
        "marker_text": np.array([m for _, m in markers], dtype=np.str_).reshape(-1),
    }
    if branch_state is not None:
        arrays["branch_state"] = branch_state

    def write_states(zf: zipfile.ZipFile) -> None:
        header = {
            "descr": np.lib.format.dtype_to_descr(storage),
            "fortran_order": False,
            "shape": (t, n, *chain_shape) if meta["kind"] is not None else (0,),
        }
        report = max(1, t // 200)
        with zf.open("states.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(f, header)
            for i, e in enumerate(entries):
                if should_cancel is not None and should_cancel():
                    raise ExportCancelled("save cancelled")
                arr = e.state
                if arr.dtype != storage:  # the float32 branch point: its compact form here
                    arr = encode_image(decode_state(arr), meta["storage_dtype"])
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


@contextmanager
def open_npz(path: str | os.PathLike[str]) -> Iterator[Any]:
    """The open archive at ``path``; whatever goes wrong while it is read (here or in the
    ``with`` body) becomes a :class:`TrajectoryFormatError` naming the file (a missing file raises
    ``FileNotFoundError``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such trajectory file: {path}")
    if not path.is_file():  # reading a pipe or device would block
        raise TrajectoryFormatError(f"{path}: not a regular file (a folder, pipe or device)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise TrajectoryFormatError("a single .npy array, not an .npz archive")
            yield z
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


@dataclass
class SavedRecording:
    """What a trajectory file holds, checked: the metadata, the stored steps (an image branch's
    first one back to its exact float32 state) and the settings markers."""

    meta: dict[str, Any]
    entries: list[Entry]
    markers: list[tuple[int, str]]


def read_npz(z: Any) -> SavedRecording:
    """Check the arrays of an archive opened with :func:`open_npz` and read its steps.

    Raises :class:`TrajectoryFormatError` (or the ``KeyError``/``ValueError`` of a malformed
    metadata field) before any state is unpacked when the file does not fit together.
    """

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

    settings = [clean_settings(d) for d in table]
    # one fresh array per step, read one at a time: eviction frees real memory, and the whole
    # array is never held twice
    rows = iter_rows(z, "states") if t else iter(())
    entries = [
        Entry(int(steps[i]), state, np.array(energies[i], np.float32), float(accept[i]),
              settings[int(sindex[i])])
        for i, state in zip(range(t), rows)
    ]
    if "branch_state" in z.files and t:
        bs = z["branch_state"]
        if bs.shape != states_shape[1:] or bs.dtype != np.float32:
            raise TrajectoryFormatError("'branch_state' does not match the states")
        e0 = entries[0]
        entries[0] = Entry(e0.step, np.array(bs), e0.energies, e0.accept, e0.settings)
    markers = [(int(s), str(m)) for s, m in zip(mk_steps, mk_text, strict=True)]
    return SavedRecording(meta, entries, markers)
