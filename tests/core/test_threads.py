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
