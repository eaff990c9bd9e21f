"""``ebm-studio sample ... --trajectory OUT.npz --every K``: the headless recording of a run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ebm_studio.cli import main
from ebm_studio.core.checkpoint import energy_checkpoint, save_checkpoint
from ebm_studio.core.energies import ConvEnergy, eight_gaussians_energy
from ebm_studio.core.trajectory import TrajectoryRecorder


@pytest.fixture
def points_ckpt(tmp_path):
    path = tmp_path / "ring.pt"
    save_checkpoint(energy_checkpoint(
        eight_gaussians_energy(),
        {"name": "8gaussians", "kind": "points", "shape": [2], "value_range": [-4, 4]},
        {"kind": "langevin", "step_size": 0.01, "temperature": 1.0},
    ), path)
    return path


def test_trajectory_every_k_steps_round_trips(points_ckpt, tmp_path, capsys):
    out, traj = tmp_path / "samples.npz", tmp_path / "run.npz"
    rc = main(["sample", str(points_ckpt), "--n", "64", "--steps", "30", "--seed", "3",
               "--out", str(out), "--trajectory", str(traj), "--every", "5"])
    assert rc == 0
    assert "trajectory (7 steps)" in capsys.readouterr().err
    with np.load(traj) as z, np.load(out) as s:
        np.testing.assert_array_equal(z["steps"], [0, 5, 10, 15, 20, 25, 30])
        assert z["states"].shape == (7, 64, 2) and z["states"].dtype == np.float32
        assert z["energies"].shape == (7, 64)
        # the last recorded state is the sample the command wrote, bit for bit
        np.testing.assert_array_equal(z["states"][-1], s["points"])
        np.testing.assert_allclose(z["energies"][-1], s["energies"], rtol=1e-6)
        meta = json.loads(str(z["metadata"]))
        assert meta["every"] == 5 and meta["kind"] == "points"
        settings = json.loads(str(z["settings_json"]))[int(z["settings_index"][-1])]
        assert settings["sampler"] == "langevin" and settings["step_size"] == 0.01
        assert np.isfinite(z["energies"]).all()  # step 0 too
    rec = TrajectoryRecorder.load_npz(traj)
    assert list(rec.steps) == [0, 5, 10, 15, 20, 25, 30] and rec.every == 5
    # the same seed gives the same run
    traj2 = tmp_path / "again.npz"
    assert main(["sample", str(points_ckpt), "--n", "64", "--steps", "30", "--seed", "3",
                 "--out", str(tmp_path / "s2.npz"), "--trajectory", str(traj2),
                 "--every", "5"]) == 0
    with np.load(traj) as a, np.load(traj2) as b:
        np.testing.assert_array_equal(a["states"], b["states"])


def test_image_trajectory_is_stored_as_uint8(tmp_path):
    ckpt = tmp_path / "conv.pt"
    save_checkpoint(energy_checkpoint(
        ConvEnergy(1, 16, 4),
        {"name": "digits", "kind": "images", "shape": [1, 16, 16], "value_range": [-1, 1]},
        {"kind": "tuned", "step_size": 0.5, "noise": 0.01},
    ), ckpt)
    traj = tmp_path / "img.npz"
    assert main(["sample", str(ckpt), "--n", "4", "--steps", "5", "--out",
                 str(tmp_path / "grid.png"), "--trajectory", str(traj), "--every", "2"]) == 0
    with np.load(traj) as z:
        np.testing.assert_array_equal(z["steps"], [0, 2, 4])
        assert z["states"].shape == (3, 4, 1, 16, 16) and z["states"].dtype == np.uint8


def test_bad_trajectory_arguments_are_reported(points_ckpt, tmp_path, capsys):
    out = str(tmp_path / "s.npz")
    with pytest.raises(SystemExit) as exc:
        main(["sample", str(points_ckpt), "--out", out, "--trajectory", str(tmp_path / "t.txt")])
    assert exc.value.code == 2
    assert "--trajectory must end in .npz" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["sample", str(points_ckpt), "--out", out, "--trajectory", str(tmp_path / "t.npz"),
              "--every", "0"])
    assert exc.value.code == 2
    missing = tmp_path / "no" / "such" / "t.npz"
    rc = main(["sample", str(points_ckpt), "--n", "8", "--steps", "3", "--out", out,
               "--trajectory", str(missing)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "ebm-studio sample:" in err and "does not exist" in err and "Traceback" not in err
    assert not missing.parent.exists()
    assert not (tmp_path / "s.npz").exists()  # it failed before sampling: nothing half done
