"""Images in for the image tools: fitting, masks, initial fills, and masked sampling keeping the
observed pixels exactly."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from ebm_studio.core.energies import ConvEnergy
from ebm_studio.core.image_tools import (
    ImageInputError,
    check_mask,
    fit_image,
    initial_fill,
    inpaint_start,
    read_image_file,
    read_mask_file,
)
from ebm_studio.core.masks import MASK_PRESETS, MaskError, mask_preset
from ebm_studio.core.model import ModelState


def image_model(tuned: bool = True) -> ModelState:
    torch.manual_seed(0)
    return ModelState(
        energy=ConvEnergy(1, 28, 8), name="tiny", kind="images", event_shape=(1, 28, 28),
        value_range=(-1.0, 1.0), data_desc={"name": "digits"},
        sampler_defaults={"kind": "tuned", "step_size": 10.0, "noise": 0.005, "clip_grad": 0.03, "steps": 20}
        if tuned else {"kind": "langevin", "step_size": 1e-3})


def test_fit_image_crops_resizes_greys_and_says_so():
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:, :, 0] = 255
    x, notes = fit_image(rgb, (1, 28, 28))
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    text = " ".join(notes)
    assert "cropped 60×40" in text and "resized 40×40 to 28×28" in text and "grey" in text
    # pure red has luma 0.299: (0.299 · 2 − 1) in [-1, 1]
    assert torch.allclose(x, torch.full_like(x, 0.299 * 2 - 1), atol=1e-3)


def test_fit_image_keeps_a_fitting_image_exactly_and_inverts_paper_for_digits():
    a = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    x, notes = fit_image(a, (1, 28, 28))
    assert notes == []
    assert torch.equal(x[0], torch.from_numpy(a.astype(np.float32) / 127.5 - 1.0))
    paper = np.full((28, 28), 255, np.uint8)
    paper[10:18, 12:16] = 0  # a dark stroke on white paper
    x, notes = fit_image(paper, (1, 28, 28), background=-1.0)
    assert any("inverted" in n for n in notes)
    assert float(x[0, 0, 0]) == -1.0 and float(x[0, 12, 13]) == 1.0


def test_fit_image_refuses_what_it_cannot_take():
    with pytest.raises(ImageInputError, match="2-channel|must be"):
        fit_image(np.zeros((28, 28, 2), np.uint8), (1, 28, 28))
    with pytest.raises(ImageInputError, match="NaN"):
        fit_image(np.full((28, 28), np.nan, np.float32), (1, 28, 28))
    with pytest.raises(ImageInputError, match=r"\[-1, 1\]"):
        fit_image(np.full((28, 28), 5.0, np.float32), (1, 28, 28))


def test_read_image_file_messages(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    with pytest.raises(ImageInputError, match="not an image"):
        read_image_file(text)
    with pytest.raises(ImageInputError, match="no such file"):
        read_image_file(tmp_path / "missing.png")
    with pytest.raises(ImageInputError, match="not a regular file"):
        read_image_file(tmp_path)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe.png"
        os.mkfifo(fifo)
        with pytest.raises(ImageInputError, match="not a regular file"):
            read_image_file(fifo)  # must not block
    Image.fromarray(np.zeros((10, 12, 4), np.uint8), "RGBA").save(tmp_path / "a.png")
    assert read_image_file(tmp_path / "a.png").shape == (10, 12, 3)


@pytest.mark.parametrize("name", MASK_PRESETS)
def test_mask_presets(name):
    m = mask_preset(name, 28, fraction=0.3, seed=1)
    assert m.shape == (28, 28) and m.dtype == bool and m.any() and not m.all()
    if name == "lower-half":
        assert m[14:].all() and not m[:14].any()
    if name == "random":
        assert abs(m.mean() - 0.3) < 0.08


def test_mask_checks_and_files(tmp_path):
    with pytest.raises(MaskError):
        mask_preset("diagonal", 28)
    with pytest.raises(ImageInputError, match="empty"):
        check_mask(np.zeros((28, 28), bool), (28, 28))
    assert "plain sampling" in check_mask(np.ones((28, 28), bool), (28, 28))
    with pytest.raises(ImageInputError, match="28×28"):
        check_mask(np.ones((14, 14), bool), (28, 28))
    white = np.zeros((56, 56), np.uint8)
    white[28:] = 255  # white = fill in: the lower half
    Image.fromarray(white).save(tmp_path / "m.png")
    assert np.array_equal(read_mask_file(tmp_path / "m.png", 28), mask_preset("lower-half", 28))


@pytest.mark.parametrize("fill", ["noise", "blur", "mean"])
def test_initial_fill_keeps_observed_pixels(fill):
    g = torch.Generator().manual_seed(0)
    img = torch.rand(1, 28, 28, generator=g) * 2 - 1
    mask = mask_preset("centre-square", 28)
    x = initial_fill(img, mask, fill, 3, g)
    assert x.shape == (3, 1, 28, 28)
    assert torch.equal(x[:, :, ~torch.from_numpy(mask)], img[:, ~torch.from_numpy(mask)].expand(3, 1, -1))
    free = x[:, :, torch.from_numpy(mask)]
    assert free.min() >= -1 and free.max() <= 1
    if fill == "blur":  # the hole takes values of its surroundings, not noise
        assert float(free.std()) < float(img.std())


def test_masked_langevin_never_changes_observed_pixels():
    model = image_model()
    img = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(3)) * 2 - 1
    mask = mask_preset("lower-half", 28)
    x0, free = inpaint_start(model, img, mask, 4, "noise", seed=0)
    sampler = model.make_sampler(x0, seed=0, mask=free)
    start = sampler.x.clone()
    sampler.run(40)
    obs = ~torch.from_numpy(mask)
    assert torch.equal(sampler.x[:, :, obs], img[:, obs].expand(4, 1, -1))  # bit for bit
    assert not torch.equal(sampler.x[:, :, ~obs], start[:, :, ~obs])  # the hole did move


def test_inpaint_refuses_a_two_d_model():
    with pytest.raises(ImageInputError, match="2-D model"):
        inpaint_start(ModelState.demo(), torch.zeros(1, 28, 28), mask_preset("lower-half", 28), 2, "noise", 0)


def test_output_names_are_distinct_even_across_case():
    from pathlib import Path

    from ebm_studio.core.masks import output_names

    paths = [Path("a.png"), Path("a.jpg"), Path("photo.jpg"), Path("photo.JPG"), Path("b.png")]
    names = output_names(paths)
    assert len({n.lower() for n in names.values()}) == len(paths)
    assert names[Path("b.png")] == "b_translated.png"


def test_sixteen_bit_pictures_keep_their_scale(tmp_path):
    white = np.full((28, 28), 65535, np.uint16)
    Image.fromarray(white).save(tmp_path / "w16.png")
    a = read_image_file(tmp_path / "w16.png")
    assert a.dtype == np.uint8 and int(a.min()) == 255
    dim = np.full((28, 28), 65535 // 4, np.uint16)
    Image.fromarray(dim).save(tmp_path / "d16.png")
    assert abs(int(read_image_file(tmp_path / "d16.png").mean()) - 64) <= 1


def test_a_mask_picture_is_cropped_like_its_wide_image(tmp_path):
    mask = np.zeros((40, 80), np.uint8)
    mask[:, :20] = 255  # the left quarter, which the centre crop removes
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert not read_mask_file(tmp_path / "m.png", 28).any()
