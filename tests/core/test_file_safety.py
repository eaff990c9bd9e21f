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
