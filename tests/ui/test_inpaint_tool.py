"""The inpainting tab: painting with the mouse, undo/redo, and a run beside the live viewer."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from ebm_studio.core.masks import capsule
from ebm_studio.ui.paint_canvas import PaintCanvas
from ebm_studio.worker.tool_api import RunState, StopToolRun
from tests_ui_helpers import open_tool_model, paint_drag as drag

LONG = 20000


@pytest.fixture
def canvas(qtbot):
    c = PaintCanvas("mask")
    qtbot.addWidget(c)
    c.resize(400, 400)
    c.show()
    qtbot.waitExposed(c)
    c.set_image(np.full((1, 28, 28), -1.0, np.float32))
    QApplication.processEvents()
    return c


def expected_mask(points, radius, shape=(28, 28)):
    m = np.zeros(shape, bool)
    for p0, p1 in zip(points[:1] + points[:-1], points):
        m |= capsule(shape, p0, p1, radius)
    return m


def test_a_fast_drag_paints_exactly_the_pixels_under_the_brush(canvas):
    canvas.brush = 3.0
    # three mouse events for a stroke across the whole image: the segments between them are filled
    drag(canvas, [(3.5, 4.5), (14.0, 12.0), (24.5, 22.5)])
    pts = canvas.stroke_points
    assert len(pts) >= 3
    assert np.array_equal(canvas.mask, expected_mask(pts, 1.5))
    # no gaps: every column the stroke crosses holds painted pixels
    cols = np.flatnonzero(canvas.mask.any(0))
    assert cols.min() <= 4 and cols.max() >= 23 and np.array_equal(cols, np.arange(cols.min(), cols.max() + 1))


def test_undo_restores_the_mask_bit_for_bit_and_redo_reapplies(canvas):
    drag(canvas, [(5.0, 5.0), (20.0, 5.0)])
    first = canvas.mask.copy()
    canvas.brush = 6.0
    drag(canvas, [(5.0, 20.0), (20.0, 20.0)])
    second = canvas.mask.copy()
    assert not np.array_equal(first, second)
    assert canvas.undo()
    assert np.array_equal(canvas.mask, first)
    assert canvas.redo()
    assert np.array_equal(canvas.mask, second)
    # shift-drag erases, as one more undo step
    drag(canvas, [(5.0, 20.0), (20.0, 20.0)], Qt.KeyboardModifier.ShiftModifier)
    assert not canvas.mask[20, 5:20].any()
    canvas.undo()
    assert np.array_equal(canvas.mask, second)


def test_rectangle_clear_and_invert(canvas):
    canvas.rect_mode = True
    drag(canvas, [(2.0, 3.0), (10.0, 9.0)])
    assert canvas.mask[3:9, 2:10].all() and canvas.mask.sum() == 6 * 8
    canvas.invert()
    assert canvas.mask.sum() == 28 * 28 - 48
    canvas.clear_layer()
    assert not canvas.mask.any()
    canvas.undo()
    canvas.undo()
    assert canvas.mask.sum() == 48


def test_inpainting_runs_beside_the_live_viewer(window, qtbot, tiny_digits):
    tool = window.panels["inpaint"]
    window.tabs.setCurrentWidget(tool)
    open_tool_model(tool, qtbot, tiny_digits, LONG)
    # paint a stroke over the digit with the mouse, then run
    tool.canvas.clear_layer()
    drag(tool.canvas, [(4.0, 14.0), (24.0, 14.0)])
    mask = tool.canvas.mask.copy()
    assert mask.any()
    tool.run_view.steps_spin.setValue(100000)
    tool.run_view.n_spin.setValue(3)
    viewer_steps = window.viewer.view.frames_drawn
    qtbot.mouseClick(tool.run_view.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tool.run_view.frame is not None and tool.run_view.frame.step > 20, timeout=LONG)
    frame = tool.run_view.frame
    assert frame.proposals.shape == (3, 1, 28, 28)
    observed = frame.proposals[:, :, ~mask]
    assert np.array_equal(observed, np.broadcast_to(tool.canvas.image[:, ~mask], observed.shape))
    # the viewer kept drawing its own chains meanwhile
    qtbot.waitUntil(lambda: window.viewer.view.frames_drawn > viewer_steps + 3, timeout=LONG)
    # stopping the tool leaves the viewer running
    tool.host.send_tool(StopToolRun("inpaint"))
    qtbot.waitUntil(lambda: tool.run_view.state == RunState.STOPPED, timeout=LONG)
    drawn = window.viewer.view.frames_drawn
    qtbot.waitUntil(lambda: window.viewer.view.frames_drawn > drawn + 3, timeout=LONG)
    # scrubbing shows a recorded step
    tool.run_view.scrub.setValue(0)
    qtbot.waitUntil(lambda: tool.run_view.frame.recorded and tool.run_view.frame.step == 0, timeout=LONG)


def test_inpainting_refuses_an_empty_mask(window, qtbot, tiny_digits):
    tool = window.panels["inpaint"]
    open_tool_model(tool, qtbot, tiny_digits, LONG)
    tool.canvas.clear_layer()
    tool.run()
    assert "mask is empty" in tool.note.text()


def test_keys_messages_and_a_colour_photo(window, qtbot, tiny_digits):
    from ebm_studio.core.bundled import resources_dir

    tool = window.panels["inpaint"]
    window.tabs.setCurrentWidget(tool)
    open_tool_model(tool, qtbot, tiny_digits, LONG)
    tool.canvas.setFocus()
    size = tool.brush_slider.value()
    qtbot.keyClick(tool.canvas, Qt.Key.Key_BracketRight)
    assert tool.brush_slider.value() == size + 1
    qtbot.keyClick(tool.canvas, Qt.Key.Key_BracketLeft)
    assert tool.brush_slider.value() == size
    before = tool.canvas.mask.copy()
    drag(tool.canvas, [(2.0, 2.0), (10.0, 2.0)])
    qtbot.keyClick(tool.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(tool.canvas.mask, before)
    # the Live tab shows 2-D chains: nothing to take from it
    tool.from_live_chains()
    assert "no image chains" in tool.note.text()
    # a colour photo is converted for the grey 28-pixel model, and the note says how
    tool.load_file(str(resources_dir() / "photos" / "coffee.png"))
    qtbot.waitUntil(lambda: "coffee.png" in tool.note.text(), timeout=LONG)
    assert "resized 256×256 to 28×28" in tool.note.text() and "grey" in tool.note.text()
    assert tool.canvas.image.shape == (1, 28, 28)


def test_paste_and_drop_bring_images_in(window, qtbot, tiny_digits, tmp_path):
    from PIL import Image as PILImage
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent, QGuiApplication, QImage

    tool = window.panels["inpaint"]
    window.tabs.setCurrentWidget(tool)
    open_tool_model(tool, qtbot, tiny_digits, LONG)
    picture = QImage(40, 40, QImage.Format.Format_RGB888)
    picture.fill(0xFFFFFF)
    QGuiApplication.clipboard().setImage(picture)
    tool.paste()
    qtbot.waitUntil(lambda: "pasted image" in tool.note.text(), timeout=LONG)
    assert tool.canvas.image.shape == (1, 28, 28)
    path = tmp_path / "dropped.png"
    PILImage.fromarray(np.zeros((28, 28), np.uint8)).save(path)
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    tool.dropEvent(event)
    qtbot.waitUntil(lambda: "dropped.png" in tool.note.text(), timeout=LONG)
    assert (tool.canvas.image == -1).all()


@pytest.mark.parametrize("name", ["digits-multigrid", "digits-drl"])
def test_a_level_model_inpaints_and_keeps_the_observed_pixels(window, qtbot, name):
    from ebm_studio.core.bundled import example_checkpoints

    tool = window.panels["inpaint"]
    window.tabs.setCurrentWidget(tool)
    open_tool_model(tool, qtbot, example_checkpoints()[name], LONG)
    tool.canvas.clear_layer()
    drag(tool.canvas, [(4.0, 18.0), (24.0, 18.0)])
    mask = tool.canvas.mask.copy()
    tool.run_view.steps_spin.setValue(40)
    tool.run_view.n_spin.setValue(2)
    tool.run()
    qtbot.waitUntil(lambda: tool.run_view.state == RunState.FINISHED, timeout=LONG)
    frame = tool.run_view.frame
    observed = frame.proposals[:, :, ~mask]
    assert np.array_equal(observed, np.broadcast_to(tool.canvas.image[:, ~mask], observed.shape))
    assert np.isfinite(frame.proposals).all()
