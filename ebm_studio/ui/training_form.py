"""The training panel's settings: model, sampler, optimiser and run fields, filled from presets.

The form edits a :class:`~ebm_studio.core.config.TrainConfig`. Fields it does not show (Adam's β,
the energy limit, the noise kind, ...) are kept from the configuration it was last given (a preset,
an opened checkpoint, an imported TOML file), so nothing is lost on the way through the form.
Every field's tooltip states its role in the update rule. While a run is going, only the settings
that are safe to change live stay editable (learning rate, step size, noise, temperature); their
changes go out through ``live_changed``.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ebm_studio.core.chains import INIT_LABELS
from ebm_studio.core.config import METHOD_LABELS, PRECISIONS, PRESETS, ConfigError, TrainConfig
from ebm_studio.core.device import available_devices
from ebm_studio.core.samplers import SAMPLER_KINDS, SAMPLER_LABELS
from ebm_studio.ui.widgets import LogSlider

#: the sampler's compute precision as the form names it (see core/precision.py)
PRECISION_NAMES = {"auto": "auto (bf16 where native)", "fp32": "float32", "bf16": "bfloat16"}

#: fields a running job applies at its next step (see worker/jobs/train_job.py LIVE_KEYS)
LIVE_FIELDS = ("lr", "step_size", "noise", "temperature")
LOSS = "loss = mean E(x⁺) − mean E(x⁻) + α·(mean E(x⁺)² + mean E(x⁻)²), x⁺ data, x⁻ samples"

TIPS = {
    "preset": "Fill every field with a tested set-up: <b>2-D quick</b> (MLP energy, persistent "
    "Langevin, trains in a minute on a CPU), <b>digits (UvA-style)</b> (ConvNet, tuned Langevin, "
    "replay buffer), <b>texture</b> (the digits set-up on texture crops), <b>digits, coarse-to-fine</b> "
    "(a 7 → 14 → 28 px ladder) and <b>digits, diffusion recovery</b> (twelve noise levels).",
    "method": "<b>Plain</b>: one energy; negatives from the sampler's chains (persistent, "
    "contrastive divergence or short-run).<br><b>Coarse-to-fine (multigrid)</b>: a ladder of "
    "energies at rising resolution (7 → 14 → 28 px for digits); sampling starts at the coarsest "
    "level from noise and each level's result, upsampled, starts the next.<br><b>Diffusion "
    "recovery likelihood</b>: one energy told the noise level t; each level samples "
    "p(x_t | x_{t+1}) ∝ exp(−E(x_t, t) − |x_t − x̃|²/2s²) by a short Langevin run, walking from "
    "noise down to t = 0. Choosing a method loads its tested settings.",
    "levels": "Multigrid: resolutions in the ladder, each half the next (the image side must "
    "divide by 2^(levels−1)). Diffusion recovery: noise levels K.",
    "level_steps": "Sampler steps at each level, per training step and when sampling.",
    "model": "E_θ(x): an MLP (Swish/SiLU) for 2-D points, a ConvNet for images; chosen by the data.",
    "hidden": "MLP hidden layer widths, comma-separated (e.g. 128, 128, 128): the network E_θ(x).",
    "width": "ConvNet base channel count: capacity of E_θ(x) for images.",
    "spectral": "Spectral normalisation of the ConvNet's layers: bounds how fast E_θ(x) can change "
    "with x, which smooths ∇ₓE for the sampler.",
    "ref_sigma": "σ of the Gaussian reference q(x) = N(0, σ²I): the model is p(x) ∝ exp(−E(x)/T)·q(x), "
    "so the sampler's potential is U(x) = E(x)/T + |x|²/(2σ²). 'none': no reference.",
    "sampler": "How negatives x⁻ are drawn in each training step:<br>"
    "<b>Langevin</b>: x ← x − (ε/2)∇U(x) + √ε·ξ.<br>"
    "<b>Tuned Langevin</b>: x ← x − α∇U(x) + σ·ξ, α and σ independent (a heuristic for images, "
    "not an exact sampler).<br><b>MALA</b>: Langevin + Metropolis–Hastings accept/reject.<br>"
    "<b>HMC</b>: L leapfrog steps, then accept/reject.",
    "init": "Where each step's chains start: <b>persistent</b> (replay buffer: last step's samples, "
    "a fraction re-seeded from noise), <b>contrastive divergence</b> (the data batch), "
    "<b>short-run</b> (fresh noise every step).",
    "mcmc_steps": "K: MCMC steps per training step; the negatives x⁻ are the chains after K steps.",
    "step_size": "ε in x ← x − (ε/2)∇U + √ε·ξ (Langevin, MALA), the leapfrog step (HMC), or α in "
    "x ← x − α∇U + σ·ξ (tuned Langevin). Changes live.",
    "noise": "σ in tuned Langevin x ← x − α∇U + σ·ξ (the other samplers use √ε). Changes live.",
    "temperature": "T in U(x) = E(x)/T: samples follow p_T ∝ exp(−E/T); T < 1 sharpens, T > 1 "
    "flattens. Changes live.",
    "leapfrog": "HMC: L leapfrog steps per proposal (trajectory length L·ε).",
    "clip_grad": "Element-wise clip of ∇U(x) inside the sampler update (tuned Langevin for images "
    "uses 0.03); 'off': no clipping.",
    "buffer_size": "Persistent chains: number of states kept in the replay buffer; each step draws "
    "a batch of them as starting points and writes the updated chains back.",
    "reseed": "Fraction of each batch drawn from the buffer that is replaced by fresh noise "
    "(keeps the buffer exploring; 0.05 in the literature).",
    "lr": "Adam learning rate η in θ ← θ − η·Adam(∇θ loss), " + LOSS + ". Changes live.",
    "alpha": "α, weight of the energy-magnitude regulariser in " + LOSS + ": keeps E near 0.",
    "batch": "Number of data points x⁺ (and chains x⁻) per training step.",
    "grad_clip": "Clip of the norm of ∇θ loss before the Adam step; 'off': no clipping.",
    "data_noise": "Std of Gaussian noise added to every data batch x⁺ (smooths p_data; 0.005 for "
    "the digits).",
    "total_steps": "Training steps of the run (the total: continuing a run counts on from its "
    "step).",
    "seed": "Seed of everything random in the run (weights, batches, chains): the same seed and "
    "settings repeat the same run exactly.",
    "device": "Where E_θ, the sampler and Adam compute. Choosing a device moves the engine at once, "
    "as the status bar's device box does; 'auto' keeps the engine's device (CUDA, then MPS, then "
    "CPU by default). Stored in exported TOML files for headless runs.",
    "precision": "What the network computes in while Langevin or tuned Langevin draws the negatives "
    "(and later, in the Live tab, for this model): 'auto' takes bfloat16 where the CPU or GPU "
    "computes it natively (1.2–2.6× faster, samples equal within Monte Carlo error), float32 "
    "elsewhere; MALA, HMC and diffusion recovery always use float32.",
    "autosave": "Write a resumable checkpoint every N steps into the autosave folder (atomically, "
    "keeping the newest 3); 0 = only when the run ends.",
    "record": "Record the negatives x⁻ of every K-th training step, to scrub through them in the "
    "Trajectories tab (within its memory budget); off = no recording.",
}


def _double(low: float, high: float, decimals: int, off_text: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setKeyboardTracking(False)
    box.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
    if off_text:
        box.setSpecialValueText(off_text)
    return box


def _int(low: int, high: int, off_text: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setKeyboardTracking(False)
    if off_text:
        box.setSpecialValueText(off_text)
    return box


class SettingsForm(QWidget):
    """Model, sampler, optimiser and run settings; see the module docstring."""

    #: {"lr": ...} etc.: a live field changed by the user
    live_changed = Signal(dict)
    #: the name of a preset the user picked
    preset_chosen = Signal(str)
    #: a training method (``plain``, ``multigrid``, ``drl``) the user picked
    method_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("training_form")
        self._base = PRESETS["2-D quick"]()
        self._kind = "points"
        self._filling = False

        # --- widgets ----------------------------------------------------------------------------
        self.preset_box = QComboBox()
        self.preset_box.setObjectName("preset_box")
        self.preset_box.addItem("Choose a preset…", "")
        for name in PRESETS:
            self.preset_box.addItem(name, name)
        self.preset_box.setToolTip(TIPS["preset"])

        self.method_box = QComboBox()
        self.method_box.setObjectName("method_box")
        for key, label in METHOD_LABELS.items():
            self.method_box.addItem(label, key)
        self.levels = _int(2, 20)
        self.levels.setObjectName("levels_spin")
        self.level_steps = _int(1, 10_000)
        self.level_steps.setObjectName("level_steps_spin")

        self.model_label = QLabel("")
        self.model_label.setToolTip(TIPS["model"])
        self.hidden = QLineEdit()
        self.hidden.setObjectName("hidden_edit")
        self.width_spin = _int(1, 512)
        self.spectral = QCheckBox("spectral norm")
        self.ref_sigma = _double(0.0, 1000.0, 3, "none")

        self.sampler_box = QComboBox()
        self.sampler_box.setObjectName("sampler_box")
        for k in SAMPLER_KINDS:
            self.sampler_box.addItem(SAMPLER_LABELS[k], k)
        self.init_box = QComboBox()
        self.init_box.setObjectName("init_box")
        for k in ("buffer", "data", "noise"):
            self.init_box.addItem(INIT_LABELS[k], k)
        self.mcmc_steps = _int(1, 10000)
        self.mcmc_steps.setObjectName("mcmc_steps_spin")
        self.step_size = LogSlider(1e-5, 100.0, 0.01, decimals=5)
        self.step_size.setObjectName("step_size_slider")
        self.noise = LogSlider(1e-4, 1.0, 0.005, decimals=4)
        self.noise.setObjectName("noise_slider")
        self.temperature = LogSlider(0.01, 100.0, 1.0, decimals=3)
        self.temperature.setObjectName("temperature_slider")
        self.leapfrog = _int(1, 100)
        self.clip_grad = _double(0.0, 1000.0, 4, "off")
        self.buffer_size = _int(1, 10_000_000)
        self.buffer_size.setObjectName("buffer_size_spin")
        self.reseed = _double(0.0, 1.0, 3)
        self.reseed.setSingleStep(0.01)

        self.lr = LogSlider(1e-6, 10.0, 1e-3, decimals=7)
        self.lr.setObjectName("lr_slider")
        self.alpha = _double(0.0, 100.0, 4)
        self.batch = _int(1, 65536)
        self.batch.setObjectName("batch_spin")
        self.grad_clip = _double(0.0, 1e6, 3, "off")
        self.data_noise = _double(0.0, 1.0, 4)

        self.total_steps = _int(1, 100_000_000)
        self.total_steps.setObjectName("total_steps_spin")
        self.total_steps.setGroupSeparatorShown(True)
        self.seed = _int(0, 2**31 - 1)
        self.seed.setObjectName("seed_spin")
        self.device_box = QComboBox()
        self.device_box.setObjectName("train_device_box")
        self.device_box.addItem("auto", "auto")
        for name in available_devices():
            self.device_box.addItem(name, name)
        self.precision_box = QComboBox()
        self.precision_box.setObjectName("precision_box")
        for k in PRECISIONS:
            self.precision_box.addItem(PRECISION_NAMES[k], k)
        self.autosave = _int(0, 10_000_000, "off")
        self.autosave.setObjectName("autosave_spin")
        self.autosave.setValue(500)
        self.autosave.setSuffix(" steps")
        self.record = _int(0, 1_000_000, "off")
        self.record.setObjectName("record_negatives_spin")
        self.record.setSuffix(" steps")

        tips = {
            self.hidden: "hidden", self.width_spin: "width", self.spectral: "spectral",
            self.ref_sigma: "ref_sigma", self.sampler_box: "sampler", self.init_box: "init",
            self.mcmc_steps: "mcmc_steps", self.step_size: "step_size", self.noise: "noise",
            self.temperature: "temperature", self.leapfrog: "leapfrog", self.clip_grad: "clip_grad",
            self.buffer_size: "buffer_size", self.reseed: "reseed", self.lr: "lr",
            self.alpha: "alpha", self.batch: "batch", self.grad_clip: "grad_clip",
            self.data_noise: "data_noise", self.total_steps: "total_steps", self.seed: "seed",
            self.device_box: "device", self.precision_box: "precision", self.autosave: "autosave",
            self.record: "record",
            self.method_box: "method", self.levels: "levels", self.level_steps: "level_steps",
        }
        for w, key in tips.items():
            w.setToolTip(TIPS[key])

        # --- layout -------------------------------------------------------------------------------
        def group(title: str, rows: list[tuple[str, QWidget]]) -> tuple[QGroupBox, dict]:
            box = QGroupBox(title)
            form = QFormLayout(box)
            labels = {}
            for text, w in rows:
                label = QLabel(text)
                label.setToolTip(w.toolTip())
                form.addRow(label, w)
                labels[w] = label
            return box, labels

        self.labels: dict[QWidget, QLabel] = {}
        preset_box, lab = group("Preset and method", [
            ("Start from", self.preset_box), ("Method", self.method_box), ("Levels", self.levels),
            ("Steps per level", self.level_steps),
        ])
        self.labels.update(lab)
        model_box, lab = group("Model E_θ(x)", [
            ("Network", self.model_label), ("Hidden layers", self.hidden), ("Conv width", self.width_spin),
            ("", self.spectral), ("Reference σ", self.ref_sigma),
        ])
        self.labels.update(lab)
        sampler_box, lab = group("Sampler (negatives x⁻)", [
            ("Sampler", self.sampler_box), ("Chains start", self.init_box),
            ("MCMC steps K", self.mcmc_steps), ("Step size ε / α", self.step_size),
            ("Noise σ", self.noise), ("Temperature T", self.temperature),
            ("Leapfrog steps L", self.leapfrog), ("Clip ∇U", self.clip_grad),
            ("Buffer size", self.buffer_size), ("Re-seed fraction", self.reseed),
        ])
        self.labels.update(lab)
        optim_box, lab = group("Optimiser (Adam)", [
            ("Learning rate η", self.lr), ("Regulariser α", self.alpha), ("Batch size", self.batch),
            ("Clip ‖∇θ‖", self.grad_clip), ("Data noise", self.data_noise),
        ])
        self.labels.update(lab)
        run_box, lab = group("Run", [
            ("Training steps", self.total_steps), ("Seed", self.seed), ("Device", self.device_box),
            ("Precision", self.precision_box), ("Autosave every", self.autosave),
            ("Record negatives every", self.record),
        ])
        self.labels.update(lab)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for box in (preset_box, model_box, sampler_box, optim_box, run_box):
            lay.addWidget(box)

        # --- wiring -------------------------------------------------------------------------------
        self.preset_box.activated.connect(self._on_preset)
        self.method_box.activated.connect(
            lambda i: self.method_chosen.emit(str(self.method_box.itemData(i))))
        self.sampler_box.currentIndexChanged.connect(lambda _: self._update_enabled())
        self.init_box.currentIndexChanged.connect(lambda _: self._update_enabled())
        self.lr.valueChanged.connect(lambda v: self._live("lr", v))
        self.step_size.valueChanged.connect(lambda v: self._live("step_size", v))
        self.noise.valueChanged.connect(lambda v: self._live("noise", v))
        self.temperature.valueChanged.connect(lambda v: self._live("temperature", v))
        self._running = False
        self.set_config(self._base)

    # --- presets and configurations -----------------------------------------------------------------
    def _on_preset(self, index: int) -> None:
        name = self.preset_box.itemData(index)
        if name:
            self.preset_chosen.emit(str(name))

    def _numeric_fields(self, cfg: TrainConfig) -> list[tuple[str, QWidget, float]]:
        """Every numeric field with the configuration key and value it shows."""
        s, o, m = cfg.sampler, cfg.optim, cfg.model
        return [
            ("model.width", self.width_spin, m.width),
            ("model.ref_sigma", self.ref_sigma, m.ref_sigma or 0.0),
            ("method.levels", self.levels, cfg.method.levels),
            ("method.level_steps", self.level_steps, cfg.method.level_steps),
            ("sampler.steps", self.mcmc_steps, s.steps),
            ("sampler.step_size", self.step_size, s.step_size),
            ("sampler.noise", self.noise, max(s.noise, 1e-4)),  # no noise is shown as the least
            ("sampler.temperature", self.temperature, s.temperature),
            ("sampler.n_leapfrog", self.leapfrog, s.n_leapfrog),
            ("sampler.clip_grad", self.clip_grad, s.clip_grad or 0.0),
            ("sampler.buffer_size", self.buffer_size, s.buffer_size),
            ("sampler.reseed_fraction", self.reseed, s.reseed_fraction),
            ("optim.lr", self.lr, o.lr),
            ("optim.alpha", self.alpha, o.alpha),
            ("optim.batch_size", self.batch, o.batch_size),
            ("optim.grad_clip", self.grad_clip, o.grad_clip or 0.0),
            ("data.data_noise", self.data_noise, cfg.data.data_noise),
            ("steps", self.total_steps, cfg.steps),
            ("seed", self.seed, cfg.seed),
        ]

    @staticmethod
    def _range(box: QWidget) -> tuple[float, float]:
        spin = box.spin if isinstance(box, LogSlider) else box
        return spin.minimum(), spin.maximum()

    def out_of_range(self, cfg: TrainConfig) -> list[str]:
        """One line per value of ``cfg`` that the form cannot show (it would be clamped)."""
        lines = []
        for key, box, value in self._numeric_fields(cfg):
            lo, hi = self._range(box)
            if not lo <= value <= hi:
                lines.append(f"{key} = {value:g} is outside what the form accepts ({lo:g} … {hi:g})")
        return lines

    def set_config(self, cfg: TrainConfig) -> list[str]:
        """Show ``cfg`` in the fields; fields the form does not show keep its values. Values beyond
        a field's range are shown clamped; the returned lines (see :meth:`out_of_range`) say which."""
        self._base = cfg.copy()
        s, m = cfg.sampler, cfg.model
        self._filling = True
        try:
            self._kind = "points" if m.kind == "mlp" else "images"
            self.hidden.setText(", ".join(str(h) for h in m.hidden))
            self.spectral.setChecked(m.spectral_norm)
            self.method_box.setCurrentIndex(max(0, self.method_box.findData(cfg.method.name)))
            self.sampler_box.setCurrentIndex(max(0, self.sampler_box.findData(s.kind)))
            self.init_box.setCurrentIndex(max(0, self.init_box.findData(s.init)))
            for _, box, value in self._numeric_fields(cfg):
                lo, hi = self._range(box)  # an int box given 2**40 raises OverflowError
                box.setValue(type(lo)(min(max(value, lo), hi)) if isinstance(box, QSpinBox)
                             else min(max(value, lo), hi))
            i = self.device_box.findData(cfg.device)
            self.device_box.setCurrentIndex(max(0, i))  # a device this machine lacks: auto
            self.precision_box.setCurrentIndex(max(0, self.precision_box.findData(s.precision)))
        finally:
            self._filling = False
        self._update_enabled()
        return self.out_of_range(cfg)

    def base_config(self) -> TrainConfig:
        """The configuration the form was last given (before the user's edits)."""
        return self._base.copy()

    def config(self, data_name: str, image_size: int | None = None) -> TrainConfig:
        """The configuration in the fields for ``data_name``; raises :class:`ConfigError` with a
        message naming the bad field."""
        cfg = self._base.copy()
        s, o, m = cfg.sampler, cfg.optim, cfg.model
        cfg.data.name = data_name
        cfg.data.image_size = image_size
        cfg.data.data_noise = self.data_noise.value()
        m.kind = "mlp" if self._kind == "points" else "conv"
        text = self.hidden.text().strip()
        try:
            hidden = [int(part) for part in text.replace(";", ",").split(",") if part.strip()]
        except ValueError:
            raise ConfigError(f"Hidden layers: {text!r} is not a comma-separated list of whole "
                              "numbers (e.g. 128, 128, 128)") from None
        if not hidden or any(h < 1 or h > 16384 for h in hidden):
            raise ConfigError("Hidden layers: give one or more widths between 1 and 16384 "
                              "(e.g. 128, 128, 128)")
        m.hidden = hidden
        m.width = self.width_spin.value()
        m.spectral_norm = self.spectral.isChecked()
        m.ref_sigma = self.ref_sigma.value() or None
        cfg.method.name = self.method_box.currentData()
        cfg.method.levels = self.levels.value()
        cfg.method.level_steps = self.level_steps.value()
        s.kind = self.sampler_box.currentData()
        s.init = self.init_box.currentData()
        s.steps = self.mcmc_steps.value()
        s.step_size = self.step_size.value()
        s.noise = self.noise.value()
        s.temperature = self.temperature.value()
        s.n_leapfrog = self.leapfrog.value()
        s.clip_grad = self.clip_grad.value() or None
        s.buffer_size = self.buffer_size.value()
        s.reseed_fraction = self.reseed.value()
        s.precision = self.precision_box.currentData()
        o.lr = self.lr.value()
        o.alpha = self.alpha.value()
        o.batch_size = self.batch.value()
        o.grad_clip = self.grad_clip.value() or None
        cfg.steps = self.total_steps.value()
        cfg.seed = self.seed.value()
        cfg.device = self.device_box.currentData()
        if cfg.method.name == "plain" and s.init == "buffer" and s.buffer_size < o.batch_size:
            raise ConfigError(f"Buffer size ({s.buffer_size:,}) must be at least the batch size "
                              f"({o.batch_size:,}): each step draws a whole batch from the buffer.")
        return cfg.validate()

    def live_values(self) -> dict:
        """The live fields as the engine's live settings name them."""
        return {"lr": self.lr.value(), "step_size": self.step_size.value(),
                "noise": self.noise.value(), "temperature": self.temperature.value()}

    def set_lr(self, lr: float) -> None:
        """Show a learning rate set elsewhere (a rollback) without sending it back out."""
        self.lr.setValue(lr)
        self._base.optim.lr = float(lr)

    def set_data_kind(self, kind: str) -> None:
        """Points use the MLP fields, images the ConvNet fields."""
        self._kind = kind
        self._update_enabled()

    @property
    def data_kind(self) -> str:
        return self._kind

    # --- enabling -------------------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        """Lock everything but the live fields while a run is going."""
        self._running = running
        self._update_enabled()

    def _update_enabled(self) -> None:
        points = self._kind == "points"
        self.model_label.setText("MLP (2-D points)" if points else "ConvNet (images)")
        kind = self.sampler_box.currentData()
        method = self.method_box.currentData()
        plain, drl = method == "plain", method == "drl"
        buffer = plain and self.init_box.currentData() == "buffer"
        free = not self._running
        rules = {
            self.preset_box: free,
            self.method_box: free,
            self.levels: free and not plain,
            self.level_steps: free and not plain,
            self.hidden: free and points,
            self.width_spin: free and not points,
            self.spectral: free and not points,
            self.ref_sigma: free,
            # the level methods start their own chains (noise, or noised data for drl), and
            # diffusion recovery samples every level with Langevin
            self.sampler_box: free and not drl,
            self.init_box: free and plain,
            self.mcmc_steps: free and plain,
            self.step_size: True,
            self.noise: kind == "tuned" and not drl,
            self.temperature: True,
            self.leapfrog: free and kind == "hmc",
            self.clip_grad: free and not drl,
            self.buffer_size: free and buffer,
            self.reseed: free and buffer,
            self.lr: True,
            self.alpha: free,
            self.batch: free,
            self.grad_clip: free,
            self.data_noise: free,
            self.total_steps: free,
            self.seed: free,
            self.device_box: free,
            # only Langevin and tuned Langevin compute in bf16 (diffusion recovery never does)
            self.precision_box: free and kind in ("langevin", "tuned") and not drl,
            self.autosave: free,
            self.record: free,
        }
        for w, on in rules.items():
            w.setEnabled(on)
            label = self.labels.get(w)
            if label is not None:
                label.setEnabled(on)

    def _live(self, key: str, value: float) -> None:
        if self._filling or not math.isfinite(value):
            return
        self.live_changed.emit({key: value})

    # --- comparison for "continue" ---------------------------------------------------------------
    def structural_differences(self, run_config: dict, data_name: str, image_size: int | None) -> list[str]:
        """Fields (by name) where the form differs from ``run_config`` in ways a continued run
        cannot take over (everything except the live fields and the number of steps)."""
        try:
            mine = self.config(data_name, image_size).to_dict()
        except ConfigError:
            return []
        skip = {("optim", "lr"), ("sampler", "step_size"), ("sampler", "noise"),
                ("sampler", "temperature"), ("steps",), ("device",)}
        out = []
        for section, values in mine.items():
            if isinstance(values, dict):
                theirs = run_config.get(section, {}) or {}
                for key, v in values.items():
                    if (section, key) not in skip and theirs.get(key) != v:
                        out.append(_difference(f"{section}.{key}", v, theirs.get(key)))
            elif (section,) not in skip and run_config.get(section) != values:
                out.append(_difference(section, values, run_config.get(section)))
        return out


#: the words the form uses for configuration keys (messages name fields as the user sees them)
FIELD_NAMES = {
    "data.name": "data set", "data.image_size": "image size", "data.data_noise": "data noise",
    "model.kind": "network", "model.hidden": "hidden layers", "model.width": "ConvNet width",
    "model.spectral_norm": "spectral norm", "model.ref_sigma": "reference q σ",
    "sampler.kind": "sampler", "sampler.init": "chain start", "sampler.steps": "MCMC steps",
    "sampler.n_leapfrog": "leapfrog steps", "sampler.clip_grad": "gradient clip",
    "sampler.clamp": "clamp to the data range", "sampler.buffer_size": "replay buffer size",
    "sampler.reseed_fraction": "buffer re-seed fraction", "sampler.noise_kind": "start noise",
    "optim.beta1": "Adam β₁", "optim.beta2": "Adam β₂", "optim.alpha": "energy regulariser α",
    "optim.batch_size": "batch size", "optim.energy_limit": "divergence limit", "seed": "seed",
    "method.name": "method", "method.levels": "levels", "method.level_steps": "steps per level",
    "method.beta_min": "smallest noise β", "method.beta_max": "largest noise β",
}


def _difference(key: str, mine, theirs) -> str:
    """'batch size 64 (the run has 256)': one differing field in the user's words."""
    def show(v) -> str:
        if isinstance(v, (list, tuple)):
            return "-".join(str(x) for x in v)
        return "none" if v is None else str(v)

    return f"{FIELD_NAMES.get(key, key)} {show(mine)} (the run has {show(theirs)})"
