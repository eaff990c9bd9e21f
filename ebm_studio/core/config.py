"""Training configuration: dataclasses that round-trip through TOML, and the built-in presets.

A configuration says everything a run needs (data, model, sampler, optimiser, seed, device), so a
GUI session can be exported and rerun headless with ``ebm-studio train --config FILE.toml``.
Optional fields default to ``None`` and are left out of the TOML file (TOML has no null).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

#: what a sampler may compute E and ∇E in (see ``precision.py``, which needs torch: this does not)
PRECISIONS = ("auto", "fp32", "bf16")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A configuration file or value that cannot be used; the message says which and why."""


#: the ranges of whole-number settings: beyond them a run cannot fit in one machine's memory
#: (buffers, batches, layers) or would never end (chain lengths); ``model.hidden`` per layer
INT_RANGES = {
    "sampler.steps": (1, 1_000_000),
    "sampler.n_leapfrog": (1, 10_000),
    "sampler.buffer_size": (1, 100_000_000),
    "optim.batch_size": (1, 10_000_000),
    "model.hidden": (1, 65_536),
    "model.width": (1, 4_096),
    "method.level_steps": (1, 10_000),
    "seed": (0, 2**63 - 1),
    "steps": (1, 10**12),
}
FLOAT32_MAX = 3.4028234663852886e38


@dataclass
class DataConfig:
    #: a built-in name (``8gaussians``, ``digits``, ``texture:brick``...) or a file/folder path
    name: str = "8gaussians"
    #: image side in pixels for image sets (None: the set's own size)
    image_size: int | None = None
    #: 1 (grey) or 3 (RGB) for user images (None: as the files are)
    channels: int | None = None
    #: std of Gaussian noise added to each data batch (smooths the data distribution)
    data_noise: float = 0.0


@dataclass
class ModelConfig:
    #: ``mlp`` for points, ``conv`` for images
    kind: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [128, 128, 128])
    width: int = 16
    spectral_norm: bool = False
    #: σ of the Gaussian reference q(x) = N(0, σ²I); None for no reference
    ref_sigma: float | None = None


@dataclass
class SamplerConfig:
    #: ``langevin``, ``tuned``, ``mala`` or ``hmc``
    kind: str = "langevin"
    #: chain initialisation: ``buffer`` (persistent), ``data`` (contrastive divergence), ``noise`` (short-run)
    init: str = "buffer"
    steps: int = 30
    step_size: float = 0.01
    noise: float = 0.005
    temperature: float = 1.0
    n_leapfrog: int = 5
    #: element-wise clip of ∇U (None: no clipping)
    clip_grad: float | None = None
    #: keep chains inside the data box
    clamp: bool = True
    buffer_size: int = 8192
    reseed_fraction: float = 0.05
    #: ``uniform`` on the data box or ``gaussian``
    noise_kind: str = "uniform"
    #: what E and ∇E are computed in while sampling: ``auto`` (bf16 for Langevin and tuned where
    #: the hardware has it), ``fp32`` or ``bf16`` (see ``precision.py``)
    precision: str = "auto"


@dataclass
class OptimConfig:
    lr: float = 1e-3
    beta1: float = 0.0
    beta2: float = 0.999
    #: weight of the energy-magnitude regulariser α·(E_data² + E_sample²)
    alpha: float = 0.1
    batch_size: int = 128
    #: clip of the parameter-gradient norm (None: no clipping)
    grad_clip: float | None = None
    #: |E| above this stops the run as diverged
    energy_limit: float = 1e4
    #: ``constant``, or ``cosine``: the learning rate falls to ``lr_final``·lr at the last step
    #: (late steps average out the noise of the stochastic gradient instead of adding to it)
    lr_schedule: str = "constant"
    lr_final: float = 0.1


#: training methods: one energy with the sampler's chains, a coarse-to-fine ladder, or
#: diffusion recovery likelihood (see ``ladder.py`` and ``recovery.py``)
METHODS = ("plain", "multigrid", "drl")
METHOD_LABELS = {
    "plain": "Plain (one energy)",
    "multigrid": "Coarse-to-fine (multigrid)",
    "drl": "Diffusion recovery likelihood",
}


@dataclass
class MethodConfig:
    #: ``plain``, ``multigrid`` or ``drl``
    name: str = "plain"
    #: multigrid: resolutions in the ladder (each half the next); drl: noise levels
    levels: int = 3
    #: multigrid and drl: sampler steps at each level (``sampler.steps`` is for plain training)
    level_steps: int = 20
    #: drl: the noise variances β₁ … β_K run geometrically from ``beta_min`` to ``beta_max``
    beta_min: float = 0.001
    beta_max: float = 0.6


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    seed: int = 0
    #: ``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps``
    device: str = "auto"
    #: default number of training steps for a run
    steps: int = 2000

    # --- validation --------------------------------------------------------------------------
    def validate(self) -> "TrainConfig":
        """Raise :class:`ConfigError` naming the first bad value; returns self."""
        s, o, m = self.sampler, self.optim, self.model
        checks = [
            ("sampler.kind", s.kind in ("langevin", "tuned", "mala", "hmc"), s.kind),
            ("sampler.init", s.init in ("buffer", "data", "noise"), s.init),
            ("sampler.noise_kind", s.noise_kind in ("uniform", "gaussian"), s.noise_kind),
            ("sampler.precision", s.precision in PRECISIONS, s.precision),
            ("sampler.steps", s.steps >= 1, s.steps),
            ("sampler.step_size", _pos(s.step_size), s.step_size),
            ("sampler.noise", _nonneg(s.noise), s.noise),
            ("sampler.temperature", _pos(s.temperature), s.temperature),
            ("sampler.n_leapfrog", s.n_leapfrog >= 1, s.n_leapfrog),
            ("sampler.clip_grad", s.clip_grad is None or _pos(s.clip_grad), s.clip_grad),
            ("sampler.buffer_size", s.buffer_size >= 1, s.buffer_size),
            ("sampler.reseed_fraction", 0 <= s.reseed_fraction <= 1, s.reseed_fraction),
            ("model.kind", m.kind in ("mlp", "conv"), m.kind),
            ("model.hidden", len(m.hidden) >= 1 and all(h >= 1 for h in m.hidden), m.hidden),
            ("model.width", m.width >= 1, m.width),
            ("model.ref_sigma", m.ref_sigma is None or _pos(m.ref_sigma), m.ref_sigma),
            ("optim.lr", _pos(o.lr), o.lr),
            ("optim.beta1", 0 <= o.beta1 < 1, o.beta1),
            ("optim.beta2", 0 <= o.beta2 < 1, o.beta2),
            ("optim.alpha", _nonneg(o.alpha), o.alpha),
            ("optim.batch_size", o.batch_size >= 1, o.batch_size),
            ("optim.grad_clip", o.grad_clip is None or _pos(o.grad_clip), o.grad_clip),
            ("optim.energy_limit", _pos(o.energy_limit), o.energy_limit),
            ("optim.lr_schedule", o.lr_schedule in ("constant", "cosine"), o.lr_schedule),
            ("optim.lr_final", 0 <= o.lr_final <= 1, o.lr_final),
            ("data.data_noise", _nonneg(self.data.data_noise), self.data.data_noise),
            ("data.image_size", self.data.image_size is None or 16 <= self.data.image_size <= 64,
             self.data.image_size),
            ("data.channels", self.data.channels in (None, 1, 3), self.data.channels),
            ("steps", self.steps >= 1, self.steps),
            ("method.name", self.method.name in METHODS, self.method.name),
            ("method.levels", 2 <= self.method.levels <= 20, self.method.levels),
            ("method.level_steps", 1 <= self.method.level_steps <= 10_000, self.method.level_steps),
            ("method.beta_min", _pos(self.method.beta_min) and self.method.beta_min < 1, self.method.beta_min),
            ("method.beta_max", _pos(self.method.beta_max) and self.method.beta_max < 1, self.method.beta_max),
        ]
        for name, ok, value in checks:
            if not ok:
                raise ConfigError(f"{name} has an invalid value: {value!r}")
        self._check_ranges()
        if self.method.beta_min >= self.method.beta_max:
            raise ConfigError(f"method.beta_min ({self.method.beta_min}) must be below method.beta_max "
                              f"({self.method.beta_max})")
        if self.method.name == "multigrid" and self.method.levels > 5:
            raise ConfigError(f"method.levels has an invalid value for multigrid: {self.method.levels} "
                              "(a ladder has 2..5 resolutions)")
        if self.method.name == "multigrid" and m.kind != "conv":
            raise ConfigError("method 'multigrid' needs image data (model.kind 'conv'); a ladder of "
                              "resolutions has no meaning for points")
        if self.method.name == "drl" and s.kind != "langevin":
            raise ConfigError(f"method 'drl' samples each level with plain Langevin (sampler.kind "
                              f"'langevin'), got {s.kind!r}")
        if self.method.name == "plain" and s.init == "buffer" and s.buffer_size < o.batch_size:
            raise ConfigError(
                f"sampler.buffer_size ({s.buffer_size}) must be at least optim.batch_size "
                f"({o.batch_size}) for a replay buffer"
            )
        return self

    def _check_ranges(self) -> None:
        """Sizes and counts within what one machine can hold, before anything is allocated."""
        for name, (low, high) in INT_RANGES.items():
            section, _, key = name.rpartition(".")
            value = getattr(getattr(self, section) if section else self, key)
            for v in value if isinstance(value, list) else [value]:
                if not low <= v <= high:
                    raise ConfigError(f"{name} = {v:,} is outside the range {low:,} … {high:,}")
        if self.optim.lr > FLOAT32_MAX:
            raise ConfigError(f"optim.lr = {self.optim.lr:g} is beyond the largest 32-bit number "
                              f"({FLOAT32_MAX:.3g})")

    # --- plain data / TOML -----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Nested plain dict; ``None`` values are dropped (they are the defaults)."""
        return _drop_none(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Build from a nested dict; unknown keys and wrong types raise :class:`ConfigError`."""
        return _from_dict(cls, data, "").validate()

    def to_toml(self) -> str:
        return _dump_toml(self.to_dict())

    @classmethod
    def from_toml(cls, text: str) -> "TrainConfig":
        try:
            return cls.from_dict(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}") from None
        except RecursionError:  # a hostile file of nested arrays or tables
            raise ConfigError("not a training configuration: its tables or arrays are nested too "
                              "deeply") from None

    def save(self, path: str | Path) -> None:
        from ebm_studio.core.fileio import atomic_write_text

        atomic_write_text(Path(path), self.to_toml())

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        p = Path(path)
        if p.exists() and not p.is_file():  # reading a pipe would block
            raise ConfigError(f"{p}: not a regular file (a folder, pipe or device)")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read configuration {p}: {exc}") from None
        try:
            return cls.from_toml(text)
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None

    def copy(self) -> "TrainConfig":
        return TrainConfig.from_dict(self.to_dict())


def _pos(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def _nonneg(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v) and v >= 0


def _drop_none(d: dict) -> dict:
    return {k: (_drop_none(v) if isinstance(v, dict) else v) for k, v in d.items() if v is not None}


def _from_dict(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'configuration'} must be a table, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown key(s) in {where or 'configuration'}: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(names))})"
        )
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        key = f"{where}.{f.name}" if where else f.name
        kwargs[f.name] = _coerce(hints[f.name], data[f.name], key)
    return cls(**kwargs)


def _coerce(hint, value, key: str):
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value, key)
    text = str(hint)
    if "float" in text and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if text.startswith("list") and isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return list(value)
    if "int" in text and "float" not in text and isinstance(value, int) and not isinstance(value, bool):
        return value
    if "bool" in text and isinstance(value, bool):
        return value
    if "str" in text and isinstance(value, str):
        return value
    raise ConfigError(f"{key} has the wrong type: {value!r} (expected {_type_words(text)})")


def _type_words(hint: str) -> str:
    """A type hint in a user's words: 'a number or nothing', not "float | None"."""
    words = []
    for part in ("list", "float", "int", "bool", "str"):
        if part in hint and not (part == "int" and ("float" in hint or "list" in hint)):
            words.append({"list": "a list of whole numbers", "float": "a number", "int": "a whole number",
                          "bool": "true or false", "str": "text in quotes"}[part])
    return " or ".join(words) or hint


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        escaped = v.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {v!r} to TOML")


def _dump_toml(d: dict) -> str:
    top = [f"{k} = {_toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    lines = ["# EBM Studio training configuration (ebm-studio train --config FILE.toml)", *top]
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]", *(f"{kk} = {_toml_value(vv)}" for kk, vv in v.items())]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------


def preset_2d(data: str = "8gaussians") -> TrainConfig:
    """2-D toys: an MLP energy, persistent Langevin chains; trains in well under a minute on CPU."""
    return TrainConfig(
        data=DataConfig(name=data),
        model=ModelConfig(kind="mlp", hidden=[128, 128, 128]),
        sampler=SamplerConfig(
            kind="langevin", init="buffer", steps=20, step_size=0.01, buffer_size=8192,
            reseed_fraction=0.05, clamp=True,
        ),
        # α = 0.1 pulls every mode's data energy towards 0: without it the relative depths of
        # modes that chains never cross between drift freely, and the NLL suffers
        optim=OptimConfig(lr=2e-3, beta1=0.5, beta2=0.999, alpha=0.1, batch_size=256, grad_clip=1.0),
        steps=1000,
    )


def preset_digits() -> TrainConfig:
    """MNIST digits, the UvA-tutorial set-up: tuned Langevin, step 10, noise 0.005, 60 steps,
    buffer 8192 with 5 % re-seeding, α = 0.1, Adam lr 1e-4, betas (0, 0.999), gradients clipped."""
    return TrainConfig(
        data=DataConfig(name="digits", data_noise=0.005),
        model=ModelConfig(kind="conv", width=16),
        sampler=SamplerConfig(
            kind="tuned", init="buffer", steps=60, step_size=10.0, noise=0.005, clip_grad=0.03,
            buffer_size=8192, reseed_fraction=0.05, clamp=True,
        ),
        optim=OptimConfig(lr=1e-4, beta1=0.0, beta2=0.999, alpha=0.1, batch_size=128, grad_clip=None),
        steps=4000,
    )


def preset_texture(which: str = "texture:brick", size: int = 32) -> TrainConfig:
    """Texture crops (Generative ConvNet style): the digits set-up on random crops of one texture."""
    cfg = preset_digits()
    cfg.data = DataConfig(name=which, image_size=size, data_noise=0.005)
    cfg.model = ModelConfig(kind="conv", width=16)
    cfg.optim.batch_size = 64
    return cfg


def preset_multigrid(data: str = "digits") -> TrainConfig:
    """Coarse-to-fine digits: a 7 → 14 → 28 px ladder. Persistent tuned-Langevin chains at the
    coarsest level (a replay buffer of 7×7 images, where the digit's identity is decided), each
    level's result upsampled to start a short run at the next."""
    cfg = preset_for(data)
    cfg.method = MethodConfig(name="multigrid", levels=3, level_steps=20)
    cfg.sampler.init = "buffer"
    cfg.sampler.buffer_size = 2048
    cfg.optim.lr = 1e-3
    return cfg


def preset_drl(data: str = "digits") -> TrainConfig:
    """Diffusion recovery likelihood: twelve noise levels (β 0.001 … 0.6, geometric) and the top
    level, 10 Langevin steps of ε = 0.1·s_t² per level, every example at a random level, no
    replay buffer. Many small levels keep each conditional narrow enough for a short run."""
    cfg = preset_for(data)
    cfg.method = MethodConfig(name="drl", levels=12, level_steps=10, beta_min=0.001, beta_max=0.6)
    cfg.sampler = SamplerConfig(kind="langevin", init="noise", steps=10, step_size=0.1, noise=0.0,
                                clamp=True)
    cfg.data.data_noise = 0.0
    if cfg.model.kind == "conv":
        # α keeps the level energies bounded: without it the contrast grew until the run diverged
        cfg.optim = OptimConfig(lr=1e-3, beta1=0.0, beta2=0.999, alpha=0.05, batch_size=128)
    return cfg


def preset_for_method(method: str, data_name: str, kind: str | None = None) -> TrainConfig:
    """The preset of a training method (``plain``, ``multigrid``, ``drl``) for a data set."""
    if method == "multigrid":
        return preset_multigrid(data_name)
    if method == "drl":
        return preset_drl(data_name)
    if method != "plain":
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    return preset_for(data_name, kind)


#: presets that choose a training method rather than a data family (they keep the images shown)
PRESET_METHOD = {"digits, coarse-to-fine": "multigrid", "digits, diffusion recovery": "drl"}

PRESETS = {
    "2-D quick": preset_2d,
    "digits (UvA-style)": preset_digits,
    "texture": preset_texture,
    "digits, coarse-to-fine": preset_multigrid,
    "digits, diffusion recovery": preset_drl,
}


def preset_name_for(data_name: str, kind: str | None = None) -> str:
    """The name (a key of ``PRESETS``) of the preset that fits a data set."""
    from ebm_studio.core.datasets import TOY_NAMES

    if data_name in TOY_NAMES or kind == "points":
        return "2-D quick"
    if data_name.startswith("texture"):
        return "texture"
    return "digits (UvA-style)"  # digits, and other images (at 32 px, see ``preset_for``)


def preset_for(data_name: str, kind: str | None = None) -> TrainConfig:
    """The preset that fits a data set (``kind`` ``points`` → 2-D, digits, textures, other images)."""
    name = preset_name_for(data_name, kind)
    if name == "2-D quick":
        return preset_2d(data_name)
    if name == "texture":
        return preset_texture(data_name)
    if data_name == "digits":
        return preset_digits()
    cfg = preset_digits()
    cfg.data = DataConfig(name=data_name, image_size=32, data_noise=0.005)
    return cfg
