"""Python's cyclic garbage collection, run only in the GUI thread while an engine thread lives.

CPython collects cycles in whichever thread happens to cross an allocation threshold. With the
engine allocating tensors and arrays at every step, that is mostly the engine thread, and a cycle
that holds Qt objects (pyqtgraph items, widgets, signal connections) is then destroyed from the
wrong thread: Qt warns "Timers cannot be stopped from another thread" at best and crashes or
deadlocks at worst. While any :class:`~ebm_studio.worker.thread.EngineHost` runs, automatic
collection is off and a GUI-thread timer does the collections instead, generation by generation
with the interpreter's own thresholds, so the cost stays what automatic collection would cost.
Reference counting (which frees almost everything) is untouched.

Two things keep those collections short, as the interpreter's own would be. A full collection
walks every long-lived object, so, as CPython does, it runs only once the objects that reached the
oldest generation since the last one are a quarter of those there then. And once the engine's
background warm-up has imported what training needs (``core/warmup.py``), one full collection
runs and the survivors (some 300k modules, functions and types) are frozen out of all later
collections: walking them had paused the window for 50–150 ms each time.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer

from ebm_studio.core.warmup import warmed_up

#: how often the GUI thread checks the allocation counters
INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    """Disables automatic collection while held; collects from a timer in the GUI thread."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._holders = 0
        self._was_enabled = True
        self.collections = 0
        #: whether the long-lived objects were frozen (once per process, after the warm-up)
        self.frozen = gc.get_freeze_count() > 0
        self._long_lived = 0  # objects in the oldest generation after the last full collection
        self._next_full_check = None  # the oldest generation's count that warrants the next look
        self._timer = QTimer(self)
        self._timer.setInterval(INTERVAL_MS)
        self._timer.timeout.connect(self.collect_due)

    def hold(self) -> None:
        """One more engine thread: take over collection (nested holds are counted)."""
        if self._holders == 0:
            self._was_enabled = gc.isenabled()
            gc.disable()
            self._timer.start()
        self._holders += 1

    def release(self) -> None:
        """One engine thread fewer; the last release collects once and restores automatic GC."""
        if self._holders == 0:
            return
        self._holders -= 1
        if self._holders == 0:
            self._timer.stop()
            gc.collect()
            if self._was_enabled:
                gc.enable()

    @property
    def active(self) -> bool:
        return self._holders > 0

    def collect_due(self) -> None:
        """Collect the generations whose counters passed the thresholds, as automatic GC would."""
        if not self.frozen and warmed_up():
            self.freeze_long_lived()
            return
        t0, t1, t2 = gc.get_threshold()
        c0, c1, c2 = gc.get_count()
        if not (t0 and c0 > t0):
            return
        generation = 1 if (t1 and c1 > t1) else 0
        if generation == 1 and t2 and c2 > (self._next_full_check or t2):
            if self._full_pays():
                generation = 2
            else:  # look again after as many younger collections as the threshold asks
                self._next_full_check = c2 + t2
        self._collect(generation)

    def freeze_long_lived(self) -> None:
        """One full collection, then move every survivor out of the collector's sight for good."""
        gc.collect()
        gc.freeze()
        self.frozen = True
        self._long_lived = 0
        self._next_full_check = None

    def _full_pays(self) -> bool:
        # CPython's rule: each full collection walks every long-lived object, so one is worth its
        # cost only when they grew by a quarter since the last (counting them costs a walk too,
        # which is why it is looked at only when the counters say a full collection is due)
        return len(gc.get_objects(generation=2)) - self._long_lived > self._long_lived // 4

    def _collect(self, generation: int) -> None:
        gc.collect(generation)
        if generation == 2:
            self._long_lived = len(gc.get_objects(generation=2))
            self._next_full_check = None
        self.collections += 1


_collector: GuiThreadCollector | None = None


def gui_collector() -> GuiThreadCollector | None:
    """The process's collector, owned by the application object; None without one (no GUI
    thread, nothing to protect)."""
    global _collector
    app = QCoreApplication.instance()
    if app is None:
        return None
    try:
        alive = _collector is not None and _collector.parent() is app
    except RuntimeError:  # the C++ side went with an earlier application object
        alive = False
    if not alive:
        _collector = GuiThreadCollector(app)
    return _collector
