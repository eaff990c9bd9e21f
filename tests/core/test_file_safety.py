"""Saving keeps what was there: a full disk is a message, permissions and links survive a rewrite,
and temporary files of killed writers are cleaned up."""

from __future__ import annotations

import os
import time

import pytest
import torch

from ebm_studio.core.checkpoint import CheckpointError, energy_checkpoint, load_checkpoint, save_checkpoint
from ebm_studio.core.energies import MLPEnergy
from ebm_studio.core.fileio import remove_stale_parts


def _ckpt():
    return energy_checkpoint(MLPEnergy(2, [4]), {"name": "8gaussians"})


def test_a_full_disk_is_a_message_and_the_earlier_file_survives(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(_ckpt(), path)
    before = path.read_bytes()

    def full(*_a, **_k):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match="disk full.*unchanged"):
        save_checkpoint(_ckpt(), path)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.part"))


def test_a_rewrite_keeps_permissions_and_symbolic_links(tmp_path):
    real = tmp_path / "real.pt"
    save_checkpoint(_ckpt(), real)
    os.chmod(real, 0o664)
    link = tmp_path / "link.pt"
    link.symlink_to(real)
    save_checkpoint(_ckpt(), link)
    assert link.is_symlink() and load_checkpoint(link).model["kind"] == "mlp"
    assert (real.stat().st_mode & 0o777) == 0o664


def test_stale_parts_are_removed_fresh_ones_kept(tmp_path):
    old = tmp_path / ".m.pt.abc.part"
    new = tmp_path / ".m.pt.def.part"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert remove_stale_parts(tmp_path) == 1
    assert not old.exists() and new.exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="kills forked writers")
def test_fifty_kills_during_saves_and_autosaves_never_lose_the_previous_file(tmp_path):
    """A writer process saves a checkpoint and autosaves in a loop and is killed (SIGKILL) at a
    random moment, 50 times: the checkpoint and every autosave always load, and the next start
    leaves no temporary file behind."""
    import random
    import signal

    from ebm_studio.worker.autosave import Autosaver

    rng = random.Random(0)
    target = tmp_path / "model.pt"
    folder = tmp_path / "autosave"
    folder.mkdir()
    ckpts = [energy_checkpoint(MLPEnergy(2, [64, 64]), {"name": "8gaussians"}) for _ in range(2)]
    for i, c in enumerate(ckpts):
        c.step = i + 1
    save_checkpoint(ckpts[0], target)
    parts_seen = 0
    for kill in range(50):
        pid = os.fork()
        if pid == 0:  # the writer: never returns into the test runner
            try:
                saver = Autosaver(folder)
                saver.start_run("run")
                n = 0
                while True:
                    save_checkpoint(ckpts[n % 2], target)
                    saver.save(ckpts[n % 2], n % 7)
                    n += 1
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.002, 0.05))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        parts_seen += len(list(tmp_path.glob(".*.part")) + list(folder.glob(".*.part")))
        assert load_checkpoint(target).step in (1, 2), f"kill {kill}"
        for f in folder.glob("autosave-*.pt"):
            assert load_checkpoint(f).step in (1, 2), f"kill {kill}: {f.name}"
    print(f"{parts_seen} of 50 kills left a temporary file")
    assert parts_seen > 0, "no kill landed inside a save: the test did not test anything"
    # the next start: an autosaver on the folder, a save of the checkpoint
    Autosaver(folder)
    save_checkpoint(ckpts[0], target)
    assert not list(folder.glob(".*.part")) and not list(tmp_path.glob(".*.part"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_pipes_are_refused_by_every_loader_instead_of_blocking(tmp_path):
    from ebm_studio.core.config import ConfigError, TrainConfig
    from ebm_studio.core.datasets import DatasetError, load_dataset
    from ebm_studio.core.image_tools import ImageInputError, read_image_file
    from ebm_studio.core.trajectory import TrajectoryFormatError, TrajectoryRecorder

    loaders = {
        "m.pt": (load_checkpoint, CheckpointError),
        "t.npz": (TrajectoryRecorder.load_npz, TrajectoryFormatError),
        "c.toml": (TrainConfig.load, ConfigError),
        "p.npy": (lambda p: load_dataset(str(p)), DatasetError),
        "p.csv": (lambda p: load_dataset(str(p)), DatasetError),
        "i.png": (read_image_file, ImageInputError),
    }
    for name, (load, error) in loaders.items():
        fifo = tmp_path / name
        os.mkfifo(fifo)
        with pytest.raises(error, match="regular file"):
            load(fifo)
