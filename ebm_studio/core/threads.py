"""How many CPU threads torch should use on a machine that is never quite idle.

OpenMP threads that wait for a peer descheduled by another process lose far more than that
process's share: on 2 cores with one busy neighbour, 2-thread training ran 2–2.3× slower than
1 thread (``bench/threads_under_load.py``), while on an idle machine 2 threads are 1.3–1.4× faster
than 1. So the count follows the cores that are actually idle, measured from ``/proc/stat`` over a
short window at start-up; where that cannot be read, all cores are used.
"""

from __future__ import annotations

import math
import os
import time


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs, or None where /proc/stat is not available."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return idle, sum(values)


def idle_cores(window_s: float = 0.2) -> float | None:
    """How many cores were idle during the last ``window_s`` seconds (None where unknown)."""
    a = _cpu_times()
    if a is None:
        return None
    time.sleep(window_s)
    b = _cpu_times()
    if b is None or b[1] <= a[1]:
        return None
    cores = os.cpu_count() or 1
    return cores * (b[0] - a[0]) / (b[1] - a[1])


def choose_threads(reserve: int = 0) -> int:
    """Threads for torch: the idle cores (rounded, at least 1), minus ``reserve`` kept for others
    (the GUI thread, say)."""
    cores = os.cpu_count() or 1
    idle = idle_cores()
    usable = cores if idle is None else int(math.floor(idle + 0.35))
    return max(1, min(cores, usable) - reserve)
