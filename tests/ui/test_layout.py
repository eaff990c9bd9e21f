"""Every tab fits the default window (1280×820) and 1100×700: no button outside the window, no
button label cut."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("size", [(1280, 820), (1100, 700)])
@pytest.mark.parametrize("tab", ["viewer", "training", "trajectories", "landscape", "inpaint", "translate"])
def test_every_tab_fits_the_window(window, qtbot, tab, size):
    from PySide6.QtWidgets import QApplication, QPushButton

    window.resize(*size)
    t = window.panels[tab]
    window.tabs.setCurrentWidget(t)
    QApplication.processEvents()
    frame = window.rect()
    for b in t.findChildren(QPushButton):
        if not b.isVisible():
            continue
        top_left = b.mapTo(window, b.rect().topLeft())
        bottom_right = b.mapTo(window, b.rect().bottomRight())
        assert frame.contains(top_left) and frame.contains(bottom_right), (b.text(), size)
        text = b.fontMetrics().horizontalAdvance(b.text().replace("&", ""))
        assert b.width() >= text + 8, (b.text(), b.width(), size)  # the label is not cut
    if tab in ("inpaint", "translate"):
        assert t.canvas.height() >= 150 and t.run_view.strip.height() >= 90


def test_a_click_on_the_scrubber_track_jumps_to_the_click(qtbot):
    from PySide6.QtCore import QPoint, Qt

    from ebm_studio.ui.widgets import JumpSlider

    s = JumpSlider(Qt.Orientation.Horizontal)
    qtbot.addWidget(s)
    s.setRange(0, 1000)
    s.resize(400, 30)
    s.show()
    qtbot.waitExposed(s)
    qtbot.mouseClick(s, Qt.MouseButton.LeftButton, pos=QPoint(300, 15))
    assert 650 <= s.value() <= 850  # near three quarters, not one page (100) from 0


def test_the_image_grid_caption_sits_above_the_grid(qtbot):
    import numpy as np
    from PySide6.QtWidgets import QApplication

    from ebm_studio.ui.frame_views import FrameView
    from ebm_studio.worker.frames import make_frame

    view = FrameView()
    qtbot.addWidget(view)
    view.resize(500, 500)
    view.show()
    qtbot.waitExposed(view)
    state = np.zeros((16, 1, 28, 28), np.float32)
    view.show_frame(make_frame(1, "sample", 10, state, np.zeros(16), (-1.0, 1.0)), "step 10")
    QApplication.processEvents()
    caption = view.caption.mapRectToScene(view.caption.boundingRect())
    grid = view.image.mapRectToScene(view.image.boundingRect())
    assert caption.bottom() <= grid.top() + 1, (caption, grid)


@pytest.mark.parametrize("size", [(1280, 820), (1100, 700)])
def test_thirteen_noise_levels_fit_the_live_tab(window, qtbot, size):
    from PySide6.QtWidgets import QApplication

    from ebm_studio.core.bundled import example_checkpoints

    window.resize(*size)
    window.tabs.setCurrentWidget(window.viewer)
    window.open_checkpoint(str(example_checkpoints()["digits-drl"]))
    strip = window.viewer.levels
    qtbot.waitUntil(lambda: len(strip.level_names()) == 13 and strip.isVisible(), timeout=20000)
    QApplication.processEvents()
    for label, box, _ in strip._boxes:
        for item in (label, box):
            rect = item.sceneBoundingRect()
            assert rect.left() >= 0 and rect.right() <= strip.width(), (size, rect)
    assert window.viewer.view.height() >= 200  # the chains keep most of the height


@pytest.mark.parametrize("size", [(1280, 820), (1100, 700)])
def test_a_long_status_message_ends_before_the_status_labels(window, size):
    from PySide6.QtWidgets import QApplication

    window.resize(*size)
    QApplication.processEvents()
    text = "Cannot open /a/very/long/path/" + "deeply/nested/" * 20 + "model.pt: not a checkpoint"
    sb = window.statusBar()
    sb.showMessage(text, 5000)
    shown = sb.currentMessage()
    assert shown.endswith("…") and sb.toolTip() == text
    left = min(w.mapTo(window, w.rect().topLeft()).x() for w in (window.device_box, window.job_label))
    assert sb.fontMetrics().horizontalAdvance(shown) <= left
