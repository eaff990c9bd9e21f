"""The level methods in the app: picked in the training panel, trained, and shown level by level
in the training panel and the live viewer."""

from __future__ import annotations

import pytest

RUN_TIMEOUT = 60000


@pytest.fixture
def panel(make_window, qtbot):
    window = make_window(False)
    p = window.panels["training"]
    window.tabs.setCurrentWidget(p)
    qtbot.waitUntil(lambda: p.data.name == "8gaussians" and not p.data.busy, timeout=10000)
    p.window_ = window
    return p


def pick_method(p, method: str) -> None:
    box = p.form.method_box
    i = box.findData(method)
    box.setCurrentIndex(i)
    box.activated.emit(i)  # as a user's pick


def test_multigrid_needs_images_and_says_so(panel):
    p = panel
    pick_method(p, "multigrid")
    assert "image data" in p.message_label.text()
    assert p.form.method_box.currentData() == "plain"
    assert not p.form.levels.isEnabled()


@pytest.mark.parametrize("method,names,viewer_names", [
    ("multigrid", ["7×7", "14×14", "28×28"], ["7×7", "14×14", "28×28"]),
    ("drl", [f"t={t}" for t in range(12, -1, -1)], [f"t={t}" for t in range(12, -1, -1)]),
])
def test_a_level_method_trains_and_shows_its_levels(panel, qtbot, method, names, viewer_names):
    p = panel
    p.data.select("digits")
    qtbot.waitUntil(lambda: p.data.name == "digits" and not p.data.busy, timeout=20000)
    pick_method(p, method)
    f = p.form
    assert f.method_box.currentData() == method
    assert f.levels.isEnabled() and f.level_steps.isEnabled() and not f.mcmc_steps.isEnabled()
    assert f.sampler_box.isEnabled() == (method != "drl")
    f.width_spin.setValue(4)
    f.batch.setValue(8)
    f.level_steps.setValue(2)
    f.total_steps.setValue(3)
    p.train_button.click()
    qtbot.waitUntil(lambda: p.state == "finished", timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: p.level_strip.level_names() == names, timeout=RUN_TIMEOUT)
    assert p.level_strip.isVisible()
    # the live viewer samples the trained model level by level
    viewer = p.window_.viewer
    qtbot.waitUntil(lambda: viewer.levels.level_names() == viewer_names, timeout=RUN_TIMEOUT)
    assert viewer.sampler_box.isEnabled() == (method != "drl")
    assert viewer.model_info.method == method
