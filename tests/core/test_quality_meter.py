"""The sample-quality meters separate real data from noise, catch copies, and measure 2-D models
against the exact density."""

from __future__ import annotations

import torch

from ebm_studio.core.datasets import toy
from ebm_studio.core.image_data import load_digits, load_textures
from ebm_studio.core.model import ModelState
from ebm_studio.core.quality import (
    digit_labels,
    digit_quality,
    meter_kind,
    points_quality,
    references,
    texture_quality,
)


def test_digit_meter_reference_points_are_far_apart():
    refs = references("digits", load_digits(), n=256)
    real = refs["held-out real digits"].figures
    noise = refs["uniform noise"].figures
    mean = refs["mean digit"].figures
    assert real["confident"] >= 0.85 and real["classes"] == 10 and real["is_like"] >= 7.5
    assert noise["confident"] <= 0.05 and noise["is_like"] < 1.5
    assert mean["classes"] <= 1 and mean["is_like"] < 1.5
    # held-out digits are new digits, not copies: clearly away from the nearest training digit
    assert real["nearest_train"] > 0.25


def test_digit_meter_catches_copies_and_knows_the_labels():
    ds = load_digits()
    train = ds.items(torch.from_numpy(ds.train_indices[:256]))
    assert digit_quality(train).figures["nearest_train"] < 1e-3
    idx = torch.from_numpy(ds.heldout_indices)
    labels, conf = digit_labels(ds.items(idx))
    assert (labels == ds.labels[idx].numpy()).mean() >= 0.95


def test_texture_meter_orders_real_noise_and_flat():
    ds = load_textures("brick", size=32)
    refs = references("textures", ds, n=128)
    real, noise, flat = (refs[k].figures for k in ("held-out real crops", "uniform noise", "mean crop"))
    for key in ("histogram_tv", "spectrum_rms"):
        assert real[key] < noise[key] and real[key] < flat[key]
    assert real["histogram_tv"] < 0.15
    q = texture_quality(ds.heldout(64), ds.heldout(64, seed=7))
    assert q.figures["spectrum_rms"] < 3 * max(real["spectrum_rms"], 0.05)


def test_points_meter_of_the_exact_density_is_zero():
    model = ModelState.demo()  # the analytic eight-Gaussian mixture: the truth itself
    q = points_quality(model.energy, toy("8gaussians"))
    assert abs(q.figures["nll_gap"]) < 0.01
    assert q.figures["mode_mass_error"] < 0.01


def test_meter_kind():
    assert meter_kind({"name": "digits"}, (1, 28, 28)) == "digits"
    assert meter_kind({"name": "texture:brick"}, (1, 32, 32)) == "textures"
    assert meter_kind({"name": "8gaussians"}, (2,)) == "points"
    assert meter_kind({"name": "digits"}, (1, 32, 32)) is None
    assert meter_kind({"name": "mine.csv", "source": "/x/mine.csv"}, (2,)) is None
