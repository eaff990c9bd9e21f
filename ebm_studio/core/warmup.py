"""Lazy imports that a first click would otherwise wait for, done ahead of time in the background.

Constructing the first ``torch.optim.Adam`` imports ``torch._dynamo`` (about 1 s on two cores,
2.5 s on a slower laptop): without this, the first click on Train waits for it. The engine starts
:func:`warm_up_in_background` shortly after it has started (its first frames are out by then); the
import holds the interpreter lock only in short slices, so the window and the live chains keep
running meanwhile. The thread is not a daemon: an interpreter that exits during the import waits
for it, instead of ending it in the middle of torch's C++ code.
"""

from __future__ import annotations

import threading
import time

import torch

_done = threading.Event()
_started = threading.Lock()
_thread: threading.Thread | None = None
#: seconds the warm-up took (None until it finished)
warm_up_seconds: float | None = None


def warm_up() -> None:
    """Import what the first training step needs (idempotent; safe beside a real first step)."""
    global warm_up_seconds
    t0 = time.perf_counter()
    param = torch.zeros(1, requires_grad=True)
    torch.optim.Adam([param], lr=1e-3)
    # (the window's thread then freezes the imports' objects out of garbage collection: see
    # worker/gui_gc.py, which collects there, and only there, while an engine runs)
    warm_up_seconds = time.perf_counter() - t0
    _done.set()


def warm_up_in_background() -> threading.Thread:
    """Run :func:`warm_up` in a thread of its own, once per process; returns that thread."""
    global _thread
    with _started:
        if _thread is None:
            _thread = threading.Thread(target=warm_up, name="ebm-warm-up")
            _thread.start()
        return _thread


def warmed_up(timeout: float | None = 0.0) -> bool:
    """Whether the warm-up finished (waiting up to ``timeout`` seconds for it)."""
    return _done.wait(timeout)
