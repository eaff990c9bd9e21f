"""Sample-quality meters: how good a model's samples are, measured, with reference points.

* **Digits** (:func:`digit_quality`): the project's own classifier (``digit_classifier.py``) gives
  the share of samples classified with confidence ≥ 0.9, the classes covered by those, an
  Inception-score-like figure ``exp(E_x KL(p(y|x) ‖ p(y)))`` (10 at best), and the mean RMS
  distance per pixel (in [-1, 1] units) to the nearest training digit, which catches copies.
* **Textures** (:func:`texture_quality`): total-variation distance between pixel histograms and
  the RMS difference of radially averaged log power spectra, samples against held-out crops.
* **2-D** (:func:`points_quality`): held-out NLL gap to the true density, with Z by quadrature,
  and the largest per-mode mass error against the data's own mode shares.

Every meter has :func:`references`: the same figures for held-out real data, uniform noise and
the mean image, printed beside a model's figures so that a number is never read alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

CONFIDENT = 0.9


@dataclass
class Quality:
    """Named figures of one sample set; ``better`` says which direction is good for each."""

    kind: str
    figures: dict[str, float]
    better: dict[str, str] = field(default_factory=dict)  # "higher" / "lower"
    n: int = 0

    def format(self, digits: int = 3) -> str:
        return ", ".join(f"{k} {_fmt(v, digits)}" for k, v in self.figures.items())


def _fmt(v: float, digits: int) -> str:
    if isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e6):
        return str(int(v))
    return f"{v:.{digits}g}"


# --------------------------------------------------------------------------------------------
# Digits
# --------------------------------------------------------------------------------------------

DIGIT_BETTER = {"confident": "higher", "classes": "higher", "is_like": "higher",
                "nearest_train": "near real digits' (copies of training digits are near 0)"}


def _check_digits(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float32).detach().cpu()
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"the digit meter scores (N, 1, 28, 28) images, got {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError("the digit meter needs at least one sample")
    return x.clamp(-1, 1)


def digit_probs(x: torch.Tensor) -> torch.Tensor:
    """Class probabilities (N, 10) of the shipped classifier."""
    from ebm_studio.core.digit_classifier import load_classifier

    clf = load_classifier()
    x = _check_digits(x)
    with torch.no_grad():
        return torch.cat([clf(x[i:i + 512]).softmax(-1) for i in range(0, len(x), 512)])


def nearest_distance(x: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """RMS distance per pixel from each sample to its nearest item of ``train``."""
    a = x.flatten(1).double()
    b = train.flatten(1).double()
    d2 = torch.cdist(a, b).pow(2).min(1).values / a.shape[1]
    return d2.clamp_min(0).sqrt().float()


def digit_quality(x: torch.Tensor, train: torch.Tensor | None = None) -> Quality:
    """The digit meter on samples ``x`` (N, 1, 28, 28) in [-1, 1]."""
    x = _check_digits(x)
    p = digit_probs(x)
    conf, label = p.max(1)
    confident = conf >= CONFIDENT
    classes = int(torch.unique(label[confident]).numel()) if bool(confident.any()) else 0
    marginal = p.mean(0, keepdim=True)
    kl = (p * (p.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1)
    figures = {
        "confident": float(confident.float().mean()),
        "classes": float(classes),
        "is_like": float(math.exp(float(kl.mean()))),
    }
    if train is None:
        train = _digit_train()
    figures["nearest_train"] = float(nearest_distance(x, train).mean())
    return Quality("digits", figures, dict(DIGIT_BETTER), len(x))


def _digit_train() -> torch.Tensor:
    from ebm_studio.core.image_data import load_digits

    ds = load_digits()
    return ds.items(torch.from_numpy(ds.train_indices))


def digit_labels(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(predicted labels, confidences) of the meter's classifier, as numpy arrays."""
    p = digit_probs(x)
    conf, label = p.max(1)
    return label.numpy(), conf.numpy()


# --------------------------------------------------------------------------------------------
# Textures
# --------------------------------------------------------------------------------------------

TEXTURE_BETTER = {"histogram_tv": "lower", "spectrum_rms": "lower"}
_BINS = 32


def _histogram(x: torch.Tensor) -> torch.Tensor:
    h = torch.histc(x.clamp(-1, 1).flatten().double(), bins=_BINS, min=-1.0, max=1.0)
    return h / h.sum().clamp_min(1)


def radial_log_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Mean over images of the radially averaged log power spectrum (mean removed per image)."""
    x = x.double().mean(1)  # grey
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fftshift(torch.fft.fft2(x).abs().pow(2), dim=(-2, -1)).mean(0)
    h, w = power.shape
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    r = torch.sqrt((yy.double() ** 2 + xx.double() ** 2)).round().long()
    r_max = min(h, w) // 2
    keep = (r >= 1) & (r <= r_max)
    sums = torch.zeros(r_max + 1, dtype=torch.float64).index_add_(0, r[keep], power[keep])
    counts = torch.zeros(r_max + 1, dtype=torch.float64).index_add_(0, r[keep], torch.ones_like(power[keep]))
    return torch.log(sums[1:] / counts[1:].clamp_min(1) + 1e-8)


def texture_quality(x: torch.Tensor, real: torch.Tensor) -> Quality:
    """Distances between samples ``x`` and real held-out crops ``real`` (both (N, C, H, W))."""
    x = torch.as_tensor(x, dtype=torch.float32).detach().cpu()
    real = torch.as_tensor(real, dtype=torch.float32).detach().cpu()
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(real.shape[1:]):
        raise ValueError(f"texture samples {tuple(x.shape)} do not match the real crops {tuple(real.shape)}")
    tv = 0.5 * float((_histogram(x) - _histogram(real)).abs().sum())
    spec = float((radial_log_spectrum(x) - radial_log_spectrum(real)).pow(2).mean().sqrt())
    return Quality("textures", {"histogram_tv": tv, "spectrum_rms": spec}, dict(TEXTURE_BETTER), len(x))


# --------------------------------------------------------------------------------------------
# 2-D points
# --------------------------------------------------------------------------------------------

POINTS_BETTER = {"nll_gap": "lower", "mode_mass_error": "lower"}


def points_quality(energy, truth, resolution: int = 256, n_heldout: int = 4000,
                   ref_sigma: float | None = None) -> Quality:
    """Held-out NLL gap to the truth (Z by quadrature) and the worst per-mode mass error."""
    from ebm_studio.core.landscape import Grid, evaluate_energy, log_density, log_z, mode_masses, nll

    grid = Grid(truth.value_range, truth.value_range, resolution)
    energies = evaluate_energy(energy, grid)
    lz = log_z(energies, grid, ref_sigma=ref_sigma)
    held = truth.heldout(n_heldout)
    model_nll = nll(energy, held, lz, ref_sigma=ref_sigma)
    figures = {"nll_gap": float(model_nll - float(-truth.log_prob(held).double().mean()))}
    if truth.modes is not None:
        modes = np.asarray(truth.modes, dtype=np.float64)
        model = mode_masses(log_density(energies, grid, ref_sigma=ref_sigma), grid, modes)
        data = truth.heldout(20000).double().numpy()
        nearest = ((data[:, None, :] - modes[None]) ** 2).sum(-1).argmin(1)
        share = np.bincount(nearest, minlength=len(modes)) / len(data)
        figures["mode_mass_error"] = float(np.abs(model / model.sum() - share).max())
    return Quality("points", figures, dict(POINTS_BETTER), n_heldout)


# --------------------------------------------------------------------------------------------
# A model's samples, and the reference points beside them
# --------------------------------------------------------------------------------------------


def meter_kind(data_desc: dict, event_shape) -> str | None:
    """Which meter fits a model: ``digits``, ``textures``, ``points`` (with an exact truth) or None."""
    name = str(data_desc.get("name", ""))
    builtin = data_desc.get("source") in (None, "", "builtin") or name in ("digits",) or name.startswith("texture")
    shape = tuple(event_shape)
    if name == "digits" and shape == (1, 28, 28):
        return "digits"
    if name.startswith("texture") and len(shape) == 3:
        return "textures"
    if len(shape) == 1 and builtin:
        from ebm_studio.core.datasets import TOY_NAMES, toy

        if name in TOY_NAMES and toy(name).has_log_prob:
            return "points"
    return None


def score_samples(kind: str, x: torch.Tensor, real: torch.Tensor | None = None) -> Quality:
    """Score image samples with the meter ``kind`` (``real``: held-out crops, for textures)."""
    if kind == "digits":
        return digit_quality(x)
    if kind == "textures":
        if real is None:
            raise ValueError("the texture meter needs held-out crops to compare with")
        return texture_quality(x, real)
    raise ValueError(f"no image meter called {kind!r}")


def references(kind: str, dataset, n: int = 256, seed: int = 0) -> dict[str, Quality]:
    """The meter on held-out real data, uniform noise and the mean image (images only)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "digits":
        real = dataset.heldout(n)
        train = dataset.items(torch.from_numpy(dataset.train_indices))
        mean = train.mean(0, keepdim=True).expand(len(real), -1, -1, -1)
        noise = torch.rand(real.shape, generator=g) * 2 - 1
        return {
            "held-out real digits": digit_quality(real, train),
            "uniform noise": digit_quality(noise, train),
            "mean digit": digit_quality(mean, train),
        }
    if kind == "textures":
        real = dataset.heldout(n)
        other = dataset.heldout(n, seed=seed + 1)
        noise = torch.rand(real.shape, generator=g) * 2 - 1
        mean = torch.full_like(real, float(other.mean()))
        return {
            "held-out real crops": texture_quality(other, real),
            "uniform noise": texture_quality(noise, real),
            "mean crop": texture_quality(mean, real),
        }
    raise ValueError(f"no reference points for {kind!r}")


def model_samples(model, n: int, steps: int | None = None, seed: int = 0, device=None) -> torch.Tensor:
    """``n`` samples of a :class:`~ebm_studio.core.model.ModelState`: from its replay buffer when it
    has one (what persistent training makes), else from noise, advanced by ``steps`` steps of the
    model's own sampler (default: as many as it was trained with)."""
    g = torch.Generator().manual_seed(seed)
    init = "buffer" if model.buffer is not None else "noise"
    x0 = model.initial_state(n, init, g)
    steps = model.default_steps if steps is None else int(steps)
    if steps == 0:
        return x0
    sampler = model.make_sampler(x0, seed=seed, device=device)
    sampler.run(steps)
    return sampler.x.detach().cpu()


def measure_model(model, n: int = 256, steps: int | None = None, seed: int = 0) -> Quality:
    """The meter that fits ``model``, on its samples (images) or its density (2-D toys)."""
    kind = meter_kind(model.data_desc, model.event_shape)
    if kind is None:
        raise ValueError(
            f"no quality meter for '{model.data_name or model.name}': the meters cover the bundled "
            "digits, the textures and the 2-D toys with an exact density")
    if kind == "points":
        return points_quality(model.energy, model.truth, ref_sigma=model.ref_sigma)
    x = model_samples(model, n, steps, seed)
    real = model.dataset().heldout(n) if kind == "textures" else None
    return score_samples(kind, x, real)


class LiveMeter:
    """The meter of a training run, cheap enough to run every few seconds on its newest samples.

    ``measure(model, samples)`` returns metric columns (``q_confident`` and ``q_is_like`` for
    digits, ``q_spectrum`` and ``q_histogram`` for textures, ``q_nll_gap`` for 2-D toys with an
    exact density), or ``{}`` when no meter fits the data set.
    """

    def __init__(self, dataset, n: int = 128, ref_sigma: float | None = None) -> None:
        self.kind = meter_kind(dataset.describe(), dataset.event_shape)
        self.ref_sigma = ref_sigma
        self.dataset = dataset
        self.n = n
        self._real = dataset.heldout(n) if self.kind == "textures" else None
        self._train = _digit_train() if self.kind == "digits" else None

    def measure(self, energy, samples: torch.Tensor) -> dict[str, float]:
        if self.kind is None:
            return {}
        if self.kind == "points":
            q = points_quality(energy, self.dataset, resolution=128, n_heldout=2000, ref_sigma=self.ref_sigma)
            return {"q_nll_gap": q.figures["nll_gap"]}
        x = samples[: self.n].detach().cpu()
        if self.kind == "digits":
            f = digit_quality(x, self._train).figures
            return {"q_confident": f["confident"], "q_is_like": f["is_like"]}
        f = texture_quality(x, self._real[: len(x)]).figures
        return {"q_spectrum": f["spectrum_rms"], "q_histogram": f["histogram_tv"]}
