"""Several main jobs at once: the viewer's chains, a training run and a landscape fit each run in
their own engine slot, on different models, and each one's frames reach its own panel."""

from __future__ import annotations

from test_training_panel import tiny_2d

LONG = 60000


def test_the_viewer_a_training_run_and_a_fit_advance_together(window, qtbot):
    viewer = window.viewer
    qtbot.waitUntil(lambda: viewer.view.frames_drawn > 2, timeout=LONG)
    demo = window.model_info.name

    # a landscape fit of the demo model, long enough to overlap the rest
    view = window.panels["landscape"]
    window.tabs.setCurrentWidget(view)
    qtbot.waitUntil(lambda: view.result is not None, timeout=LONG)
    view.tools.setCurrentIndex(3)
    view.fit.samples.setValue(4096)
    view.fit.mcmc.setValue(5000)
    view.fit.fit_button.click()
    qtbot.waitUntil(lambda: view.fit.progress.value() > 0, timeout=LONG)

    # a training run of a new model in the Training tab: the model changes to the one trained
    p = window.panels["training"]
    window.tabs.setCurrentWidget(p)
    qtbot.waitUntil(lambda: p.data.name is not None and not p.data.busy, timeout=LONG)
    tiny_2d(p, qtbot)
    p.train_button.click()
    qtbot.waitUntil(lambda: p.state == "running" and p.step > 5, timeout=LONG)
    assert window.model_info.name != demo and window.model_info.training

    # on a CPU the viewer gives way to the run and says so; Play runs it beside the run, on the
    # model being trained
    qtbot.waitUntil(lambda: viewer.paused, timeout=LONG)
    assert "Training tab" in viewer.note_label.text()
    assert viewer.model_info.training  # the Live tab shows the model being trained
    viewer.set_paused(False)
    window.tabs.setCurrentWidget(viewer)

    def counters():
        return (viewer.view.frames_drawn, p.step, view.fit.progress.value())

    start = counters()
    qtbot.waitUntil(lambda: all(now > then for now, then in zip(counters(), start)), timeout=LONG)
    states = {name: info.state for name, info in window.jobs.items()}
    assert states["viewer"] == "running" and states["training"] == "running"
    assert view.fit.running and states["fit"] == "running"
    assert "viewer running" in window.job_label.text() and "training running" in window.job_label.text()
    # each panel drew its own job's frames
    assert p._latest_frame is not None and p._latest_frame.job_kind == "train"
    assert view._frame is not None and view._frame.job_kind in ("fit", "sample", "train")
    assert viewer.view.last_frame.job_kind == "sample" and viewer.view.last_frame.label == "viewer"

    # stopping the run leaves the fit and the viewer going
    p.stop_button.click()
    qtbot.waitUntil(lambda: p.state == "stopped", timeout=LONG)
    progress = view.fit.progress.value()
    qtbot.waitUntil(lambda: view.fit.progress.value() > progress or view.fit.result is not None, timeout=LONG)
    view.fit.stop_fit()
    qtbot.waitUntil(lambda: not view.fit.running, timeout=LONG)
