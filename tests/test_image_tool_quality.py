"""What the image tools deliver with the bundled digits model, measured by the digit meter.

Inpainting: on held-out digits with half hidden, the filled half is closer to the truth than the
mean digit's half, and the meter's classifier recovers the true label. Translation: sketches as a
user draws them become the intended digit; energy falls and the distance from the source grows
along the run. The figures are printed (``-s`` shows them).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ebm_studio.core.bundled import example_checkpoints
from ebm_studio.core.checkpoint import load_checkpoint
from ebm_studio.core.image_tools import inpaint_start, run_sampler
from ebm_studio.core.masks import mask_preset
from ebm_studio.core.model import ModelState
from ebm_studio.core.quality import digit_labels
from ebm_studio.core.masks import capsule

pytestmark = pytest.mark.skipif("digits" not in example_checkpoints(), reason="no bundled digits model")
N_DIGITS = 100
INPAINT_STEPS = 200
PROPOSALS = 8


@pytest.fixture(scope="module")
def digits():
    ckpt = load_checkpoint(example_checkpoints()["digits"])
    model = ModelState.from_checkpoint(ckpt, torch.device("cpu"))
    ds = model.dataset()
    idx = torch.from_numpy(ds.heldout_indices[:N_DIGITS])
    train = ds.items(torch.from_numpy(ds.train_indices))
    return model, ds.items(idx), ds.labels[idx].numpy(), train.mean(0)


def inpaint_all(model, images, mask, n=PROPOSALS, fill="noise", seed=0):
    """(N, n, C, H, W): ``n`` proposals for each image."""
    out = []
    for i, img in enumerate(images):
        x0, free = inpaint_start(model, img, mask, n, fill, seed + i)
        sampler = model.make_sampler(x0, seed=seed + i, mask=free)
        run_sampler(sampler, INPAINT_STEPS)
        out.append(sampler.x.detach())
    return torch.stack(out)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["lower-half", "left-half"])
def test_inpainting_digits_beats_the_mean_digit_and_keeps_the_label(digits, preset):
    model, images, labels, mean_digit = digits
    mask = mask_preset(preset, 28)
    free = torch.from_numpy(mask)
    filled = inpaint_all(model, images, mask, n=1, fill="blur")[:, 0]
    average = inpaint_all(model, images, mask, n=PROPOSALS, fill="noise").mean(1)
    obs = ~free
    assert torch.equal(filled[:, :, obs], images[:, :, obs])  # observed pixels untouched
    mse_mean = float(((mean_digit - images)[:, :, free] ** 2).mean())
    mse_one = float(((filled - images)[:, :, free] ** 2).mean())
    mse_avg = float(((average - images)[:, :, free] ** 2).mean())
    predicted, _ = digit_labels(filled)
    recovered = float((predicted == labels).mean())
    print(f"\ninpainting {preset} ({len(labels)} held-out digits): mean-digit fill MSE {mse_mean:.3f}; "
          f"one proposal from the blur fill {mse_one:.3f} (ratio {mse_one / mse_mean:.2f}); mean of "
          f"{PROPOSALS} proposals from noise {mse_avg:.3f} (ratio {mse_avg / mse_mean:.2f}); label "
          f"recovered from one proposal {recovered:.0%}")
    # a proposal is a sample: its error is about twice the posterior variance, so the average of
    # proposals started from noise (an estimate of the posterior mean) is the fairer comparison
    if preset == "lower-half":
        assert mse_one < 0.9 * mse_mean and mse_avg < 0.8 * mse_mean
        assert recovered >= 0.7
    else:  # the left half hides more of what tells digits apart
        assert mse_avg < mse_mean


# sketches as strokes (x, y) in image pixels, a few per digit, as a user draws them with a mouse
SKETCHES = {
    0: [[(10, 6), (18, 6), (20, 14), (18, 22), (10, 22), (8, 14), (10, 6)],
        [(14, 5), (20, 10), (19, 19), (13, 23), (8, 18), (9, 9), (14, 5)],
        [(11, 5), (17, 7), (19, 15), (16, 22), (10, 21), (9, 12), (11, 5)]],
    1: [[(14, 5), (14, 23)], [(15, 5), (12, 23)], [(13, 5), (16, 23)]],
    7: [[(8, 6), (20, 6), (12, 23)], [(9, 7), (19, 6), (14, 22)], [(8, 5), (20, 7), (11, 22)]],
}


def draw(strokes, width=2.5):
    m = np.zeros((28, 28), bool)
    for p0, p1 in zip(strokes[:-1], strokes[1:]):
        m |= capsule((28, 28), (p0[0] + 0.5, p0[1] + 0.5), (p1[0] + 0.5, p1[1] + 0.5), width / 2)
    return torch.from_numpy(np.where(m, 1.0, -1.0).astype(np.float32))[None]


@pytest.mark.slow
def test_sketches_translate_into_the_intended_digit(digits):
    model = digits[0]
    sources, intended = [], []
    for digit, sketches in SKETCHES.items():
        for s in sketches:
            sources.append(draw(s))
            intended.append(digit)
    x0 = torch.stack(sources)
    sampler = model.make_sampler(x0, seed=0)
    energies = run_sampler(sampler, 200)
    result = sampler.x.detach()
    predicted, _ = digit_labels(result)
    rate = float((predicted == np.array(intended)).mean())
    dist = float(((result - x0) ** 2).flatten(1).mean(1).sqrt().mean())
    print(f"\nsketch → digit: {rate:.0%} of {len(intended)} sketches read as the intended digit; "
          f"mean energy {energies[0]:.3g} → {energies[-1]:.3g}; RMS distance from the sketch {dist:.3f}")
    assert rate >= 0.6
    assert np.mean(energies[-20:]) < energies[0]


def test_translation_energy_falls_and_distance_grows(digits):
    model, images = digits[0], digits[1][:16]
    d = []
    for steps in (10, 60):
        sampler = model.make_sampler(images.clone(), seed=1)
        trace = run_sampler(sampler, steps)
        d.append(float(((sampler.x - images) ** 2).flatten(1).mean(1).sqrt().mean()))
    assert d[1] > d[0] > 0
    assert np.mean(trace[-5:]) <= trace[0] + 1e-3


@pytest.mark.slow
@pytest.mark.skipif("texture-grass" not in example_checkpoints(), reason="no bundled grass model")
def test_a_photo_translates_towards_grass(tmp_path):
    from ebm_studio.core.bundled import resources_dir
    from ebm_studio.core.image_tools import fit_image, read_image_file
    from ebm_studio.core.quality import references, texture_quality

    model = ModelState.from_checkpoint(load_checkpoint(example_checkpoints()["texture-grass"]), torch.device("cpu"))
    photo = read_image_file(resources_dir() / "photos" / "camera.png")
    # 16 crops of the photo, each fitted to the model, as 16 sources
    crops = [fit_image(photo[y:y + 64, x:x + 64], model.event_shape)[0]
             for y in range(0, 256, 64) for x in range(0, 256, 64)]
    x0 = torch.stack(crops)
    real = model.dataset().heldout(64)
    sampler = model.make_sampler(x0.clone(), seed=0)
    before = texture_quality(x0, real[: len(x0)]).figures
    run_sampler(sampler, 300)
    after = texture_quality(sampler.x.detach(), real[: len(x0)]).figures
    ref = references("textures", model.dataset(), n=len(x0))["held-out real crops"].figures
    print(f"\nphoto → grass (16 crops, 300 steps): spectrum distance {before['spectrum_rms']:.3f} → "
          f"{after['spectrum_rms']:.3f}, histogram {before['histogram_tv']:.3f} → {after['histogram_tv']:.3f}; "
          f"real crops {ref['spectrum_rms']:.3f} / {ref['histogram_tv']:.3f}")
    # it moves towards grass, but stays far from real crops (the persistent-chain model shapes
    # its landscape near its samples, not far out where photos lie)
    assert after["spectrum_rms"] < 0.9 * before["spectrum_rms"]
    assert after["histogram_tv"] < before["histogram_tv"]
