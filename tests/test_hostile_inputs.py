"""Hostile configurations and data through the command line: every one ends in a one-line
message naming what is wrong (exit 1 or 2), never a traceback, a hang or a huge allocation.

(Hostile checkpoints have their own suite in ``core/test_hostile_checkpoints.py``.)
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from ebm_studio.cli import main

CONFIGS = {
    "learning rate beyond float range": ("[optim]\nlr = 1e39\n", "lr"),
    "learning rate zero": ("[optim]\nlr = 0\n", "optim.lr"),
    "batch beyond int64": (f"[optim]\nbatch_size = {2**70}\n", "optim.batch_size"),
    "batch of ten billion": ("[optim]\nbatch_size = 10000000000\n", "batch_size"),
    "buffer of ten billion": ("[sampler]\nbuffer_size = 10000000000\n", "buffer_size"),
    "layers of a hundred million": ("[model]\nhidden = [100000000, 100000000]\n", "hidden"),
    "seed negative": ("seed = -1\n", "seed"),
    "steps as text": ("[sampler]\nsteps = 'many'\n", "sampler.steps"),
    "hidden as text": ("[model]\nhidden = 'big'\n", "model.hidden"),
    "unknown table": ("[speed]\nfast = true\n", "speed"),
    "nested arrays": ("a = " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    "not TOML": ("[optim\n", "TOML"),
    "binary garbage": ("\x00\x01\x02\xff", "TOML|read"),
    "unknown sampler": ("[sampler]\nkind = 'gibbs'\n", "sampler.kind"),
    "NaN step size": ("[sampler]\nstep_size = nan\n", "step_size"),
    "unknown data set": ("[data]\nname = 'nowhere'\n", "nowhere"),
}


@pytest.mark.parametrize("case", list(CONFIGS))
def test_hostile_configurations_get_a_message(tmp_path, capsys, case):
    text, word = CONFIGS[case]
    path = tmp_path / "hostile.toml"
    path.write_bytes(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    try:
        code = main(["train", "--config", str(path), "--steps", "1", "--out", str(tmp_path / "o.pt")])
    except SystemExit as exc:  # argparse-style usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code in (1, 2), err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    assert any(w in err for w in word.split("|")), err
    assert not (tmp_path / "o.pt").exists()


def _npy_header_only(shape) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue()


DATA = {
    "typo in the first row": ("t.csv", b"1.0,2.O\n3,4\n5,6\n7,8\n", "line 1"),
    "typo in a later row": ("t.csv", b"x,y\n1,2\n3,4x\n5,6\n", "line 3"),
    "three columns": ("t.csv", b"1,2,3\n4,5,6\n7,8,9\n", "column"),
    "one point": ("t.csv", b"1,2\n", "at least 2"),
    "empty file": ("t.csv", b"", "t.csv"),
    "NaN values": ("t.csv", b"1,2\nnan,4\n5,6\n", "finite|NaN"),
    "values near 1e30": ("t.csv", b"1e30,2\n3,1e30\n5,6\n", "reach 1e+30"),
    "binary garbage": ("t.csv", bytes(range(256)) * 4, "t.csv"),
    "npy of one dimension": ("p.npy", None, "shape|points"),
    "npy declaring 1e11 rows": ("p.npy", _npy_header_only((10**11, 2)), "p.npy"),
    "pickled npy": ("p.npy", "pickle", "p.npy"),
}


@pytest.mark.parametrize("case", list(DATA))
def test_hostile_data_gets_a_message(tmp_path, capsys, case):
    name, blob, word = DATA[case]
    path = tmp_path / name
    if blob is None:
        np.save(path, np.arange(10, dtype=np.float32))
    elif blob == "pickle":
        np.save(path, np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True)
    else:
        path.write_bytes(blob)
    code = main(["train", "--data", str(path), "--steps", "1", "--out", str(tmp_path / "o.pt")])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    assert any(w in err for w in word.split("|")), err
    # the energy of the same file: the same message, and nothing written
    code = main(["energy", _checkpoint(tmp_path), str(path), "--out", str(tmp_path / "e.npy")])
    err2 = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err2, err2
    assert not (tmp_path / "e.npy").exists()


def _checkpoint(tmp_path) -> str:
    from ebm_studio.core.checkpoint import energy_checkpoint, save_checkpoint
    from ebm_studio.core.energies import eight_gaussians_energy

    path = tmp_path / "g.pt"
    if not path.exists():
        save_checkpoint(energy_checkpoint(eight_gaussians_energy(), {"value_range": [-4, 4]}), path)
    return str(path)


def test_a_model_beyond_the_free_memory_is_refused_before_allocating(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("ebm_studio.core.training.available_memory", lambda: 8 * 2**30)  # any machine
    path = tmp_path / "wide.toml"
    path.write_text("[model]\nhidden = [65536, 65536, 65536]\n")
    code = main(["train", "--config", str(path), "--steps", "1", "--out", str(tmp_path / "o.pt")])
    err = capsys.readouterr().err
    assert code == 1 and "GB of memory" in err and "Traceback" not in err, err
