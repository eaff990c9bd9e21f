"""Keep glibc from returning the sampler's memory to the system, and faulting it in again, every step.

A Langevin step allocates the same tensors every time: the forward pass's activations and their
gradients, 0.1–2 MB each. glibc serves an allocation above its mmap threshold (128 KB in a fresh
process; it rises only after such blocks are freed, and only so far) with new pages that the
kernel must fault in and zero at first touch, and unmaps them at free. A fresh process therefore
sampled the digits ConvNet 1.4–1.7× slower, with thousands of page faults per step
(``python bench/peers.py`` prints them). Raising the thresholds once at start-up keeps that memory
in the heap, where the next step reuses it. The app and every CLI command call
:func:`tune_allocator` first; on platforms other than Linux with glibc it does nothing.
"""

from __future__ import annotations

import sys

#: allocations below this come from the heap and are reused; glibc before 2.35 or so refuses more
#: than 32 MB on 64-bit, so that is tried next
MMAP_THRESHOLDS = (256 * 1024 * 1024, 32 * 1024 * 1024)
#: free memory at the top of the heap is returned to the system only beyond this
TRIM_THRESHOLD = 512 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers from <malloc.h>
_tuned = False


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds; True where that was done.

    The trim threshold is set only once an mmap threshold was accepted: setting either freezes
    glibc's own adaptive threshold, which alone would be worse than leaving glibc be."""
    global _tuned
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        if not any(libc.mallopt(_M_MMAP_THRESHOLD, t) == 1 for t in MMAP_THRESHOLDS):
            return False
        _tuned = _tuned or libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        return _tuned
    except (OSError, AttributeError):
        return False


def allocator_tuned() -> bool:
    """Whether :func:`tune_allocator` took effect in this process (large buffers are then reused
    from step to step, so a few more of them cost no page faults)."""
    return _tuned
