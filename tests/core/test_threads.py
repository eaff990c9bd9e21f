"""The thread count follows the idle cores: a busy neighbour takes its share, not more."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ebm_studio.core import threads


def test_choose_threads_uses_idle_cores(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(threads, "idle_cores", lambda window_s=0.2: 3.9)
    assert threads.choose_threads() == 4 and threads.choose_threads(reserve=1) == 3
    monkeypatch.setattr(threads, "idle_cores", lambda window_s=0.2: 2.1)  # two cores busy elsewhere
    assert threads.choose_threads() == 2
    monkeypatch.setattr(threads, "idle_cores", lambda window_s=0.2: 0.2)  # everything busy
    assert threads.choose_threads() == 1 and threads.choose_threads(reserve=1) == 1
    monkeypatch.setattr(threads, "idle_cores", lambda window_s=0.2: None)  # unknown: all cores
    assert threads.choose_threads() == 4


@pytest.mark.skipif(not os.path.exists("/proc/stat") or (os.cpu_count() or 1) < 2, reason="needs /proc and 2 cores")
def test_a_busy_neighbour_is_seen():
    idle_before = threads.idle_cores()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        idle_during = threads.idle_cores(0.5)
    finally:
        busy.kill()
    assert idle_before is not None and idle_during is not None
    assert idle_during <= threads.usable_cores() - 0.6


class FakeMachine:
    """/proc readings of a 2-core machine: jiffies advance as this process and others use them."""

    def __init__(self):
        self.idle = self.total = self.own = 0

    def tick(self, seconds, own_cores, other_cores):
        jiffies = 100 * seconds
        self.total += 2 * jiffies
        self.own += own_cores * jiffies
        self.idle += (2 - own_cores - other_cores) * jiffies

    def read(self):
        return (self.idle, self.total), self.own


def test_the_governor_gives_way_to_a_neighbour_that_starts_later_and_takes_the_core_back(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    machine, now, changes = FakeMachine(), [0.0], []
    gov = threads.ThreadGovernor(changes.append, threads=2, interval_s=5.0, clock=lambda: now[0],
                                 read=machine.read)
    for t, own, other in ((5, 2, 0), (10, 1, 1), (15, 1, 1), (20, 1.6, 0.3), (25, 2, 0)):
        machine.tick(5, own, other)
        now[0] = t
        gov.poll()
    assert changes == [1, 2]  # our own two busy threads never count against us
    now[0] = 26
    assert gov.poll() is None  # between intervals only the clock is read


def test_a_one_core_neighbour_squeezed_by_our_threads_still_takes_its_core(monkeypatch):
    """Beside our 2 threads on 2 cores a full-time neighbour *receives* only 2/3 of a core."""
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    machine, now, changes = FakeMachine(), [0.0], []
    gov = threads.ThreadGovernor(changes.append, threads=2, interval_s=2.0, clock=lambda: now[0],
                                 read=machine.read)
    machine.tick(2, 4 / 3, 2 / 3)
    now[0] = 2
    gov.poll()
    assert changes == [1]
    machine.tick(60, 1, 0)  # nobody polled for a minute (no job ran), then the neighbour left
    now[0] = 62
    assert gov.poll() is None  # a stale window decides nothing
    machine.tick(2, 1, 0)
    now[0] = 64
    gov.poll()
    assert changes == [1, 2]


def test_engines_govern_only_when_the_app_asks():
    assert threads.engine_governor_reserve() is None and threads.engine_start_threads() is None
    threads.govern_engine_threads(1, threads=3)
    try:
        assert threads.engine_governor_reserve() == 1 and threads.engine_start_threads() == 3
    finally:
        threads.govern_engine_threads(None)
    assert threads.engine_start_threads() is None
    threads.keep_engine_threads(1)  # a bench's fixed count: the governor keeps the other cores free
    try:
        assert threads.engine_start_threads() == 1
        assert threads.engine_governor_reserve() == threads.usable_cores() - 1
    finally:
        threads.govern_engine_threads(None)


def test_a_pinned_thread_keeps_its_count_whatever_another_sets():
    """The GUI thread stays serial while the engine thread takes more (each thread its own count)."""
    import threading

    import torch

    seen = {}

    def other() -> None:
        threads.pin_torch_threads(2)
        seen["other"] = torch.get_num_threads()

    def gui() -> None:
        threads.keep_torch_serial_here()
        t = threading.Thread(target=other)
        t.start()
        t.join()
        torch.ones(10).sum()
        seen["gui"] = torch.get_num_threads()

    worker = threading.Thread(target=gui)  # a thread of its own: the test leaves this one alone
    worker.start()
    worker.join()
    assert seen == {"other": 2, "gui": 1}


@pytest.mark.skipif(not os.path.exists("/proc/self/stat") or (os.cpu_count() or 1) < 2,
                    reason="needs /proc and 2 cores")
def test_the_governor_sees_a_real_neighbour():
    gov = threads.ThreadGovernor(lambda n: None, threads=threads.usable_cores(), interval_s=0.0)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        import time

        time.sleep(0.6)
        others = gov.others_busy(gov._last, gov.read())
    finally:
        busy.kill()
    assert others is not None and others >= 0.6
