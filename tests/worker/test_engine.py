"""The engine on its own thread: live settings reach the chains, frames are throttled copies,
errors arrive as messages, pause/step/stop work, and the thread always ends."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

import torch

from ebm_studio.core.checkpoint import energy_checkpoint, load_checkpoint, save_checkpoint, trainer_checkpoint
from ebm_studio.core.config import TrainConfig, preset_2d
from ebm_studio.core.energies import Energy, GaussianEnergy
from ebm_studio.core.metrics_log import MetricsLog
from ebm_studio.core.model import ModelState
from ebm_studio.core.training import Trainer
from ebm_studio.worker.api import (
    ComputeLandscape,
    DataInfo,
    DataLoaded,
    LandscapeNumbers,
    LandscapeResult,
    LoadData,
    ModelInfo,
    OpenCheckpoint,
    RecordingsChanged,
    RenderedView,
    ViewSpec,
)
from ebm_studio.worker.requests import JobRequest
from ebm_studio.worker.thread import EngineHost


@pytest.fixture
def host(qtbot):
    h = EngineHost("cpu")
    frames = []

    def take(slot):
        f = h.engine.slots[slot].frames.take()
        if f is not None:
            frames.append(f)

    h.engine.frame_ready.connect(take)
    h.frames = frames
    h.errors = []
    h.engine.error.connect(h.errors.append)
    h.states = []
    h.engine.job_state.connect(h.states.append)
    h.events = []
    h.engine.event.connect(h.events.append)
    h.start()
    yield h
    assert h.shutdown(3000), "engine thread did not stop"
    assert not h.thread.isRunning()


class LogEnergy(Energy):
    event_shape = (2,)

    def forward(self, x):
        return torch.log(x[:, 0])


def use_gaussian(host, qtbot):
    """Replace the demo with an isotropic unit Gaussian (variance T at temperature T)."""
    def swap(engine):
        engine.model = ModelState(
            energy=GaussianEnergy([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]),
            name="gaussian", kind="points", event_shape=(2,), value_range=(-4.0, 4.0),
        )
        engine.announce_model()

    with qtbot.waitSignal(host.engine.model_changed, timeout=5000):
        host.call.emit(swap)


def wait_frames(host, qtbot, n, pred=lambda f: True, timeout=10000):
    start = len(host.frames)
    qtbot.waitUntil(lambda: sum(pred(f) for f in host.frames[start:]) >= n, timeout=timeout)
    return [f for f in host.frames[start:] if pred(f)]


def test_live_settings_reach_the_chains(host, qtbot):
    use_gaussian(host, qtbot)
    host.update_live(temperature=1.0, step_size=0.1, sampler="langevin", steps_per_frame=20)
    host.run(JobRequest("sample", {"n_chains": 4000, "init": "noise"}, seed=1))
    # let the chains equilibrate at T = 1, then measure the spread
    wait_frames(host, qtbot, 1, lambda f: f.step >= 150)
    cool = wait_frames(host, qtbot, 1)[-1]
    host.update_live(temperature=4.0, step_size=0.3)
    changed = wait_frames(host, qtbot, 3, lambda f: f.settings["temperature"] == 4.0)
    first = changed[0]
    assert first.settings["step_size"] == 0.3
    # frames after the change report it within a few frames
    idx = host.frames.index(first)
    assert all(f.settings["temperature"] == 1.0 for f in host.frames[:idx])
    hot = wait_frames(host, qtbot, 1, lambda f: f.step >= first.step + 150)[-1]
    # the highlighted chains are a random subset: their spread estimates the variance
    var_cool = cool.points.var(0).mean()
    var_hot = hot.points.var(0).mean()
    assert 0.7 < var_cool < 1.3, var_cool
    assert 3.0 < var_hot < 5.5, var_hot


def test_frames_are_throttled_copies(host, qtbot):
    host.update_live(steps_per_frame=1000, sampler="langevin", step_size=0.01, temperature=1.0)
    host.run(JobRequest("sample", {"n_chains": 64, "init": "noise"}, seed=0))
    wait_frames(host, qtbot, 5)
    t0, n0 = time.perf_counter(), len(host.frames)
    qtbot.wait(1000)
    rate = (len(host.frames) - n0) / (time.perf_counter() - t0)
    assert rate <= 66, rate  # at most ~60 frames per second, however fast the sampler runs
    a, b = host.frames[-2], host.frames[-1]
    assert b.step > a.step
    before = b.points.copy()
    a.points[:] = 123.0  # mutating one frame must not touch another or the engine
    assert np.array_equal(b.points, before)
    assert not np.shares_memory(a.points, b.points)


def test_mailbox_never_builds_a_backlog(qtbot):
    h = EngineHost("cpu")
    signals = []
    h.engine.frame_ready.connect(lambda slot: signals.append(1))  # nobody takes the frames
    h.start()
    try:
        h.update_live(steps_per_frame=1000)
        h.run(JobRequest("sample", {"n_chains": 32}, seed=0))
        qtbot.waitUntil(lambda: h.engine.slots["viewer"].frames.dropped >= 5, timeout=10000)
        assert len(signals) == 1  # one notification while the slot stays full
    finally:
        assert h.shutdown(3000)


def test_pause_single_step_and_resume(host, qtbot):
    host.update_live(steps_per_frame=5)
    host.run(JobRequest("sample", {"n_chains": 16}, seed=0))
    wait_frames(host, qtbot, 2)
    host.pause(True)
    qtbot.waitUntil(lambda: bool(host.states) and host.states[-1].state == "paused", timeout=5000)
    qtbot.wait(100)
    step = host.frames[-1].step
    qtbot.wait(200)
    assert host.frames[-1].step == step  # paused: nothing moves
    host.single_step(1)
    qtbot.waitUntil(lambda: host.frames[-1].step == step + 1, timeout=5000)
    qtbot.wait(200)
    assert host.frames[-1].step == step + 1
    host.pause(False)
    wait_frames(host, qtbot, 1, lambda f: f.step > step + 5)


def test_errors_arrive_as_messages_and_the_engine_survives(host, qtbot):
    # the host's own slot runs queued in this thread, so wait on what it records, not on the signal
    host.run(JobRequest("sample", init_state=np.zeros((4, 3)), seed=0))
    qtbot.waitUntil(lambda: any("shape" in e for e in host.errors), timeout=5000)
    host.send(OpenCheckpoint("/nonexistent/model.pt"))
    qtbot.waitUntil(lambda: any("no such file" in e for e in host.errors), timeout=5000)
    # a NaN during sampling: an energy that is undefined for negative x₁
    def swap(engine):
        engine.model = ModelState(energy=LogEnergy(), name="log", kind="points", event_shape=(2,),
                                  value_range=(-4.0, 4.0))

    host.call.emit(swap)
    host.states.clear()
    host.update_live(step_size=0.01, sampler="langevin", steps_per_frame=50)
    host.run(JobRequest("sample", {"n_chains": 8}, seed=0))
    qtbot.waitUntil(lambda: any(s.state == "error" for s in host.states), timeout=10000)
    assert "non-finite" in host.errors[-1], host.errors
    use_gaussian(host, qtbot)
    host.run(JobRequest("sample", {"n_chains": 8}, seed=0))
    wait_frames(host, qtbot, 3)


def test_stop_and_max_steps(host, qtbot):
    host.update_live(steps_per_frame=1000)
    host.run(JobRequest("sample", {"n_chains": 8}, max_steps=50, seed=0))
    qtbot.waitUntil(lambda: bool(host.states) and host.states[-1].state == "finished", timeout=10000)
    assert host.frames[-1].step == 50
    host.run(JobRequest("sample", {"n_chains": 8}, seed=0))
    wait_frames(host, qtbot, 2)
    host.stop()
    qtbot.waitUntil(lambda: host.states[-1].state == "stopped", timeout=5000)


def test_same_seed_same_chains(host, qtbot):
    ends = []
    for _ in range(2):
        host.update_live(steps_per_frame=1000)
        host.run(JobRequest("sample", {"n_chains": 32}, max_steps=40, seed=7))
        qtbot.waitUntil(lambda: bool(host.states) and host.states[-1].state == "finished", timeout=10000)
        ends.append(host.frames[-1].points.copy())
        host.states.clear()
    np.testing.assert_array_equal(ends[0], ends[1])


def test_training_records_its_negatives_on_request(host, qtbot):
    from ebm_studio.core.config import preset_2d

    cfg = preset_2d("8gaussians")
    cfg.optim.batch_size, cfg.sampler.steps, cfg.sampler.buffer_size = 32, 3, 256
    cfg.model.hidden, cfg.steps, cfg.device = [16], 12, "cpu"
    host.run(JobRequest("train", {"config": cfg.to_dict(), "record_negatives": 3, "landscape_every": 0,
                                  "autosave_every": 0}, purpose="training"))
    qtbot.waitUntil(lambda: bool(host.states) and host.states[-1].state == "finished", timeout=30000)
    rec = host.engine.trajectories.active
    assert list(rec.steps) == [1, 4, 7, 10]  # every 3rd step from the first
    # the scrubber hears that the recordings changed (and asks for them itself)
    qtbot.waitUntil(lambda: any(isinstance(ev, RecordingsChanged) for ev in host.events), timeout=5000)
    last = rec.get(len(rec) - 1)
    assert last.state.shape == (32, 2) and np.isfinite(last.state).all()
    assert last.settings["lr"] == cfg.optim.lr


def test_cycles_are_collected_in_the_gui_thread_only(host, qtbot):
    """The engine allocates at every step; a collection there would destroy Qt objects from the
    wrong thread. While the engine runs, only the GUI thread collects."""
    import gc
    import threading

    assert not gc.isenabled()
    threads = []

    def note(phase, info):
        if phase == "start":
            threads.append(threading.get_ident())

    class Cycle:  # garbage that only the cyclic collector frees
        def __init__(self):
            self.me = self

    def make_cycles(engine):
        for _ in range(50_000):
            Cycle()

    gc.callbacks.append(note)
    try:
        host.run(JobRequest("sample", {"n_chains": 256}, seed=0))
        host.call.emit(make_cycles)  # crosses the allocation threshold in the engine thread
        for _ in range(5):
            qtbot.wait(300)
            [Cycle() for _ in range(2_000)]
    finally:
        gc.callbacks.remove(note)
    assert threads, "nothing was collected"
    assert set(threads) == {threading.get_ident()}


def test_automatic_collection_returns_after_the_engine(qtbot):
    import gc

    h = EngineHost("cpu")
    h.start()
    assert not gc.isenabled()
    assert h.shutdown(3000)
    assert gc.isenabled()


def test_a_ladder_run_shows_its_levels_and_records_where_each_begins(host, qtbot):
    from ebm_studio.core.ladder import LadderEnergy

    torch.manual_seed(0)

    def swap(engine):
        engine.model = ModelState(
            energy=LadderEnergy(1, [7, 14, 28], width=4), name="ladder", kind="images",
            event_shape=(1, 28, 28), value_range=(-1.0, 1.0),
            sampler_defaults={"kind": "tuned", "step_size": 1.0, "noise": 0.01, "level_steps": 2},
        )
        engine.announce_model()

    with qtbot.waitSignal(host.engine.model_changed, timeout=5000):
        host.call.emit(swap)
    host.update_live(steps_per_frame=1, sampler="tuned", step_size=1.0, noise=0.01)
    host.run(JobRequest("sample", {"n_chains": 6, "init": "noise"}, max_steps=8, seed=0, record=True))
    qtbot.waitUntil(lambda: bool(host.states) and host.states[-1].state == "finished", timeout=10000)
    last = host.frames[-1]
    assert [lv.name for lv in last.levels] == ["7×7", "14×14", "28×28"]
    assert [lv.state for lv in last.levels] == ["done", "done", "done"]  # the schedule is complete
    assert last.levels[0].grid is not None and last.grid.shape == host.frames[-1].grid.shape
    rec = host.engine.trajectories.active
    levels = [rec.get(i).settings.get("level") for i in range(len(rec))]
    # step 0 is the start; the ladder climbs after every 2 steps
    assert levels == ["7×7", "7×7", "7×7", "14×14", "14×14", "28×28", "28×28", "28×28", "28×28"]


@pytest.mark.parametrize("init", ["noise", "buffer"])
def test_the_engine_and_the_command_line_draw_bit_identical_chains(host, qtbot, tmp_path, init):
    """One core path: the same checkpoint, seed and settings give the same chains, bit for bit,
    from ``ebm-studio sample`` and from the engine's viewer job (start, clamp, buffer draws)."""
    from ebm_studio.cli import main
    from ebm_studio.core.bundled import example_checkpoints

    ckpt = str(example_checkpoints()["8gaussians"])
    out = tmp_path / "cli.npz"
    assert main(["sample", ckpt, "--n", "64", "--steps", "50", "--seed", "3", "--init", init,
                 "--sampler", "mala", "--temperature", "1.5", "--step-size", "0.02", "--out", str(out)]) == 0
    cli = np.load(out)["points"]

    with qtbot.waitSignal(host.engine.model_changed, timeout=10000):
        host.send(OpenCheckpoint(ckpt))
    host.update_live(sampler="mala", temperature=1.5, step_size=0.02, steps_per_frame=50)
    states = []
    with qtbot.waitSignal(host.engine.job_state, timeout=20000,
                          check_params_cb=lambda info: info.state == "finished"):
        host.run(JobRequest("sample", {"n_chains": 64, "init": init}, seed=3, max_steps=50))
    host.call.emit(lambda engine: states.append(engine.trajectories.active.get(-1)))
    qtbot.waitUntil(lambda: bool(states), timeout=5000)
    last = states[0]
    assert last.step == 50
    np.testing.assert_array_equal(last.state, cli)
    # the viewer's frames say MALA's mean acceptance in a field of its own
    frames = [f for f in host.frames if f.job_kind == "sample"]
    assert frames and 0.0 < frames[-1].mean_accept <= 1.0 and not frames[-1].metrics


def _plain(value, arrays: bool = False) -> bool:
    """Only plain data crosses to the GUI: no tensors, no modules, at any depth (numeric numpy
    arrays too, with ``arrays``)."""
    if isinstance(value, dict):
        return all(_plain(k, arrays) and _plain(v, arrays) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_plain(v, arrays) for v in value)
    if dataclasses.is_dataclass(value):
        return all(_plain(getattr(value, f.name), arrays) for f in dataclasses.fields(value))
    if arrays and isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    return isinstance(value, (str, int, float, bool, type(None)))


def _opened(host, qtbot, path) -> ModelInfo:
    with qtbot.waitSignal(host.engine.model_changed, timeout=10000,
                          check_params_cb=lambda info: info.path == str(path)) as blocker:
        host.send(OpenCheckpoint(str(path)))
    return blocker.args[0]


def test_an_opened_checkpoint_is_announced_with_everything_it_provides(host, qtbot, tmp_path):
    cfg = preset_2d("8gaussians")
    cfg.model.hidden = [16, 16]
    cfg.sampler.steps, cfg.sampler.buffer_size, cfg.optim.batch_size = 2, 64, 32
    trainer = Trainer(cfg)
    log = MetricsLog()
    for _ in range(3):
        log.append(trainer.step())
    path = save_checkpoint(trainer_checkpoint(trainer, log.to_dict()), tmp_path / "run.pt")
    ckpt = load_checkpoint(path)

    info = _opened(host, qtbot, path)
    assert isinstance(info, ModelInfo)
    assert (info.name, info.source, info.kind, info.event_shape, info.method) == \
        ("run", str(path), "points", (2,), "plain")
    assert info.value_range == tuple(ckpt.data["value_range"])
    assert info.sampler_defaults == ckpt.sampler  # the model's sampler settings travel with it
    assert info.step == 3 and info.has_buffer and info.has_data and info.resumable
    assert info.config == ckpt.config and TrainConfig.from_dict(info.config).to_dict() == cfg.to_dict()
    assert set(info.metrics) == set(ckpt.metrics) and info.metrics["step"] == [1.0, 2.0, 3.0]
    assert not info.training and not info.rolled_back and info.composition is None
    assert _plain(info)

    # a weights-only checkpoint announces nothing to resume and no run behind it
    weights = save_checkpoint(energy_checkpoint(GaussianEnergy([0.0, 0.0], np.eye(2))), tmp_path / "g.pt")
    info = _opened(host, qtbot, weights)
    assert (info.name, info.step, info.config, info.metrics) == ("g", 0, None, {})
    assert not (info.resumable or info.has_buffer or info.has_data or info.training)


def test_a_data_set_is_answered_with_its_description_or_why_it_failed(host, qtbot, tmp_path):
    missing = tmp_path / "missing.npy"
    host.send(LoadData("8gaussians", n_preview=10, request_id="toy"))
    host.send(LoadData(str(missing), request_id="file"))
    qtbot.waitUntil(lambda: sum(isinstance(ev, DataLoaded) for ev in host.events) == 2, timeout=10000)
    ok, failed = [ev for ev in host.events if isinstance(ev, DataLoaded)]
    assert ok.request_id == "toy" and not ok.error and ok.preview.shape == (10, 2)
    assert ok.data == DataInfo(name="8gaussians", kind="points", shape=(2,), count=None,
                               value_range=(-4.0, 4.0), source="builtin", normalisation="none")
    assert failed.request_id == "file" and failed.data is None and failed.preview is None
    assert "missing.npy" in failed.error


def test_a_landscape_arrives_as_frozen_plain_numpy_rendered_for_the_view(host, qtbot):
    spec = ViewSpec(temperature=1.0, mode="density")
    with qtbot.waitSignal(host.engine.landscape_ready, timeout=20000,
                          check_params_cb=lambda r: r.request_id == "test") as blocker:
        host.send(ComputeLandscape(n=64, grad_n=8, view=spec, request_id="test"))
    r = blocker.args[0]
    assert isinstance(r, LandscapeResult) and _plain(r, arrays=True)
    assert r.landscape.energy.shape == (64, 64) and r.arrows is not None
    assert r.model_name.startswith("8gaussians") and r.modes.shape == (8, 2) and len(r.mass_truth) == 8
    assert r.heldout_n > 0 and 0 < r.seconds_grid <= r.seconds
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.step = 1  # type: ignore[misc]
    # the engine rendered the view's picture at its spec; its numbers are plain floats and tuples
    v = r.view
    assert isinstance(v, RenderedView) and v.spec == spec and v.label == "p_T"
    n = v.numbers
    assert isinstance(n, LandscapeNumbers) and _plain(n)
    assert n.grid_n == 64 and n.box == ((-4.0, 4.0), (-4.0, 4.0)) and n.heldout_n == r.heldout_n
    # the demo model is its data's exact density: at the engine's temperature both NLLs agree
    assert r.temperature == n.temperature == 1.0 and r.nll == pytest.approx(n.nll, rel=1e-12)
    assert n.nll == pytest.approx(n.nll_truth, abs=1e-3) and n.kl_data_model < 1e-3


def test_the_viewer_runs_a_hundred_thousand_points_and_refuses_image_chains_beyond_memory(
        host, qtbot, monkeypatch):
    """2-D chains fill a device (frames carry a histogram and a few highlighted points); image
    chains, drawn as tiles, stop at 4,096 and at the free memory, refused before allocating."""
    from ebm_studio.worker.frames import HIGHLIGHT
    from ebm_studio.worker.jobs import sample_job

    host.update_live(steps_per_frame=1)
    host.run(JobRequest("sample", {"n_chains": 100_000, "init": "noise"}, seed=1))
    frame = wait_frames(host, qtbot, 1, lambda f: f.step >= 1, timeout=30000)[-1]
    assert frame.n_chains == 100_000 and len(frame.points) == HIGHLIGHT
    assert frame.hist.sum() > 0.9 * 100_000  # the histogram counts (nearly) every chain
    cpu = torch.device("cpu")
    monkeypatch.setattr(sample_job, "available_memory", lambda: 2 * 10**9)
    with pytest.raises(ValueError, match=r"4,000 chains of 3×64×64 need about 4\.4 GB.*1\.9 GB are free"):
        sample_job.check_chain_count(4000, (3, 64, 64), cpu)
    with pytest.raises(ValueError, match=r"image chains must lie in 1\.\.4,096, got 5,000"):
        sample_job.check_chain_count(5000, (1, 28, 28), cpu)
    with pytest.raises(ValueError, match=r"chains must lie in 1\.\.262,144"):
        sample_job.check_chain_count(300_000, (2,), cpu)
    sample_job.check_chain_count(64, (1, 28, 28), cpu)  # the viewer's usual run fits
    monkeypatch.setattr(sample_job, "available_memory", lambda: None)  # unknown: only the limits
    sample_job.check_chain_count(4096, (3, 64, 64), cpu)


def test_viewer_frames_say_what_the_network_computes_in(host, qtbot):
    from ebm_studio.core.energies import MLPEnergy
    from ebm_studio.core.precision import native_bf16
    from ebm_studio.core.samplers import make_sampler
    from ebm_studio.worker.jobs.sample_job import precision_name

    x = torch.zeros(4, 2)
    fast = "bf16" if native_bf16("cpu") else "fp32"
    assert precision_name(make_sampler("langevin", MLPEnergy(), x)) == fast
    assert precision_name(make_sampler("mala", MLPEnergy(), x)) == "fp32"
    assert precision_name(object()) == ""  # a level sampler: its levels decide
    host.run(JobRequest("sample", {"n_chains": 16, "init": "noise"}, seed=1))
    frame = wait_frames(host, qtbot, 1)[-1]
    assert frame.precision == "fp32"  # the demo's analytic energy always computes in float32
