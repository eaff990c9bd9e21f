"""The headless command line: train, sample, energy, info, and how it reports mistakes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ebm_studio import __version__
from ebm_studio.cli import main
from ebm_studio.core.checkpoint import energy_checkpoint, load_checkpoint, save_checkpoint
from ebm_studio.core.config import preset_2d
from ebm_studio.core.energies import eight_gaussians_energy


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ebm_studio", *args], capture_output=True, text=True,
                          timeout=120)


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0 and "train" in r.stdout and "sample" in r.stdout
    r = run("--version")
    assert r.returncode == 0 and __version__ in r.stdout


@pytest.fixture
def tiny_toml(tmp_path):
    cfg = preset_2d("8gaussians")
    cfg.optim.batch_size = 32
    cfg.sampler.steps = 5
    cfg.sampler.buffer_size = 256
    cfg.model.hidden = [32, 32]
    cfg.device = "cpu"
    path = tmp_path / "tiny.toml"
    cfg.save(path)
    return path


def test_train_info_resume(tmp_path, tiny_toml, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", "--config", str(tiny_toml), "--steps", "4", "--out", str(out)]) == 0
    assert load_checkpoint(out).step == 4
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mlp" in text and "8gaussians" in text and "resumable    yes" in text
    assert main(["train", "--resume", str(out), "--steps", "7", "--out", str(out), "--every", "2"]) == 0
    assert load_checkpoint(out).step == 7
    # not a terminal: one progress line per report (steps 6 and 7), no carriage returns
    err = capsys.readouterr().err
    assert "\r" not in err and "] 6/7 " in err and "] 7/7 " in err and "] 5/7 " not in err


def test_sample_npz_and_png(tmp_path, capsys):
    ckpt = save_checkpoint(energy_checkpoint(eight_gaussians_energy(), data={"value_range": [-4, 4]}),
                           tmp_path / "ring.pt")
    npz = tmp_path / "s.npz"
    assert main(["sample", str(ckpt), "--n", "200", "--steps", "300", "--sampler", "mala",
                 "--step-size", "0.02", "--out", str(npz)]) == 0
    with np.load(npz) as z:
        pts, e = z["points"], z["energies"]
    assert pts.shape == (200, 2) and e.shape == (200,)
    # MALA samples of the ring sit near radius 2
    assert abs(np.median(np.linalg.norm(pts, axis=1)) - 2.0) < 0.2
    png = tmp_path / "s.png"
    assert main(["sample", str(ckpt), "--n", "100", "--steps", "5", "--out", str(png)]) == 0
    assert Image.open(png).size[0] > 100


def test_energy_scores_in_input_order(tmp_path, capsys):
    ckpt = save_checkpoint(energy_checkpoint(eight_gaussians_energy()), tmp_path / "ring.pt")
    pts = np.array([[2.0, 0.0], [0.0, 0.0], [10.0, 10.0]])
    csv = tmp_path / "pts.csv"
    np.savetxt(csv, pts, delimiter=",", header="x,y", comments="")
    out = tmp_path / "e.npy"
    assert main(["energy", str(ckpt), str(csv), "--out", str(out)]) == 0
    e = np.load(out)
    expected = eight_gaussians_energy()(torch.tensor(pts, dtype=torch.float32))
    np.testing.assert_allclose(e, expected.numpy(), rtol=1e-5)
    assert "3 inputs" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,code,word",
    [
        (["info", "missing.pt"], 1, "no such file"),
        (["sample", "missing.pt", "--out", "x.npz"], 1, "no such file"),
        (["sample", "CKPT", "--n", "0", "--out", "x.npz"], 2, "--n"),
        (["sample", "CKPT", "--out", "x.gif"], 2, ".npz or .png"),
        (["sample", "CKPT", "--temperature", "-1", "--out", "x.npz"], 2, "positive"),
        (["energy", "CKPT", "nothing.csv", "--out", "e.npy"], 1, "nothing.csv"),
        (["train", "--data", "nonsense", "--out", "m.pt"], 1, "nonsense"),
        (["train", "--config", "missing.toml", "--out", "m.pt"], 1, "missing.toml"),
    ],
)
def test_user_mistakes_exit_cleanly(tmp_path, monkeypatch, capsys, args, code, word):
    monkeypatch.chdir(tmp_path)
    ckpt = save_checkpoint(energy_checkpoint(eight_gaussians_energy()), tmp_path / "ring.pt")
    args = [str(ckpt) if a == "CKPT" else a for a in args]
    if code == 2:
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code == 2
    else:
        assert main(args) == code
    err = capsys.readouterr().err
    assert word in err
    assert "Traceback" not in err


def test_bad_checkpoint_exit_code(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    r = run("info", str(bad))
    assert r.returncode == 1
    assert "bad.pt" in r.stderr and "Traceback" not in r.stderr


def test_ctrl_c_saves_a_resumable_checkpoint(tmp_path, tiny_toml):
    import signal
    import time

    out = tmp_path / "run.pt"
    proc = subprocess.Popen(
        # not a terminal: a progress line comes with each report, so report every step
        [sys.executable, "-m", "ebm_studio", "train", "--config", str(tiny_toml), "--steps", "100000",
         "--every", "1", "--out", str(out)],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        buf = ""
        deadline = time.time() + 90
        while "[" not in buf and time.time() < deadline:  # the progress bar has started
            buf += proc.stderr.read(1)
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "resumable checkpoint saved" in rest
    ckpt = load_checkpoint(out)
    assert ckpt.step >= 1 and ckpt.optimizer is not None and ckpt.rng is not None


def test_ctrl_c_ends_an_endless_sample_and_keeps_its_chains(tmp_path):
    import signal
    import time

    ckpt = save_checkpoint(energy_checkpoint(eight_gaussians_energy(), data={"value_range": [-4, 4]}),
                           tmp_path / "g.pt")
    out = tmp_path / "s.npz"
    proc = subprocess.Popen([sys.executable, "-m", "ebm_studio", "sample", str(ckpt), "--steps", str(10**12),
                             "--n", "16", "--out", str(out)], stderr=subprocess.PIPE, text=True)
    try:
        assert "Ctrl+C stops" in proc.stderr.readline()  # sampling has begun
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "Traceback" not in err
    assert np.load(out)["points"].shape == (16, 2)


def test_a_stop_request_ends_sampling_at_once_for_plain_and_level_samplers():
    from ebm_studio.cli import _run_sampler
    from ebm_studio.core.ladder import LadderEnergy
    from ebm_studio.core.level_sampler import make_level_sampler
    from ebm_studio.core.samplers import make_sampler

    class CtrlC:  # as the CLI's Ctrl+C flag: true once pressed
        def __bool__(self):
            return True

    level = make_level_sampler(LadderEnergy(1, [7, 14, 28], width=4), torch.rand(4, 1, 28, 28),
                               kind="langevin", level_steps=5)
    plain = make_sampler("langevin", eight_gaussians_energy(), torch.randn(4, 2))
    for sampler in (level, plain):
        sampler.should_stop = CtrlC().__bool__
        _run_sampler(sampler, 30, None, {}, CtrlC())
        assert sampler.steps_done == 0


def test_energy_of_images(tmp_path, capsys):
    torch.manual_seed(0)
    from ebm_studio.core.energies import ConvEnergy

    model = ConvEnergy(1, 16, 4)
    ckpt = save_checkpoint(energy_checkpoint(model), tmp_path / "conv.pt")
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("b.png", "a.png", "c.png"):
        Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(folder / name)
    out = tmp_path / "e.npy"
    assert main(["energy", str(ckpt), str(folder), "--out", str(out)]) == 0
    e_folder = np.load(out)
    assert e_folder.shape == (3,)
    assert main(["energy", str(ckpt), str(folder / "a.png"), "--out", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), e_folder[:1], rtol=1e-5)  # sorted order: a.png first
    arr = tmp_path / "x.npy"
    np.save(arr, rng.integers(0, 256, (4, 16, 16), dtype=np.uint8))
    assert main(["energy", str(ckpt), str(arr), "--out", str(out)]) == 0
    assert np.load(out).shape == (4,)
    pts = tmp_path / "p.csv"
    pts.write_text("0,0\n1,1\n")
    assert main(["energy", str(ckpt), str(pts), "--out", str(out)]) == 1
    assert "points" in capsys.readouterr().err


def test_unwritable_output_fails_before_training(tmp_path, tiny_toml, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "m.pt"  # a folder that cannot exist: its parent is a file
    t0 = __import__("time").perf_counter()
    assert main(["train", "--config", str(tiny_toml), "--steps", "100000", "--out", str(out)]) == 1
    assert __import__("time").perf_counter() - t0 < 30  # failed at once, did not train first
    err = capsys.readouterr().err
    assert "m.pt" in err and ".part" not in err and "Traceback" not in err


def test_a_text_file_is_not_a_checkpoint(tmp_path, capsys):
    p = tmp_path / "notes.pt"
    p.write_text("hello")
    assert main(["info", str(p)]) == 1
    err = capsys.readouterr().err
    assert "not a checkpoint file" in err and "KeyError" not in err


# --------------------------------------------------------------------------------------------
# never save a broken model over a good one
# --------------------------------------------------------------------------------------------


def _trained(tiny_toml, tmp_path, name="good.pt", steps="20"):
    path = tmp_path / name
    assert main(["train", "--config", str(tiny_toml), "--steps", steps, "--out", str(path)]) == 0
    return path


def test_a_diverging_resume_never_writes_inf_weights_over_a_good_checkpoint(tiny_toml, tmp_path, capsys):
    good = _trained(tiny_toml, tmp_path)
    before = good.read_bytes()
    code = main(["train", "--resume", str(good), "--out", str(good), "--steps", "41", "--lr", "3e38"])
    err = capsys.readouterr().err
    ckpt = load_checkpoint(good)
    assert all(torch.isfinite(v).all() for v in ckpt.state_dict.values())
    if code == 0:  # the run may have been rolled back before saving: then it says so
        assert "last good state" in err
    else:
        assert code == 1 and "diverged" in err
    assert good.read_bytes() == before or ckpt.step > 20


def test_divergence_at_the_first_step_leaves_the_file_alone_and_names_the_step_size(tiny_toml, tmp_path, capsys):
    good = _trained(tiny_toml, tmp_path)
    before = good.read_bytes()
    huge = tmp_path / "huge.toml"
    huge.write_text(tiny_toml.read_text().replace("step_size = 0.01", "step_size = 1e300"))
    assert "1e300" in huge.read_text() or "1e+300" in huge.read_text()
    assert main(["train", "--config", str(huge), "--out", str(good)]) == 1
    err = capsys.readouterr().err
    assert good.read_bytes() == before
    assert "step size" in err and "unchanged" in err and "was no earlier" not in err


def test_energy_refuses_nan_results_and_an_output_over_its_input(tmp_path, capsys):
    energy = eight_gaussians_energy()
    ckpt = energy_checkpoint(energy, {"name": "8gaussians"})
    ckpt.state_dict = {k: torch.full_like(v, float("nan")) for k, v in ckpt.state_dict.items()}
    bad = tmp_path / "bad.pt"
    save_checkpoint(ckpt, bad)
    pts = tmp_path / "p.npy"
    np.save(pts, np.zeros((4, 2), np.float32))
    assert main(["energy", str(bad), str(pts), "--out", str(tmp_path / "e.npy")]) == 1
    assert "NaN or infinite" in capsys.readouterr().err and not (tmp_path / "e.npy").exists()
    assert main(["info", str(bad)]) == 0
    assert "WARNING" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["energy", str(bad), str(pts), "--out", str(pts)])
    assert np.load(pts).shape == (4, 2)


def test_absurd_numbers_get_a_message_not_a_crash(tmp_path, capsys):
    for argv in (["train", "--threads", "100000", "--out", str(tmp_path / "x.pt")],
                 ["sample", "x.pt", "--n", "10000000000", "--out", str(tmp_path / "s.npz")]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "must lie in" in capsys.readouterr().err


def test_a_checkpoint_with_a_negative_step_is_refused(tmp_path):
    from ebm_studio.core.checkpoint import CheckpointError

    ckpt = energy_checkpoint(eight_gaussians_energy(), {"name": "8gaussians"})
    ckpt.step = -5
    path = tmp_path / "neg.pt"
    save_checkpoint(ckpt, path)
    with pytest.raises(CheckpointError, match="'step'"):
        load_checkpoint(path)


def test_train_by_method_for_a_time_budget_and_refuse_a_changed_method(tmp_path, tiny_toml, capsys):
    cfg_path = tmp_path / "drl.toml"
    from ebm_studio.core.config import preset_drl

    cfg = preset_drl("8gaussians")
    cfg.device, cfg.optim.batch_size, cfg.method.level_steps = "cpu", 32, 2
    cfg.save(cfg_path)
    out = tmp_path / "drl.pt"
    # --seconds stops a long run early and still saves it
    assert main(["train", "--config", str(cfg_path), "--steps", "100000", "--seconds", "1",
                 "--out", str(out)]) == 0
    ckpt = load_checkpoint(out)
    assert 0 < ckpt.step < 100000 and ckpt.model["kind"] == "recovery"
    assert main(["sample", str(out), "--n", "8", "--out", str(tmp_path / "s.npz")]) == 0
    capsys.readouterr()
    # a ladder needs images: a clear message, no traceback, nothing written
    assert main(["train", "--data", "8gaussians", "--method", "multigrid", "--steps", "2",
                 "--out", str(tmp_path / "x.pt")]) != 0
    assert "image data" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
    # a resumed run keeps its method
    plain = tmp_path / "plain.pt"
    assert main(["train", "--config", str(tiny_toml), "--steps", "2", "--out", str(plain)]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(plain), "--method", "drl", "--steps", "4",
                 "--out", str(plain)]) != 0
    assert "cannot continue as 'drl'" in capsys.readouterr().err
    assert load_checkpoint(plain).step == 2
