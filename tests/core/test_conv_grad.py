"""The ConvNet's closed-form E and ∇ₓE (``core/conv_grad.py``) against autograd on the same module."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch.nn import functional as F

from ebm_studio.core import conv_grad, energy_eval
from ebm_studio.core.conv_grad import Conv, _input_grad_by_phases, block_maps, dense_used, flipped_weight, phase_weight
from ebm_studio.core.energies import ConvEnergy, MLPEnergy
from ebm_studio.core.samplers import energy_and_grad, make_sampler


def autograd(energy: ConvEnergy, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    energy_eval.USE_CLOSED_FORM = False
    try:
        return energy_and_grad(energy, x)
    finally:
        energy_eval.USE_CLOSED_FORM = True


CASES = [  # (channels, size, width, spectral norm): the dense last layer is used in the first three
    (1, 28, 8, False),
    (3, 32, 4, False),
    (1, 17, 4, False),  # odd side: the blocks take a zero row and column
    (3, 64, 4, False),  # large last layer: stays a convolution
    (1, 28, 4, True),
    (3, 23, 4, True),
    (1, 28, 24, False),  # 24 input channels to the stride-2 convs: their input gradients stay oneDNN's
]


@pytest.mark.parametrize("channels,size,width,sn", CASES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("forward_routes", [True, False])
def test_closed_form_matches_autograd(channels, size, width, sn, training, forward_routes, monkeypatch):
    monkeypatch.setattr(conv_grad, "forward_routes_pay", lambda: forward_routes)
    torch.manual_seed(size + width)
    energy = ConvEnergy(channels, size, width, spectral_norm=sn, min_size=8).train(training)
    twin = copy.deepcopy(energy)  # spectral norm iterates once per call in training mode: each its own
    x = torch.rand(6, channels, size, size) * 2 - 1
    e, g = energy.energy_and_input_grad(x)
    e_ref, g_ref = autograd(twin, x)
    assert e.shape == (6,) and g.shape == x.shape and e.dtype == g.dtype == torch.float32
    torch.testing.assert_close(e, e_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6 * float(g_ref.abs().max()))
    assert dense_used(energy) == (not sn and size <= 32)


@pytest.mark.parametrize("side", [14, 7, 8, 5])
def test_a_strided_input_gradient_by_phases_equals_the_convolutions(side):
    torch.manual_seed(side)
    conv = torch.nn.Conv2d(6, 10, 3, stride=2, padding=1)
    x = torch.randn(3, 6, side, side).contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(conv(x))
    kernel = phase_weight(conv.weight.detach()).contiguous(memory_format=torch.channels_last)
    got = _input_grad_by_phases(g.contiguous(memory_format=torch.channels_last),
                                Conv(kernel, None, 1, 0, pack=False), x.shape[1:])
    (expected,) = torch.autograd.grad(conv(x.requires_grad_(True)), x, g)
    assert got.shape == x.shape and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("forward_routes,sn,expected", [
    (True, False, ["flipped", "phases", "library"]),  # the 32-channel layer keeps oneDNN's
    (False, False, ["library"] * 3),  # no allocator setting: the routes' buffers would fault in
    (True, True, ["library"] * 4),  # spectral norm: nothing is kept, so nothing is built ahead
])
def test_input_gradients_take_forward_routes_only_where_they_pay(forward_routes, sn, expected, monkeypatch):
    monkeypatch.setattr(conv_grad, "forward_routes_pay", lambda: forward_routes)
    energy = ConvEnergy(1, 28, 16, spectral_norm=sn)
    prepared = energy._grad_plan.weights(energy, torch.float32, torch.device("cpu"))
    assert [how for _, how, _ in prepared["convs"]] == expected


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_packed_convolution_equals_conv2d_for_every_batch_size(dtype):
    if not conv_grad._packing_ops(dtype):
        pytest.skip(f"this torch has no packed oneDNN convolutions for {dtype}")
    torch.manual_seed(0)
    cl = torch.channels_last
    weight = torch.randn(8, 4, 3, 3).to(dtype).contiguous(memory_format=cl)
    bias = torch.randn(8).to(dtype)
    conv = Conv(weight, bias, 2, 1, pack=True)
    for n in (5, 2, 5):  # a second shape gets a packing of its own; the first is reused
        x = torch.randn(n, 4, 9, 9).to(dtype).contiguous(memory_format=cl)
        torch.testing.assert_close(conv(x), F.conv2d(x, weight, bias, stride=2, padding=1))
    assert len(conv._packed) == 2


def test_a_packed_convolution_that_fails_falls_back_for_good(monkeypatch):
    monkeypatch.setattr(conv_grad, "_PACKING_FAILED", set())
    monkeypatch.setattr(conv_grad, "_packing_ops", lambda dtype: True)

    def broken(self, x, packs):
        raise RuntimeError("no such kernel in this oneDNN build")

    monkeypatch.setattr(Conv, "_packed_conv", broken)
    weight, x = torch.randn(8, 4, 3, 3), torch.randn(2, 4, 7, 7)
    conv = Conv(weight, None, 1, 1, pack=True)
    torch.testing.assert_close(conv(x), F.conv2d(x, weight, padding=1))
    assert conv._packed is None and Conv(weight, None, 1, 1, pack=True)._packed is None  # none packs again


def test_an_error_of_the_plain_path_too_propagates_and_keeps_packing(monkeypatch):
    monkeypatch.setattr(conv_grad, "_PACKING_FAILED", set())
    monkeypatch.setattr(conv_grad, "_packing_ops", lambda dtype: True)

    def out_of_memory(self, x, *packs):
        raise RuntimeError("can't allocate memory")

    monkeypatch.setattr(Conv, "_packed_conv", out_of_memory)
    monkeypatch.setattr(Conv, "_plain", out_of_memory)
    conv = Conv(torch.randn(8, 4, 3, 3), None, 1, 1, pack=True)
    with pytest.raises(RuntimeError, match="allocate"):
        conv(torch.randn(2, 4, 7, 7))
    assert conv._packed is not None and not conv_grad._PACKING_FAILED


def test_the_flipped_kernel_gives_a_stride_one_input_gradient():
    torch.manual_seed(1)
    conv = torch.nn.Conv2d(4, 16, 3, padding=1)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    g = torch.randn(2, 16, 6, 6)
    (expected,) = torch.autograd.grad(conv(x), x, g)
    torch.testing.assert_close(F.conv2d(g, flipped_weight(conv.weight.detach()), padding=1), expected)


def test_block_maps_are_inverse_permutations():
    gather, scatter = block_maps(3, 7, 6, torch.device("cpu"))
    image = torch.arange(3 * 7 * 6)
    cells = torch.cat([image, torch.tensor([-1])])[gather]
    # the order pixel_unshuffle gives a zero-padded image, channels last
    padded = F.pad(image.view(1, 3, 7, 6).float(), (0, 0, 0, 1), value=-1)
    expected = F.pixel_unshuffle(padded, 2).permute(0, 2, 3, 1).reshape(-1).long()
    assert torch.equal(cells, expected)
    assert torch.equal(cells[scatter], image)


def test_the_sampler_takes_the_closed_form_and_follows_autograd_chains():
    torch.manual_seed(0)
    energy = ConvEnergy(1, 28, 8)
    x0 = torch.rand(8, 1, 28, 28)
    runs = []
    for closed in (True, False):
        energy_eval.USE_CLOSED_FORM = closed
        try:
            runs.append(make_sampler("langevin", energy, x0, step_size=1e-3, seed=4, precision="fp32").run(20).x)
        finally:
            energy_eval.USE_CLOSED_FORM = True
    torch.testing.assert_close(runs[0], runs[1], rtol=1e-4, atol=1e-5)


def test_changed_weights_are_seen_at_once():
    """The prepared weights are cached per parameter version: an optimiser step, a loaded state and
    a copy must all be reflected in the next gradient."""
    torch.manual_seed(1)
    energy = ConvEnergy(1, 28, 4)
    x = torch.rand(5, 1, 28, 28)
    energy.energy_and_input_grad(x)  # fills the cache
    opt = torch.optim.Adam(energy.parameters(), lr=0.05)
    energy(torch.rand(5, 1, 28, 28)).mean().backward()
    opt.step()
    torch.testing.assert_close(energy.energy_and_input_grad(x)[1], autograd(energy, x)[1], rtol=1e-4, atol=1e-7)

    other = ConvEnergy(1, 28, 4)
    energy.load_state_dict(other.state_dict())
    torch.testing.assert_close(energy.energy_and_input_grad(x)[0], other(x), rtol=1e-5, atol=1e-6)

    energy.load_state_dict(ConvEnergy(1, 28, 4).state_dict(), assign=True)  # new parameter objects
    torch.testing.assert_close(energy.energy_and_input_grad(x)[1], autograd(energy, x)[1], rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        energy.head[1].weight.data.mul_(2.0)  # through .data: no new version, so say so
    energy._grad_plan.forget_weights()
    torch.testing.assert_close(energy.energy_and_input_grad(x)[0], autograd(energy, x)[0], rtol=1e-5, atol=1e-6)

    clone = copy.deepcopy(energy)
    buffer = io.BytesIO()
    torch.save(energy, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    for twin in (clone, loaded):
        torch.testing.assert_close(twin.energy_and_input_grad(x)[1], energy.energy_and_input_grad(x)[1])


def test_float64_networks_take_autograd():
    for energy, x in ((ConvEnergy(1, 16, 4).double(), torch.rand(3, 1, 16, 16, dtype=torch.float64)),
                      (MLPEnergy(2, (8, 8)).double(), torch.randn(5, 2, dtype=torch.float64))):
        e, g = energy_and_grad(energy, x)  # (energies come back float32 on every path)
        assert g.dtype == torch.float64 and g.shape == x.shape
        torch.testing.assert_close(e, energy(x).detach().float())


def test_the_closed_form_leaves_no_graph_and_no_gradients():
    energy = ConvEnergy(1, 28, 4)
    x = torch.rand(3, 1, 28, 28, requires_grad=True)
    e, g = energy.energy_and_input_grad(x)
    assert not e.requires_grad and not g.requires_grad
    assert all(p.grad is None for p in energy.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_a_graphed_block_reads_the_weights_as_they_are_at_replay():
    """Inside a CUDA graph nothing is cached: an optimiser's in-place step between two replays must
    reach the second one (the graph's structure, and so the graph itself, stays the same)."""
    from ebm_studio.core.langevin_block import LangevinBlock

    torch.manual_seed(0)
    energy = ConvEnergy(1, 28, 8).cuda()
    s = make_sampler("langevin", energy, torch.rand(16, 1, 28, 28, device="cuda"), step_size=1e-3, seed=1,
                     precision="fp32")
    block = LangevinBlock(steps=2)
    block.run(s)
    assert block.graphed, block.fallback_reason
    graph = block._graph
    with torch.no_grad():
        for p in energy.parameters():
            p.mul_(1.5)
    block.run(s)
    assert block._graph is graph
    e_ref, g_ref = autograd(energy, s.x)
    torch.testing.assert_close(s.current_energy(), e_ref, rtol=1e-4, atol=1e-4)
