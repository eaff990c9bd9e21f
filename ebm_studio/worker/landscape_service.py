"""2-D landscapes for the GUI, computed in the worker: E, p_T, ∇E and the numbers panel.

The result is a plain dict of numpy arrays and floats (no tensors): the landscape itself, the
ground truth on the same grid when the data set has an exact density, and the quadrature numbers
(log Z, held-out NLL, both KL directions, mass per mode).
"""

from __future__ import annotations

import time

import numpy as np

from ebm_studio.core.landscape import (
    DEFAULT_GRID_N,
    Grid,
    compare_to_truth,
    compute_landscape,
    evaluate_energy,
    log_density,
    mode_masses,
    nll,
)
from ebm_studio.worker.live import Settings
from ebm_studio.worker.model_state import ModelState

HELDOUT_N = 2000


def landscape_for(model: ModelState, params: dict, settings: Settings) -> dict:
    """Compute everything the landscape view draws for the current model."""
    t0 = time.perf_counter()
    n = int(params.get("n", DEFAULT_GRID_N))
    temperature = float(params.get("temperature", settings.temperature))
    lo, hi = params.get("box") or model.value_range
    grid = Grid((float(lo), float(hi)), (float(lo), float(hi)), n)
    ls = compute_landscape(
        model.energy, grid, temperature, grad_n=int(params.get("grad_n", 24)),
        ref_sigma=model.ref_sigma,
    )
    numbers: dict = {"log_z": ls.log_z, "grid_n": n, "temperature": temperature}
    out = {"landscape": ls, "numbers": numbers, "truth_log_density": None, "data_hist": None}
    truth = model.truth
    try:
        dataset = model.dataset()
    except Exception:  # the numbers panel just shows fewer numbers
        dataset = None
    if dataset is not None:
        held = dataset.heldout(HELDOUT_N)
        numbers["nll"] = nll(model.energy, held, ls.log_z, temperature, ref_sigma=model.ref_sigma)
        pts = held.numpy()
        h, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=min(n, 128), range=[(lo, hi), (lo, hi)])
        out["data_hist"] = h.astype(np.float32)
        out["data_points"] = pts[:512].astype(np.float32)
    if truth is not None:
        import torch

        with torch.no_grad():
            true_lp = truth.log_prob(grid.points()).double().numpy().reshape(n, n)
        out["truth_log_density"] = true_lp
        numbers.update(compare_to_truth(ls.energy, true_lp, grid, temperature, ref_sigma=model.ref_sigma))
        if dataset is not None:
            numbers["nll_truth"] = float(-truth.log_prob(held).double().mean())
        if truth.modes is not None:
            modes = np.asarray(truth.modes)
            numbers["mass_model"] = mode_masses(ls.log_density, grid, modes).tolist()
            numbers["mass_truth"] = mode_masses(true_lp, grid, modes).tolist()
    numbers["seconds"] = time.perf_counter() - t0
    out["step"] = model.step
    return out


__all__ = ["landscape_for", "evaluate_energy", "log_density"]
