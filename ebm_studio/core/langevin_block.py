"""A block of K Langevin steps captured once as a CUDA graph and replayed; run as is elsewhere.

On a GPU one Langevin step of the digits ConvNet is ~0.4 GFLOP at 128 chains: the device finishes
that long before the host has launched the step's dozens of kernels, so sampling is launch-bound
(only 2–3× two CPU cores on an H200). Captured as one CUDA graph, a block of K steps costs one
launch. What the graph reads must stay at fixed addresses: the chains and their gradient live in
static tensors, and the live settings (temperature, step size, noise, gradient clip) in device
scalars refreshed before every replay, so a slider moved between blocks needs no new capture. The
block's structure (sampler kind, shapes, clamp box, which optional terms exist, the energy) is its
key: a change of any of them captures anew.

Where a graph cannot be had (a capture that fails), the same block function runs eagerly: the same
arithmetic as K calls of ``Sampler.step``, at eager speed. On a CPU or MPS device, ``run_steps``
does not use a block at all and takes single steps.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Protocol

import torch

from ebm_studio.core.energy_eval import check_finite_energy, energy_and_grad, poll_stop


class BlockSampler(Protocol):
    """What a block reads and writes of a sampler: a ``samplers.Sampler`` whose
    ``steps_in_blocks`` is true (Langevin, tuned). Not imported: ``samplers`` imports this module."""

    kind: str
    steps_in_blocks: bool
    energy: torch.nn.Module
    x: torch.Tensor
    device: torch.device
    generator: torch.Generator
    steps_done: int

    def _current(self) -> tuple[torch.Tensor, torch.Tensor]: ...


#: steps per replay: long enough to hide launches, short enough to poll a stop request often
DEFAULT_BLOCK = 10


def graphs_available(device: torch.device) -> bool:
    """Whether CUDA graphs can be captured on ``device``."""
    return device.type == "cuda" and torch.cuda.is_available() and hasattr(torch.cuda, "CUDAGraph")


class LangevinBlock:
    """K steps of a Langevin or tuned Langevin sampler, replayed as one CUDA graph where possible.

    ``run(sampler)`` advances ``sampler`` by K steps in place (its chains, step count and cache),
    so a caller may interleave blocks with single steps and setting changes.
    """

    def __init__(self, steps: int = DEFAULT_BLOCK, use_graph: bool | None = None) -> None:
        if steps < 1:
            raise ValueError(f"a block needs at least one step, got {steps}")
        self.steps = int(steps)
        self.use_graph = use_graph
        self._key: tuple | None = None
        self._graph = None
        self._energy = None
        #: why the last capture failed (the block then runs eagerly)
        self.fallback_reason: str | None = None

    @classmethod
    def supports(cls, sampler: object) -> bool:
        return bool(getattr(sampler, "steps_in_blocks", False))

    # --- the block ---------------------------------------------------------------------------
    def _structure(self, s: BlockSampler) -> tuple:
        # the addresses of the weights too (a graph reads them where they were at capture: a model
        # moved to another device and back lives elsewhere), and training mode (spectral norm
        # iterates only in it)
        tensors = itertools.chain(s.energy.parameters(), s.energy.buffers())
        return (s.kind, tuple(s.x.shape), s.device, id(s.energy), s.energy.training, s.compute_dtype,
                s.clamp, s.clip_grad is None, s.ref_sigma is None, s.mask is None,
                tuple(t.data_ptr() for t in tensors))

    def _prepare(self, s: BlockSampler) -> None:
        """Static tensors for the chains, gradient and settings of samplers of this structure."""
        dev = s.device
        # held while its graph may replay: the graph reads tensors the energy owns (weights, index
        # maps), and the structure key knows the energy only by id, which a freed one passes on
        self._energy = s.energy
        self._x = torch.empty_like(s.x)
        self._g = torch.empty_like(s.x)
        self._e = torch.empty(s.x.shape[0], device=dev)
        self._settings = {k: torch.zeros((), device=dev) for k in ("inv_t", "drift", "noise", "clip", "inv_ref2")}
        self._mask = None if s.mask is None else s.mask.clone()
        self._observed = None if s.mask is None else s._observed.clone()
        self._generator: torch.Generator | None = torch.Generator(device=dev)

    def _load(self, s: BlockSampler) -> None:
        """Copy the sampler's state and live settings into the static tensors."""
        e, g = s._current()
        self._x.copy_(s.x)
        self._g.copy_(g)
        self._e.copy_(e)
        st = self._settings
        st["inv_t"].fill_(1.0 / s.temperature)
        if s.kind == "langevin":
            st["drift"].fill_(0.5 * s.step_size)
            st["noise"].fill_(math.sqrt(s.step_size))
        else:
            st["drift"].fill_(s.step_size)
            st["noise"].fill_(s.noise)
        st["clip"].fill_(s.clip_grad if s.clip_grad is not None else 0.0)
        st["inv_ref2"].fill_(1.0 / s.ref_sigma**2 if s.ref_sigma is not None else 0.0)
        if self._mask is not None:
            self._mask.copy_(s.mask)
            self._observed.copy_(s._observed)

    def _body(self, s: BlockSampler) -> None:
        """K steps on the static tensors (what the graph holds; run eagerly where there is none)."""
        st, x, g = self._settings, self._x, self._g
        for _ in range(self.steps):
            gu = g * st["inv_t"]
            if s.ref_sigma is not None:
                gu = gu + x * st["inv_ref2"]
            if s.clip_grad is not None:
                gu = torch.maximum(torch.minimum(gu, st["clip"]), -st["clip"])
            xi = torch.randn(x.shape, generator=self._generator, device=x.device)
            if self._mask is not None:
                gu, xi = gu * self._mask, xi * self._mask
            x = x - st["drift"] * gu + st["noise"] * xi
            if s.clamp is not None:
                x = x.clamp(*s.clamp)
            if self._mask is not None:
                x = torch.where(self._mask, x, self._observed)
            # in the sampler's chunks, as its single steps: a large run's activations stay bounded
            e, g = energy_and_grad(s.energy, x, s.chunk, s.compute_dtype)
        self._x.copy_(x)
        self._g.copy_(g)
        self._e.copy_(e)

    def _capture(self, s: BlockSampler) -> None:
        self._graph = None
        self.fallback_reason = None
        want = graphs_available(s.device) if self.use_graph is None else self.use_graph
        if not want:
            return
        private = self._generator
        try:
            side = torch.cuda.Stream(device=s.device)
            side.wait_stream(torch.cuda.current_stream(s.device))
            with torch.cuda.stream(side):  # warm-up outside the capture, as CUDA graphs require
                self._body(s)
            torch.cuda.current_stream(s.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            if hasattr(graph, "register_generator_state"):
                graph.register_generator_state(self._generator)
            else:  # an older torch graphs only the default generator: the noise comes from it
                self._generator = None
            with torch.cuda.device(s.device), torch.cuda.graph(graph):
                self._body(s)
            self._graph = graph  # the warm-up moved the static chains: run() loads them again
        except Exception as exc:  # any failure of capture leaves the eager block, which is correct
            self._graph = None
            self._generator = private  # the eager block draws from the sampler-seeded stream
            self.fallback_reason = f"{type(exc).__name__}: {exc}"

    @property
    def graphed(self) -> bool:
        """Whether blocks of the current structure replay a CUDA graph (False: they run eagerly)."""
        return self._graph is not None

    def run(self, s: BlockSampler) -> None:
        """Advance ``s`` by this block's K steps."""
        if not self.supports(s):
            raise ValueError(f"a Langevin block runs Langevin or tuned samplers, not {s.kind!r}")
        key = self._structure(s)
        if key != self._key:
            self._prepare(s)
            self._load(s)
            self._capture(s)
            self._key = key
        self._load(s)
        # the sampler's own stream seeds the noise, so a run is reproducible from its seed (except
        # in a graph on a torch that cannot register a private generator: see _capture)
        seed = int(torch.randint(0, 2**62, (1,), generator=s.generator, device=s.device))
        if self._generator is not None:
            self._generator.manual_seed(seed)
        if self._graph is not None:
            self._graph.replay()
        else:
            self._body(s)
        # one check per block (a sync), where single steps check every step: chains that blew up
        # must not reach a replay buffer; the sampler keeps its state from before the block
        check_finite_energy(self._e, s.steps_done + self.steps, self._g)
        s._x = self._x.clone()
        s._cache = (self._e.clone(), self._g.clone())
        s.steps_done += self.steps


def run_steps(sampler: BlockSampler, n: int, block: LangevinBlock | None = None,
              should_stop: Callable[[], bool] | None = None) -> None:
    """Advance ``sampler`` n steps: through ``block`` in whole blocks where one is given and its
    device can capture graphs, one step at a time otherwise; ``should_stop`` is polled between."""
    use_block = (block is not None and LangevinBlock.supports(sampler)
                 and (block.use_graph or (block.use_graph is None and graphs_available(sampler.device))))
    done = 0
    while done < n:
        poll_stop(should_stop)
        if use_block and n - done >= block.steps:
            block.run(sampler)
            done += block.steps
        else:
            sampler.step()
            done += 1
