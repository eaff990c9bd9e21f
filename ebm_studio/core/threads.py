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


def usable_cores() -> int:
    """The CPUs this process may run on (an affinity mask or a container can allow fewer than exist)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies over the CPUs this process may use, or None where /proc/stat is absent."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        allowed = None
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            lines = fh.readlines()
    except OSError:
        return None
    idle = total = 0
    for line in lines:
        fields = line.split()
        if not fields or not fields[0].startswith("cpu") or fields[0] == "cpu":
            continue
        try:
            cpu = int(fields[0][3:])
        except ValueError:
            continue
        if allowed is not None and cpu not in allowed:
            continue
        # user nice system idle iowait irq softirq steal (guest time is already in user and nice)
        values = [int(v) for v in fields[1:9]]
        idle += values[3] + (values[4] if len(values) > 4 else 0)
        total += sum(values)
    return (idle, total) if total else None


def idle_cores(window_s: float = 0.2) -> float | None:
    """How many cores were idle during the last ``window_s`` seconds (None where unknown)."""
    a = _cpu_times()
    if a is None:
        return None
    time.sleep(window_s)
    b = _cpu_times()
    if b is None or b[1] <= a[1]:
        return None
    return usable_cores() * (b[0] - a[0]) / (b[1] - a[1])


def choose_threads(reserve: int = 0) -> int:
    """Threads for torch: the idle cores (rounded, at least 1), minus ``reserve`` kept for others
    (the GUI thread, say)."""
    cores = usable_cores()
    idle = idle_cores()
    usable = cores if idle is None else int(math.floor(idle + 0.35))
    return max(1, min(cores, usable) - reserve)
