"""``ebm-studio inpaint``, ``translate`` and ``quality``: results, exactness, and messages."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ebm_studio.cli import main
from ebm_studio.core.checkpoint import energy_checkpoint, save_checkpoint
from ebm_studio.core.energies import eight_gaussians_energy
from ebm_studio.core.masks import mask_preset


@pytest.fixture(scope="module")
def ring_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "ring.pt"
    save_checkpoint(energy_checkpoint(eight_gaussians_energy(), {"name": "8gaussians"}), path)
    return path


def test_inpaint_keeps_the_observed_pixels_exactly(tiny_digits, tmp_path):
    out = tmp_path / "out.npz"
    assert main(["inpaint", str(tiny_digits), "--image", "heldout:3", "--mask-preset", "lower-half",
                 "--n", "3", "--steps", "15", "--out", str(out)]) == 0
    z = np.load(out)
    mask = mask_preset("lower-half", 28)
    assert z["proposals"].shape == (3, 1, 28, 28) and z["energies"].shape == (3,)
    assert np.array_equal(z["mask"], mask)
    observed = z["proposals"][:, :, ~mask]
    assert np.array_equal(observed, np.broadcast_to(z["image"][:, ~mask], observed.shape))
    assert len(z["energy_trace"]) == 16
    assert np.allclose(z["mean"], z["proposals"].mean(0))


def test_inpaint_with_a_mask_picture_and_png_output(tiny_digits, tmp_path):
    Image.fromarray(np.where(mask_preset("left-half", 28), 255, 0).astype(np.uint8)).save(tmp_path / "m.png")
    src = np.zeros((40, 40), np.uint8)
    src[8:32, 18:22] = 255
    Image.fromarray(src).save(tmp_path / "one.png")
    out = tmp_path / "out.png"
    assert main(["inpaint", str(tiny_digits), "--image", str(tmp_path / "one.png"), "--mask",
                 str(tmp_path / "m.png"), "--n", "2", "--steps", "3", "--fill", "blur", "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.size[0] > 2 * im.size[1]  # masked input + two proposals side by side


def test_inpaint_messages(tiny_digits, ring_ckpt, tmp_path, capsys):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("hello")
    cases = [
        (["--image", "heldout:0", "--mask", str(tmp_path / "empty.png")], "mask is empty"),
        (["--image", str(tmp_path / "text.png"), "--mask-preset", "lower-half"], "not an image"),
        (["--image", "heldout:99999", "--mask-preset", "lower-half"], "held-out items"),
    ]
    for extra, message in cases:
        assert main(["inpaint", str(tiny_digits), *extra, "--steps", "1", "--out", str(tmp_path / "o.npz")]) == 1
        assert message in capsys.readouterr().err
    assert main(["inpaint", str(ring_ckpt), "--image", str(tmp_path / "empty.png"), "--mask-preset",
                 "lower-half", "--out", str(tmp_path / "o.npz")]) == 1
    assert "2-D model" in capsys.readouterr().err
    assert main(["inpaint", str(tiny_digits), "--image", "heldout:0", "--mask-preset", "lower-half",
                 "--steps", "1", "--n", "1", "--out", str(tmp_path / "o.npz")]) == 0
    full = np.full((28, 28), 255, np.uint8)
    Image.fromarray(full).save(tmp_path / "full.png")
    assert main(["inpaint", str(tiny_digits), "--image", "heldout:0", "--mask", str(tmp_path / "full.png"),
                 "--steps", "1", "--n", "1", "--out", str(tmp_path / "o.npz")]) == 0
    assert "plain sampling" in capsys.readouterr().err


def test_translate_zero_steps_is_the_source_and_distance_grows(tiny_digits, tmp_path):
    out = tmp_path / "t.npz"
    assert main(["translate", str(tiny_digits), "--image", "heldout:1", "--steps", "0", "--n", "2",
                 "--out", str(out)]) == 0
    z = np.load(out)
    assert np.array_equal(z["results"], np.broadcast_to(z["source"], z["results"].shape))
    dists = []
    for steps in (5, 40):
        assert main(["translate", str(tiny_digits), "--image", "heldout:1", "--steps", str(steps),
                     "--n", "4", "--out", str(out), "--trajectory", str(tmp_path / "traj.npz")]) == 0
        dists.append(float(np.load(out)["distance"].mean()))
    assert dists[1] > dists[0] > 0
    traj = np.load(tmp_path / "traj.npz", allow_pickle=False)
    assert len(traj.files) > 0


def test_translate_a_folder_skips_bad_files(tiny_digits, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((30, 30), 200, np.uint8)).save(src / "a.png")
    (src / "b.png").write_text("broken")
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(src / "c.jpg")
    out_dir = tmp_path / "out"
    assert main(["translate", str(tiny_digits), "--folder", str(src), "--out-dir", str(out_dir),
                 "--steps", "2", "--n", "1"]) == 0
    err = capsys.readouterr().err
    assert "skipped b.png" in err and "translated 2 of 3" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["a_translated.png", "c_translated.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["translate", str(tiny_digits), "--folder", str(empty), "--out-dir", str(out_dir)]) == 1
    assert "holds no pictures" in capsys.readouterr().err


def test_quality_command(tiny_digits, ring_ckpt, capsys):
    assert main(["quality", str(tiny_digits), "--n", "32", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    for word in ("model", "held-out real digits", "uniform noise", "mean digit", "confident", "nearest_train"):
        assert word in out
    assert main(["quality", str(ring_ckpt)]) == 0
    assert "nll_gap" in capsys.readouterr().out


def test_quality_store_writes_the_report_and_keeps_a_compact_buffer_compact(tiny_digits, tmp_path, capsys):
    import shutil

    import torch

    from ebm_studio.core.checkpoint import compact, load_checkpoint

    path = tmp_path / "c.pt"
    save_checkpoint(compact(load_checkpoint(tiny_digits)), path)
    assert main(["quality", str(path), "--n", "16", "--steps", "1", "--store", "--no-references"]) == 0
    raw = torch.load(path, weights_only=True)
    assert raw["buffer"].dtype == torch.uint8
    assert raw["report"]["quality"]["meter"] == "digits" and raw["report"]["quality"]["n"] == 16
    assert main(["info", str(path)]) == 0
    assert "quality      meter digits, n 16, confident" in capsys.readouterr().out
    full = tmp_path / "full.pt"
    shutil.copy(tiny_digits, full)
    assert main(["quality", str(full), "--n", "8", "--steps", "1", "--store", "--no-references"]) == 0
    assert torch.load(full, weights_only=True)["buffer"].dtype == torch.float32
