"""The GUI's one view of the engine: the only subscriber to its signals, and the state panels share.

The engine answers across threads (queued signals); the session receives every answer in the GUI
thread, keeps what more than one panel needs, and passes each answer on as one of its own signals:

- ``model_info``: the current model, an ``api.ModelInfo`` (name, kind, shape, its sampler
  settings, where it came from; ``training`` when it is a run's model), announced by
  ``model_changed``; None until the engine announced one;
- ``jobs``: the newest state of each main job slot (``viewer``, ``training``, ``fit``) by purpose,
  announced by ``job_changed``;
- ``device``: the engine's device label;
- frames: taken from the slot that announced them and passed on as ``frame`` (a copy that
  belongs to the GUI); recorded steps as ``scrub_frame``;
- everything else as it came: typed ``api`` events (``event``), landscapes, metric rows, errors,
  saves, and the image tools' events and frame notices.

After the window closes (the host shut the engine down), late answers are dropped here, so no
panel draws into a closing window. Panels send commands through ``session.host``.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ebm_studio.worker.api import JobInfo, ModelInfo
from ebm_studio.worker.frames import Frame
from ebm_studio.worker.thread import EngineHost


class Session(QObject):
    model_changed = Signal(object)  # an api.ModelInfo
    job_changed = Signal(object)  # an api.JobInfo
    frame = Signal(object)  # a Frame of any main slot
    scrub_frame = Signal(object)  # a recorded step asked for by the trajectory scrubber
    event = Signal(object)  # an api.Event
    landscape_ready = Signal(object)  # an api.LandscapeResult
    metrics = Signal(object)  # list of metric rows of the training run, {name: value} each
    error = Signal(str)
    saved = Signal(str)
    device_changed = Signal(str)
    tool_event = Signal(object)
    tool_frame_ready = Signal(str)

    def __init__(self, host: EngineHost, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.host = host
        self.model_info: ModelInfo | None = None
        self.jobs: dict[str, JobInfo] = {}
        self.job_info = JobInfo()  # the newest job state of any slot
        self.device = ""
        self._relays: list[_Relay] = []  # one per passed-on engine signal
        e = host.engine
        # bound methods of this QObject: Qt queues every answer into the GUI thread
        e.model_changed.connect(self._on_model_changed)
        e.job_state.connect(self._on_job_state)
        e.frame_ready.connect(self._on_frame_ready)
        e.scrub_ready.connect(self._on_scrub_ready)
        e.event.connect(self._pass(self.event))
        e.landscape_ready.connect(self._pass(self.landscape_ready))
        e.metrics_ready.connect(self._pass(self.metrics))
        e.error.connect(self._pass(self.error))
        e.saved.connect(self._pass(self.saved))
        e.device_changed.connect(self._on_device_changed)
        e.tool_event.connect(self._pass(self.tool_event))
        e.tool_frame_ready.connect(self._pass(self.tool_frame_ready))

    @property
    def open(self) -> bool:
        """False once the engine shut down: answers still on their way are dropped."""
        return self.host.running

    def _pass(self, signal):
        relay = _Relay(self, signal)
        self._relays.append(relay)
        return relay.deliver

    def _on_model_changed(self, info: ModelInfo) -> None:
        if self.open:
            self.model_info = info
            self.model_changed.emit(info)

    def _on_job_state(self, info: JobInfo) -> None:
        if self.open:
            self.job_info = info
            self.jobs[info.purpose or info.kind] = info
            self.job_changed.emit(info)

    def _on_frame_ready(self, slot: str) -> None:
        if not self.open:
            return
        frame: Frame | None = self.host.take_frame(slot)
        if frame is not None:
            self.frame.emit(frame)

    def _on_scrub_ready(self) -> None:
        if not self.open:
            return
        frame = self.host.engine.scrub_frames.take()
        if frame is not None:
            self.scrub_frame.emit(frame)

    def _on_device_changed(self, label: str) -> None:
        if self.open:
            self.device = label
            self.device_changed.emit(label)

    def running_jobs(self) -> str:
        """'viewer running · training paused', or 'idle'."""
        return " · ".join(f"{name} {i.state.value}" for name, i in self.jobs.items() if i.active) or "idle"


class _Relay(QObject):
    """Passes one engine signal on as a session signal (a QObject, so the connection is queued
    into the GUI thread; a plain Python callable would run in the engine's thread)."""

    def __init__(self, session: Session, signal) -> None:
        super().__init__(session)
        self._session = session
        self._signal = signal

    def deliver(self, *args) -> None:
        if self._session.open:
            self._signal.emit(*args)
