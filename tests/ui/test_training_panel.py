"""The Training panel, driven as a user would: preset, Train, pause, live learning rate, stop, save,
reopen, continue; a diverging run and its rollback; bad user data; TOML export for headless runs.

Runs use a tiny 2-D set-up (5 Langevin steps, batch 64, a 32-32 MLP) so every test is quick on a
2-core CPU. No sleeps: everything waits on the panel's state with ``qtbot.waitUntil``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ebm_studio.core.checkpoint import load_checkpoint
from ebm_studio.core.config import TrainConfig

RUN_TIMEOUT = 30000


@pytest.fixture
def panel(make_window, qtbot):
    window = make_window(False)  # no demo chains: the engine is free for training
    p = window.panels["training"]
    window.tabs.setCurrentWidget(p)
    qtbot.waitUntil(lambda: p.data.name == "8gaussians" and not p.data.busy, timeout=10000)
    p.window_ = window
    return p


def tiny_2d(p, qtbot, lr: float = 1e-3) -> None:
    """The 2-D preset, shrunk so a step takes a few milliseconds."""
    p.form.preset_box.setCurrentIndex(p.form.preset_box.findData("2-D quick"))
    p.form.preset_box.activated.emit(p.form.preset_box.currentIndex())  # as a user's pick
    qtbot.waitUntil(lambda: not p.data.busy, timeout=10000)
    f = p.form
    f.hidden.setText("32, 32")
    f.mcmc_steps.setValue(5)
    f.batch.setValue(64)
    f.buffer_size.setValue(256)
    f.total_steps.setValue(100000)
    f.lr.setValue(lr)


def test_train_pause_live_lr_stop_save_reopen_continue(panel, qtbot, tmp_path):
    p = panel
    engine = p.host.engine
    tiny_2d(p, qtbot)
    assert p.form.mcmc_steps.isEnabled() and not p.lock_note.isVisible()

    p.train_button.click()
    # until the engine reports the run, it is starting: locked, stoppable, not yet pausable
    assert p.starting and p.active and p.state == "idle" and "Starting the run" in p.status_label.text()
    assert not p.train_button.isEnabled() and p.stop_button.isEnabled() and not p.pause_button.isEnabled()
    qtbot.waitUntil(lambda: p.state == "running" and p.step >= 10, timeout=RUN_TIMEOUT)
    assert not p.starting
    # while training, only the live settings stay editable, with a note saying why
    assert p.lock_note.isVisible()
    assert not p.form.batch.isEnabled() and not p.form.hidden.isEnabled()
    assert not p.data.isEnabled() and not p.train_button.isEnabled()
    assert p.form.lr.isEnabled() and p.form.step_size.isEnabled() and p.form.temperature.isEnabled()
    assert p.progress.maximum() == 100000 and p.progress.value() >= 10
    qtbot.waitUntil(lambda: "steps/s" in p.rate_label.text() and "ETA" in p.rate_label.text(),
                    timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: p.frames_drawn > 0 and p.plots.redraws > 0, timeout=RUN_TIMEOUT)

    p.pause_button.click()
    qtbot.waitUntil(lambda: p.state == "paused", timeout=RUN_TIMEOUT)
    assert p.pause_button.text() == "Resume"
    # the panel shows the step the run stopped at, not the last periodic report before it
    assert p.step == engine.trainer.step_count and f"step {p.step:,}" in p.status_label.text()
    # the replay buffer can be inspected while paused (served between steps)
    p.show_box.setCurrentIndex(p.show_box.findData("buffer"))
    qtbot.waitUntil(lambda: "replay buffer" in p.samples_title.text(), timeout=10000)
    p.show_box.setCurrentIndex(p.show_box.findData("negatives"))

    p.form.lr.spin.setValue(0.0005)  # the user types a new learning rate
    assert p.host.slot_live("training").snapshot().lr == pytest.approx(0.0005)
    p.pause_button.click()  # Resume
    qtbot.waitUntil(lambda: p.state == "running", timeout=RUN_TIMEOUT)
    # the engine reports the new rate in its metrics
    qtbot.waitUntil(lambda: p.plots.store.last("lr") == pytest.approx(0.0005), timeout=RUN_TIMEOUT)
    lrs = p.plots.store.column("lr")
    assert lrs[0] == pytest.approx(1e-3)

    p.stop_button.click()
    qtbot.waitUntil(lambda: p.state == "stopped", timeout=RUN_TIMEOUT)
    saved_step = p.step
    assert saved_step == engine.trainer.step_count and f"step {saved_step:,}" in p.status_label.text()
    # what a continued run cannot take over is named in the form's words
    p.form.batch.setValue(32)
    assert p.form.structural_differences(p.run_config, p.data.name, p.data.image_size) == [
        "batch size 32 (the run has 64)"]
    p.form.batch.setValue(64)
    assert saved_step >= 10 and p.continue_button.isEnabled() and p.form.batch.isEnabled()
    path = tmp_path / "run.pt"
    with qtbot.waitSignal(engine.saved, timeout=10000) as saved:
        p.save_checkpoint(str(path))
    assert saved.args == [str(path)]
    ckpt = load_checkpoint(path)
    assert ckpt.step == saved_step
    assert ckpt.config["optim"]["lr"] == pytest.approx(0.0005)
    assert len(ckpt.metrics["step"]) == saved_step

    # reopen: the form shows the checkpoint's settings and history; Continue resumes its run
    p.form.lr.setValue(0.01)
    with qtbot.waitSignal(engine.model_changed, timeout=10000,
                         check_params_cb=lambda info: info.path == str(path)):
        p.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: p.continue_mode == "checkpoint", timeout=10000)
    assert p.step == saved_step and len(p.plots.store) == saved_step
    assert p.form.lr.value() == pytest.approx(0.0005)
    assert "Continue training" in p.status_label.text()
    p.continue_button.click()
    qtbot.waitUntil(lambda: p.state == "running" and p.step >= saved_step + 3, timeout=RUN_TIMEOUT)
    steps = p.plots.store.column("step")
    assert steps[saved_step - 1] == saved_step and steps[saved_step] == saved_step + 1
    assert p.plots.store.last("lr") == pytest.approx(0.0005)
    p.stop_button.click()
    qtbot.waitUntil(lambda: p.state == "stopped", timeout=RUN_TIMEOUT)


def test_divergence_message_and_rollback(panel, qtbot, tmp_path):
    p = panel
    tiny_2d(p, qtbot, lr=10.0)  # absurd: the energies blow past the limit within a few steps
    p.train_button.click()
    qtbot.waitUntil(lambda: p.state == "diverged", timeout=RUN_TIMEOUT)
    assert p.banner.isVisible()
    assert "diverged" in p.divergence_label.text() and "learning rate" in p.divergence_label.text()
    assert p.rollback_lr.value() == pytest.approx(1.0)  # a tenth is suggested
    good_step = p.step

    p.rollback_lr.spin.setValue(1e-3)
    # the signal can reach the test before the panel's queued slot has run: wait for the panel
    p.rollback_button.click()
    qtbot.waitUntil(lambda: "Rolled back" in p.status_label.text(), timeout=10000)
    assert not p.banner.isVisible()
    assert p.form.lr.value() == pytest.approx(1e-3)
    assert "Rolled back" in p.status_label.text()
    assert list((tmp_path / "autosave").glob("autosave-*.pt")), "the last good state was autosaved"

    p.continue_button.click()
    qtbot.waitUntil(lambda: p.state == "running" and p.step >= good_step + 20, timeout=RUN_TIMEOUT)
    assert p.plots.store.last("lr") == pytest.approx(1e-3)
    p.stop_button.click()
    qtbot.waitUntil(lambda: p.state == "stopped", timeout=RUN_TIMEOUT)


def test_bad_user_data_keeps_the_previous_set(panel, qtbot, tmp_path):
    from PIL import Image

    p = panel
    window = p.window_
    before = np.array(p.data.preview_data, copy=True)
    n_items = p.data.combo.count()

    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(corrupt / "good.png")
    (corrupt / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a PNG")
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((10, 3), np.float32))

    cases = [
        (lambda: p.data.open_folder(str(empty)), "no images"),
        (lambda: p.data.open_folder(str(corrupt)), "bad.png"),
        (lambda: p.data.open_file(str(wrong)), "(10, 3)"),
    ]
    for choose, expected in cases:
        choose()
        qtbot.waitUntil(lambda: not p.data.busy, timeout=10000)
        assert p.data.error_label.isVisible() and expected in p.data.error_label.text()
        assert expected in window.last_error  # the main window's error dialog says it too
        assert p.data.name == "8gaussians"
        assert p.data.combo.currentData() == "8gaussians" and p.data.combo.count() == n_items
        np.testing.assert_array_equal(p.data.preview_data, before)
        assert "values in [-4, 4]" in p.data.info_label.text()

    p.data.open_folder(str(empty))
    qtbot.waitUntil(lambda: not p.data.busy, timeout=10000)
    assert p.data.error_label.text().startswith("Cannot use empty: no images")  # no path twice

    # good user data replaces the selection and clears the error
    points = tmp_path / "pts.csv"
    points.write_text("x,y\n" + "\n".join(f"{np.cos(t):.4f},{np.sin(t):.4f}" for t in np.linspace(0, 6, 50)))
    p.data.open_file(str(points))
    qtbot.waitUntil(lambda: p.data.name == str(points), timeout=10000)
    assert not p.data.error_label.isVisible()
    assert p.data.combo.currentData() == str(points) and "50 points" in p.data.info_label.text()
    assert (p.data.kind, p.data.info.count, p.data.info.shape, p.data.info.source) == ("points", 50, (2,), str(points))


def test_export_toml_runs_headless(panel, qtbot, tmp_path):
    from ebm_studio.cli import main

    p = panel
    tiny_2d(p, qtbot)
    p.form.seed.setValue(7)
    p.form.hidden.setText("12, oops")
    p.export_config(str(tmp_path / "bad.toml"))
    assert p.message_label.isVisible() and "Hidden layers" in p.message_label.text()
    assert not (tmp_path / "bad.toml").exists()

    p.form.hidden.setText("16, 16")
    p.form.precision_box.setCurrentIndex(p.form.precision_box.findData("fp32"))
    path = tmp_path / "session.toml"
    p.export_config(str(path))
    cfg = TrainConfig.load(path)
    assert cfg.seed == 7 and cfg.model.hidden == [16, 16] and cfg.sampler.steps == 5
    assert cfg.sampler.precision == "fp32"  # the form's precision travels with the run
    cfg.sampler.precision = "bf16"
    p.form.set_config(cfg)
    assert p.form.precision_box.currentData() == "bf16"
    cfg.sampler.precision = "fp32"
    p.form.set_config(cfg)
    assert cfg.to_dict() == p.form.config("8gaussians").to_dict()
    out = tmp_path / "headless.pt"
    assert main(["train", "--config", str(path), "--steps", "3", "--out", str(out)]) == 0
    assert load_checkpoint(out).step == 3


def test_metric_history_is_downsampled_for_long_runs():
    from ebm_studio.ui.metric_plots import MAX_POINTS, MetricStore

    store = MetricStore()
    n = 100_000
    for start in range(0, n, 1000):  # as the engine sends them: batches of rows
        store.extend([{"step": s + 1, "loss": float(s % 10), "accept": None}
                      for s in range(start, start + 1000)])
    assert len(store) == n and store.last("step") == n
    x, y = store.series("loss")
    assert len(x) <= MAX_POINTS + 100  # bins of equal size, plus the newest partial bin
    assert x[-1] == n  # the newest step is always drawn
    assert np.nanmean(y) == pytest.approx(4.5, abs=0.05)  # block means keep the level
    assert np.isnan(store.series("accept")[1]).all()
    store.load({"step": [1.0, 2.0], "loss": [0.5, 0.25]})
    assert len(store) == 2 and store.last("loss") == 0.25


def test_live_ranges_stay_put_until_the_data_leaves_them():
    from ebm_studio.ui.metric_plots import growing_range, sticky_range

    r = sticky_range(None, 0.0, 1.0)
    assert r == pytest.approx((-0.15, 1.15))
    assert sticky_range(r, 0.1, 0.9) is None  # noisy data inside: the axis does not move
    assert sticky_range(r, 0.0, 1.5) == pytest.approx((-0.225, 1.725))  # it left the range
    assert sticky_range(r, 0.4, 0.5) is not None  # it fills too little of it: zoom in
    assert sticky_range(r, 2.0, 2.0) is not None and sticky_range(r, math.nan, 1.0) is None
    x = growing_range(None, 1.0, 10.0)
    assert x == pytest.approx((1.0, 14.5))
    assert growing_range(x, 1.0, 14.0) is None and growing_range(x, 1.0, 16.0)[1] == pytest.approx(23.5)
    assert growing_range(None, 10_000.0, 10_010.0) == pytest.approx((10_000.0, 10_015.0))


def test_metric_axes_follow_the_run_until_the_user_zooms(qtbot):
    from ebm_studio.ui.metric_plots import MetricPlots

    plots = MetricPlots()
    qtbot.addWidget(plots)
    plots.add_rows([{"step": s, "loss": 1.0 + 0.01 * (s % 5)} for s in range(1, 11)])
    plots.redraw()
    loss = plots.plots["loss"].vb
    lo, hi = loss.viewRange()[1]
    assert lo < 1.0 and hi > 1.04
    x_hi = loss.viewRange()[0][1]
    assert x_hi >= 10
    loss.sigRangeChangedManually.emit([False, True])  # as a mouse zoom on the y axis does
    loss.setYRange(5.0, 6.0, padding=0)
    plots.add_rows([{"step": s, "loss": -3.0} for s in range(11, 40)])
    plots.redraw()
    assert loss.viewRange()[1] == pytest.approx([5.0, 6.0])  # the user's y range is kept
    assert loss.viewRange()[0][1] >= 39  # x still follows the run
    loss.enableAutoRange()  # the "A" button
    plots.add_rows([{"step": 40, "loss": -3.0}])
    plots.redraw()
    assert loss.viewRange()[1][0] < -3.0 and not any(loss.state["autoRange"])


def train_tiny_run(p, qtbot, steps: int) -> None:
    """A whole tiny 2-D run of ``steps`` steps from the Train button, waited for."""
    tiny_2d(p, qtbot)
    p.form.total_steps.setValue(steps)
    p.train_button.click()
    qtbot.waitUntil(lambda: p.state == "finished", timeout=RUN_TIMEOUT)


def test_the_preset_follows_the_kind_of_data(panel, qtbot):
    p = panel
    box = p.form.preset_box
    for name, preset in (("digits", "digits (UvA-style)"), ("texture:brick", "texture"),
                         ("moons", "2-D quick")):
        p.data.select(name)
        qtbot.waitUntil(lambda: p.data.name == name and not p.data.busy, timeout=20000)
        assert box.currentData() == preset, name
        assert preset in p.status_label.text()
    # within one family the user's settings stay
    p.form.lr.setValue(0.0123)
    p.data.select("rings")
    qtbot.waitUntil(lambda: p.data.name == "rings" and not p.data.busy, timeout=20000)
    assert p.form.lr.value() == pytest.approx(0.0123)


def test_after_training_the_viewer_runs_the_trained_model_with_its_settings(panel, qtbot):
    p = panel
    window = p.window_
    tiny_2d(p, qtbot)
    p.form.total_steps.setValue(30)
    p.form.sampler_box.setCurrentIndex(p.form.sampler_box.findData("mala"))
    p.train_button.click()
    qtbot.waitUntil(lambda: p.state == "finished", timeout=RUN_TIMEOUT)
    viewer = window.viewer
    # the viewer took the trained model's sampler and moves again (it used to stay still)
    qtbot.waitUntil(lambda: viewer.sampler_box.currentData() == "mala", timeout=RUN_TIMEOUT)
    drawn = viewer.view.frames_drawn
    qtbot.waitUntil(lambda: viewer.view.frames_drawn > drawn + 3, timeout=RUN_TIMEOUT)
    assert window.job_info.kind == "sample" and window.job_info.state == "running"


def test_opening_another_checkpoint_clears_the_previous_models_views(panel, qtbot, tmp_path):
    p = panel
    tiny_2d(p, qtbot)
    p.form.total_steps.setValue(20)
    p.train_button.click()
    qtbot.waitUntil(lambda: p.state == "finished" and p.frames_drawn > 0, timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: p.samples_view.hist.image is not None, timeout=RUN_TIMEOUT)
    from ebm_studio.core.checkpoint import energy_checkpoint, save_checkpoint
    from ebm_studio.core.energies import eight_gaussians_energy

    other = tmp_path / "other.pt"
    save_checkpoint(energy_checkpoint(eight_gaussians_energy(), {"name": "8gaussians"}), other)
    p.window_.open_checkpoint(str(other))
    qtbot.waitUntil(lambda: "other.pt" in p.status_label.text(), timeout=RUN_TIMEOUT)
    assert p.samples_view.hist.image is None and p.landscape_image.image is None
    assert p.samples_title.text() == "Samples"


def test_rollback_never_restores_a_diverged_model_even_with_autosave_every_step(panel, qtbot):
    p = panel
    engine = p.host.engine
    tiny_2d(p, qtbot)
    p.form.autosave.setValue(1)
    p.train_button.click()
    qtbot.waitUntil(lambda: p.state == "running" and p.step >= 5, timeout=RUN_TIMEOUT)
    p.form.lr.spin.setValue(3e38) if p.form.lr.spin.maximum() >= 3e38 else p.host.update_live(slot="training", lr=3e38)
    qtbot.waitUntil(lambda: p.state == "diverged", timeout=RUN_TIMEOUT)
    p.rollback_lr.spin.setValue(1e-3)
    p.rollback_button.click()
    qtbot.waitUntil(lambda: "Rolled back" in p.status_label.text(), timeout=10000)
    trainer = engine.trainer
    assert all(torch.isfinite(q).all() for q in trainer.model.parameters())
    assert f"step {trainer.step_count}" in p.status_label.text()


def test_the_quality_plot_shows_the_meter_of_the_run(panel, qtbot):
    p = panel
    train_tiny_run(p, qtbot, 15)
    qtbot.waitUntil(lambda: np.isfinite(p.plots.store.column("q_nll_gap")).any(), timeout=RUN_TIMEOUT)
    p.plots.redraw()
    assert "NLL gap" in p.plots.plots["quality"].titleLabel.text


def test_closing_with_unsaved_steps_asks_and_save_closes_after_the_file_is_written(panel, qtbot, tmp_path,
                                                                                  monkeypatch):
    p = panel
    window = p.window_
    train_tiny_run(p, qtbot, 20)
    asked = []
    monkeypatch.setattr(type(window), "ask_unsaved", lambda self, steps: asked.append(steps) or "cancel")
    window.close()
    assert asked == [20] and window.isVisible()  # Cancel keeps the window and the run
    # Save, but the file dialog is cancelled: still open, nothing pending
    monkeypatch.setattr(type(window), "ask_unsaved", lambda self, steps: "save")
    monkeypatch.setattr(type(p), "ask_save_path", lambda self: "")
    window.close()
    assert window.isVisible()
    target = tmp_path / "kept.pt"
    monkeypatch.setattr(type(p), "ask_save_path", lambda self: str(target))
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT)
    assert load_checkpoint(target).step == 20


def test_a_saved_run_closes_without_asking(panel, qtbot, tmp_path, monkeypatch):
    p = panel
    window = p.window_
    train_tiny_run(p, qtbot, 10)
    p.save_checkpoint(str(tmp_path / "run.pt"))
    qtbot.waitUntil(lambda: p.unsaved_steps() == 0, timeout=RUN_TIMEOUT)
    monkeypatch.setattr(type(window), "ask_unsaved", lambda self, steps: pytest.fail("asked"))
    window.close()
    assert not window.isVisible()


def test_a_config_beyond_the_forms_limits_is_refused_or_reported_never_silently_clamped(panel, qtbot, tmp_path):
    from ebm_studio.core.checkpoint import save_checkpoint, trainer_checkpoint
    from ebm_studio.core.training import Trainer

    p = panel
    tiny_2d(p, qtbot)
    before = p.form.config("8gaussians").to_dict()
    cfg = p.form.config("8gaussians")
    cfg.optim.lr = 100.0  # a valid config, beyond the field's range
    cfg.seed = 2**40  # would overflow a 32-bit spin box
    path = tmp_path / "wild.toml"
    cfg.save(path)
    p.import_config(str(path))
    text = p.message_label.text()
    assert p.message_label.isVisible() and "wild.toml" in text and "Nothing was imported" in text
    assert "optim.lr = 100 is outside" in text and "seed = 1.09951e+12" in text
    assert p.form.config("8gaussians").to_dict() == before

    # a checkpoint made elsewhere opens, and says which values the form shows clamped
    cfg.optim.lr = 1e-3
    cfg.sampler.buffer_size = 64
    trainer = Trainer(cfg)
    ckpt = tmp_path / "wild.pt"
    save_checkpoint(trainer_checkpoint(trainer), ckpt)
    p.window_.open_checkpoint(str(ckpt))
    qtbot.waitUntil(lambda: "wild.pt" in p.status_label.text(), timeout=RUN_TIMEOUT)
    assert "shown clamped: seed = 1.09951e+12" in p.message_label.text()
    # a file the configuration itself refuses names the file once
    path.write_text("[optim]\nlr = 1e300\n")
    p.import_config(str(path))
    assert p.message_label.text().count("wild.toml") == 1 and "32-bit" in p.message_label.text()
    assert p.form.seed.value() == 2**31 - 1


def test_every_place_counts_completed_steps(panel, qtbot, tmp_path):
    """Progress bar, state message, sample caption, autosave names and the saved checkpoint all
    say the same step: the number of completed updates."""
    p = panel
    tiny_2d(p, qtbot)
    p.form.autosave.setValue(5)
    p.form.total_steps.setValue(20)
    p.train_button.click()
    qtbot.waitUntil(lambda: p.state == "finished", timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: "step 20 " in p.samples_title.text(), timeout=RUN_TIMEOUT)
    assert (p.progress.value(), p.progress.maximum()) == (20, 20)
    assert "step 20 of 20" in p.status_label.text()
    names = sorted(f.name for f in (tmp_path / "autosave").glob("autosave-*.pt"))
    assert [n.rsplit("-step", 1)[1] for n in names] == ["0000010.pt", "0000015.pt", "0000020.pt"]
    out = tmp_path / "run.pt"
    p.save_checkpoint(str(out))
    qtbot.waitUntil(lambda: out.exists(), timeout=RUN_TIMEOUT)
    assert load_checkpoint(out).step == 20
    # a stopped run: the message, the bar and the newest samples name one step
    p.form.total_steps.setValue(100000)
    p.continue_button.click()
    qtbot.waitUntil(lambda: p.state == "running" and p.step > 30, timeout=RUN_TIMEOUT)
    p.stop_button.click()
    qtbot.waitUntil(lambda: p.state == "stopped", timeout=RUN_TIMEOUT)
    stopped = p.step
    assert f"Stopped at step {stopped:,}" in p.status_label.text() and p.progress.value() == stopped
    qtbot.waitUntil(lambda: f"step {stopped:,} " in p.samples_title.text(), timeout=RUN_TIMEOUT)


def test_an_opened_checkpoint_fills_both_training_views_before_any_run(make_window, qtbot):
    """As launching with ``--checkpoint`` does: the model's replay buffer and its landscape show at
    once, not only after a run starts."""
    from ebm_studio.core.bundled import example_checkpoints

    window = make_window(False)
    p = window.panels["training"]
    window.tabs.setCurrentWidget(p)
    window.open_checkpoint(str(example_checkpoints()["8gaussians"]))
    qtbot.waitUntil(lambda: "8gaussians.pt" in p.status_label.text(), timeout=RUN_TIMEOUT)
    qtbot.waitUntil(lambda: p.samples_view.last_frame is not None, timeout=RUN_TIMEOUT)
    assert p.samples_view.last_frame.job_kind == "train-buffer"
    qtbot.waitUntil(lambda: p.landscape_image.image is not None, timeout=RUN_TIMEOUT)
    assert p.data.name == "8gaussians"
