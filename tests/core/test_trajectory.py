"""Trajectory recording: exact scrubbing, memory budget, policies, markers, branches, .npz files."""

from __future__ import annotations

import ast
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ebm_studio.core import trajectory_store
from ebm_studio.core.trajectory import (
    TrajectoryFormatError,
    TrajectoryRecorder,
    TrajectoryStore,
    describe_settings_change,
)

Q = 1 / 127.5  # one uint8 quantisation step in [-1, 1]


def images(rng: np.random.Generator, n: int = 8, shape=(1, 8, 8)) -> np.ndarray:
    return rng.uniform(-1, 1, (n, *shape)).astype(np.float32)


def points(rng: np.random.Generator, n: int = 32) -> np.ndarray:
    return rng.normal(size=(n, 2)).astype(np.float32)


def assert_same_recording(a: TrajectoryRecorder, b: TrajectoryRecorder) -> None:
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.steps, b.steps)
    for i in range(len(a)):
        x, y = a.get(i), b.get(i)
        assert x.step == y.step
        np.testing.assert_array_equal(x.state, y.state)
        np.testing.assert_array_equal(x.energies, y.energies)
        assert x.accept == y.accept
        assert x.settings == y.settings
        np.testing.assert_array_equal(a.stored_state(i), b.stored_state(i))
        assert a.stored_state(i).dtype == b.stored_state(i).dtype
    assert a.markers == b.markers
    assert (a.kind, a.storage_dtype, a.n_chains, a.chain_shape) == (
        b.kind,
        b.storage_dtype,
        b.n_chains,
        b.chain_shape,
    )
    assert (a.policy, a.every, a.stride, a.parent) == (b.policy, b.every, b.stride, b.parent)
    assert a.nbytes == b.nbytes


# --------------------------------------------------------------------------- scrubbing
def test_scrub_points_exact_and_images_within_quantisation():
    rng = np.random.default_rng(0)
    rp, ri = TrajectoryRecorder(), TrajectoryRecorder()
    kept_p, kept_i = {}, {}
    for s in range(50):
        p, x = points(rng), images(rng)
        e = rng.normal(size=len(p)).astype(np.float32)
        assert rp.record(s, p, e, accept=0.25 * (s % 4), settings={"temperature": 1.0})
        assert ri.record(s, torch.from_numpy(x), torch.from_numpy(e[:8]))  # torch in, numpy out
        kept_p[s], kept_i[s] = (p, e), x
    assert rp.kind == "points" and ri.kind == "images"
    for k in (0, 17, 49):
        got = rp.get(rp.index_of(k))
        assert got.step == k and got.state.dtype == np.float32
        np.testing.assert_array_equal(got.state, kept_p[k][0])  # bit for bit
        np.testing.assert_array_equal(got.energies, kept_p[k][1])
        assert got.accept == 0.25 * (k % 4)
        assert got.settings == {"temperature": 1.0}
        img = ri.get_step(k)
        assert img.step == k and img.state.dtype == np.float32 and img.accept is None
        assert np.abs(img.state - kept_i[k]).max() <= 0.5 * Q + 1e-6
    assert ri.stored_state(0).dtype == np.uint8
    assert rp.index_of(17.4) == 17 and rp.index_of(-5) == 0 and rp.index_of(10**6) == 49
    assert rp.get(-1).step == 49


def test_float16_storage_and_bytes_per_step():
    rng = np.random.default_rng(1)
    r = TrajectoryRecorder(image_dtype="float16")
    x = images(rng, 4, (3, 5, 5))
    r.record(0, x)
    assert r.storage_dtype == "float16"
    np.testing.assert_allclose(r.get(0).state, x, atol=1e-3)
    assert np.isnan(r.get(0).energies).all()
    r8 = TrajectoryRecorder()
    r8.record(0, x)
    # bytes_per_step is what one more step costs: the first step also pays for its settings dict
    assert r.bytes_per_step - r8.bytes_per_step == 4 * 75
    r8.record(1, x)
    before = r8.nbytes
    r8.record(2, x)
    assert r8.nbytes - before == r8.bytes_per_step


# --------------------------------------------------------------------------- budget and policies
def run(rec: TrajectoryRecorder, n: int, rng: np.random.Generator, start: int = 0) -> int:
    worst = 0
    for s in range(start, start + n):
        rec.record(s, images(rng, 4, (1, 6, 6)), settings={"temperature": 1.0 + (s >= 1000)})
        worst = max(worst, rec.nbytes)
    return worst


def test_thin_keeps_whole_span_with_uniform_stride_within_budget():
    rng = np.random.default_rng(2)
    rec = TrajectoryRecorder(budget_bytes=40_000, policy="thin")
    worst = run(rec, 3000, rng)
    assert worst <= rec.budget_bytes and rec.nbytes <= rec.budget_bytes
    steps = rec.steps
    stride = rec.stride
    assert stride > 1 and stride & (stride - 1) == 0  # doubled from 1
    assert steps[0] == 0 and steps[-1] > 2999 - stride
    assert set(np.diff(steps)) == {stride}
    assert len(steps) > 10
    assert rec.kept_description == f"keeping every {stride}th step (budget full)"
    assert rec.markers == [(1000, "T 1.0→2.0")]  # step 1000 itself is long thinned away
    assert 1000 not in steps


def test_newest_keeps_last_steps_within_budget():
    rng = np.random.default_rng(3)
    rec = TrajectoryRecorder(budget_bytes=40_000, policy="newest")
    worst = run(rec, 3000, rng)
    assert worst <= rec.budget_bytes
    steps = rec.steps
    assert steps[-1] == 2999 and set(np.diff(steps)) == {1}
    assert len(steps) > 10 and steps[0] == 3000 - len(steps)
    # full: one more step would not fit
    assert rec.nbytes + rec.bytes_per_step > rec.budget_bytes
    assert rec.kept_description == f"keeping the newest {len(steps):,} steps"
    assert rec.markers == [(1000, "T 1.0→2.0")]


def test_every_and_wants():
    rng = np.random.default_rng(4)
    rec = TrajectoryRecorder(every=5)
    stored = []
    for s in range(3, 30):
        wanted = rec.wants(s)
        stored.append(rec.record(s, points(rng, 4)))
        assert stored[-1] == wanted
    assert sum(stored) == len(rec)
    np.testing.assert_array_equal(rec.steps, np.arange(3, 30, 5))
    assert rec.wants(33) and not rec.wants(34) and not rec.wants(28)
    assert rec.kept_description == "keeping every 5th step"


def test_lowering_budget_evicts_immediately_and_policy_switch():
    rng = np.random.default_rng(5)
    rec = TrajectoryRecorder(policy="newest")
    run(rec, 200, rng)
    assert len(rec) == 200 and rec.kept_description == "keeping every step"
    rec.budget_bytes = rec.nbytes // 4
    assert rec.nbytes <= rec.budget_bytes and rec.steps[-1] == 199 and len(rec) < 60
    rec.policy = "thin"
    rec.budget_bytes = rec.nbytes // 2
    assert rec.nbytes <= rec.budget_bytes and rec.stride in (2, 4)
    assert set(np.diff(rec.steps)) == {rec.stride}
    rec.budget_bytes = 10  # smaller than one step: everything goes, still within budget
    assert len(rec) == 0 and rec.nbytes <= 10
    assert not rec.record(500, images(rng, 4, (1, 6, 6)))
    assert rec.kept_description.startswith("budget too small for one step")


def test_markers_for_all_settings_and_note_settings():
    rng = np.random.default_rng(6)
    rec = TrajectoryRecorder(every=10)
    live = {"temperature": 1.0, "step_size": 0.01, "noise": 0.005, "sampler": "langevin"}
    for s in range(100):
        if s == 13:
            live = {**live, "temperature": 2.0, "step_size": 0.02}
        if s == 57:
            live = {**live, "sampler": "mala", "noise": 0.01}
        if rec.wants(s):
            rec.record(s, points(rng, 4), settings=live)
        else:
            rec.note_settings(s, live)
    rec.record(100, points(rng, 4), settings={"temperature": 0.5})  # partial: others keep values
    assert rec.markers == [
        (13, "T 1.0→2.0, step size 0.01→0.02"),
        (57, "noise 0.005→0.01, sampler langevin→mala"),
        (100, "T 2.0→0.5"),
    ]
    assert rec.get(-1).settings["sampler"] == "mala"
    assert describe_settings_change({"a": 1.0}, {"a": 1.0}) == ""


# --------------------------------------------------------------------------- branches
def test_branch_starts_from_exact_float32_state():
    rng = np.random.default_rng(7)
    store = TrajectoryStore(budget_bytes=10**7)
    root = store.new_recording()
    for s in range(20):
        root.record(s, images(rng, 4), rng.normal(size=4), settings={"temperature": 1.0})
    parent_state = root.get_step(12).state
    b = store.new_branch(root.branch_id, 12)
    assert store.active is b and b.parent == (root.branch_id, 12)
    assert b.steps.tolist() == [12]
    assert b.stored_state(0).dtype == np.float32  # not re-compressed
    np.testing.assert_array_equal(b.start_state, parent_state)
    np.testing.assert_array_equal(b.get(0).state, parent_state)
    np.testing.assert_array_equal(b.get(0).energies, root.get_step(12).energies)
    resumed = b.start_state + 0.01
    assert b.record(13, resumed, settings={"temperature": 3.0})
    assert b.markers == [(13, "T 1.0→3.0")] and root.markers == []
    with pytest.raises(ValueError, match="step must increase"):
        b.record(12, resumed)
    with pytest.raises(ValueError, match="parent_step"):
        store.new_branch(root.branch_id, 100)
    with pytest.raises(ValueError, match="parent_branch_id"):
        store.new_branch(99, 3)


def test_points_branch_is_bit_exact_and_old_branch_evicted_first():
    rng = np.random.default_rng(8)
    probe = TrajectoryRecorder()
    probe.record(0, points(rng, 64))
    per_step = probe.bytes_per_step
    store = TrajectoryStore(budget_bytes=100 * per_step, policy="newest")
    a = store.new_recording()
    for s in range(40):
        a.record(s, points(rng, 64))
    b = store.new_branch(a.branch_id, 30)
    np.testing.assert_array_equal(b.start_state, a.get_step(30).state)
    for s in range(31, 60):
        b.record(s, points(rng, 64))
    c = store.new_branch(b.branch_id, 50)
    assert store.nbytes <= store.budget_bytes and len(a) == 40 and len(b) == 30
    for s in range(51, 100):  # needs space: the oldest inactive branch (a) goes first, whole
        c.record(s, points(rng, 64))
        assert store.nbytes <= store.budget_bytes
    assert store.evicted_ids[0] == a.branch_id and a.evicted and len(a) == 0
    assert c.steps[0] == 50 and c.steps[-1] == 99  # the active branch kept everything so far
    for s in range(100, 400):
        c.record(s, points(rng, 64))
        assert store.nbytes <= store.budget_bytes
    assert store.evicted_ids == [a.branch_id, b.branch_id]
    assert [br.branch_id for br in store.branches] == [c.branch_id]
    assert c.steps[-1] == 399 and c.parent == (b.branch_id, 50)
    with pytest.raises(ValueError, match="evicted"):
        store.branch(a.branch_id)
    with pytest.raises(RuntimeError):
        a.record(1000, points(rng, 64))
    store.budget_bytes = 10 * per_step
    assert store.nbytes <= store.budget_bytes and len(c) < 10


# --------------------------------------------------------------------------- files
@pytest.mark.parametrize("kind", ["images", "points", "branch"])
def test_npz_round_trip(tmp_path, kind):
    rng = np.random.default_rng(9)
    if kind == "branch":
        store = TrajectoryStore(budget_bytes=10**6)
        root = store.new_recording(model="ring.pt", model_id=3)
        for s in range(10):
            root.record(s, images(rng), settings={"temperature": 1.0})
        rec = store.new_branch(root.branch_id, 4)
        assert (rec.model, rec.model_id) == ("ring.pt", 3)  # a branch runs under its parent's
        for s in range(5, 30):
            rec.record(s, images(rng), rng.normal(size=8), settings={"noise": float(s // 10)})
    else:
        rec = TrajectoryRecorder(budget_bytes=30_000, every=2)
        for s in range(300):
            state = images(rng) if kind == "images" else points(rng)
            rec.record(
                s,
                state,
                rng.normal(size=len(state)),
                accept=s / 300,
                settings={"temperature": float(s // 100), "sampler": "mala"},
            )
    path = rec.save_npz(tmp_path / "run.npz")
    with np.load(path) as z:  # plain numpy, no pickles
        assert z["states"].shape == (len(rec), rec.n_chains, *rec.chain_shape)
        assert str(z["states"].dtype) == rec.storage_dtype
        np.testing.assert_array_equal(z["steps"], rec.steps)
        assert z["energies"].shape == (len(rec), rec.n_chains)
        meta = json.loads(str(z["metadata"]))
        assert meta["kind"] == rec.kind and meta["storage_dtype"] == rec.storage_dtype
        assert len(z["marker_steps"]) == len(rec.markers)
    back = TrajectoryRecorder.load_npz(path)
    assert_same_recording(rec, back)
    assert back.model == rec.model and back.model_id is None  # the name is kept, not the identity
    if kind == "branch":
        np.testing.assert_array_equal(back.start_state, rec.start_state)
        other = TrajectoryStore(budget_bytes=10**6)
        opened = other.open_npz(path)  # into another store: a new root, the saved parent kept
        assert other.active is opened and opened.parent == rec.parent
        np.testing.assert_array_equal(opened.start_state, rec.start_state)
    # a reloaded recording can go on
    back.record(int(rec.last_seen_step) + 2, rec.get(0).state)
    assert back.nbytes <= back.budget_bytes


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def with_member(archive, out, name: str, data: bytes) -> None:
    """A copy of the .npz ``archive`` at ``out`` whose member ``name`` holds ``data`` instead."""
    with zipfile.ZipFile(archive) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.namelist():
            if item != name:
                zout.writestr(item, zin.read(item))
        zout.writestr(name, data)


def test_damaged_and_foreign_files(tmp_path):
    rng = np.random.default_rng(10)
    rec = TrajectoryRecorder()
    for s in range(5):
        rec.record(s, points(rng))
    good = rec.save_npz(tmp_path / "good.npz")
    data = good.read_bytes()
    cases = {
        "truncated.npz": data[: len(data) // 2],
        "garbage.npz": b"not a zip at all" * 10,
    }
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
    np.savez(tmp_path / "foreign.npz", a=np.arange(3))
    with_member(good, tmp_path / "deep_meta.npz", "settings_json.npy",
                npy_bytes(np.array("[" * 100000 + "]" * 100000)))
    np.save(tmp_path / "single.npy", np.arange(3))
    with_member(good, tmp_path / "bad_meta.npz", "metadata.npy",
                npy_bytes(np.array('{"format": "something-else"}')))
    for name in [*cases, "foreign.npz", "single.npy", "bad_meta.npz", "deep_meta.npz"]:
        with pytest.raises(TrajectoryFormatError, match="trajectory") as info:
            TrajectoryRecorder.load_npz(tmp_path / name)
        assert isinstance(info.value, ValueError)
    with pytest.raises(FileNotFoundError):
        TrajectoryRecorder.load_npz(tmp_path / "missing.npz")


# --------------------------------------------------------------------------- bad inputs
def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="budget_bytes"):
        TrajectoryRecorder(budget_bytes=0)
    with pytest.raises(ValueError, match="budget_bytes"):
        TrajectoryStore(budget_bytes=-5)
    with pytest.raises(ValueError, match="policy"):
        TrajectoryRecorder(policy="oldest")
    with pytest.raises(ValueError, match="image_dtype"):
        TrajectoryRecorder(image_dtype="int4")
    with pytest.raises(ValueError, match="every"):
        TrajectoryRecorder(every=0)
    rec = TrajectoryRecorder()
    with pytest.raises(ValueError, match="policy"):
        rec.policy = "random"
    with pytest.raises(ValueError, match="budget_bytes"):
        rec.budget_bytes = float("nan")
    with pytest.raises(ValueError, match="state"):
        rec.record(0, np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match="settings"):
        rec.record(0, np.zeros((5, 2)), settings={"noise": object()})
    assert rec.kind is None and rec.n_chains is None  # a rejected first call fixes no shape
    rec.record(0, np.zeros((8, 2)))
    with pytest.raises(ValueError, match="state"):
        rec.record(1, np.zeros((9, 2)))
    with pytest.raises(ValueError, match="energies"):
        rec.record(1, np.zeros((8, 2)), np.zeros(7))
    with pytest.raises(ValueError, match="settings"):
        rec.record(1, np.zeros((8, 2)), settings={"temperature": [1, 2]})
    with pytest.raises(ValueError, match="step"):
        rec.record(0, np.zeros((8, 2)))
    assert len(rec) == 1 and rec.last_seen_step == 0  # failed calls changed nothing
    with pytest.raises(IndexError):
        TrajectoryRecorder().index_of(3)
    with pytest.raises(IndexError):
        rec.get(5)
    snap = rec.snapshot()
    with pytest.raises(RuntimeError):
        snap.record(5, np.zeros((8, 2)))


def test_a_small_file_declaring_huge_arrays_is_refused_before_unpacking(tmp_path):
    rng = np.random.default_rng(11)
    rec = TrajectoryRecorder()
    for s in range(3):
        rec.record(s, points(rng))
    good = rec.save_npz(tmp_path / "good.npz")
    bomb = tmp_path / "bomb.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (10**11, 2)})
    with_member(good, bomb, "states.npy", header.getvalue() + b"\0" * 1024)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(TrajectoryFormatError, match=r"would need [\d,.]+ GB of memory"):
        TrajectoryRecorder.load_npz(bomb)
    # the rows are read one at a time and each step owns its array
    back = TrajectoryRecorder.load_npz(good)
    assert len(back) == 3 and all(e.state.base is None for e in back.entries())


def test_the_store_uses_only_the_recorders_public_surface():
    """The store shares its budget with its branches through the recorder's public methods
    (``join``, ``branch_point``, ``start_branch``, ``free_some``, ``evict``), never its internals."""
    tree = ast.parse(Path(trajectory_store.__file__).read_text(encoding="utf-8"))
    private = sorted({
        node.attr for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    })
    assert not private, f"the store reaches into a recorder: {private}"
