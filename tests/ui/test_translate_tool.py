"""The translation tab: a sketch drawn with the mouse, a live run, scrubbing, saving, a batch."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from ebm_studio.worker.tool_api import RunState
from tests_ui_helpers import open_tool_model, paint_drag as drag

LONG = 20000


@pytest.fixture
def tool(window, qtbot, tiny_digits):
    t = window.panels["translate"]
    window.tabs.setCurrentWidget(t)
    open_tool_model(t, qtbot, tiny_digits, LONG)
    return t


def test_sketch_with_the_mouse_run_scrub_and_save(tool, qtbot, tmp_path):
    t = tool
    t.blank()
    assert (t.canvas.image == -1).all()
    drag(t.canvas, [(14.0, 5.0), (14.0, 23.0)])  # a "1"
    ink = t.canvas.image[0] > 0
    assert ink[5:23, 13:15].all() and ink.sum() < 28 * 6
    t.canvas.undo()
    assert (t.canvas.image == -1).all()
    t.canvas.redo()
    t.run_view.steps_spin.setValue(30)
    t.run_view.n_spin.setValue(2)
    qtbot.mouseClick(t.run_view.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: t.run_view.state == RunState.FINISHED, timeout=LONG)
    frame = t.run_view.frame
    assert frame.step == 30 and frame.proposals.shape == (2, 1, 28, 28)
    assert frame.distance_trace[0].max() == 0.0 and frame.distance_trace[-1].min() > 0
    t.run_view.scrub.setValue(0)  # back to the start: the source itself
    qtbot.waitUntil(lambda: t.run_view.frame.recorded and t.run_view.frame.step == 0, timeout=LONG)
    assert np.array_equal(t.run_view.frame.proposals[0], t.canvas.image)
    from ebm_studio.worker.tool_api import SaveToolResult

    for suffix in (".png", ".npz", ".gif"):
        t.host.send_tool(SaveToolResult("translate", str(tmp_path / f"r{suffix}"), 0))
    qtbot.waitUntil(lambda: (tmp_path / "r.gif").exists(), timeout=LONG)
    z = np.load(tmp_path / "r.npz")
    assert int(z["step"]) == 0 and np.array_equal(z["proposals"][0], z["source"])


def test_a_batch_translates_good_files_and_reports_bad_ones(tool, qtbot, tmp_path):
    t = tool
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    Image.fromarray(np.full((30, 30), 220, np.uint8)).save(src / "a.png")
    (src / "b.png").write_text("not a picture")
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(src / "c.jpg")
    t.run_view.steps_spin.setValue(5)
    t.start_batch(str(src), str(out))
    qtbot.waitUntil(lambda: not t._batch and "translated" in t.note.text(), timeout=LONG)
    assert "translated 2 of 3" in t.note.text() and "b.png" in t.note.text()
    qtbot.waitUntil(lambda: (out / "c_translated.png").exists(), timeout=LONG)
    assert (out / "a_translated.png").exists()


def test_a_two_d_model_is_refused_with_a_message(tool, qtbot, tmp_path):
    from ebm_studio.core.checkpoint import energy_checkpoint, save_checkpoint
    from ebm_studio.core.energies import eight_gaussians_energy

    ring = tmp_path / "ring.pt"
    save_checkpoint(energy_checkpoint(eight_gaussians_energy(), {"name": "8gaussians"}), ring)
    tool.open_model(str(ring))
    qtbot.waitUntil(lambda: "2-D model" in tool.note.text(), timeout=LONG)
    assert tool.model.kind == "images"  # the image model stays


def test_translation_runs_beside_a_training_run_and_stopping_it_leaves_training_going(tool, qtbot):
    from ebm_studio.worker.tool_api import StopToolRun

    window = tool.window()
    p = window.panels["training"]
    qtbot.waitUntil(lambda: not p.data.busy, timeout=LONG)
    f = p.form
    f.preset_box.setCurrentIndex(f.preset_box.findData("2-D quick"))
    f.preset_box.activated.emit(f.preset_box.currentIndex())
    qtbot.waitUntil(lambda: not p.data.busy, timeout=LONG)
    f.hidden.setText("32, 32")
    f.mcmc_steps.setValue(5)
    f.batch.setValue(64)
    f.buffer_size.setValue(256)
    f.total_steps.setValue(100000)
    p.train_button.click()
    qtbot.waitUntil(lambda: p.state == "running" and p.step >= 5, timeout=LONG)
    tool.run_view.steps_spin.setValue(100000)
    tool.run()
    qtbot.waitUntil(lambda: tool.run_view.frame is not None and tool.run_view.frame.step > 20, timeout=LONG)
    step = p.step
    qtbot.waitUntil(lambda: p.step > step + 10, timeout=LONG)  # training went on meanwhile
    tool.host.send_tool(StopToolRun("translate"))
    qtbot.waitUntil(lambda: tool.run_view.state == RunState.STOPPED, timeout=LONG)
    step = p.step
    qtbot.waitUntil(lambda: p.step > step + 10, timeout=LONG)
    assert p.state == "running"
    p.stop_button.click()
    qtbot.waitUntil(lambda: p.state == "stopped", timeout=LONG)


def test_a_batch_locks_the_sources_and_a_model_switch_clears_results(tool, qtbot, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    for i in range(3):
        Image.fromarray(np.full((30, 30), 60 * i, np.uint8)).save(src / f"p{i}.png")
    tool.run_view.steps_spin.setValue(200)
    tool.start_batch(str(src), str(out))
    qtbot.waitUntil(lambda: tool.run_view.state == RunState.RUNNING, timeout=LONG)
    for w in (tool.run_view.run_button, tool.model_box, tool.next_button, tool.file_button, tool.blank_button):
        assert not w.isEnabled()
    qtbot.waitUntil(lambda: not tool._batch, timeout=LONG)
    assert "translated 3 of 3" in tool.note.text() and tool.run_view.run_button.isEnabled()
    assert tool.run_view.frame is not None
    tool.open_model(tool.model.path)  # the same model again: its results are gone
    qtbot.waitUntil(lambda: tool.run_view.frame is None, timeout=LONG)
