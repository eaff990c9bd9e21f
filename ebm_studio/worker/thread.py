"""Owning the engine's thread: create it, talk to it through queued signals, shut it down cleanly.

:class:`EngineHost` lives in the GUI thread. Its signals are connected to the engine's slots, so
every call crosses threads as a queued event; live settings go straight into the lock-protected
:class:`~ebm_studio.worker.live.LiveSettings` (read by the engine at every step).
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QObject, QThread, Qt, Signal

from ebm_studio.worker.engine import Engine
from ebm_studio.worker.gui_gc import gui_collector
from ebm_studio.worker.live import LiveSettings
from ebm_studio.worker.api import StartJob, StopJob
from ebm_studio.worker.requests import JobRequest


def _shutdown_engine(engine: Engine) -> None:
    engine.shutdown()
    # hand the engine (and its timer) back to the GUI thread, so that destroying it later never
    # touches a timer from a thread that has already ended
    app = QCoreApplication.instance()
    if app is not None:
        engine.moveToThread(app.thread())
    QThread.currentThread().quit()


class EngineHost(QObject):
    wake = Signal()
    call = Signal(object)  # a callable run in the engine thread with the engine as argument
    #: a ``tool_api`` command for an image tool (inpainting, translation)
    tool_command = Signal(object)
    #: an ``api`` command for the main engine
    command = Signal(object)

    def __init__(self, device: str = "auto", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.live = LiveSettings()
        self.thread = QThread()
        self.thread.setObjectName("ebm-engine")
        self.engine = Engine(self.live, device)
        self.engine.moveToThread(self.thread)
        q = Qt.ConnectionType.QueuedConnection
        e = self.engine
        for sig, slot in (
            (self.wake, e.wake),
            (self.call, e.run_callable),
            (self.tool_command, e.tool_command),
            (self.command, e.handle),
        ):
            sig.connect(slot, q)
        self.thread.started.connect(e.setup)
        self._running = False
        self._collector = None

    def start(self) -> None:
        # from now on two threads run Python: cycles are collected in this (the GUI) thread only
        self._collector = gui_collector()
        if self._collector is not None:
            self._collector.hold()
        self.thread.start()
        self._running = True

    @property
    def running(self) -> bool:
        """False once shut down: answers the engine sent before it stopped are no longer drawn."""
        return self._running

    # --- conveniences used by the panels ------------------------------------------------------
    def take_frame(self, slot: str):
        """The newest frame of a main job slot (None when there is none): a copy, the GUI's own."""
        return self.engine.slots[slot].frames.take()

    def slot_live(self, slot: str = "viewer") -> LiveSettings:
        """The live settings of a main job slot (``viewer``, ``training``, ``fit``)."""
        return self.engine.slots[slot].live

    def run(self, request: JobRequest) -> None:
        """Start ``request`` in its slot (by purpose), unpaused; other slots' jobs go on."""
        self.engine.slot_for(request).live.update(paused=False)
        self.send(StartJob(request))

    def update_live(self, slot: str = "viewer", **changes) -> None:
        """Change a slot's live settings (validated, raises ``ValueError``) and wake its job."""
        self.slot_live(slot).update(**changes)
        self.wake.emit()

    def pause(self, paused: bool, slot: str = "viewer") -> None:
        self.slot_live(slot).update(paused=paused)
        self.wake.emit()

    def single_step(self, n: int = 1, slot: str = "viewer") -> None:
        live = self.slot_live(slot)
        live.update(paused=True)
        live.request_single_step(n)
        self.wake.emit()

    def send(self, command) -> None:
        """Send an ``api`` command to the engine (queued: it runs between steps)."""
        self.command.emit(command)

    def send_tool(self, command) -> None:
        """Send a ``tool_api`` command to the engine (queued: it runs between steps)."""
        self.tool_command.emit(command)

    def tool_live(self, owner: str) -> LiveSettings:
        """The live settings (temperature, step size, noise, pause) of one image tool's run."""
        return self.engine.tool_live[owner]

    def update_tool_live(self, owner: str, **changes) -> None:
        """Change a tool's live settings (validated, raises ``ValueError``) and let its run see it."""
        from ebm_studio.worker.tool_api import WakeTool

        self.engine.tool_live[owner].update(**changes)
        self.tool_command.emit(WakeTool(owner))

    def step_tool(self, owner: str, n: int = 1) -> None:
        from ebm_studio.worker.tool_api import WakeTool

        live = self.engine.tool_live[owner]
        live.update(paused=True)
        live.request_single_step(n)
        self.tool_command.emit(WakeTool(owner))

    def stop(self, slot: str = "viewer") -> None:
        self.slot_live(slot).request_stop()
        self.send(StopJob(slot))

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop the job, quit the thread and wait for it; True when it ended in time."""
        if not self._running:
            return True
        self._running = False
        for slot in self.engine.slots.values():  # a long step notices this at its next inner step
            slot.live.request_stop()
        # the engine finishes its job in its own thread, then ends that thread's event loop
        self.call.emit(_shutdown_engine)
        ok = self.thread.wait(timeout_ms)
        if not ok:  # the last resort: never leave a running QThread behind at exit
            self.thread.terminate()
            self.thread.wait(500)
        if self._collector is not None:
            self._collector.release()
            self._collector = None
        return ok
