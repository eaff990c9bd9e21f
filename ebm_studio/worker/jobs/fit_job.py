"""Fit job: mode covering vs mode seeking, q_φ fitted to the current 2-D model by both KL directions.

Stages, one engine step each (so stop is checked between them and inside the long ones):

1. **sample**: MALA chains from uniform noise on the data box, ``mcmc_steps`` steps at the
   temperature T of the request; the step size adapts towards 57 % acceptance during the first
   half and is then frozen (a fixed kernel for the second half). Frames show the chains.
2. **forward**: KL(p‖q) by maximum likelihood on those samples: a Gaussian (closed form) and a
   K-component mixture (EM). Mode covering: q spreads over every mode.
3. **reverse**: KL(q‖p) by reparameterised gradients that need only E (not Z), the Gaussian and
   the mixture each starting with small components on random samples of p. Mode seeking: each
   component settles on the mode it starts in and stays there.
4. **report**: both KL numbers of every fit against the model by quadrature on the landscape grid,
   sent as a :class:`~ebm_studio.worker.api.FitResult` event (its
   :class:`~ebm_studio.worker.api.KLFits`: plain numpy and floats).

Progress goes out as :class:`~ebm_studio.worker.api.FitProgress` events.

Configuration keys: ``k`` (mixture components, 2–8, default 4), ``n_samples`` (default 1024),
``mcmc_steps`` (default 200), ``temperature`` (default: the live one), ``reverse_steps`` (default
400), ``grid_n`` (quadrature grid, default 256).

With a Gaussian reference q(x) = N(0, σ²I) the target is exp(−E/T)·q: the reverse fit sees the
energy ``E + T·|x|²/(2σ²)`` so that its ``E/T`` is the full potential.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ebm_studio.core.energies import GaussianReference, SumEnergy
from ebm_studio.core.kl_fit import GaussianMixtureParams, fit_forward_kl, fit_reverse_kl
from ebm_studio.core.landscape import Grid, evaluate_energy, kl_divergence, log_density
from ebm_studio.core.samplers import make_sampler
from ebm_studio.worker.frames import Frame, make_frame
from ebm_studio.worker.jobs.base import Job
from ebm_studio.worker.api import FitPair, FitProgress, FitResult, FittedMixture, KLFits
from ebm_studio.worker.live import Settings

TARGET_ACCEPT = 0.57  # optimal MALA acceptance (Roberts & Rosenthal)
STAGES = ("sample", "forward", "reverse_gaussian", "reverse_mixture", "report")
#: fraction of the progress bar each stage ends at
STAGE_END = {"sample": 0.45, "forward": 0.5, "reverse_gaussian": 0.72, "reverse_mixture": 0.95,
             "report": 1.0}


def _int(cfg: dict, key: str, default: int, lo: int, hi: int) -> int:
    v = cfg.get(key, default)
    try:
        iv = int(v)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be an integer, got {v!r}") from None
    if not lo <= iv <= hi:
        raise ValueError(f"{key} must lie in {lo}..{hi}, got {v!r}")
    return iv


class FitJob(Job):
    kind = "fit"
    paced = False

    def start(self) -> None:
        model = self.engine.model
        if model.kind != "points" or tuple(model.event_shape) != (2,):
            raise ValueError("KL fits need a 2-D model; the current one has samples of shape "
                             f"{tuple(model.event_shape)}")
        cfg = self.request.config
        self.k = _int(cfg, "k", 4, 2, 8)
        self.n_samples = _int(cfg, "n_samples", 1024, 64, 65536)
        self.mcmc_steps = _int(cfg, "mcmc_steps", 200, 10, 100000)
        self.reverse_steps = _int(cfg, "reverse_steps", 400, 10, 100000)
        self.grid_n = _int(cfg, "grid_n", 256, 32, 1024)
        t = cfg.get("temperature")
        self.temperature = float(t) if t is not None else self.engine.live.snapshot().temperature
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be positive, got {t!r}")
        self.model = model
        self.energy = model.energy
        self.seed = int(self.request.seed)
        sticky = self.engine.landscape.view_params()
        lo, hi = model.value_range
        self.grid = Grid(sticky.get("xlim") or (lo, hi), sticky.get("ylim") or (lo, hi), self.grid_n)
        gen = torch.Generator().manual_seed(self.seed)
        x0 = model.initial_state(self.n_samples, "noise", gen)
        span = hi - lo
        self.span = span
        self.box = (lo, hi)
        # ε ≈ 0.01 on the toys' [-4, 4] box, scaled with the box area; adapted during burn-in
        self.step_size = float(cfg.get("step_size") or 0.01 * (span / 8.0) ** 2)
        self.sampler = make_sampler(
            "mala", model.energy, x0, temperature=self.temperature, step_size=self.step_size,
            seed=self.seed, device=self.engine.device, clamp=(lo - span, hi + span),
            ref_sigma=model.ref_sigma,
        )
        self.stage = "sample"
        self.i = 0
        self.results: dict[str, dict[str, GaussianMixtureParams]] = {"forward": {}, "reverse": {}}
        self.samples: np.ndarray | None = None
        self.t0 = time.perf_counter()
        self._progress(0.0, "sampling the model with MALA")

    # --- progress ----------------------------------------------------------------------------
    def _progress(self, fraction: float, text: str) -> None:
        self.engine.emit_event(FitProgress(self.job_id, self.stage, float(min(max(fraction, 0), 1)), text))

    def _stage_progress(self, i: int, n: int, loss: float, start: float, label: str) -> None:
        end = STAGE_END[self.stage]
        self._progress(start + (end - start) * i / max(n, 1), f"{label}: step {i}/{n}, loss {loss:.4g}")

    def _should_stop(self) -> bool:
        return self.live.stop_requested

    # --- stages ------------------------------------------------------------------------------
    def advance(self, settings: Settings) -> None:
        if self.stage == "sample":
            self._sample_step()
        elif self.stage == "forward":
            self._forward()
        elif self.stage == "reverse_gaussian":
            self._reverse_gaussian()
        elif self.stage == "reverse_mixture":
            self._reverse_mixture()
        elif self.stage == "report":
            self._report()
        self.step += 1

    def _sample_step(self) -> None:
        result = self.sampler.step()
        self.i += 1
        if self.i <= self.mcmc_steps // 2 and result.accept_rate is not None:
            # Robbins–Monro on log ε during burn-in only: the second half runs one fixed kernel
            self.sampler.step_size = float(np.clip(
                self.sampler.step_size * math.exp(0.5 * (result.accept_rate - TARGET_ACCEPT)),
                1e-8, 10.0 * self.span**2))
        if self.i % 10 == 0 or self.i == self.mcmc_steps:
            acc = self.sampler.mean_accept_rate or 0.0
            self._progress(STAGE_END["sample"] * self.i / self.mcmc_steps,
                           f"MALA step {self.i}/{self.mcmc_steps}, ε {self.sampler.step_size:.3g}, "
                           f"acceptance {acc:.2f}")
        if self.i >= self.mcmc_steps:
            self.samples = self.sampler.x.detach().cpu().double().numpy()
            self.stage = "forward"

    def _forward(self) -> None:
        # a 2-D density is known on the grid up to Z: the forward fits use the grid cells weighted
        # by p·ΔA (quadrature), exact for the density, where MALA samples that did not mix between
        # modes would bias them; the samples stay for the view
        values = evaluate_energy(self.energy, self.grid)
        logp = log_density(values, self.grid, self.temperature, ref_sigma=self.model.ref_sigma)
        weights = np.exp(logp).reshape(-1) * self.grid.cell_area
        x = self.grid.points(torch.float64).numpy()
        keep = weights > 1e-12 * weights.max()  # cells without mass change nothing, cost time
        x, weights = x[keep], weights[keep]
        self.results["forward"]["gaussian"] = fit_forward_kl(x, k=1, sample_weights=weights)
        self.results["forward"]["mixture"] = fit_forward_kl(
            x, k=self.k, steps=300, seed=self.seed, should_stop=self._should_stop, sample_weights=weights)
        self._progress(STAGE_END["forward"], "forward KL (maximum likelihood, by quadrature) done")
        self.stage = "reverse_gaussian"

    def _target(self):
        if self.model.ref_sigma is None:
            return self.energy
        # E + T·|x|²/(2σ²): divided by T this is the full potential E/T + |x|²/(2σ²)
        return SumEnergy([self.energy, GaussianReference(self.model.ref_sigma)],
                         [1.0, self.temperature])

    def _lr(self) -> float:
        return 0.05 * self.span / 8.0

    def _start_on_samples(self, k: int, seed: int) -> GaussianMixtureParams:
        """k components with means on random samples of p and a small isotropic spread: each
        settles on the mode its start lies in (starting from the broad forward fit works too, but
        sits between modes for many more steps)."""
        rng = np.random.default_rng(seed)
        x = self.samples
        means = x[rng.choice(x.shape[0], k, replace=False)]
        scale = (self.span / 16.0) ** 2
        return GaussianMixtureParams(np.full(k, 1.0 / k), means, np.repeat(np.eye(2)[None] * scale, k, 0))

    def _reverse(self, name: str, k: int, n_samples: int, seed: int, label: str, next_stage: str) -> None:
        start = STAGE_END[STAGES[STAGES.index(self.stage) - 1]]
        self.results["reverse"][name] = fit_reverse_kl(
            self._target(), k=k, temperature=self.temperature, steps=self.reverse_steps,
            n_samples=n_samples, lr=self._lr(), seed=seed, init=self._start_on_samples(k, seed),
            progress=lambda i, n, loss: self._stage_progress(i, n, loss, start, label),
            should_stop=self._should_stop,
        )
        self.stage = next_stage

    def _reverse_gaussian(self) -> None:
        self._reverse("gaussian", 1, 256, self.seed, "reverse KL, Gaussian", "reverse_mixture")

    def _reverse_mixture(self) -> None:
        self._reverse("mixture", self.k, 128, self.seed + 1, "reverse KL, mixture", "report")

    def _report(self) -> None:
        grid = self.grid
        e = evaluate_energy(self.energy, grid)
        lp = log_density(e, grid, self.temperature, ref_sigma=self.model.ref_sigma)
        pts = grid.points(torch.float64).numpy()

        def scored(params: GaussianMixtureParams) -> FittedMixture:
            lq = params.log_prob(pts).reshape(grid.n, grid.n)
            # renormalise on the grid: both sides of a discrete KL must sum to one there
            m = lq.max()
            lq = lq - (m + math.log(np.exp(lq - m).sum() * grid.cell_area))
            return FittedMixture(params.weights.copy(), params.means.copy(), params.covs.copy(),
                                 kl_pq=kl_divergence(lp, lq, grid), kl_qp=kl_divergence(lq, lp, grid))

        def pair(direction: str) -> FitPair:
            fits = self.results[direction]
            return FitPair(scored(fits["gaussian"]), scored(fits["mixture"]))

        fits = KLFits(
            forward=pair("forward"), reverse=pair("reverse"),
            temperature=self.temperature, k=self.k, n_samples=self.n_samples,
            mcmc_steps=self.mcmc_steps, step_size=float(self.sampler.step_size),
            accept=self.sampler.mean_accept_rate, samples=self.samples[:512].astype(np.float32),
            grid_n=grid.n, xlim=grid.xlim, ylim=grid.ylim, model_name=self.model.name,
            seconds=time.perf_counter() - self.t0, job_id=self.job_id,
        )
        self.engine.emit_event(FitResult(fits))
        self._progress(1.0, f"done in {fits.seconds:.1f} s")
        self.done = True
        self.message = "fits done"

    def frame(self, settings: Settings) -> Frame | None:
        if self.stage != "sample" or self.sampler.steps_done == 0:
            return None
        x = self.sampler.x.detach().cpu().numpy()
        e = self.sampler.current_energy().cpu().numpy()
        return make_frame(self.job_id, self.kind, self.i, x, e, self.box,
                          settings={**settings.as_dict(), "temperature": self.temperature},
                          accept=self.sampler.mean_accept_rate, label="fit samples")
