"""Chains split over worker threads give what one evaluation of the whole batch gives."""

from __future__ import annotations

import threading

import pytest
import torch

from ebm_studio.core import chain_parallel
from ebm_studio.core.chain_parallel import map_slices, set_workers, workers_for
from ebm_studio.core.energies import ConvEnergy, GaussianEnergy, MLPEnergy
from ebm_studio.core.samplers import energy_and_grad, make_sampler


@pytest.fixture
def two_workers():
    set_workers(2)
    yield
    set_workers(None)


def test_worker_count_follows_the_setting_the_batch_and_the_energy(two_workers):
    mlp, conv = MLPEnergy(), ConvEnergy(1, 16, width=4)
    assert workers_for(mlp, torch.zeros(4096, 2)) == 2
    assert workers_for(mlp, torch.zeros(600, 2)) == 1  # slices below 512 chains are not worth a thread
    assert workers_for(conv, torch.zeros(16, 1, 16, 16)) == 2
    assert workers_for(GaussianEnergy([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]), torch.zeros(10**5, 2)) == 1
    sn = ConvEnergy(1, 16, width=4, spectral_norm=True)
    assert workers_for(sn.train(), torch.zeros(64, 1, 16, 16)) == 1  # power iteration writes buffers
    assert workers_for(sn.eval(), torch.zeros(64, 1, 16, 16)) == 2
    with pytest.raises(ValueError, match="at least 1"):
        set_workers(0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_split_evaluation_matches_the_whole_batch(two_workers, dtype):
    torch.manual_seed(0)
    for energy, x in ((MLPEnergy(), torch.randn(2048, 2)), (ConvEnergy(1, 28, width=8), torch.rand(32, 1, 28, 28))):
        e2, g2 = energy_and_grad(energy, x, dtype=dtype)
        set_workers(1)
        e1, g1 = energy_and_grad(energy, x, dtype=dtype)
        set_workers(2)
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(e2, e1, rtol=tol, atol=tol)
        torch.testing.assert_close(g2, g1, rtol=tol, atol=tol * float(g1.abs().max()))
    assert any(t.name.startswith("ebm-chains") for t in threading.enumerate())
    assert all(p.requires_grad for p in energy.parameters())  # frozen only while evaluating


def test_workers_run_with_one_torch_thread_and_leave_the_callers_count(two_workers):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        counts = map_slices(lambda _: torch.get_num_threads(), [torch.zeros(1)] * 4, 2)
        assert counts == [1, 1, 1, 1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_sampler_on_split_chains_is_reproducible(two_workers):
    torch.manual_seed(0)
    energy, x0 = ConvEnergy(1, 16, width=4), torch.rand(16, 1, 16, 16) * 2 - 1
    runs = [make_sampler("tuned", energy, x0, step_size=1.0, noise=0.01, seed=4).run(5).x for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    assert chain_parallel._pool is not None
