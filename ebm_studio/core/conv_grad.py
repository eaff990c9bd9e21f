"""E(x) and ∇ₓE(x) of a :class:`~ebm_studio.core.energies.ConvEnergy` in closed form.

A Langevin step needs the energy and its input gradient, never the weights' gradients. Autograd
gets there through a recorded graph, per-op bookkeeping and a gradient for every intermediate.
Here the forward pass keeps the pre-activations, and the gradient is taken back through the
layers by hand: the head's two matrix products, the fused SiLU backward, and each convolution's
input gradient alone. On top of that:

- the input is rearranged into the stem's space-to-depth blocks (see ``energies.stem_conv``) by
  one ``gather`` with a precomputed map, and the stem's gradient back by its inverse map,
  instead of ``pixel_unshuffle``/``pixel_shuffle``, whose strided copies cost 4–5× more;
- on CPU, in a process whose allocator reuses large buffers (``core/allocator.py``), input
  gradients are taken by forward convolutions where they can be: the stem's (stride 1) by the
  flipped kernel, and a stride-2 convolution's, where it has few input channels, by one stride-1
  convolution that yields each 2×2 block of the input at once (see :func:`phase_weight`):
  oneDNN's strided input gradient runs at a third of its forward speed there. Other layers, and
  every layer elsewhere, use ``convolution_backward`` with only the input mask set;
- on CPU, forward convolutions take their weights packed once into oneDNN's blocked layout
  (:class:`Conv`), as inductor does, instead of reordering them on every call;
- the last convolution, where its output is only a few pixels, is a dense matrix (its Jacobian)
  when that costs at most twice the convolution's multiply-adds: one matrix product each way
  beats oneDNN's small-spatial kernels;
- the weights in the compute dtype, the rearranged stem, the backward kernels and that dense
  matrix are prepared once per weight version and reused for every step (a training iteration
  changes them, a sampler run does not).

Under spectral normalisation the weights are recomputed on every read (and, in training mode,
power-iterated): they are read once per call, as ``forward`` does, and nothing is cached.
Inside a CUDA graph capture nothing is cached either: the graph must re-read live weights.
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torch.nn import functional as F

from ebm_studio.core.allocator import allocator_tuned

CHANNELS_LAST = torch.channels_last
#: the dense form of the last convolution is used when its matrix has at most this many entries
#: per multiply-add of the convolution
DENSE_LIMIT = 2.0
#: stride-2 convolutions with at most this many input channels take their input gradient by phases
PHASE_MAX_CHANNELS = 16


def _conv_input_grad(g: torch.Tensor, inp: torch.Tensor, weight: torch.Tensor, stride: int,
                     padding: int) -> torch.Tensor:
    """∂/∂inp of Σ g · conv2d(inp, weight): the convolution's input gradient and nothing else."""
    return torch.ops.aten.convolution_backward.default(
        g, inp, weight, None, [stride, stride], [padding, padding], [1, 1], False, [0, 0], 1,
        [True, False, False])[0]


class Conv:
    """One forward convolution of the closed form (stride, padding; no dilation or groups).

    On CPU, with ``pack``, the weight is reordered once per input shape into oneDNN's blocked
    layout, as inductor does: ``F.conv2d`` reorders it on every call (6–9 µs a conv).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int,
                 pack: bool) -> None:
        self.weight, self.bias, self.stride, self.padding = weight, bias, stride, padding
        self._packed: dict[torch.Size, torch.Tensor] | None = (
            {} if pack and weight.device.type == "cpu" and _packing_available(weight.dtype) else None)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        packs = self._packed
        if packs is not None and x.device.type == "cpu":
            try:
                return self._packed_conv(x, packs)
            except RuntimeError:
                out = self._plain(x)  # failing too, the fault was not the packing's: it propagates
                # a oneDNN build without these kernels: the plain path from now on
                _PACKING_FAILED.add(self.weight.dtype)
                self._packed = None
                return out
        return self._plain(x)

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def _packed_conv(self, x: torch.Tensor, packs: dict[torch.Size, torch.Tensor]) -> torch.Tensor:
        pad, stride = [self.padding] * 2, [self.stride] * 2
        packed = packs.get(x.shape)
        if packed is None:
            packed = packs[x.shape] = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight, pad, stride, [1, 1], 1, list(x.shape))
        return torch.ops.mkldnn._convolution_pointwise(
            x, packed, self.bias, pad, stride, [1, 1], 1, "none", [], "")


#: dtypes whose packed convolutions failed once in this process
_PACKING_FAILED: set[torch.dtype] = set()


def _packing_available(dtype: torch.dtype) -> bool:
    return dtype not in _PACKING_FAILED and _packing_ops(dtype)


@functools.lru_cache(maxsize=None)
def _packing_ops(dtype: torch.dtype) -> bool:
    ops = torch.ops.mkldnn
    if not (torch.backends.mkldnn.is_available() and hasattr(ops, "_reorder_convolution_weight")
            and hasattr(ops, "_convolution_pointwise")):
        return False
    if dtype == torch.float32:
        return True
    # bf16 kernels need AVX-512 (or AMX); elsewhere F.conv2d takes another path
    return dtype == torch.bfloat16 and bool(getattr(ops, "_is_mkldnn_bf16_supported", lambda: False)())


def flipped_weight(weight: torch.Tensor) -> torch.Tensor:
    """A stride-1 kernel's input gradient as a forward kernel: taps flipped, in and out swapped."""
    return weight.flip(2, 3).transpose(0, 1)


def phase_weight(weight: torch.Tensor) -> torch.Tensor:
    """A 3×3 stride-2 kernel's transpose as a 2×2 stride-1 kernel over the output, one output channel
    per input channel and 2×2 phase: shape (4·C_in, C_out, 2, 2), channels ordered (p, q, c).

    Output row o of the convolution reads input rows 2o−1, 2o, 2o+1 (taps 0, 1, 2; padding 1), so
    input row 2b+p gets tap 1 of output row b when p = 0, and tap 2 of row b and tap 0 of row b+1
    when p = 1; columns alike. Correlating the output gradient (padded by one zero row and column
    at the end) with this kernel gives the input gradient block by block.
    """
    out_ch, in_ch = weight.shape[:2]
    kernel = weight.new_zeros(2, 2, in_ch, out_ch, 2, 2)
    for (p, a), ky in _PHASE_TAPS.items():
        for (q, b), kx in _PHASE_TAPS.items():
            kernel[p, q, :, :, a, b] = weight[:, :, ky, kx].t()
    return kernel.reshape(4 * in_ch, out_ch, 2, 2)


#: (input phase, output row offset) → the 3×3 kernel's tap that joins them
_PHASE_TAPS = {(0, 0): 1, (1, 0): 2, (1, 1): 0}


def _input_grad_by_phases(g: torch.Tensor, conv: Conv, in_shape: tuple[int, int, int]) -> torch.Tensor:
    """The input gradient of a 3×3 stride-2 padding-1 conv from its output gradient ``g`` and
    ``conv``, the stride-1 convolution with :func:`phase_weight`'s kernel; channels-last like the
    input."""
    n, c_out, ho, wo = g.shape
    c_in, h, w = in_shape
    padded = g.new_zeros(n, ho + 1, wo + 1, c_out)
    padded[:, :ho, :wo] = g.permute(0, 2, 3, 1)
    blocks = conv(padded.permute(0, 3, 1, 2))  # (n, 4·c_in, ho, wo), channels last
    full = (blocks.permute(0, 2, 3, 1).reshape(n, ho, wo, 2, 2, c_in).transpose(2, 3)
            .reshape(n, 2 * ho, 2 * wo, c_in))
    if (2 * ho, 2 * wo) != (h, w):  # an odd side: its last block is half outside
        full = full[:, :h, :w].contiguous()
    return full.permute(0, 3, 1, 2)


def forward_routes_pay() -> bool:
    """Whether input gradients take the forward-convolution routes (see ``_prepare``)."""
    return allocator_tuned()


def _phase_pays(conv: nn.Conv2d) -> bool:
    """Whether ``conv``'s input gradient can go by phases: a 3×3 stride-2 padding-1 kernel with
    few input channels (with more, oneDNN's own input gradient is as fast)."""
    return (conv.kernel_size == (3, 3) and conv.stride == (2, 2)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.in_channels <= PHASE_MAX_CHANNELS)


def stem_weight(conv: nn.Conv2d, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The stem's 5×5 stride-2 kernel as a 3×3 kernel over 2×2 blocks (``pixel_unshuffle`` order)."""
    w = F.pad(conv.weight if weight is None else weight, (0, 1, 0, 1))  # tap u ↦ block u//2, phase u%2
    out_ch, in_ch = w.shape[:2]
    return w.reshape(out_ch, in_ch, 3, 2, 3, 2).permute(0, 1, 3, 5, 2, 4).reshape(out_ch, 4 * in_ch, 3, 3)


def block_maps(channels: int, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Index maps between an image (flattened C·H·W) and its 2×2 blocks in channels-last order.

    ``gather[k]`` is the pixel that block cell k holds (cells ordered row, column, then channel
    c·4 + 2·p + q as ``pixel_unshuffle`` orders them); an odd side's missing row or column points
    at index C·H·W, a zero appended to the image. ``scatter[i]`` is the cell that holds pixel i.
    """
    hb, wb = (height + 1) // 2, (width + 1) // 2
    i = torch.arange(hb).view(-1, 1, 1, 1, 1)
    j = torch.arange(wb).view(1, -1, 1, 1, 1)
    c = torch.arange(channels).view(1, 1, -1, 1, 1)
    p = torch.arange(2).view(1, 1, 1, -1, 1)
    q = torch.arange(2).view(1, 1, 1, 1, -1)
    row, col = 2 * i + p, 2 * j + q
    inside = (row < height) & (col < width)
    source = torch.where(inside, c * height * width + row * width + col, channels * height * width)
    gather = source.reshape(-1)
    cells = torch.arange(gather.numel())
    keep = gather < channels * height * width
    scatter = torch.empty(channels * height * width, dtype=torch.long)
    scatter[gather[keep]] = cells[keep]
    return gather.to(device), scatter.to(device)


def _dense_weight(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor, in_shape: tuple[int, int, int]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The stride-2 conv as a matrix from channels-last inputs to flattened (C, H, W) outputs."""
    c, h, w = in_shape
    basis = torch.eye(c * h * w, device=weight.device).view(-1, h, w, c).permute(0, 3, 1, 2)
    out = F.conv2d(basis, weight, None, stride=conv.stride, padding=conv.padding)
    matrix = out.flatten(1)
    return matrix, bias.repeat_interleave(out.shape[-1] * out.shape[-2])


def _last_conv_input(convs: list[nn.Conv2d], size: int) -> tuple[int, int, int]:
    """(C, H, W) entering the last conv: the image side halved by each stride-2 conv before it."""
    for _ in convs[:-1]:
        size = (size + 1) // 2
    return convs[-1].in_channels, size, size


def _dense_pays(conv: nn.Conv2d, in_shape: tuple[int, int, int]) -> bool:
    c, h, w = in_shape
    oh, ow = (h - 1) // conv.stride[0] + 1, (w - 1) // conv.stride[1] + 1
    entries = c * h * w * conv.out_channels * oh * ow
    macs = oh * ow * conv.out_channels * c * conv.kernel_size[0] * conv.kernel_size[1]
    return entries <= DENSE_LIMIT * macs


class ConvGradPlan:
    """What one ConvEnergy's closed-form gradient reuses between calls (maps and prepared weights)."""

    def __init__(self) -> None:
        self._maps: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._weights_key: tuple | None = None
        self._weights: dict | None = None

    # a copied or pickled energy starts with an empty plan: the cache is tied to these tensors
    def __deepcopy__(self, memo: dict) -> "ConvGradPlan":
        return ConvGradPlan()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def maps(self, shape: tuple[int, int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # kept for the module's life: a CUDA graph may read them long after capture
        key = (*shape, device)
        if key not in self._maps:
            self._maps[key] = block_maps(*shape, device)
        return self._maps[key]

    def weights(self, energy: nn.Module, dtype: torch.dtype, device: torch.device) -> dict:
        """The layers' weights prepared for ``dtype`` (cached while the parameters are unchanged)."""
        layers = _weighted_layers(energy)
        cacheable = not _parametrized(layers) and not _capturing(device)
        if cacheable:
            # a parameter replaced (assigned, or loaded with assign=True) is a new object; one
            # changed in place has a new version. Writes through ``.data`` bypass both: after one,
            # call ``forget_weights``. The layers' own tables are read: ``energy.parameters()``
            # walks the module tree, which cost 2 % of a step
            key = (dtype, device, [(id(p), p.data_ptr(), p._version)
                                   for m in layers for p in m._parameters.values() if p is not None])
            if key == self._weights_key:
                return self._weights
        with torch.no_grad():
            prepared = _prepare(energy, dtype, device, cached=cacheable)
        if cacheable:
            self._weights_key, self._weights = key, prepared
        return prepared

    def forget_weights(self) -> None:
        """Drop the prepared weights (after changing parameters in a way their versions miss)."""
        self._weights_key = self._weights = None


def _weighted_layers(energy: nn.Module) -> list[nn.Module]:
    return [m for m in (*energy.features, *energy.head) if isinstance(m, (nn.Conv2d, nn.Linear))]


def _parametrized(layers: list[nn.Module]) -> bool:
    # a parametrization (spectral norm) registers its table as the submodule ``parametrizations``
    return any("parametrizations" in m._modules for m in layers)


def _capturing(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()


def _prepare(energy: nn.Module, dtype: torch.dtype, device: torch.device, cached: bool) -> dict:
    convs = [m for m in energy.features if isinstance(m, nn.Conv2d)]
    linears = [m for m in energy.head if isinstance(m, nn.Linear)]
    weights = [c.weight for c in convs]  # one read each (spectral norm recomputes on read)
    biases = [c.bias for c in convs]
    layers = [(convs[0], stem_weight(convs[0], weights[0]), biases[0], 1)]
    layers += [(c, w, b, c.stride[0]) for c, w, b in zip(convs[1:], weights[1:], biases[1:])]
    last_in = _last_conv_input(convs, energy.size)
    dense = None
    if cached and _dense_pays(convs[-1], last_in):
        matrix, bias = _dense_weight(convs[-1], weights[-1], biases[-1], last_in)
        dense = (matrix.to(dtype).contiguous(), bias.to(dtype))
        layers = layers[:-1]

    def conv(w: torch.Tensor, b: torch.Tensor | None, stride: int, padding: int) -> Conv:
        return Conv(w.to(dtype).contiguous(memory_format=CHANNELS_LAST), None if b is None else b.to(dtype),
                    stride, padding, pack=cached)  # packed only where the plan is kept

    def backward(c: nn.Conv2d, w: torch.Tensor, stride: int) -> tuple[str, Conv | None]:
        """How the input gradient is taken: by a forward conv where that is faster, else by the
        library's own. The forward routes pay on a CPU (the kernel is packed, and oneDNN's
        strided input gradient is slow) where their kernels are kept (not under spectral norm)
        and the allocator reuses their extra buffers: in a process without that setting each is
        faulted in anew every step, and the routes cost 8–15 % instead of saving 5–7 %."""
        if not (cached and device.type == "cpu" and forward_routes_pay()):
            return "library", None
        if stride == 1:
            return "flipped", conv(flipped_weight(w), None, 1, 1)
        if _phase_pays(c):
            return "phases", conv(phase_weight(w), None, 1, 0)
        return "library", None

    head_w = [lin.weight for lin in linears]
    return {
        # (the layer, how its input gradient is taken)
        "convs": [(conv(w, b, s, 1), *backward(c, w, s)) for c, w, b, s in layers],
        "dense": dense,
        "hidden": (head_w[0], linears[0].bias),
        "out": (head_w[1], linears[1].bias),
    }


def conv_energy_and_input_grad(energy: nn.Module, plan: ConvGradPlan, x: torch.Tensor,
                               dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """E(x) (float32, shape (N,)) and ∇ₓE(x) (float32, shape of x) of ``energy``, without autograd.

    With ``dtype=torch.bfloat16`` the convolutions run in bf16 as under autocast, the small head
    in float32; E and the gradient come back float32.
    """
    n, channels, height, width = x.shape
    gather, scatter = plan.maps((channels, height, width), x.device)
    w = plan.weights(energy, dtype, x.device)
    with torch.no_grad():
        flat = x.reshape(n, -1)
        if height % 2 or width % 2:
            flat = torch.cat([flat, flat.new_zeros(n, 1)], 1)
        hb, wb = (height + 1) // 2, (width + 1) // 2
        # gather with a broadcast index: 1.3× faster than index_select in float32, 4× in bf16
        h = torch.gather(flat, 1, gather.expand(n, -1)).view(n, hb, wb, 4 * channels)
        h = h.permute(0, 3, 1, 2).to(dtype)
        inputs, pre = [], []
        for layer, _, _ in w["convs"]:
            inputs.append(h)
            z = layer(h)
            pre.append(z)
            h = F.silu(z)
        dense = w["dense"]
        if dense is not None:
            inputs.append(h)
            z = torch.addmm(dense[1], h.permute(0, 2, 3, 1).reshape(n, -1), dense[0])
            pre.append(z)
            h = F.silu(z)
        # the head is float32 in any dtype: its products are tiny, and small bf16 products are
        # no faster than float32 ones
        w1, b1 = w["hidden"]
        z1 = torch.addmm(b1, h.flatten(1).float(), w1.t())
        w2, b2 = w["out"]
        e = torch.addmm(b2, F.silu(z1), w2.t()).squeeze(-1)

        g = (torch.ops.aten.silu_backward.default(w2.expand(n, -1), z1) @ w1).to(dtype)
        if dense is not None:
            g = torch.ops.aten.silu_backward.default(g, pre.pop()) @ dense[0].t()
            below = inputs.pop()
            g = g.view(n, below.shape[2], below.shape[3], below.shape[1]).permute(0, 3, 1, 2)
        else:
            g = g.view(pre[-1].shape)
        for (layer, how, back), z, inp in zip(reversed(w["convs"]), reversed(pre), reversed(inputs)):
            g = torch.ops.aten.silu_backward.default(g, z)
            if how == "flipped":
                g = back(g)
            elif how == "phases":
                g = _input_grad_by_phases(g, back, inp.shape[1:])
            else:
                g = _conv_input_grad(g, inp, layer.weight, layer.stride, 1)
        cells = g.contiguous(memory_format=CHANNELS_LAST).permute(0, 2, 3, 1).reshape(n, -1).float()
        grad = torch.gather(cells, 1, scatter.expand(n, -1)).view(x.shape)
    return e, grad


def dense_used(energy: nn.Module) -> bool:
    """Whether the last convolution of ``energy`` would run as a dense matrix (for tests, benches)."""
    convs = [m for m in energy.features if isinstance(m, nn.Conv2d)]
    return not _parametrized(_weighted_layers(energy)) and _dense_pays(convs[-1], _last_conv_input(convs, energy.size))


__all__ = ["Conv", "ConvGradPlan", "block_maps", "conv_energy_and_input_grad", "dense_used", "flipped_weight",
           "forward_routes_pay", "phase_weight", "stem_weight"]
