"""The main window as a user meets it: alive at once, keyboard control, checkpoints, clean exit."""

from __future__ import annotations

import time

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from ebm_studio.core.checkpoint import energy_checkpoint, save_checkpoint
from ebm_studio.core.energies import ConvEnergy
from ebm_studio.worker.api import ModelInfo


def drawn(w):
    return w.viewer.view.frames_drawn


def test_opens_alive_on_the_demo(window, qtbot):
    qtbot.waitUntil(lambda: drawn(window) >= 5, timeout=10000)
    assert window.model_info.kind == "points"
    assert window.job_info.state == "running"
    assert window.viewer.view.hist.image is not None
    assert "steps/s" in window.rate_label.text()


def test_keyboard_pause_step_resume(window, qtbot):
    qtbot.waitUntil(lambda: drawn(window) >= 3, timeout=10000)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: window.job_info.state == "paused", timeout=5000)
    assert window.viewer.play_button.text() == "Play"
    qtbot.wait(100)
    step = window.viewer.step_label.text()
    qtbot.wait(200)
    assert window.viewer.step_label.text() == step  # nothing moves while paused
    n = int(step.split()[1].replace(",", ""))
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: window.viewer.step_label.text().startswith(f"step {n + 1:,} "), timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: window.job_info.state == "running", timeout=5000)
    qtbot.waitUntil(lambda: int(window.viewer.step_label.text().split()[1].replace(",", "")) > n + 3,
                    timeout=5000)


def test_reset_restarts_the_chains(window, qtbot):
    qtbot.waitUntil(lambda: window.job_info.step >= 0 and drawn(window) >= 10, timeout=10000)
    old_job = window.job_info.job_id
    qtbot.mouseClick(window.viewer.reset_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.job_info.job_id > old_job, timeout=5000)
    n = drawn(window)
    qtbot.waitUntil(lambda: drawn(window) > n + 3, timeout=5000)  # the new chains run
    assert window.job_info.state == "running" and not window.last_error


def test_temperature_slider_reaches_the_frames(window, qtbot):
    qtbot.waitUntil(lambda: drawn(window) >= 3, timeout=10000)
    frames = []
    window.engine.frame_ready.connect(lambda slot: None)
    orig = window.viewer.show_frame

    def spy(frame):
        frames.append(frame)
        orig(frame)

    window.viewer.show_frame = spy
    window.viewer.temperature.spin.setValue(2.5)
    qtbot.waitUntil(lambda: any(f.settings["temperature"] == 2.5 for f in frames), timeout=5000)


def test_corrupt_checkpoint_keeps_the_model(window, qtbot, tmp_path):
    qtbot.waitUntil(lambda: drawn(window) >= 3, timeout=10000)
    name = window.model_info.name
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    window.open_checkpoint(str(bad))
    qtbot.waitUntil(lambda: "broken.pt" in window.last_error, timeout=5000)
    box = window.findChild(QMessageBox, "error_dialog")
    assert box is not None and box.isVisible() and "broken.pt" in box.text()
    box.close()
    assert window.model_info.name == name
    n = drawn(window)
    qtbot.waitUntil(lambda: drawn(window) > n + 3, timeout=5000)  # still sampling


def test_open_an_image_checkpoint(window, qtbot, tmp_path):
    torch.manual_seed(0)
    ckpt = energy_checkpoint(ConvEnergy(1, 16, 4), data={"name": "tiny", "kind": "images",
                                                         "value_range": [-1.0, 1.0]},
                             sampler={"kind": "tuned", "step_size": 1.0, "noise": 0.01})
    path = save_checkpoint(ckpt, tmp_path / "tiny.pt")
    window.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: window.viewer.view._mode == "images", timeout=10000)
    assert window.viewer.sampler_box.currentData() == "tuned"
    assert str(path) in window.recent_files()
    # the session holds the opened model, its sampler settings with it; the window reads it there
    info = window.session.model_info
    assert isinstance(info, ModelInfo) and window.model_info is info
    assert (info.path, info.name, info.kind, info.event_shape) == (str(path), "tiny", "images", (1, 16, 16))
    assert info.sampler_defaults == {"kind": "tuned", "step_size": 1.0, "noise": 0.01}
    assert window.windowTitle() == "EBM Studio — tiny"
    assert window.viewer.view.image.image is not None


def test_close_while_running_is_quick(make_window, qtbot):
    w = make_window(True)
    qtbot.waitUntil(lambda: drawn(w) >= 3, timeout=10000)
    t0 = time.perf_counter()
    w.close()
    assert w.host.thread.wait(2000)
    assert time.perf_counter() - t0 < 2.0


def test_settings_persist(make_window, qtbot):
    w = make_window(True)
    w.resize(1240, 780)
    w._remember("/some/model.pt")
    w.close()
    w2 = make_window(True)
    assert w2.recent_files()[0] == "/some/model.pt"
    # the offscreen screen is 800×600 and restoring clamps a window to its screen, so compare the
    # geometry stored with the window's size at closing rather than the restored window
    assert bytes(w2.settings.value("geometry")) == bytes(w.saveGeometry())
    assert w.size().width() == 1240 and w2.size().width() >= w2.minimumSizeHint().width()


@pytest.mark.parametrize("menu", ["&File", "&Sampling", "&View", "&Help"])
def test_menus_exist(window, menu):
    titles = [a.text() for a in window.menuBar().actions()]
    assert menu in titles


def test_about_names_the_versions(window, qtbot):
    from PySide6.QtCore import QTimer

    seen = []

    def close_box():
        box = next((w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()), None)
        if box is not None:
            seen.append(box.text())
            box.accept()

    QTimer.singleShot(300, close_box)
    window.about()
    assert seen and "PyTorch" in seen[0] and "Qt" in seen[0]


def test_runaway_chains_are_explained(window, qtbot):
    qtbot.waitUntil(lambda: drawn(window) >= 3, timeout=10000)
    window.viewer.step_size.spin.setValue(100.0)
    qtbot.waitUntil(lambda: "off the plot" in window.viewer.view.caption.toPlainText(), timeout=10000)


def test_rates_read_as_english():
    from ebm_studio.ui.widgets import format_rate

    assert format_rate(1.0) == "1 step/s" and format_rate(1234.4) == "1,234 steps/s"
    assert format_rate(0.4) == "2.5 s/step" and format_rate(12.34, 1) == "12.3 steps/s"
    assert format_rate(0.0) == "– steps/s"


def test_a_tab_shown_again_returns_to_its_place(window):
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    action = next(a for a in window.view_menu.actions() if a.text() == "Trajectories")
    action.setChecked(False)
    assert "Trajectories" not in [window.tabs.tabText(i) for i in range(window.tabs.count())]
    action.setChecked(True)
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == titles


def test_an_energy_trace_of_one_step_shows_no_negative_steps(qtbot):
    import numpy as np

    from ebm_studio.ui.frame_views import EnergyTrace

    trace = EnergyTrace()
    qtbot.addWidget(trace)
    trace.show()
    trace.add(0, np.array([1.0, 2.0, 3.0], np.float32))
    (x0, x1), _ = trace.getPlotItem().viewRange()
    assert x0 >= 0 and x1 > x0
    trace.add(50, np.array([0.5, 1.0], np.float32))
    qtbot.waitUntil(lambda: trace.getPlotItem().viewRange()[0][1] >= 50, timeout=3000)
