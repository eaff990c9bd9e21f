"""Hostile checkpoints: valid torch files whose fields are nonsense get one message naming the
field, from every entry point, and never a traceback or a huge allocation."""

from __future__ import annotations

import pytest
import torch

from ebm_studio.cli import main
from ebm_studio.core.checkpoint import CheckpointError, energy_checkpoint, load_checkpoint, save_checkpoint
from ebm_studio.core.energies import MLPEnergy


def _good_payload(tmp_path):
    ckpt = energy_checkpoint(MLPEnergy(2, [8]), {"name": "8gaussians", "value_range": [-4.0, 4.0]},
                             {"kind": "langevin", "step_size": 0.01, "steps": 5})
    ckpt.buffer = torch.zeros(16, 2)
    path = save_checkpoint(ckpt, tmp_path / "good.pt")
    return torch.load(path, weights_only=True)


HOSTILE = {
    "data as a list": ("data", [1, 2, 3], "'data'"),
    "sampler as a string": ("sampler", "langevin", "'sampler'"),
    "metrics as a string": ("metrics", "loss", "'metrics'"),
    "step infinite": ("step", float("inf"), "'step'"),
    "step a list": ("step", [1], "'step'"),
    "buffer a string": ("buffer", "x", "'buffer'"),
    "buffer empty": ("buffer", torch.zeros(0, 2), "'buffer'"),
    "buffer NaN": ("buffer", torch.full((4, 2), float("nan")), "'buffer'"),
    "buffer of a billion rows": ("buffer", torch.zeros(1, 2).expand(10**9, 2), "GB"),
    "buffer of the wrong shape": ("buffer", torch.zeros(4, 3), "'buffer'"),
    "rng not a state": ("rng", "seed", "'rng'"),
    "ref_sigma a string": ("sampler", {"kind": "langevin", "ref_sigma": "wide"}, "'sampler.ref_sigma'"),
    "steps huge": ("sampler", {"kind": "langevin", "steps": 10**12}, "'sampler.steps'"),
    "unknown sampler": ("sampler", {"kind": "gibbs"}, "'sampler.kind'"),
    "value range reversed": ("data", {"value_range": [4, -4]}, "'data.value_range'"),
    "metrics of strings": ("metrics", {"loss": ["a"]}, "'metrics.loss'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_each_bad_field_is_named(tmp_path, case):
    key, value, named = HOSTILE[case]
    raw = _good_payload(tmp_path)
    raw[key] = value
    path = tmp_path / "bad.pt"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=named.replace("(", r"\(")):
        load_checkpoint(path)


@pytest.mark.parametrize("command", [["info"], ["sample", "--out", "OUT.npz"], ["quality"],
                                     ["energy", "PTS", "--out", "E.npy"]])
def test_every_command_reports_a_bad_checkpoint_in_one_line(tmp_path, capsys, command):
    raw = _good_payload(tmp_path)
    raw["sampler"] = "langevin"
    bad = tmp_path / "bad.pt"
    torch.save(raw, bad)
    pts = tmp_path / "p.npy"
    import numpy as np

    np.save(pts, np.zeros((3, 2), np.float32))
    argv = [command[0], str(bad), *[a.replace("OUT", str(tmp_path / "o")).replace("PTS", str(pts))
                                     .replace("E.npy", str(tmp_path / "e.npy")) for a in command[1:]]]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "'sampler'" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_truncated_checkpoint_is_named_in_one_whole_sentence(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(energy_checkpoint(MLPEnergy(2, [64, 64]), {"name": "8gaussians"}), good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(cut)
    text = str(info.value)
    assert "cut.pt" in text and "truncated or damaged" in text
    assert "If you are seeing" not in text and not text.endswith(("a high", " "))
