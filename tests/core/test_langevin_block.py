"""The CUDA-graph block of Langevin steps: its body is K sampler steps (checked eagerly on the CPU),
live settings reach it without a new capture, its structure decides when to capture anew, and a
device without graphs falls back to the eager body."""

from __future__ import annotations

import pytest
import torch

import numpy as np

from ebm_studio.core import langevin_block
from ebm_studio.core.energies import ConvEnergy, Energy, GaussianEnergy, MLPEnergy
from ebm_studio.core.langevin_block import LangevinBlock, graphs_available, run_steps
from ebm_studio.core.samplers import make_sampler


def stepped_twin(kind, energy, x0, seed_source, k, **kw):
    """A sampler that takes k single steps with the noise stream the block uses for that run."""
    twin = make_sampler(kind, energy, x0, **kw)
    seed = int(torch.randint(0, 2**62, (1,), generator=seed_source))
    twin.generator = torch.Generator().manual_seed(seed)
    for _ in range(k):
        twin.step()
    return twin


@pytest.mark.parametrize("kind,kw", [
    ("langevin", dict(step_size=0.01, temperature=0.7)),
    ("langevin", dict(step_size=0.02, ref_sigma=1.5, clamp=(-2.0, 2.0))),
    ("tuned", dict(step_size=0.05, noise=0.01, clip_grad=0.3)),
])
def test_the_block_body_is_k_sampler_steps(kind, kw):
    torch.manual_seed(0)
    energy, x0 = MLPEnergy(), torch.randn(64, 2)
    s = make_sampler(kind, energy, x0, seed=5, precision="fp32", **kw)
    block = LangevinBlock(steps=7, use_graph=False)
    block.run(s)
    seeds = torch.Generator().manual_seed(5)
    twin = stepped_twin(kind, energy, x0, seeds, 7, precision="fp32", **kw)
    assert s.steps_done == twin.steps_done == 7
    torch.testing.assert_close(s.x, twin.x, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s.current_energy(), twin.current_energy(), rtol=1e-5, atol=1e-6)
    assert not block.graphed


def test_a_masked_image_block_keeps_the_fixed_pixels_bit_for_bit():
    torch.manual_seed(0)
    energy, x0 = ConvEnergy(1, 16, width=4), torch.rand(4, 1, 16, 16) * 2 - 1
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[:, 4:12, 4:12] = True
    s = make_sampler("tuned", energy, x0, step_size=1.0, noise=0.01, clamp=(-1.0, 1.0), mask=mask)
    LangevinBlock(steps=5, use_graph=False).run(s)
    assert torch.equal(s.x[:, ~mask], x0[:, ~mask])
    assert not torch.equal(s.x[:, mask], x0[:, mask])


def test_live_settings_apply_at_the_next_block_without_a_new_structure():
    energy, x0 = MLPEnergy(), torch.randn(32, 2)
    s = make_sampler("langevin", energy, x0, step_size=0.01)
    block = LangevinBlock(steps=3, use_graph=False)
    block.run(s)
    key = block._key
    s.step_size, s.temperature = 1e-6, 2.0  # a tiny step barely moves the chains
    before = s.x.clone()
    block.run(s)
    assert block._key == key
    assert float((s.x - before).abs().max()) < 0.01
    s.clamp = (-1.0, 1.0)  # a new box is a new structure
    block.run(s)
    assert block._key != key and float(s.x.abs().max()) <= 1.0


def test_without_cuda_graphs_the_block_falls_back_and_run_steps_steps_singly():
    energy, x0 = MLPEnergy(), torch.randn(16, 2)
    s = make_sampler("langevin", energy, x0)
    assert not graphs_available(s.device)
    block = LangevinBlock(steps=4, use_graph=True)  # asked for a graph where none can be had
    block.run(s)
    assert not block.graphed and block.fallback_reason and s.steps_done == 4
    calls = []
    run_steps(s, 6, LangevinBlock(steps=4), should_stop=lambda: calls.append(1) and False)
    assert s.steps_done == 10 and len(calls) == 6  # one step at a time on the CPU, polled each


def test_other_samplers_are_refused_by_the_block():
    s = make_sampler("mala", MLPEnergy(), torch.randn(4, 2))
    with pytest.raises(ValueError, match="Langevin or tuned"):
        LangevinBlock().run(s)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_the_block_replays_a_graph_that_matches_the_eager_body():
    torch.manual_seed(0)
    energy = ConvEnergy(1, 28, width=16).cuda()
    x0 = torch.rand(128, 1, 28, 28, device="cuda") * 2 - 1
    kw = dict(step_size=10.0, noise=0.005, clip_grad=0.01, clamp=(-1.0, 1.0), seed=3, precision="fp32")
    graphed, eager = (make_sampler("tuned", energy, x0, **kw) for _ in range(2))
    gb, eb = LangevinBlock(steps=10), LangevinBlock(steps=10, use_graph=False)
    for _ in range(3):
        gb.run(graphed)
        eb.run(eager)
    assert gb.graphed, gb.fallback_reason
    torch.testing.assert_close(graphed.x, eager.x, rtol=1e-4, atol=1e-4)
    graphed.step_size = 5.0  # a live change reaches the graph without a new capture
    graph = gb._graph
    gb.run(graphed)
    assert gb._graph is graph


def test_run_takes_single_steps_where_there_are_no_graphs():
    energy, x0 = MLPEnergy(), torch.randn(32, 2)
    s, twin = (make_sampler("langevin", energy, x0, seed=4) for _ in range(2))
    s.run(25)
    for _ in range(25):
        twin.step()
    assert s._block is None and torch.equal(s.x, twin.x)


def test_run_advances_in_blocks_where_graphs_can_be_had(monkeypatch):
    # a CPU posing as a graph device: the capture fails, and the blocks run their eager body
    monkeypatch.setattr(langevin_block, "graphs_available", lambda device: True)
    from ebm_studio.core import samplers

    monkeypatch.setattr(samplers, "graphs_available", lambda device: True)
    mean, cov = np.array([1.0, -0.5]), np.array([[1.0, 0.8], [0.8, 1.0]])
    x0 = torch.randn(4000, 2, generator=torch.Generator().manual_seed(1)) * 3
    s, again = (make_sampler("langevin", GaussianEnergy(mean, cov), x0, step_size=0.01, seed=7)
                for _ in range(2))
    s.run(1500)
    snaps = [s.run(155).x.clone() for _ in range(4)]  # 155: whole blocks and single steps
    assert s.steps_done == 1500 + 4 * 155 and s._block is not None and s._block.fallback_reason
    again.run(1500)
    assert torch.equal(again.run(155).x, snaps[0])  # the blocks' noise comes from the seed
    x = torch.stack(snaps).reshape(-1, 2).double().numpy()
    n_eff = x.shape[0] // 2
    d = np.diag(cov)
    bias = 0.01 * np.linalg.eigvalsh(np.linalg.inv(cov)).max() / 4  # ULA's own, as in test_samplers
    assert np.all(np.abs(x.mean(0) - mean) < 4 * np.sqrt(d / n_eff))
    assert np.all(np.abs(np.cov(x.T) - cov) < 4 * np.sqrt((cov**2 + np.outer(d, d)) / n_eff) + bias * np.abs(cov))


def test_mala_and_level_samplers_never_take_blocks(monkeypatch):
    from ebm_studio.core import samplers

    monkeypatch.setattr(samplers, "graphs_available", lambda device: True)
    s = make_sampler("mala", MLPEnergy(), torch.randn(8, 2), seed=1)
    s.run(20)
    assert s._block is None and s.steps_done == 20
    assert not LangevinBlock.supports(object())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_run_replays_graphed_blocks():
    s = make_sampler("langevin", ConvEnergy(1, 28, width=16).cuda(),
                     torch.rand(128, 1, 28, 28, device="cuda") * 2 - 1, step_size=1e-3, seed=0)
    s.run(30)
    assert s.steps_done == 30 and s._block.graphed, s._block.fallback_reason


class Quartic(Energy):
    """E = Σ x⁴: too large a step throws the chains out, and E overflows within a few steps."""

    def forward(self, x):
        return (x**4).sum(-1)


def test_a_block_that_blows_up_raises_and_leaves_the_chains_as_they_were():
    energy, x0 = Quartic(), torch.randn(16, 2)
    s = make_sampler("langevin", energy, x0, step_size=0.01)
    block = LangevinBlock(steps=8, use_graph=False)
    block.run(s)
    before, steps = s.x.clone(), s.steps_done
    s.step_size = 5.0  # finite where the block starts, overflowing within its steps
    with pytest.raises(FloatingPointError, match="non-finite"):
        block.run(s)
    assert torch.equal(s.x, before) and s.steps_done == steps


def test_weights_moved_to_new_memory_are_a_new_structure():
    energy, x0 = MLPEnergy(), torch.randn(8, 2)
    s = make_sampler("langevin", energy, x0)
    block = LangevinBlock(steps=2, use_graph=False)
    block.run(s)
    key = block._key
    energy.net[0].weight.data = energy.net[0].weight.data.clone()  # what .to(device) and back does
    block.run(s)
    assert block._key != key
