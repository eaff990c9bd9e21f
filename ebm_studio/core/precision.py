"""The floating-point precision a sampler evaluates the energy and its input gradient in.

A sampler spends nearly all its time in E(x) and ∇ₓE(x). On CPUs with native bfloat16 dot
products (AVX512-BF16, AMX) and on recent GPUs, bf16 matrix products and convolutions run
1.7–4× faster than float32 (float32 accumulation either way). Only the network's inside runs in
bf16: the chains, the step, the noise, the clamp and the returned energies stay float32, and the
first layer of an MLP (which sees x itself) and its output layer stay float32 too. The rounding that
remains (≈ 0.3–0.7 % of ∇E, relative) is a small deterministic perturbation of the drift, far below
the Langevin noise at any step size the app allows; ``tests/core/test_precision.py`` checks that
samples match the float32 path in mean and covariance, as ``bench/peers.py`` does on a Gaussian.

``auto`` (the default) takes bf16 where the hardware has it natively, for the unadjusted samplers
(Langevin, tuned) on a neural energy. MALA and HMC stay float32 under ``auto``: their accept step
compares energies, and bf16 energies would blur it. Analytic energies (Gaussians, mixtures) stay
float32 always: they are cheap and serve as references.
"""

from __future__ import annotations

import functools

import torch

from ebm_studio.core.config import PRECISIONS
PRECISION_LABELS = {
    "auto": "auto (bf16 where the hardware has it)",
    "fp32": "float32",
    "bf16": "bfloat16",
}

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
        try:
            return bool(torch.cuda.is_bf16_supported())
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
    if not low_precision_ok(energy) or precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if kind in UNADJUSTED_KINDS and native_bf16(device):
        return torch.bfloat16
    return torch.float32
