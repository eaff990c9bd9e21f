"""Garbage collection in the GUI thread while an engine lives (``worker/gui_gc.py``)."""

from __future__ import annotations

import gc
import weakref

import pytest

from ebm_studio.core import warmup
from ebm_studio.worker.gui_gc import GuiThreadCollector


class Node:
    """Something that can sit in a reference cycle and be watched through a weak reference."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def collector(qapp):
    c = GuiThreadCollector()
    was = gc.isenabled()
    yield c
    while c.active:
        c.release()
    if was:
        gc.enable()


def test_holding_moves_collection_to_the_timer_and_the_last_release_collects(collector):
    collector.hold()
    collector.hold()
    assert not gc.isenabled() and collector.active
    node = Node()
    ref = weakref.ref(node)
    del node
    collector.release()
    assert collector.active and ref() is not None  # one engine still lives: nothing collected yet
    collector.release()
    assert gc.isenabled() and ref() is None


def test_after_the_warm_up_the_survivors_of_a_full_collection_are_frozen(collector, monkeypatch):
    collector.hold()
    node = Node()
    ref = weakref.ref(node)
    del node  # garbage in a cycle when the freeze comes: collected first, not frozen for good
    monkeypatch.setattr(warmup, "_done", _Done(True))
    monkeypatch.setattr(collector, "frozen", False)
    try:
        collector.collect_due()
        assert collector.frozen and gc.get_freeze_count() > 0
        assert ref() is None
    finally:
        gc.unfreeze()


def test_a_full_collection_waits_until_the_long_lived_objects_grew_by_a_quarter(collector):
    collector.hold()
    gc.collect()
    collector._long_lived = len(gc.get_objects(generation=2))
    assert not collector._full_pays()
    keep = [[] for _ in range(collector._long_lived // 4 + 1000)]
    gc.collect(1)
    gc.collect(1)  # twice: the new lists reach the oldest generation
    assert collector._full_pays()
    del keep


class _Done:
    def __init__(self, value: bool) -> None:
        self.value = value

    def wait(self, timeout=None) -> bool:
        return self.value
