"""Analysis by synthesis: one training step lowers E on data and raises it on model samples.

Each :meth:`Trainer.step`:

1. draws a data batch (plus optional small Gaussian noise),
2. starts chains from the configured initialisation (replay buffer / data / noise) and runs the
   configured sampler for ``sampler.steps`` steps with the parameters frozen,
3. minimises ``mean E(data) − mean E(samples) + α·(mean E(data)² + mean E(samples)²)`` with Adam,
4. watches for divergence: a non-finite value or ``|E|`` beyond ``optim.energy_limit`` restores the
   last good parameters and optimiser state and raises :class:`DivergenceError`.

All randomness flows from one generator seeded by ``config.seed`` and saved in checkpoints, so a
resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable

import torch

from ebm_studio.core.chains import ReplayBuffer, noise
from ebm_studio.core.config import ConfigError, TrainConfig
from ebm_studio.core.datasets import Dataset, load_dataset
from ebm_studio.core.device import resolve_device
from ebm_studio.core.energies import ConvEnergy, Energy, MLPEnergy
from ebm_studio.core.npz_reading import available_memory
from ebm_studio.core.ladder import LadderEnergy, downsample, ladder_sizes, upsample
from ebm_studio.core.langevin_block import LangevinBlock, run_steps
from ebm_studio.core.level_sampler import make_level_sampler
from ebm_studio.core.level_training import PHASES, Phase, Stopped, coarse_noise
from ebm_studio.core.recovery import RecoveryEnergy, geometric_betas
from ebm_studio.core.samplers import Sampler, make_sampler

METRIC_NAMES = (
    "loss",
    "e_data",
    "e_sample",
    "gap",
    "grad_norm",
    "accept",
    "lr",
    "sec_per_step",
)


class StepAborted(Exception):
    """A step was cancelled midway (``should_stop``); the model and buffer are unchanged."""


class DivergenceError(RuntimeError):
    """Training blew up; the trainer has been restored to its last good state."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


def estimated_bytes(config: TrainConfig, event_shape: tuple[int, ...]) -> int:
    """A lower bound of the memory a run needs: the replay buffer, and for an MLP its weights
    with their gradients and two Adam moments (4 copies); ConvNets are small by construction."""
    item = math.prod(event_shape) * 4
    need = config.sampler.buffer_size * item if config.sampler.init == "buffer" else 0
    need += config.optim.batch_size * item * 4  # data, chains, gradients, noise
    if config.model.kind == "mlp":
        widths = [math.prod(event_shape), *config.model.hidden, 1]
        need += 4 * 4 * sum(a * b + b for a, b in zip(widths, widths[1:]))
    return need


def check_memory(config: TrainConfig, event_shape: tuple[int, ...]) -> None:
    """Raise :class:`ConfigError` when a run cannot fit in the free memory (before allocating)."""
    need = estimated_bytes(config, event_shape)
    free = available_memory()
    if free is not None and need > 0.8 * free:
        raise ConfigError(f"this configuration needs at least {need / 2**30:,.1f} GB of memory "
                          f"(replay buffer, batch and weights); {free / 2**30:,.1f} GB are free: use "
                          "fewer or smaller layers, a smaller buffer or a smaller batch")


def build_model(config: TrainConfig, dataset: Dataset) -> Energy:
    """The energy network the configuration asks for, sized for the data set."""
    m, method = config.model, config.method
    if method.name == "drl":
        betas = geometric_betas(method.levels, method.beta_min, method.beta_max)
        return RecoveryEnergy(dataset.event_shape, betas, m.width, m.hidden, m.spectral_norm,
                              step_scale=config.sampler.step_size)
    if method.name == "multigrid":
        if dataset.kind == "points":
            raise ValueError("the multigrid method needs image data; points have no resolutions")
        c, h, w = dataset.event_shape
        return LadderEnergy(c, ladder_sizes(h, method.levels), m.width, m.spectral_norm)
    if dataset.kind == "points":
        if m.kind != "mlp":
            raise ValueError(f"model.kind must be 'mlp' for point data, got {m.kind!r}")
        return MLPEnergy(dataset.event_shape[0], m.hidden)
    if m.kind != "conv":
        raise ValueError(f"model.kind must be 'conv' for image data, got {m.kind!r}")
    c, h, w = dataset.event_shape
    if h != w:
        raise ValueError(f"images must be square, got {h}×{w}")
    return ConvEnergy(c, h, m.width, m.spectral_norm)


class Trainer:
    """Holds model, optimiser, replay buffer and RNG; :meth:`step` does one training step."""

    def __init__(
        self,
        config: TrainConfig,
        dataset: Dataset | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        self.config = config.copy().validate()
        self._should_stop: Callable[[], bool] | None = None  # the running step's stop poll
        d = self.config.data
        self.dataset = dataset or load_dataset(d.name, image_size=d.image_size, channels=d.channels)
        self.device = resolve_device(device if device is not None else self.config.device)
        check_memory(self.config, self.dataset.event_shape)
        torch.manual_seed(self.config.seed)  # weight initialisation
        self.model = build_model(self.config, self.dataset).to(self.device)
        o = self.config.optim
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=o.lr, betas=(o.beta1, o.beta2))
        # the generator lives on the CPU so its state is portable across devices
        self.generator = torch.Generator().manual_seed(self.config.seed)
        s = self.config.sampler
        self.buffer: ReplayBuffer | None = None
        method = self.config.method.name
        if s.init == "buffer" and method in ("plain", "multigrid"):
            # a ladder keeps persistent chains at its coarsest level only (see level_training.py)
            fresh = self.noise if method == "plain" else (lambda n: coarse_noise(self, n))
            self.buffer = ReplayBuffer(s.buffer_size, fresh, s.reseed_fraction, generator=self.generator)
        self.step_count = 0
        #: the negative phase's Langevin steps as one CUDA graph per block (GPU only)
        self._langevin_block = LangevinBlock()
        self.last_samples: torch.Tensor | None = None
        #: the newest negatives level by level (multigrid and drl), for the level view
        self.last_levels: list = []
        self._good: tuple[dict, dict, int] | None = None

    # --- pieces ------------------------------------------------------------------------------
    def noise(self, n: int) -> torch.Tensor:
        """Fresh starting points: uniform on the data box (or Gaussian), on the CPU."""
        s = self.config.sampler
        lo, hi = self.dataset.value_range
        if s.noise_kind == "gaussian":
            return noise(n, self.dataset.event_shape, "gaussian", std=(hi - lo) / 4, generator=self.generator)
        return noise(n, self.dataset.event_shape, "uniform", low=lo, high=hi, generator=self.generator)

    def data_batch(self, n: int | None = None) -> torch.Tensor:
        n = n or self.config.optim.batch_size
        x = self.dataset.batch(n, self.generator)
        sigma = self.config.data.data_noise
        if sigma > 0:
            x = x + sigma * torch.randn(x.shape, generator=self.generator)
            if self.dataset.kind == "images":
                x = x.clamp(*self.dataset.value_range)
        return x.to(self.device)

    def initial_chains(self, data: torch.Tensor) -> torch.Tensor:
        init = self.config.sampler.init
        if init == "buffer":
            assert self.buffer is not None
            return self.buffer.sample(data.shape[0]).to(self.device)
        if init == "data":
            return data.clone()
        return self.noise(data.shape[0]).to(self.device)

    def make_sampler(self, x0: torch.Tensor, mask=None, seed: int | None = None,
                     energy: Energy | None = None) -> Sampler:
        """A sampler over the current model (or one of its levels) with the configured settings."""
        s = self.config.sampler
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        sampler = make_sampler(
            s.kind,
            energy if energy is not None else self.model,
            x0,
            temperature=s.temperature,
            step_size=s.step_size,
            noise=s.noise,
            n_leapfrog=s.n_leapfrog,
            seed=seed,
            device=self.device,
            mask=mask,
            clamp=self.dataset.value_range if s.clamp else None,
            clip_grad=s.clip_grad,
            ref_sigma=self.config.model.ref_sigma,
            precision=s.precision,
        )
        sampler.should_stop = self._should_stop  # a step of 10⁹ leapfrog moves can still be stopped
        return sampler

    def set_lr(self, lr: float) -> None:
        """Change the learning rate from the next step on (a live setting)."""
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate must be a positive number, got {lr!r}")
        self.config.optim.lr = float(lr)
        for group in self.optimizer.param_groups:
            group["lr"] = float(lr)

    def scheduled_lr(self) -> float:
        """The learning rate of the next step under ``optim.lr_schedule``."""
        o = self.config.optim
        if o.lr_schedule != "cosine":
            return o.lr
        t = min(self.step_count / max(self.config.steps, 1), 1.0)
        return o.lr * (o.lr_final + (1.0 - o.lr_final) * 0.5 * (1.0 + math.cos(math.pi * t)))

    def _schedule_lr(self) -> None:
        lr = self.scheduled_lr()
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def set_sampling(self, **changes: float) -> None:
        """Change live sampler settings (``step_size``, ``noise``, ``temperature``)."""
        for key, value in changes.items():
            if key not in ("step_size", "noise", "temperature"):
                raise ValueError(f"{key} cannot be changed during training")
            setattr(self.config.sampler, key, float(value))
        self.config.validate()

    def meter_samples(self, n: int) -> torch.Tensor | None:
        """Samples to measure quality on: the newest negatives, or for diffusion recovery (whose
        negatives sit at random noise levels) ``n`` fresh walks from noise down every level."""
        if self.config.method.name != "drl":
            return self.last_samples
        s = self.config.sampler
        # a generator of its own: measuring must not change the run's random stream
        lo, hi = self.dataset.value_range
        x0 = noise(n, self.dataset.event_shape, "uniform", low=lo, high=hi,
                   generator=torch.Generator().manual_seed(self.step_count))
        sampler = make_level_sampler(
            self.model, x0.to(self.device), step_size=s.step_size, temperature=s.temperature,
            seed=self.step_count, device=self.device,
            clamp=self.dataset.value_range if s.clamp else None, level_steps=self.config.method.level_steps,
        )
        was_training = self.model.training
        self.model.eval()
        try:
            return sampler.run_schedule().x.detach()
        finally:
            self.model.train(was_training)

    def model_energy(self, x: torch.Tensor) -> torch.Tensor:
        """E(x) (+ the reference term) without gradients: for scoring and display."""
        with torch.no_grad():
            e = self.model(x.to(self.device))
            ref = self.config.model.ref_sigma
            if ref is not None:
                e = e + (x.flatten(1) ** 2).sum(-1).to(e) / (2 * ref**2)
            return e

    # --- one step ----------------------------------------------------------------------------
    def step(self, should_stop: Callable[[], bool] | None = None) -> dict[str, float]:
        """One step of analysis by synthesis; returns the metrics (see ``METRIC_NAMES``).

        ``should_stop`` is polled between sampler steps, so a long step (60 Langevin steps of a
        ConvNet) can be abandoned at once: :class:`StepAborted` leaves model and buffer as they were.
        """
        t0 = time.perf_counter()
        o = self.config.optim
        self._schedule_lr()
        data = self.data_batch()
        self._should_stop = should_stop
        try:
            phase = self._negative_phase(data, should_stop)
        except Stopped:
            raise StepAborted(f"step {self.step_count + 1} was stopped") from None
        except FloatingPointError as exc:
            self._diverged(f"the sampler produced non-finite energies ({exc})", cause="sampler")
        finally:
            self._should_stop = None
        self.last_samples = phase.samples
        self.last_levels = phase.levels

        self.model.train()
        e_data, e_samp = phase.energies()
        ed, es = e_data.mean(), e_samp.mean()
        ed_v, es_v = float(ed.detach()), float(es.detach())
        loss = ed - es + o.alpha * ((e_data**2).mean() + (e_samp**2).mean())
        worst = float(torch.maximum(e_data.abs().max(), e_samp.abs().max()).detach())
        if not math.isfinite(float(loss.detach())) or worst > o.energy_limit:
            self._diverged(
                f"the energy magnitude reached {worst:.3g} (limit {o.energy_limit:.3g})"
                if math.isfinite(worst)
                else "the energy became NaN or infinite"
            )
        self._keep_good()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = o.grad_clip if o.grad_clip is not None else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        if not math.isfinite(grad_norm):
            self._diverged("the parameter gradient became NaN or infinite")
        self.optimizer.step()
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            self._diverged("the update made some weights NaN or infinite")
        self.step_count += 1
        return {
            "step": self.step_count,
            "loss": float(loss.detach()),
            "e_data": ed_v,
            "e_sample": es_v,
            "gap": es_v - ed_v,
            "grad_norm": grad_norm,
            "accept": phase.accept if phase.accept is not None else float("nan"),
            "lr": self.scheduled_lr() if self.config.optim.lr_schedule != "constant" else self.config.optim.lr,
            "sec_per_step": time.perf_counter() - t0,
        }

    def _negative_phase(self, data: torch.Tensor, should_stop) -> Phase:
        """Positives and negatives of this step for the configured method."""
        method = self.config.method.name
        if method != "plain":
            return PHASES[method](self, data, should_stop)
        x0 = self.initial_chains(data)
        sampler = self.make_sampler(x0)
        # on a GPU, whole blocks of steps replay as one CUDA graph; elsewhere one step at a time
        run_steps(sampler, self.config.sampler.steps, self._langevin_block, should_stop)
        samples = sampler.x.detach()
        if self.buffer is not None:
            self.buffer.push(samples.cpu())
        model = self.model
        return Phase(samples, lambda: (model(data), model(samples)), sampler.mean_accept_rate)

    def _keep_good(self) -> None:
        """Remember the state whose energies were just verified, for a rollback."""
        self._good = (
            copy.deepcopy(self.model.state_dict()),
            copy.deepcopy(self.optimizer.state_dict()),
            self.step_count,
        )

    def _diverged(self, why: str, cause: str = "optimiser") -> None:
        step = self.step_count + 1
        if self._good is not None:
            model_state, opt_state, good_step = self._good
            self.model.load_state_dict(model_state)
            self.optimizer.load_state_dict(opt_state)
            self.step_count = good_step
            where = f"The model was rolled back to step {good_step}"
        else:
            where = "No earlier good state exists"
        if cause == "sampler":
            s = self.config.sampler
            advice = (f"lower the sampler step size (now {s.step_size:.3g}) or raise the temperature; "
                      "also check that the data values are of a sensible size")
        else:
            advice = f"resume with a lower learning rate (e.g. {self.config.optim.lr / 10:.2g})"
        raise DivergenceError(f"Training diverged at step {step}: {why}. {where}; {advice}.", step)

    def verify(self) -> None:
        """Raise :class:`DivergenceError` unless the weights are finite and the energy of a data
        batch is finite and within the limit: a model must pass this before it is saved."""
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            self._diverged("some weights are NaN or infinite")
        was_training = self.model.training
        self.model.eval()  # in train mode spectral norm would take a power-iteration step here
        try:
            with torch.no_grad():
                batch = self.dataset.batch(min(64, self.config.optim.batch_size),
                                           torch.Generator().manual_seed(0)).to(self.device)
                # a recovery model's energy is its output over a tiny step: bound the output
                e = getattr(self.model, "scale_free", self.model)(batch)
        finally:
            self.model.train(was_training)
        worst = float(e.abs().max())
        if not math.isfinite(worst) or worst > self.config.optim.energy_limit:
            self._diverged(f"the energy of the data reached {worst:.3g} (limit "
                           f"{self.config.optim.energy_limit:.3g})")

    # --- state for checkpoints -----------------------------------------------------------------
    def state(self, include_buffer: bool = True) -> dict:
        """Everything needed to resume exactly: plain data and tensors only."""
        return {
            "step": self.step_count,
            "model_state": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "rng": self.generator.get_state(),
            "buffer": self.buffer_samples() if include_buffer else None,
        }

    def buffer_samples(self, idx: torch.Tensor | None = None) -> torch.Tensor | None:
        """The replay buffer (or its entries ``idx``) as full-size samples, None without one: a
        ladder's coarse chains repeated up, so that every reader (checkpoints, the viewer, the
        buffer view) sees samples of the model's shape; pooling gives them back exactly."""
        if self.buffer is None:
            return None
        data = self.buffer.data.cpu() if idx is None else self.buffer.data[idx].cpu()
        if isinstance(self.model, LadderEnergy):
            data = upsample(data, self.model.sizes[-1])
        return data

    def load_state(self, state: dict) -> None:
        """Restore :meth:`state` output (model, optimiser, RNG, buffer, step)."""
        self.model.load_state_dict(state["model_state"])
        if state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.optim.lr
        if state.get("rng") is not None:
            self.generator.set_state(state["rng"])
        if state.get("buffer") is not None and self.buffer is not None:
            data = state["buffer"]
            if isinstance(self.model, LadderEnergy):
                data = downsample(data.float(), self.model.sizes[0])
            self.buffer.load_state_dict({"data": data})
        self.step_count = int(state.get("step", 0))
        self._good = None
