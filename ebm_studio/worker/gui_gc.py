"""Python's cyclic garbage collection, run only in the GUI thread while an engine thread lives.

CPython collects cycles in whichever thread happens to cross an allocation threshold. With the
engine allocating tensors and arrays at every step, that is mostly the engine thread, and a cycle
that holds Qt objects (pyqtgraph items, widgets, signal connections) is then destroyed from the
wrong thread: Qt warns "Timers cannot be stopped from another thread" at best and crashes or
deadlocks at worst. While any :class:`~ebm_studio.worker.thread.EngineHost` runs, automatic
collection is off and a GUI-thread timer does the collections instead, generation by generation
with the interpreter's own thresholds, so the cost stays what automatic collection would cost.
Reference counting (which frees almost everything) is untouched.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QTimer

#: how often the GUI thread checks the allocation counters
INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    """Disables automatic collection while held; collects from a timer in the GUI thread."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._holders = 0
        self._was_enabled = True
        self.collections = 0
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
        t0, t1, t2 = gc.get_threshold()
        c0, c1, c2 = gc.get_count()
        if t0 and c0 > t0:
            generation = 2 if (t1 and c1 > t1 and t2 and c2 > t2) else 1 if (t1 and c1 > t1) else 0
            gc.collect(generation)
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
