"""How many CPU threads torch should use on a machine that is never quite idle.

OpenMP threads that wait for a peer descheduled by another process lose far more than that
process's share: on 2 cores with one busy neighbour, 2-thread training ran 2–2.3× slower than
1 thread (``bench/threads_under_load.py``), while on an idle machine 2 threads are 1.3–1.4× faster
than 1. So the count follows the cores that are actually idle, measured from ``/proc/stat`` over a
short window at start-up; where that cannot be read, all cores are used.

A neighbour that starts *after* a run began is caught by :class:`ThreadGovernor`: a long run
polls it between steps, and every few seconds it works out how many cores *other* processes kept
busy (all busy time minus this process's own, so the run's spinning threads do not count against
it; niced processes do not count, they yield) and sets the thread count to the cores left. A
changed count changes the order of torch's reductions, so a governed run repeats its seed only up
to rounding; ``ebm-studio train --threads N`` fixes the count. The app asks its engine to govern
(:func:`govern_engine_threads`); tests and benches that build an engine directly do not.
"""

from __future__ import annotations

import math
import os
import time

import torch


def usable_cores() -> int:
    """The CPUs this process may run on (an affinity mask or a container can allow fewer than exist)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times(nice_as_idle: bool = False) -> tuple[int, int] | None:
    """(idle, total) jiffies over the CPUs this process may use, or None where /proc/stat is absent.

    ``nice_as_idle`` counts the time of niced processes as idle: they yield to a run at normal
    priority, so they do not take a core from it."""
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
        idle += values[3] + (values[4] if len(values) > 4 else 0) + (values[1] if nice_as_idle else 0)
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


def pin_torch_threads(n: int) -> None:
    """Give the *calling* thread ``n`` torch threads, fixed from now on whatever others set.

    torch keeps one count per thread, taken from the last ``set_num_threads`` of any thread at the
    thread's first use of torch and its own calls after that; reading the count is a first use, so
    setting and reading it here fixes it for this thread.
    """
    torch.set_num_threads(max(1, int(n)))
    torch.get_num_threads()


def keep_torch_serial_here() -> None:
    """Pin the calling thread (the GUI's) to one torch thread, before it runs any torch op.

    Every thread that runs a parallel torch op gets an OpenMP team of its own, and the team stays.
    Once the teams' threads outnumber the cores, libgomp stops spinning at its barriers and puts
    waiting threads to sleep: the engine thread's parallel ops then ran 1.5–1.8× slower for the
    rest of the process after a single large op in the GUI thread (2 cores, digits ConvNet). With
    the GUI thread serial, the engine's team is the only one.
    """
    pin_torch_threads(1)


def _own_jiffies() -> int | None:
    """CPU time (user + system, in clock ticks like /proc/stat) this process has used."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the line)
    except (OSError, IndexError, ValueError):
        return None


_engine_reserve: int | None = None
_engine_threads: int | None = None


def govern_engine_threads(reserve: int | None, threads: int | None = None) -> None:
    """Have engines started from now on pin ``threads`` torch threads in their own thread (default:
    the idle cores but ``reserve``, measured now) and then govern the count, keeping ``reserve``
    cores for others (the window); None: they keep the count they start with."""
    global _engine_reserve, _engine_threads
    _engine_reserve = reserve
    _engine_threads = None if reserve is None else (threads or choose_threads(reserve))


def keep_engine_threads(threads: int) -> None:
    """Have engines started from now on run ``threads`` torch threads, governed but keeping all the
    other cores free (so an idle machine leaves the count as it is): what a bench that fixes the
    engine's count asks for."""
    govern_engine_threads(reserve=max(0, usable_cores() - threads), threads=threads)


def engine_governor_reserve() -> int | None:
    """The cores an engine keeps free while governing, or None when engines do not govern."""
    return _engine_reserve


def engine_start_threads() -> int | None:
    """The torch threads a governing engine starts with (None when engines do not govern)."""
    return _engine_threads


class ThreadGovernor:
    """Keeps torch's thread count at the cores other processes leave free, during a long run.

    ``poll()`` is cheap (a clock read) except every ``interval_s``, when it reads two /proc files;
    it returns the new count when it changed it, else None. ``set_threads`` is what changes the
    count (``torch.set_num_threads`` in use; a test passes its own)."""

    def __init__(self, set_threads, threads: int, reserve: int = 0, interval_s: float = 2.0,
                 clock=time.monotonic, read=None) -> None:
        self.set_threads = set_threads
        self.threads = threads
        self.reserve = reserve
        self.interval_s = interval_s
        self.clock = clock
        self.read = read or (lambda: (_cpu_times(nice_as_idle=True), _own_jiffies()))
        self._last = self.read()
        self._last_t = clock()

    def others_busy(self, before, after) -> float | None:
        """Cores kept busy by other processes between two readings (None where unknown)."""
        (cpu0, own0), (cpu1, own1) = before, after
        if cpu0 is None or cpu1 is None or own0 is None or own1 is None:
            return None
        d_total = cpu1[1] - cpu0[1]
        if d_total <= 0:
            return None
        busy = d_total - (cpu1[0] - cpu0[0])
        return max(0.0, usable_cores() * (busy - (own1 - own0)) / d_total)

    def poll(self) -> int | None:
        now = self.clock()
        if now - self._last_t < self.interval_s:
            return None
        reading = self.read()
        stale = now - self._last_t > 3 * self.interval_s  # not polled for long (no job ran)
        others = None if stale else self.others_busy(self._last, reading)
        self._last, self._last_t = reading, now
        if others is None:
            return None
        cores = usable_cores()
        # what is measured is the CPU a neighbour *received*, which our own threads push down: a
        # one-core neighbour beside N of our threads on N cores gets N/(N+1), 0.67 on 2 cores. So
        # half a core counts as taken: OpenMP peers waiting for a descheduled thread lose far
        # more than a neighbour's share, while one thread less costs at most one core's
        want = max(1, min(cores, cores - int(math.floor(others + 0.5))) - self.reserve)
        if want == self.threads:
            return None
        self.threads = want
        self.set_threads(want)
        return want
