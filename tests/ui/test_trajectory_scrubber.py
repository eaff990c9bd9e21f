"""The Trajectories tab as a user meets it: scrubbing shows exactly the recorded states, keys and
playback, markers, following a chain, the memory budget, branching, exports and their errors.

Arrays are compared with what the engine's recorder holds (the store is thread-safe to read).
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QFileDialog

from ebm_studio.core.checkpoint import energy_checkpoint, save_checkpoint
from ebm_studio.core.energies import ConvEnergy
from ebm_studio.core.imaging import histogram2d, image_grid
from ebm_studio.core.trajectory import TrajectoryRecorder
from ebm_studio.worker.frames import HIGHLIGHT, HIST_BINS
from ebm_studio.worker.api import BranchDetail, ExportProgress, RecordingInfo, Recordings, StartJob
from ebm_studio.worker.requests import JobRequest

MB = 1024**2


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def scrubber(window):
    sc = window.panels["trajectories"]
    window.tabs.setCurrentWidget(sc)
    return sc


def run_job(qtbot, window, steps: int, n_chains: int = 300, timeout: int = 20000, **cfg) -> int:
    """Run a finite sampling job for the viewer and wait until it finished; returns its job id."""
    before = window.job_info.job_id
    window.host.run(JobRequest("sample", {"n_chains": n_chains, **cfg},
                                          max_steps=steps, purpose="viewer"))
    qtbot.waitUntil(lambda: window.job_info.job_id > before
                    and window.job_info.state == "finished", timeout=timeout)
    return window.job_info.job_id


def live_step(window) -> int:
    """The step of the last live frame, as the status bar shows it (-1 before any)."""
    text = window.step_label.text()
    return int(text.split()[1].replace(",", "")) if text.startswith("step ") else -1


def recorded(window, sc):
    """The recorder behind the branch the scrubber shows."""
    return window.engine.trajectories.branch(sc.branch_id)


def wait_recording(qtbot, sc, n_steps: int, timeout: int = 10000) -> None:
    qtbot.waitUntil(lambda: len(sc.steps) == n_steps and sc.frame is not None, timeout=timeout)


def show_index(qtbot, sc, i: int) -> int:
    """Move the timeline to index i and wait until that very step is drawn; returns the step."""
    sc.go_to_index(i)
    step = int(sc.steps[i])
    qtbot.waitUntil(lambda: sc.frame is not None and sc.frame.step == step
                    and sc.current_step() == step, timeout=5000)
    return step


def view_pos(view, x: float, y: float):
    """Widget (viewport) coordinates of data point (x, y) in a pyqtgraph view."""
    scene = view.plot.vb.mapViewToScene(QPointF(x, y))
    return view.mapFromScene(scene)


def image_checkpoint(tmp_path):
    path = tmp_path / "conv16.pt"
    save_checkpoint(energy_checkpoint(
        ConvEnergy(1, 16, 4),
        {"name": "digits", "kind": "images", "shape": [1, 16, 16], "value_range": [-1, 1]},
        {"kind": "tuned", "step_size": 0.5, "noise": 0.05},
    ), path)
    return path


@pytest.fixture
def points_window(make_window, qtbot):
    """A window whose last job recorded 300 2-D chains for 40 steps (steps 0..40)."""
    w = make_window(start_demo=False)
    sc = scrubber(w)
    qtbot.waitUntil(lambda: bool(w.model_info), timeout=10000)
    run_job(qtbot, w, steps=40)
    wait_recording(qtbot, sc, 41)
    return w


# ------------------------------------------------------------------------------------------------
# scrubbing
# ------------------------------------------------------------------------------------------------
def test_scrubbing_points_shows_exactly_the_recorded_state(points_window, qtbot):
    w = points_window
    sc = scrubber(w)
    rec = recorded(w, sc)
    assert list(sc.steps) == list(range(41)) == list(rec.steps)
    box = tuple(w.engine.model.value_range)
    for i in (0, 17, 40):
        step = show_index(qtbot, sc, i)
        r = rec.get_step(step)
        assert r.step == step
        f = sc.frame
        assert f.recorded is not None and f.recorded.branch == rec.branch_id
        np.testing.assert_array_equal(f.points, r.state[:HIGHLIGHT])  # bit for bit (float32)
        np.testing.assert_array_equal(f.hist, histogram2d(r.state, box, box, HIST_BINS))
        np.testing.assert_array_equal(f.energies, r.energies)
        # what is drawn is that frame
        xs, ys = sc.view.scatter.getData()
        np.testing.assert_array_equal(xs, r.state[:HIGHLIGHT, 0])
        np.testing.assert_array_equal(ys, r.state[:HIGHLIGHT, 1])
        np.testing.assert_allclose(sc.view.hist.image, np.log1p(f.hist))
        assert sc.trace.cursor.value() == step
        assert f"step {step:,}" in sc.step_label.text()
    qtbot.waitUntil(lambda: sc.last_latency_ms is not None, timeout=5000)  # painted, and timed
    # the energy trace: mean and 10–90 % band of every recorded step
    energies = np.stack([rec.get(i).energies for i in range(len(rec))])
    qtbot.waitUntil(lambda: len(sc.trace.mean_curve.getData()[0]) == 41, timeout=5000)
    xs, ys = sc.trace.mean_curve.getData()
    np.testing.assert_array_equal(xs, rec.steps)
    np.testing.assert_allclose(ys, energies.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(sc.trace.hi_curve.getData()[1],
                               np.percentile(energies, 90, axis=1), rtol=1e-5)
    # what the engine said of the recordings reached the panel as its typed summary
    info = sc.info
    assert isinstance(info, Recordings) and info.complete and not info.fallback
    assert [b.branch_id for b in info.branches] == [rec.branch_id] and info.branches[0].n_steps == 41
    d = info.branch
    assert isinstance(d, BranchDetail) and (d.branch_id, d.kind, d.n_chains) == (rec.branch_id, "points", 300)
    np.testing.assert_array_equal(d.steps, rec.steps)
    np.testing.assert_array_equal(d.trace.steps, rec.steps)
    assert d.track is None  # no chain followed


def test_scrubbing_images_shows_the_recorded_grid(make_window, qtbot, tmp_path):
    w = make_window(start_demo=False)
    sc = scrubber(w)
    w.open_checkpoint(str(image_checkpoint(tmp_path)))
    qtbot.waitUntil(lambda: w.model_info is not None and w.model_info.kind == "images", timeout=10000)
    run_job(qtbot, w, steps=8, n_chains=16)
    wait_recording(qtbot, sc, 9)
    rec = recorded(w, sc)
    assert rec.storage_dtype == "uint8"
    for i in (3, 8):
        step = show_index(qtbot, sc, i)
        codes = rec.stored_state(rec.index_of(step))  # the stored uint8 codes
        grid = image_grid(codes)
        np.testing.assert_array_equal(sc.frame.grid, grid)
        np.testing.assert_array_equal(sc.view.image.image, grid[..., 0])
    # click the tile of chain 6 (4 × 4 grid of 16 × 16 tiles, 1-px padding): it is followed
    x0, y0 = 1 + 2 * 17, 1 + 1 * 17
    qtbot.mouseClick(sc.view.viewport(), Qt.MouseButton.LeftButton,
                     pos=view_pos(sc.view, x0 + 8, y0 + 8))
    qtbot.waitUntil(lambda: sc.chain == 6, timeout=5000)
    np.testing.assert_array_equal(sc.chain_view.tile, codes[6, 0])
    qtbot.waitUntil(lambda: sc.track is not None and sc.track.chain == 6
                    and len(sc.track.steps) == 9, timeout=5000)
    energies = np.stack([rec.get(i).energies for i in range(len(rec))])
    _, ys = sc.trace.chain_curve.getData()
    np.testing.assert_allclose(ys, energies[:, 6])
    assert sc.view.highlight_rect.isVisible()
    assert sc.tile_at(0.5, 0.5) is None  # the padding belongs to no chain
    w.grab().save(str(tmp_path / "scrubber_images.png"))


def test_keys_scrub_and_do_not_step_the_live_chains(points_window, qtbot):
    w = points_window
    sc = scrubber(w)
    show_index(qtbot, sc, 10)
    sc.timeline.setFocus()
    qtbot.waitUntil(sc.timeline.hasFocus, timeout=2000)
    calls = []
    w.step_action.triggered.connect(lambda: calls.append(1))
    qtbot.keyClick(sc.timeline, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: sc.frame.step == 11, timeout=5000)
    qtbot.keyClick(sc.timeline, Qt.Key.Key_Left)
    qtbot.keyClick(sc.timeline, Qt.Key.Key_Left)
    qtbot.waitUntil(lambda: sc.frame.step == 9, timeout=5000)
    qtbot.keyClick(sc.timeline, Qt.Key.Key_End)
    qtbot.waitUntil(lambda: sc.frame.step == 40, timeout=5000)
    qtbot.keyClick(sc.timeline, Qt.Key.Key_Home)
    qtbot.waitUntil(lambda: sc.frame.step == 0, timeout=5000)
    # a button of the panel has the focus: the keys still scrub
    button = sc.export_box.buttons["gif"]
    button.setFocus()
    qtbot.waitUntil(button.hasFocus, timeout=2000)
    qtbot.keyClick(button, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: sc.frame.step == 1, timeout=5000)
    assert calls == [], "the window's Right (single step) fired while scrubbing"
    assert not w.host.live.snapshot().paused


def test_playback_once_loop_and_bounce(points_window, qtbot):
    sc = scrubber(points_window)
    sc.fps_spin.setValue(120)
    seen: list[int] = []
    sc.timeline.valueChanged.connect(seen.append)
    sc.mode_box.setCurrentIndex(sc.mode_box.findData("once"))
    sc.go_to_index(35)
    qtbot.mouseClick(sc.play_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not sc.play_timer.isActive(), timeout=5000)
    assert sc.timeline.value() == 40 and seen[-5:] == [36, 37, 38, 39, 40]
    sc.mode_box.setCurrentIndex(sc.mode_box.findData("loop"))
    sc.go_to_index(37)
    seen.clear()
    sc.play(+1)
    qtbot.waitUntil(lambda: 2 in seen, timeout=5000)
    assert seen[:6] == [38, 39, 40, 0, 1, 2]
    seen.clear()
    sc.mode_box.setCurrentIndex(sc.mode_box.findData("bounce"))
    sc.go_to_index(3)
    seen.clear()
    sc.play(-1)  # backward, bounces off the first step
    qtbot.waitUntil(lambda: len(seen) >= 6, timeout=5000)
    qtbot.mouseClick(sc.stop_button, Qt.MouseButton.LeftButton)
    assert seen[:6] == [2, 1, 0, 1, 2, 3]
    assert not sc.play_timer.isActive()


# ------------------------------------------------------------------------------------------------
# markers and following a chain
# ------------------------------------------------------------------------------------------------
def test_settings_changes_are_marked(make_window, qtbot):
    w = make_window(start_demo=False)
    sc = scrubber(w)
    qtbot.waitUntil(lambda: bool(w.model_info), timeout=10000)
    w.host.update_live(paused=True)
    before = w.job_info.job_id
    w.host.send(StartJob(JobRequest("sample", {"n_chains": 64}, max_steps=30, purpose="viewer")))
    qtbot.waitUntil(lambda: w.job_info.job_id > before
                    and w.job_info.state == "paused", timeout=5000)
    w.host.single_step(5)
    qtbot.waitUntil(lambda: live_step(w) == 5, timeout=5000)
    w.host.update_live(temperature=2.0)
    w.host.single_step(5)
    qtbot.waitUntil(lambda: live_step(w) == 10, timeout=5000)
    wait_recording(qtbot, sc, 11)
    assert sc.markers == [(6, "T 1.0→2.0")] == recorded(w, sc).markers
    (pos, step, text), = sc.timeline.markers
    assert (pos, step, text) == (6.0, 6, "T 1.0→2.0")
    assert abs(sc.timeline.x_of(pos) - sc.timeline.x_of(6)) < 1e-9
    assert sc.timeline.markers_near(sc.timeline.x_of(6)) == [(6.0, 6, "T 1.0→2.0")]
    show_index(qtbot, sc, 8)
    assert "T 1.0→2.0 at step 6" in sc.marker_label.text()
    assert sc.frame.settings["temperature"] == 2.0
    show_index(qtbot, sc, 3)
    assert sc.marker_label.text() == "" and sc.frame.settings["temperature"] == 1.0
    assert sc.trace._marker_lines[0].isVisible() and sc.trace._marker_lines[0].value() == 6
    w.host.stop()


def test_click_picks_the_nearest_particle_and_follows_it(points_window, qtbot):
    w = points_window
    sc = scrubber(w)
    rec = recorded(w, sc)
    step = show_index(qtbot, sc, 20)
    state = rec.get_step(step).state
    target = state[123]
    qtbot.mouseClick(sc.view.viewport(), Qt.MouseButton.LeftButton,
                     pos=view_pos(sc.view, float(target[0]), float(target[1])))
    qtbot.waitUntil(lambda: sc.chain is not None, timeout=5000)
    # the click lands on a pixel; the chosen chain is the one nearest to that pixel's centre
    click = sc.view.plot.vb.mapSceneToView(sc.view.mapToScene(
        view_pos(sc.view, float(target[0]), float(target[1]))))
    d = np.sqrt(((state - np.float32([click.x(), click.y()])) ** 2).sum(axis=1))
    pixel = (sc.view.plot.vb.viewRange()[0][1] - sc.view.plot.vb.viewRange()[0][0]) / 100
    assert d[sc.chain] <= d.min() + pixel  # the nearest, up to where in the pixel Qt clicked
    c = sc.chain
    # (a long recording is summarised over several requests: wait for all 41 steps)
    qtbot.waitUntil(lambda: sc.track is not None and sc.track.chain == c
                    and len(sc.track.steps) == 41, timeout=5000)
    np.testing.assert_array_equal(sc.track.state,
                                  np.stack([rec.get(i).state[c] for i in range(41)]))
    np.testing.assert_array_equal(sc.chain_view.position, state[c])
    np.testing.assert_array_equal(sc.track.energy,
                                  np.stack([rec.get(i).energies[c] for i in range(41)]))
    assert f"chain #{c}" in sc.chain_caption.text()
    sc.chain_spin.setValue(-1)  # follow none
    assert sc.chain is None and sc.chain_view.position is None


# ------------------------------------------------------------------------------------------------
# the memory budget
# ------------------------------------------------------------------------------------------------
def test_memory_budget_holds_over_a_long_run(make_window, qtbot):
    w = make_window(start_demo=False)
    sc = scrubber(w)
    qtbot.waitUntil(lambda: bool(w.model_info), timeout=10000)
    seen: list[tuple[int, int]] = []

    def on_event(ev):
        if isinstance(ev, RecordingInfo):
            seen.append((ev.info.nbytes, ev.info.budget))
            store = w.engine.trajectories
            seen.append((store.nbytes, store.budget_bytes))

    w.engine.event.connect(on_event)
    sc.budget_spin.setValue(1)  # 1 MB, as a user types it
    qtbot.waitUntil(lambda: w.engine.trajectories.budget_bytes == MB, timeout=5000)
    w.host.update_live(steps_per_frame=1000)  # flat out
    # 4096 particles: ~48 KB a step, so 1 MB holds ~20 steps of a 240-step run
    run_job(qtbot, w, steps=240, n_chains=4096, timeout=60000)
    qtbot.waitUntil(lambda: len(sc.steps) > 0 and int(sc.steps[-1]) >= 220, timeout=5000)
    store = w.engine.trajectories
    assert store.nbytes <= store.budget_bytes == MB
    assert seen and all(n <= b for n, b in seen)
    rec = recorded(w, sc)
    steps = rec.steps
    assert steps[0] == 0 and steps[-1] > 240 - rec.stride  # thinning spans the whole run
    assert rec.stride >= 8 and np.all(np.diff(steps) == rec.stride)
    assert len(steps) * rec.bytes_per_step <= MB
    assert "budget full" in sc.kept_label.text() and "Thin" in sc.kept_label.text()
    # a ring buffer keeps the newest steps instead
    sc.policy_box.setCurrentIndex(sc.policy_box.findData("newest"))
    qtbot.waitUntil(lambda: store.policy == "newest", timeout=5000)
    run_job(qtbot, w, steps=120, n_chains=4096, timeout=60000)
    qtbot.waitUntil(lambda: "newest" in sc.kept_label.text() and int(sc.steps[-1]) == 120,
                    timeout=5000)
    rec = recorded(w, sc)
    assert store.nbytes <= MB and rec.steps[0] > 90 and np.all(np.diff(rec.steps) == 1)
    assert all(n <= b for n, b in seen)
    assert sc.memory_bar.format().endswith(" of 1.0 MB")
    assert "per recorded step" in sc.per_step_label.text()


def test_budget_and_policy_are_remembered(make_window, qtbot):
    w = make_window(start_demo=False)
    sc = scrubber(w)
    sc.budget_spin.setValue(64)
    sc.policy_box.setCurrentIndex(sc.policy_box.findData("newest"))
    qtbot.waitUntil(lambda: w.engine.trajectories.budget_bytes == 64 * MB
                    and w.engine.trajectories.policy == "newest", timeout=15000)
    w.close()
    w2 = make_window(start_demo=False)
    sc2 = scrubber(w2)
    assert sc2.budget_spin.value() == 64 and sc2.policy_box.currentData() == "newest"
    qtbot.waitUntil(lambda: w2.engine.trajectories.budget_bytes == 64 * MB
                    and w2.engine.trajectories.policy == "newest", timeout=15000)


# ------------------------------------------------------------------------------------------------
# branching
# ------------------------------------------------------------------------------------------------
def test_branch_resumes_from_the_exact_recorded_state(points_window, qtbot):
    w = points_window
    sc = scrubber(w)
    parent_id = sc.branch_id
    parent = recorded(w, sc)
    step = show_index(qtbot, sc, 25)
    w.host.update_live(temperature=0.5, steps_per_frame=1)
    qtbot.mouseClick(sc.branch_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: sc.branch_id != parent_id and len(sc.steps) >= 3, timeout=10000)
    child = recorded(w, sc)
    assert child.parent == (parent_id, step)
    np.testing.assert_array_equal(child.start_state, parent.get_step(step).state)  # exact bits
    np.testing.assert_array_equal(child.get(0).state, parent.get_step(step).state)
    assert child.steps[0] == step and child.steps[1] == step + 1
    assert child.get(1).settings["temperature"] == 0.5
    # the live viewer continues from there
    qtbot.waitUntil(lambda: live_step(w) > step + 1, timeout=5000)
    assert "Branching from step 25" in sc.message_label.text()
    # the old branch is kept and can be shown again
    labels = [sc.branch_box.itemText(i) for i in range(sc.branch_box.count())]
    assert any(f"← #{parent_id} @ 25" in t for t in labels)
    w.host.stop()
    sc.branch_box.setCurrentIndex(sc.branch_box.findData(parent_id))
    sc.branch_box.activated.emit(sc.branch_box.currentIndex())
    qtbot.waitUntil(lambda: sc.branch_id == parent_id and len(sc.steps) == 41, timeout=5000)


def test_a_branch_needs_the_model_it_was_recorded_under(points_window, qtbot):
    from ebm_studio.core.model import ModelState

    w = points_window
    sc = scrubber(w)
    parent_id = sc.branch_id
    assert recorded(w, sc).model == w.engine.model.name
    assert w.engine.model.name in sc.branch_box.toolTip()
    show_index(qtbot, sc, 10)

    def swap(engine):  # another model with the same name: only its identity differs
        engine.model = ModelState.demo()

    w.host.call.emit(swap)
    qtbot.mouseClick(sc.branch_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "recorded under the model" in w.last_error, timeout=10000)
    assert "Open that model again" in w.last_error
    assert [b.branch_id for b in w.engine.trajectories.branches] == [parent_id]  # no branch made


# ------------------------------------------------------------------------------------------------
# exports
# ------------------------------------------------------------------------------------------------
def export(qtbot, sc, fmt, path, timeout=20000):
    before = sc.export_box._export_id
    assert sc.export_box.export_to(fmt, str(path)), sc.message_label.text()
    qtbot.waitUntil(lambda: sc.export_box.last_export is not None
                    and sc.export_box.last_export.export_id == before + 1, timeout=timeout)
    return sc.export_box.last_export


def test_exports_reload_with_the_expected_frames(points_window, qtbot, tmp_path):
    from ebm_studio.core.export import LABEL_LINE

    w = points_window
    sc = scrubber(w)
    rec = recorded(w, sc)
    progress = []
    w.engine.event.connect(lambda ev: progress.append(ev) if isinstance(ev, ExportProgress) else None)
    done = export(qtbot, sc, "gif", tmp_path / "run.gif")
    assert done.ok, done.message
    band = 2 * LABEL_LINE + 3  # labelled by default: step and energy, then the axes
    with Image.open(tmp_path / "run.gif") as im:
        assert (im.n_frames, im.size) == (41, (256, 256 + band))
    assert progress and progress[-1].done == progress[-1].total
    sc.export_box.labels_check.setChecked(False)
    sc.export_box.frames_spin.setValue(10)
    done = export(qtbot, sc, "apng", tmp_path / "run.png")
    assert done.ok, done.message
    with Image.open(tmp_path / "run.png") as im:
        assert (im.n_frames, im.size) == (10, (256, 256))
    sc.export_box.strip_edit.setText("0, 10:30:10")
    done = export(qtbot, sc, "png", tmp_path / "strip.png")
    assert done.ok and done.frames == 4
    with Image.open(tmp_path / "strip.png") as im:
        assert im.size == (4 * 256 + 5 * 2, 256 + 2 * 2)
    # one followed chain
    sc.follow(7)
    sc.export_box.scope_box.setCurrentIndex(sc.export_box.scope_box.findData("chain"))
    done = export(qtbot, sc, "gif", tmp_path / "chain7.gif")
    assert done.ok and "chain #7" in done.message
    # the raw trajectory round-trips through numpy.load and the recorder
    done = export(qtbot, sc, "npz", tmp_path / "run.npz")
    assert done.ok, done.message
    with np.load(tmp_path / "run.npz") as z:
        np.testing.assert_array_equal(z["steps"], rec.steps)
        np.testing.assert_array_equal(z["states"], np.stack([rec.get(i).state for i in range(41)]))
        np.testing.assert_array_equal(z["energies"],
                                      np.stack([rec.get(i).energies for i in range(41)]))
        settings = json.loads(str(z["settings_json"]))
        assert settings[int(z["settings_index"][0])]["sampler"] == "langevin"
    back = TrajectoryRecorder.load_npz(tmp_path / "run.npz")
    np.testing.assert_array_equal(back.get(17).state, rec.get(17).state)
    assert back.markers == rec.markers
    assert not list(tmp_path.glob("*.part"))


def test_bad_exports_say_why_and_write_nothing(make_window, points_window, qtbot, tmp_path,
                                               monkeypatch):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    empty = make_window(start_demo=False)
    sc0 = scrubber(empty)
    assert not sc0.export_box.export_to("gif", str(tmp_path / "nothing.gif"))
    assert "Nothing is recorded yet" in sc0.message_label.text()
    assert not sc0.export_box.buttons["gif"].isEnabled()

    sc = scrubber(points_window)
    assert not sc.export_box.export_to("gif", str(tmp_path / "no" / "such" / "folder" / "a.gif"))
    assert "does not exist" in sc.message_label.text()
    assert not sc.export_box.export_to("npz", str(tmp_path))
    assert "is a folder" in sc.message_label.text()
    sc.export_box.strip_edit.setText("0, ten")
    assert not sc.export_box.export_to("png", str(tmp_path / "s.png"))
    assert "'ten' is not a whole step number" in sc.message_label.text()
    sc.follow(None)
    sc.export_box.scope_box.setCurrentIndex(sc.export_box.scope_box.findData("chain"))
    assert not sc.export_box.export_to("gif", str(tmp_path / "c.gif"))
    assert "Choose a chain" in sc.message_label.text()
    assert not sc.export_box.exporting and sorted(p.name for p in tmp_path.iterdir()) == []
    # the file dialog path: cancelling the dialog does nothing
    sc.export_box.scope_box.setCurrentIndex(sc.export_box.scope_box.findData("all"))
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: ("", ""))
    qtbot.mouseClick(sc.export_box.buttons["npz"], Qt.MouseButton.LeftButton)
    assert not sc.export_box.exporting


def test_export_can_be_cancelled_and_leaves_no_file(points_window, qtbot, tmp_path, monkeypatch):
    sc = scrubber(points_window)
    target = tmp_path / "long.gif"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    # hold the engine busy until Cancel was clicked, so the export surely starts after it
    gate = threading.Event()
    points_window.host.call.emit(lambda engine: gate.wait(10))
    qtbot.mouseClick(sc.export_box.buttons["gif"], Qt.MouseButton.LeftButton)
    assert sc.export_box.exporting and sc.export_box.progress_row.isVisibleTo(sc)
    qtbot.mouseClick(sc.export_box.cancel_button, Qt.MouseButton.LeftButton)
    gate.set()
    qtbot.waitUntil(lambda: not sc.export_box.exporting, timeout=10000)
    assert sc.export_box.last_export.cancelled and not sc.export_box.last_export.ok
    assert "cancelled" in sc.message_label.text()
    assert not target.exists() and not list(tmp_path.glob("*.part"))
    assert not sc.export_box.progress_row.isVisibleTo(sc)
