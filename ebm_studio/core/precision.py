"""The floating-point precision a sampler evaluates the energy and its input gradient in.

A sampler spends nearly all its time in E(x) and ∇ₓE(x). On CPUs with native bfloat16 dot
products (AVX512-BF16, AMX) and on recent GPUs, bf16 matrix products and convolutions run
1.2–2.6× faster than float32 on one core (float32 accumulation either way). Only the network's
inside runs in bf16: the chains, the step, the noise, the clamp and the returned energies stay
float32, and an MLP's first layer (which sees x itself) and its output product stay float32 too.
The rounding that remains (≈ 0.3–0.7 % of ∇E, relative) perturbs the drift slightly; with noise in
the step that is far below the noise (``tests/core/test_precision.py`` checks that samples match
the float32 path in mean and covariance, as ``bench/peers.py`` does on a Gaussian), while a
noiseless tuned descent simply follows a slightly rounded gradient.

Only the unadjusted samplers (Langevin, tuned) on a neural energy ever take bf16: ``auto`` (the
default) where the hardware has it natively, ``bf16`` everywhere. MALA and HMC stay float32 even
when ``bf16`` is asked for (say, by a checkpoint trained so): their accept step compares energies
and is exact only with them accurate. Analytic energies (Gaussians, mixtures) stay float32: they
are cheap and serve as references. Diffusion-recovery models sample their levels with their own
conditional gradient, always in float32.
"""

from __future__ import annotations

import functools

import torch

from ebm_studio.core.config import PRECISIONS
#: samplers whose correctness does not rest on exact energies (no accept step)
UNADJUSTED_KINDS = frozenset({"langevin", "tuned"})


def check_precision(value: object) -> str:
    """``value`` if it names a precision; ``ValueError`` naming the choices otherwise."""
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {value!r}")
    return str(value)


@functools.lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 products natively (so bf16 is faster, not only smaller)."""
    device = torch.device(device)
    return _native_bf16(device.type, device.index)


@functools.lru_cache(maxsize=None)
def _native_bf16(kind: str, index: int | None) -> bool:
    if kind == "cuda":
        # compute capability 8.0 (Ampere) and later have bf16 tensor cores; earlier GPUs only
        # emulate bf16, which torch.cuda.is_bf16_supported() counts as support
        try:
            return torch.cuda.get_device_capability(index) >= (8, 0)
        except (RuntimeError, AssertionError):
            return False
    if kind == "cpu":
        flags = _cpu_flags()
        return torch.backends.mkldnn.is_available() and bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def low_precision_ok(energy: torch.nn.Module) -> bool:
    """Whether ``energy`` is a network that may run in bf16 (see ``Energy.low_precision_ok``)."""
    return bool(getattr(energy, "low_precision_ok", False))


def compute_dtype(precision: str, device: torch.device | str, energy: torch.nn.Module,
                  kind: str) -> torch.dtype:
    """The dtype E and ∇E are computed in for this sampler kind, energy and device."""
    precision = check_precision(precision)
    if precision == "fp32" or kind not in UNADJUSTED_KINDS or not low_precision_ok(energy):
        return torch.float32
    if precision == "bf16" or native_bf16(device):
        return torch.bfloat16
    return torch.float32
