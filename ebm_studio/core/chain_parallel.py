"""Evaluating E and ∇E of many chains on several cores: the chains are split, one thread per slice.

The networks here are small, and small layers split badly *inside* one operation: with two
threads, a Langevin step of 128 digit chains ran barely faster than with one (``bench/peers.py``).
The chains are independent, so the batch is split instead. Each worker thread evaluates its
slice with a single intra-op thread, and the caller waits passively for all of them, so no thread
spins on a peer that another process has descheduled (see ``threads.py``).

How many workers: :func:`set_workers` (the app gives it the idle cores), else the caller's torch
thread count (``torch.get_num_threads()``, which the CLI sets from the idle cores or
``--threads``), but never so many that a slice falls below the energy's ``parallel_min_chains`` (below it, handing work to a thread costs more than it saves). Energies
that do not set that attribute, and every device but the CPU, are evaluated whole in the caller.
A slice's arithmetic does not depend on the others, so the result is the same for any split up
to the rounding of the kernels oneDNN picks for each batch size.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

import torch

T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_workers: int | None = None


def set_workers(n: int | None) -> None:
    """Use up to ``n`` threads for a batch of chains (None: the caller's torch thread count).

    The app keeps torch's own threads to one, so that no spinning OpenMP thread takes the GUI's
    core, and still samples on every idle core through these workers, which wait passively."""
    global _workers
    if n is not None and n < 1:
        raise ValueError(f"workers must be at least 1, got {n}")
    _workers = n


def workers_for(energy: torch.nn.Module, x: torch.Tensor) -> int:
    """How many threads should share the chains ``x`` of ``energy`` (1: evaluate them whole)."""
    min_chains = getattr(energy, "parallel_min_chains", None)
    if min_chains is None or x.device.type != "cpu":
        return 1
    limit = _workers if _workers is not None else torch.get_num_threads()
    return max(1, min(limit, x.shape[0] // int(min_chains)))


def _single_thread() -> None:
    torch.set_num_threads(1)


def _get_pool(size: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != size:
            if _pool is not None:
                _pool.shutdown(wait=False)
            caller_threads = torch.get_num_threads()
            _pool = ThreadPoolExecutor(size, thread_name_prefix="ebm-chains", initializer=_single_thread)
            _pool_size = size
            # start every worker now, so that each has set its own single thread before the
            # caller restores the process default that a worker's set_num_threads overwrote
            barrier = threading.Barrier(size)
            for f in [_pool.submit(barrier.wait) for _ in range(size)]:
                f.result()
            torch.set_num_threads(caller_threads)
        return _pool


def map_slices(fn: Callable[[torch.Tensor], T], slices: Sequence[torch.Tensor], workers: int) -> list[T]:
    """``[fn(s) for s in slices]``, spread over ``workers`` threads when that is more than one.

    The calling thread's grad mode is passed on (it is thread-local in torch)."""
    if workers <= 1 or len(slices) <= 1:
        return [fn(s) for s in slices]
    grad = torch.is_grad_enabled()

    def run(s: torch.Tensor) -> T:
        with torch.set_grad_enabled(grad):
            return fn(s)

    pool = _get_pool(workers)
    return [f.result() for f in [pool.submit(run, s) for s in slices]]
