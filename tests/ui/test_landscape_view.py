"""The landscape tab as a user meets it: quadrature numbers, temperature, chains, composition,
KL fits and drawn data, driven through the widgets and the mouse."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from ebm_studio.core.checkpoint import energy_checkpoint, save_checkpoint
from ebm_studio.core.energies import ConvEnergy, GaussianEnergy, MLPEnergy, eight_gaussians_energy
from ebm_studio.core.landscape import Grid, kl_divergence, log_density, log_z
from ebm_studio.core import landscape_render as lm
from ebm_studio.worker.api import KLFits, ViewSpec

MODES = 2.0 * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1)
LONG = 60000  # ms: generous, the test machine may be shared


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def landscape_tab(window):
    view = window.panels["landscape"]
    window.tabs.setCurrentWidget(view)
    return view


def wait_landscape(qtbot, view, cond=lambda r: True, timeout=LONG):
    qtbot.waitUntil(lambda: view.result is not None and view.landscapes_drawn > 0
                    and cond(view.result), timeout=timeout)
    return view.result


def _send(plots, kind, x, y, button, buttons):
    vp = plots.viewport()
    local = QPointF(plots.mapFromScene(plots.vb.mapViewToScene(QPointF(x, y))))
    glob = QPointF(vp.mapToGlobal(local.toPoint()))
    QApplication.sendEvent(vp, QMouseEvent(kind, local, glob, button, buttons,
                                           Qt.KeyboardModifier.NoModifier))


def mouse_drag(plots, path):
    """Press at the first point, move through the rest with the left button held, release."""
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    _send(plots, QEvent.Type.MouseButtonPress, *path[0], left, left)
    for x, y in path[1:]:
        _send(plots, QEvent.Type.MouseMove, x, y, none, left)
    _send(plots, QEvent.Type.MouseButtonRelease, *path[-1], left, none)


def mouse_click(plots, x, y):
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    _send(plots, QEvent.Type.MouseButtonPress, x, y, left, left)
    _send(plots, QEvent.Type.MouseButtonRelease, x, y, left, none)


# --------------------------------------------------------------------------------------------
# pure numpy helpers of the view agree with core
# --------------------------------------------------------------------------------------------


def test_view_maths_agrees_with_core():
    grid = Grid((-4.0, 4.0), (-3.0, 5.0), 64)
    e = eight_gaussians_energy()(grid.points()).double().numpy().reshape(64, 64)
    for t, ref in ((1.0, None), (0.4, 2.0)):
        u = lm.potential(e, t, lm.ref_term(grid.xs, grid.ys, ref))
        lp, lz = lm.normalise(u, grid.cell_area)
        assert lz == pytest.approx(log_z(e, grid, t, ref_sigma=ref), rel=1e-12)
        np.testing.assert_allclose(lp, log_density(e, grid, t, ref_sigma=ref), rtol=1e-12)
    lq = log_density(0.5 * e, grid)
    lp = log_density(e, grid)
    assert lm.kl(lp, lq, grid.cell_area) == pytest.approx(kl_divergence(lp, lq, grid), rel=1e-12)
    # contours of |x|² lie on circles; a saddle is split into proper segments
    xs = np.linspace(-3, 3, 101)
    segs = lm.contour_segments(xs[:, None] ** 2 + xs[None, :] ** 2, xs, xs, [1.0, 4.0])
    r = np.hypot(segs[:, 0], segs[:, 1])
    assert segs.shape[0] % 2 == 0 and np.all((np.abs(r - 1) < 0.01) | (np.abs(r - 2) < 0.01))
    assert len(lm.contour_segments(np.zeros((4, 4)), np.arange(4), np.arange(4), [1.0])) == 0
    with pytest.raises(ValueError, match="not a number"):
        lm.parse_levels("1, two")
    # a view spec is checked when made, and equal choices compare equal (the view reuses the
    # engine's picture exactly when it was rendered for its own spec)
    assert ViewSpec(temperature=1, levels=[1, 2]) == ViewSpec(levels=(1.0, 2.0))
    for bad, match in ((dict(mode="nope"), "mode"), (dict(temperature=0.0), "temperature"),
                       (dict(levels=[1.0, float("nan")]), "finite")):
        with pytest.raises(ValueError, match=match):
            ViewSpec(**bad)


# --------------------------------------------------------------------------------------------
# the demo: exact numbers, temperature, chains
# --------------------------------------------------------------------------------------------


def test_demo_landscape_matches_the_exact_log_z_and_temperature_concentrates_mass(window, qtbot):
    view = landscape_tab(window)
    r = wait_landscape(qtbot, view)
    exact = math.log(2 * math.pi)  # eight_gaussians_energy: normalised mixture in 2-D
    n = view.numbers
    assert n.grid_n == 256 and n.exact_log_z == pytest.approx(exact)
    assert abs(n.log_z - exact) / exact < 1e-3
    # the model is the truth: NLL equals the truth's, both KLs and the mass errors vanish
    assert n.nll == pytest.approx(n.nll_truth, abs=1e-4)
    assert n.kl_data_model < 1e-4 and n.kl_model_data < 1e-4
    np.testing.assert_allclose(n.mass_model, 1 / 8, atol=1e-3)
    np.testing.assert_allclose(n.mass_model, n.mass_truth, atol=1e-4)
    assert "log Z exact" in view.numbers_panel.label.text()
    assert view.plots.truth_plot.isVisible() and view.plots.contours.xData is not None
    assert r.landscape.grid.xlim == (-4.0, 4.0)

    def near_mode_mass() -> float:
        grid = view.result.landscape.grid
        x, y = grid.mesh()
        d = np.min((x[..., None] - MODES[:, 0]) ** 2 + (y[..., None] - MODES[:, 1]) ** 2, -1)
        return float(view.current_density()[d < 0.15**2].sum() * grid.cell_area)

    at_one, peak_one = near_mode_mass(), view.current_density().max()
    view.temperature.spin.setValue(0.3)  # the user types T = 0.3
    qtbot.waitUntil(lambda: view.numbers.temperature == pytest.approx(0.3), timeout=5000)
    assert near_mode_mass() > at_one + 0.2  # the mass collapses onto the minima
    assert view.numbers.kl_data_model > 0.1  # p_0.3 is no longer the data density
    assert window.host.live.snapshot().temperature == pytest.approx(0.3)  # chains follow T
    assert window.viewer.temperature.value() == pytest.approx(0.3)
    view.temperature.spin.setValue(5.0)
    qtbot.waitUntil(lambda: view.numbers.temperature == pytest.approx(5.0), timeout=5000)
    assert view.current_density().max() < 0.5 * peak_one  # flatter
    assert near_mode_mass() < at_one
    # each display mode draws; the energy view shows E/T
    for mode in ("energy", "density", "log_density"):
        drawn = view.landscapes_drawn
        view.mode_box.setCurrentIndex(view.mode_box.findData(mode))
        qtbot.waitUntil(lambda: view.landscapes_drawn > drawn, timeout=5000)
    view.levels_edit.setText("-3, oops")
    view.levels_edit.editingFinished.emit()
    qtbot.waitUntil(lambda: "not used" in view.status.text(), timeout=5000)


def test_click_drops_chains_and_arrows_and_trails_draw(window, qtbot):
    view = landscape_tab(window)
    wait_landscape(qtbot, view)
    qtbot.waitUntil(lambda: view._frame is not None and view._frame.job_kind == "sample", timeout=LONG)
    view.arrows_box.setChecked(True)
    view.trails_box.setChecked(True)
    n0 = view._frame.n_chains
    view.drop_n.setValue(12)
    mouse_click(view.plots, 0.5, -0.5)
    qtbot.waitUntil(lambda: view._frame.n_chains == n0 + 12, timeout=LONG)
    # (the newest frame may overtake the engine's answer: frames are "latest wins")
    qtbot.waitUntil(lambda: "Dropped 12 chains" in view.status.text(), timeout=LONG)
    # the dropped chains come first and start near the click
    assert view.last_drop is not None and abs(view.last_drop["x"] - 0.5) < 0.1
    qtbot.waitUntil(lambda: len(view._trail) >= 3, timeout=LONG)
    assert view.plots.arrows.xData is not None and len(view.plots.arrows.xData) > 100
    # the trail curve follows at the next throttled redraw, which may come after the data
    qtbot.waitUntil(lambda: view.plots.trails.xData is not None and len(view.plots.trails.xData) > 0,
                    timeout=LONG)
    # the recording restarted with the new chain count
    assert window.engine.trajectories.active is not None


# --------------------------------------------------------------------------------------------
# composition
# --------------------------------------------------------------------------------------------


def test_composition_shows_the_weighted_sum_live(window, qtbot, tmp_path):
    view = landscape_tab(window)
    wait_landscape(qtbot, view)
    view.tools.setCurrentIndex(2)
    c = view.compose
    c.terms[0].set_source("current")
    c.terms[1].set_source("analytic", "gaussian")
    c.terms[0].set_weight(0.7)
    c.terms[1].set_weight(1.3)
    qtbot.mouseClick(c.compose_button, Qt.MouseButton.LeftButton)
    r = wait_landscape(qtbot, view, lambda r: "Standard Gaussian" in r.model_name)
    assert c.active and c.back_button.isEnabled()

    e1, e2 = eight_gaussians_energy(), GaussianEnergy([0.0, 0.0], np.eye(2))

    def check(result, w1, w2, e2):
        grid = result.landscape.grid
        idx = [(10, 200), (128, 128), (77, 190), (250, 3)]
        pts = torch.tensor([[grid.xs[i], grid.ys[j]] for i, j in idx], dtype=torch.float32)
        with torch.no_grad():
            want = (w1 * e1(pts) + w2 * e2(pts)).double().numpy()
        got = np.array([result.landscape.energy[i, j] for i, j in idx])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    check(r, 0.7, 1.3, e2)
    c.terms[1].spin.setValue(0.25)  # live: no new Compose press
    r = wait_landscape(qtbot, view, lambda r: "0.25·" in r.model_name)
    check(r, 0.7, 0.25, e2)
    # the viewer samples the composition
    qtbot.waitUntil(lambda: view._frame is not None and view._frame.step > 3, timeout=LONG)

    # a non-2-D checkpoint gets a clear message and changes nothing
    ckpt = energy_checkpoint(ConvEnergy(1, 16, 4), data={"name": "tiny", "kind": "images"})
    path = save_checkpoint(ckpt, tmp_path / "images.pt")
    c.terms[1].set_checkpoint(str(path))
    qtbot.mouseClick(c.compose_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "not a 2-D energy" in c.status.text(), timeout=LONG)
    assert "0.25·" in window.engine.model.name
    bad = tmp_path / "junk.pt"
    bad.write_bytes(b"not a checkpoint")
    c.terms[1].set_checkpoint(str(bad))
    qtbot.mouseClick(c.compose_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "junk.pt" in c.status.text(), timeout=LONG)

    # a 2-D checkpoint composes (its own weights, loaded in the engine)
    torch.manual_seed(0)
    mlp = MLPEnergy()
    good = save_checkpoint(energy_checkpoint(mlp, data={"name": "mine", "kind": "points",
                                                        "value_range": [-3.0, 3.0]}),
                           tmp_path / "mlp2d.pt")
    c.terms[1].set_checkpoint(str(good))
    c.terms[1].set_weight(0.5)
    qtbot.mouseClick(c.compose_button, Qt.MouseButton.LeftButton)
    r = wait_landscape(qtbot, view, lambda r: "[mlp2d]" in r.model_name)
    check(r, 0.7, 0.5, mlp)

    qtbot.mouseClick(c.back_button, Qt.MouseButton.LeftButton)
    wait_landscape(qtbot, view, lambda r: r.model_name.startswith("8gaussians"))
    assert not c.active

    # an image model: the landscape says why it has nothing to show
    window.open_checkpoint(str(path))
    qtbot.waitUntil(lambda: "needs a 2-D model" in view.numbers_panel.label.text(), timeout=LONG)


# --------------------------------------------------------------------------------------------
# KL fits
# --------------------------------------------------------------------------------------------


def test_fit_job_forward_covers_reverse_seeks(window, qtbot):
    view = landscape_tab(window)
    wait_landscape(qtbot, view)
    view.tools.setCurrentIndex(3)
    f = view.fit
    f.samples.setValue(512)
    f.mcmc.setValue(80)
    f.reverse_steps.setValue(200)
    f.k.setValue(3)
    qtbot.mouseClick(f.fit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: f.progress.value() > 0, timeout=LONG)
    qtbot.waitUntil(lambda: f.result is not None, timeout=4 * LONG)
    r = f.result
    assert isinstance(r, KLFits) and r.k == 3 and r.n_samples == 512  # the event's typed fits
    fwd, rev = r.forward.gaussian, r.reverse.gaussian
    # forward KL: one Gaussian over the whole ring (mean ≈ 0, variance ≈ 2² / 2 + 0.2²)
    assert np.linalg.norm(fwd.means[0]) < 0.4
    np.testing.assert_allclose(np.diag(fwd.covs[0]), 2.04, rtol=0.25)
    # reverse KL: on one mode, with that mode's variance
    d = np.linalg.norm(MODES - rev.means[0], axis=1)
    assert d.min() < 0.15
    np.testing.assert_allclose(np.diag(rev.covs[0]), 0.04, rtol=0.35)
    # each wins the KL it minimises; reverse-KL Gaussian ≈ one mode of eight: KL(q‖p) ≈ log 8
    assert fwd.kl_pq < rev.kl_pq and rev.kl_qp < fwd.kl_qp
    assert rev.kl_qp == pytest.approx(math.log(8), abs=0.15)
    assert (r.forward.mixture.weights > 0.05).sum() == 3
    # both drawn over the landscape; the fit ran in its own slot, so the viewer's chains went on
    assert len(view.plots.fit_forward.xData) > 0 and len(view.plots.fit_reverse.xData) > 0
    assert "KL(p‖q)" in f.table.text()
    assert window.jobs["viewer"].state == "running"
    drawn = window.viewer.view.frames_drawn
    qtbot.waitUntil(lambda: window.viewer.view.frames_drawn > drawn, timeout=LONG)


# --------------------------------------------------------------------------------------------
# drawn data
# --------------------------------------------------------------------------------------------


def test_draw_points_with_the_mouse_save_load_and_train(window, qtbot, tmp_path):
    view = landscape_tab(window)
    wait_landscape(qtbot, view)
    d = view.draw
    view.tools.setCurrentIndex(1)
    assert view.plots.vb.draw_mode
    qtbot.mouseClick(d.train_button, Qt.MouseButton.LeftButton)
    assert "at least 2 points" in d.status.text()  # nothing drawn yet
    d.radius.setValue(0.2)
    d.density.setValue(5)
    mouse_drag(view.plots, [(-2.0, 1.0), (-1.0, 1.0), (0.0, 1.0), (1.0, 1.0), (2.0, 1.0)])
    n = len(d.points)
    assert n >= 5 * 10  # dabs every brush radius along a 4-unit stroke
    # within the brush radius of the stroke, whose position is known to a pixel of the view
    pixel = abs(view.plots.vb.viewPixelSize()[1])
    assert np.all(np.abs(d.points[:, 1] - 1.0) <= 0.2 + pixel)
    assert d.points[:, 0].min() < -1.7 and d.points[:, 0].max() > 1.7
    assert view.plots.drawn_points.data.size == n
    # the drag drew instead of panning
    (x0, x1), _ = view.plots.view_box_limits()
    assert x0 < -3.9 and x1 > 3.9

    # save and load back through the engine; a file that is not points keeps the drawing
    assert d.save(str(tmp_path / "pts.csv"))
    d.clear()
    d.load(str(tmp_path / "pts.csv"))
    qtbot.waitUntil(lambda: len(d.points) == n, timeout=LONG)
    (tmp_path / "bad.csv").write_text("x,y\n1,2,3\n")
    d.load(str(tmp_path / "bad.csv"))
    qtbot.waitUntil(lambda: "Cannot load points" in d.status.text(), timeout=LONG)
    assert len(d.points) == n

    d.steps.setValue(60)
    qtbot.mouseClick(d.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "training" in window.jobs and window.jobs["training"].state == "running", timeout=LONG)
    assert view.training
    r = wait_landscape(qtbot, view, lambda r: r.model_name.startswith(f"drawn points ({n})"))
    assert r.data_hist is not None and r.truth_log_density is None
    # the run's refreshes arrive rendered by the engine for the view's spec: the GUI only draws
    engine_renders = view.engine_renders
    qtbot.waitUntil(lambda: view.engine_renders > engine_renders, timeout=LONG)
    assert view.numbers.nll is not None
    # no exact density: the histogram of the drawn data is shown beside the model
    qtbot.waitUntil(lambda: "histogram" in view.plots.truth_plot.titleLabel.text, timeout=LONG)
    window.host.stop("training")
    qtbot.waitUntil(lambda: not view.training, timeout=LONG)


def test_view_choices_persist(make_window, qtbot):
    w = make_window(True)
    view = landscape_tab(w)
    view.mode_box.setCurrentIndex(view.mode_box.findData("energy"))
    view.grid_box.setCurrentIndex(view.grid_box.findData(128))
    view.arrows_box.setChecked(True)
    view.draw.radius.setValue(0.5)
    w.close()
    w2 = make_window(True)
    v2 = w2.panels["landscape"]
    assert v2.mode_box.currentData() == "energy" and v2.grid_box.currentData() == 128
    assert v2.arrows_box.isChecked() and v2.draw.radius.value() == pytest.approx(0.5)
    r = wait_landscape(qtbot, landscape_tab(w2))
    assert r.landscape.grid.n == 128


def test_training_on_drawn_points_shows_in_the_training_tab(window, qtbot):
    view = landscape_tab(window)
    wait_landscape(qtbot, view)
    p = window.panels["training"]
    p.autosave_label.setText("Autosaved autosave-old-step0000500.pt in /somewhere")  # an earlier run's
    d = view.draw
    d.set_points(np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32))
    d.steps.setValue(40)
    qtbot.mouseClick(d.train_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: p.data.name == "drawn points (200)", timeout=LONG)
    assert "old" not in p.autosave_label.text()
    window.host.stop("training")
    qtbot.waitUntil(lambda: not view.training, timeout=LONG)
