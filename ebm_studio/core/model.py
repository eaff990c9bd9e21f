"""A loaded model: the energy, what it was trained on, its sampler settings, and how to start chains.

One path for every front end: the engine (viewer, inpainting, translation) and the command line
build chains and samplers through :meth:`ModelState.initial_state` and
:meth:`ModelState.make_sampler`, so the same checkpoint, seed and settings give the same chains
headless and in the app (one clamp rule, one way to draw from the replay buffer). The app starts on
the built-in demo (an analytic ring of eight Gaussians, exact density known) or a bundled example.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch

from ebm_studio.core.chains import noise
from ebm_studio.core.checkpoint import Checkpoint, load_checkpoint
from ebm_studio.core.datasets import Dataset, DatasetError, TOY_NAMES, dataset_key, load_dataset, toy
from ebm_studio.core.energies import Energy, eight_gaussians_energy
from ebm_studio.core.level_sampler import DEFAULT_LEVEL_STEPS, is_level_model, make_level_sampler
from ebm_studio.core.samplers import Sampler, make_sampler


_serials = itertools.count(1)


@dataclass
class ModelState:
    energy: Energy
    name: str
    kind: str  # "points" or "images"
    event_shape: tuple[int, ...]
    value_range: tuple[float, float]
    data_desc: dict = field(default_factory=dict)
    sampler_defaults: dict = field(default_factory=dict)
    buffer: torch.Tensor | None = None
    source: str = "builtin"
    step: int = 0
    ref_sigma: float | None = None
    _dataset: Dataset | None = None
    #: tells loaded models apart (recordings remember it: a branch must run under the same model)
    serial: int = field(default_factory=lambda: next(_serials), compare=False)

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def demo(cls) -> "ModelState":
        """The analytic eight-Gaussian ring, whose exact density the landscape can show."""
        return cls(
            energy=eight_gaussians_energy(),
            name="8gaussians (analytic)",
            kind="points",
            event_shape=(2,),
            value_range=(-4.0, 4.0),
            data_desc=toy("8gaussians").describe(),
            sampler_defaults={"kind": "langevin", "step_size": 0.01, "temperature": 1.0},
            _dataset=toy("8gaussians"),
        )

    @classmethod
    def from_checkpoint(cls, ckpt: Checkpoint | str, device: torch.device) -> "ModelState":
        if not isinstance(ckpt, Checkpoint):
            ckpt = load_checkpoint(ckpt)
        energy = ckpt.build_energy(device)
        shape = tuple(energy.event_shape)
        kind = "images" if len(shape) == 3 else "points"
        default_range = (-1.0, 1.0) if kind == "images" else (-4.0, 4.0)
        vr = ckpt.data.get("value_range") or default_range
        name = ckpt.path.stem if ckpt.path else ckpt.data.get("name", "model")
        return cls(
            energy=energy,
            name=name,
            kind=kind,
            event_shape=shape,
            value_range=(float(vr[0]), float(vr[1])),
            data_desc=ckpt.data,
            sampler_defaults=dict(ckpt.sampler),
            buffer=ckpt.buffer,
            source=str(ckpt.path) if ckpt.path else "memory",
            step=ckpt.step,
            ref_sigma=ckpt.sampler.get("ref_sigma"),
        )

    # --- data --------------------------------------------------------------------------------
    @property
    def data_name(self) -> str:
        return str(self.data_desc.get("name", ""))

    def dataset(self) -> Dataset:
        """The data set the model was trained on (loaded on first use); ``DatasetError`` if gone."""
        if self._dataset is None:
            name = dataset_key(self.data_desc)
            if not name:
                raise DatasetError("this model names no data set, so chains cannot start from data")
            size = self.event_shape[-1] if self.kind == "images" else None
            channels = self.event_shape[0] if self.kind == "images" else None
            self._dataset = load_dataset(name, image_size=size, channels=channels)
        return self._dataset

    def set_dataset(self, dataset: Dataset) -> None:
        self._dataset = dataset
        self.data_desc = dataset.describe()

    @property
    def truth(self):
        """The exact toy density the model was trained on, when there is one (for comparisons)."""
        name = self.data_name
        if self.kind == "points" and name in TOY_NAMES and self.data_desc.get("source") in (None, "builtin"):
            t = toy(name)
            return t if t.has_log_prob else None
        return None

    # --- chains ------------------------------------------------------------------------------
    def initial_state(self, n: int, init: str, generator: torch.Generator) -> torch.Tensor:
        """``n`` starting points: ``noise`` (uniform on the value box), ``data`` or ``buffer``."""
        if init == "noise":
            lo, hi = self.value_range
            return noise(n, self.event_shape, "uniform", low=lo, high=hi, generator=generator)
        if init == "data":
            return self.dataset().batch(n, generator)
        if init == "buffer":
            if self.buffer is None:
                raise ValueError("this model has no replay buffer; start chains from noise or data")
            size = self.buffer.shape[0]
            # distinct buffer entries while there are enough, then with replacement
            if n <= size:
                idx = torch.randperm(size, generator=generator)[:n]
            else:
                idx = torch.randint(size, (n,), generator=generator)
            return self.buffer[idx].to(torch.float32).clone()
        raise ValueError(f"initialisation must be noise, data or buffer, got {init!r}")

    def sampler_box(self) -> tuple[float, float]:
        """Where chains are kept: the data range for images; for points the range widened by its
        span on each side, which keeps runaway chains finite without biasing the view."""
        lo, hi = self.value_range
        if self.kind == "points":
            span = hi - lo
            return (lo - span, hi + span)
        return (lo, hi)

    def make_sampler(
        self,
        x0: torch.Tensor,
        *,
        kind: str | None = None,
        temperature: float | None = None,
        step_size: float | None = None,
        noise: float | None = None,
        n_leapfrog: int | None = None,
        seed: int = 0,
        device=None,
        mask=None,
        precision: str | None = None,
    ) -> Sampler:
        """A sampler over this model: the model's own sampler settings unless overridden."""
        d = self.sampler_defaults

        def pick(value, key, default):
            return value if value is not None else d.get(key, default)

        kind = pick(kind, "kind", "langevin")
        settings = dict(
            temperature=float(pick(temperature, "temperature", 1.0)),
            step_size=float(pick(step_size, "step_size", 0.01)),
            noise=float(pick(noise, "noise", 0.005)),
            n_leapfrog=int(pick(n_leapfrog, "n_leapfrog", 5)),
            seed=int(seed),
            device=device if device is not None else next(self.energy.parameters(), torch.zeros(0)).device,
            mask=mask,
            clamp=self.sampler_box(),
            # clipping belongs to the tuned heuristic the image models were trained with
            clip_grad=d.get("clip_grad") if self.kind == "images" else None,
            ref_sigma=self.ref_sigma,
            precision=str(pick(precision, "precision", "auto")),
        )
        if is_level_model(self.energy):
            return make_level_sampler(self.energy, x0, kind=kind, **settings,
                                      level_steps=int(d.get("level_steps", DEFAULT_LEVEL_STEPS)))
        return make_sampler(kind, self.energy, x0, **settings)

    @property
    def method(self) -> str:
        """``plain``, ``multigrid`` or ``drl``: how the model samples (see ``level_sampler.py``)."""
        return getattr(self.energy, "method", "plain")

    @property
    def default_steps(self) -> int:
        """Langevin steps per sample the model was trained with (100 when it does not say); a
        level model's whole schedule, every level once."""
        if is_level_model(self.energy):
            levels = len(self.energy.level_names())
            return levels * int(self.sampler_defaults.get("level_steps", DEFAULT_LEVEL_STEPS))
        return int(self.sampler_defaults.get("steps", 100))
