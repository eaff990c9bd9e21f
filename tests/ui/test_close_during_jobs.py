"""Closing the window while each kind of job runs: the window is gone in under 2 s, with no
traceback (pytest-qt fails a test on any exception raised in a Qt slot), and nothing outlives it
(the window fixture checks threads, jobs, tool runs and timers)."""

from __future__ import annotations

import time

import pytest

from tests_ui_helpers import open_tool_model

LONG = 30000
CLOSE_LIMIT_S = 2.0


def _viewer(window, qtbot, tiny_digits):
    qtbot.waitUntil(lambda: window.viewer.view.frames_drawn > 3, timeout=LONG)
    return lambda: window.job_info.kind == "sample"


def _training(window, qtbot, data: str, mcmc_steps: int, batch: int):
    p = window.panels["training"]
    window.tabs.setCurrentWidget(p)
    p.data.select(data)
    qtbot.waitUntil(lambda: p.data.name == data and not p.data.busy, timeout=LONG)
    p.form.mcmc_steps.setValue(mcmc_steps)
    p.form.batch.setValue(batch)
    p.form.total_steps.setValue(100000)
    p.train_button.click()
    qtbot.waitUntil(lambda: p.state == "running", timeout=LONG)
    return lambda: p.state == "running"


def _training_points(window, qtbot, tiny_digits):
    return _training(window, qtbot, "8gaussians", 20, 256)


def _training_images(window, qtbot, tiny_digits):
    # a step of 400 Langevin steps of a ConvNet takes seconds: the close lands inside one
    return _training(window, qtbot, "digits", 400, 64)


def _fit(window, qtbot, tiny_digits):
    view = window.panels["landscape"]
    window.tabs.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.result is not None, timeout=LONG)
    view.tools.setCurrentIndex(3)
    f = view.fit
    f.samples.setValue(20000)
    f.mcmc.setValue(5000)
    f.fit_button.click()
    qtbot.waitUntil(lambda: f.progress.value() > 0, timeout=LONG)
    return lambda: f.result is None


def _tool(owner: str):
    def start(window, qtbot, tiny_digits):
        tool = window.panels[owner]
        window.tabs.setCurrentWidget(tool)
        open_tool_model(tool, qtbot, tiny_digits, LONG)
        if owner == "inpaint":
            tool.canvas.clear_layer()
            tool.canvas.mask[10:18, 4:24] = True
        tool.run_view.steps_spin.setValue(1_000_000)
        tool.run()
        qtbot.waitUntil(lambda: tool.run_view.frame is not None and tool.run_view.frame.step > 5, timeout=LONG)
        return lambda: tool.run_view.frame.step < 1_000_000
    return start


JOBS = {
    "viewer": _viewer,
    "training-points": _training_points,
    "training-images": _training_images,
    "landscape-fit": _fit,
    "inpainting": _tool("inpaint"),
    "translation": _tool("translate"),
}


@pytest.mark.parametrize("job", list(JOBS))
def test_closing_during_a_job_is_quick_and_clean(make_window, qtbot, tiny_digits, job):
    window = make_window(job == "viewer")
    still_running = JOBS[job](window, qtbot, tiny_digits)
    assert still_running(), f"the {job} job ended before the window closed"
    t0 = time.perf_counter()
    window.close()
    took = time.perf_counter() - t0
    assert not window.isVisible()
    assert not window.host.thread.isRunning()
    assert took < CLOSE_LIMIT_S, f"closing during {job} took {took:.2f} s"
