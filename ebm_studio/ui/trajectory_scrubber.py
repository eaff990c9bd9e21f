"""The Trajectories tab: scrub, replay, branch and export the recorded MCMC runs.

Every sampling job records its states on the engine side (a
:class:`~ebm_studio.core.trajectory.TrajectoryStore`) under one memory budget. This panel
shows a recording like a video:

- a timeline slider under the view (value = index of a recorded step) with orange ticks where the
  live settings changed; dragging it, or Left/Right/Home/End while the panel has the keyboard,
  shows exactly the recorded state of that step, while the live chains keep running (or stay
  paused: Space still pauses/resumes them);
- playback forward or backward at a chosen rate, once, looping or bouncing;
- the energy trace of the recording with a cursor at the shown step (drag it to scrub);
- a followed chain (click a tile or a particle): enlarged, with its own energy curve;
- branching: resume sampling from the shown step with the live settings in force (a new branch);
- exports (GIF, APNG, PNG strip, raw ``.npz``) with a progress bar and Cancel;
- the memory budget (MB) and what to keep when it is full (thin: every k-th step of the whole run;
  newest: a ring buffer), with a sentence saying what the recording keeps now.

How it talks to the engine (it never touches tensors):
    frames      a ``FetchRecordedStep`` command → the session's ``scrub_frame``. At most one
                request is in flight; a slider that moved meanwhile is served with its newest
                position when the answer arrives, so dragging never builds a queue;
    summaries   ``host.send(RequestRecordingInfo(...))``, answered by a ``RecordingInfo`` event:
                on a ``RecordingsChanged`` event, on showing the tab, and twice a second while a job
                records and the tab is visible;
    exports     ``host.send(ExportTrajectory(...))`` with a ``threading.Event`` this panel sets to
                cancel (see ``trajectory_export``).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QWidget,
)

from ebm_studio.core.trajectory import DEFAULT_BUDGET_BYTES, POLICY_LABELS
from ebm_studio.ui.trajectory_widgets import (
    is_scrub_key,
)
from ebm_studio.worker.api import (
    BranchDetail,
    JobInfo,
    FetchRecordedStep,
    StartJob,
    ChainPicked,
    ChainTrack,
    ExportDone,
    ExportProgress,
    RecordingInfo,
    Recordings,
    RecordingsChanged,
    RequestRecordingInfo,
    SetRecordingBudget,
    SetRecordingPolicy,
)
from ebm_studio.worker.frames import Frame
from ebm_studio.worker.requests import JobRequest
from ebm_studio.ui.session import Session
from ebm_studio.ui.trajectory_follow import ChainFollowing
from ebm_studio.ui.trajectory_layout import MB, ScrubberLayout

#: a scrub request unanswered for this long no longer blocks the next one (s)
INFLIGHT_TIMEOUT_S = 0.5
SETTINGS_PREFIX = "trajectories/"


def fmt_bytes(n: float) -> str:
    """Bytes for people: 50.8 KB, 256 MB (1 KB = 1024 bytes, as the budget)."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            if unit == "bytes":
                return f"{n:,.0f} bytes"
            return f"{n:,.1f} {unit}" if abs(n) < 100 else f"{n:,.0f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def settings_text(settings: dict) -> str:
    """The recorded live settings in a few words: 'langevin · T 1 · ε 0.01 · σ 0.005'."""
    parts = []
    if "level" in settings:  # a ladder rung or a noise level of a level model
        parts.append(f"level {settings['level']}")
    if "sampler" in settings:
        parts.append(str(settings["sampler"]))
    for key, label in (("temperature", "T"), ("step_size", "ε"), ("noise", "σ")):
        if key in settings:
            try:
                parts.append(f"{label} {float(settings[key]):.4g}")
            except (TypeError, ValueError):
                parts.append(f"{label} {settings[key]}")
    return " · ".join(parts)


class TrajectoryScrubber(ScrubberLayout, ChainFollowing, QWidget):
    """Scrub, play, follow, branch and export recorded trajectories (the "Trajectories" tab)."""

    #: short messages for the window's status bar
    status = Signal(str)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trajectory_scrubber")
        host = session.host
        self.session = session
        self.host = host
        # --- what is shown ------------------------------------------------------------------
        self.branch_id: int | None = None
        self.branch_model = ""  # the model the shown branch was recorded under
        self.steps = np.zeros(0, np.int64)  # recorded step numbers of the shown branch
        self.kind: str | None = None
        self.n_chains = 0
        self.markers: list[tuple[int, str]] = []
        self.chain: int | None = None  # the followed chain
        self.track: ChainTrack | None = None  # its energies (and positions) over the recorded steps
        self.frame: Frame | None = None  # the recorded frame drawn last
        self.info: Recordings | None = None  # the engine's newest answer
        self._active_seen: int | None = None
        self._expect_branch: tuple[int, int] | None = None
        self._go_to_end_next = False
        # --- requests in flight -------------------------------------------------------------
        self._wanted: tuple[int, int] | None = None
        self._sent: tuple[int, int] | None = None
        self._sent_t = 0.0
        self._inflight = False
        self._info_id = 0
        self._info_pending = False
        self._info_t = 0.0
        self._info_again = False
        self._job_running = False
        self._play_dir = 0
        self._window_filtered: QObject | None = None
        self.last_latency_ms: float | None = None
        self.scrub_timings: list[tuple[float | None, float, float]] = []

        self._build()
        self._restore_settings()
        self._connect()

    # ------------------------------------------------------------------------------------------
    # construction
    # ------------------------------------------------------------------------------------------
    def _connect(self) -> None:
        s = self.session
        s.scrub_frame.connect(self._on_scrub_frame)
        s.event.connect(self._on_event)
        s.job_changed.connect(self._on_job_state)
        self.timeline.valueChanged.connect(self._on_timeline)
        self.trace.step_picked.connect(self._on_trace_picked)
        self.view.plot.scene().sigMouseClicked.connect(self._on_view_click)
        self.branch_box.activated.connect(self._on_branch_chosen)
        self.budget_spin.valueChanged.connect(self._on_budget)
        self.policy_box.currentIndexChanged.connect(self._on_policy)
        self.chain_spin.valueChanged.connect(self._on_chain_spin)
        self.first_button.clicked.connect(lambda: self.go_to_index(0))
        self.last_button.clicked.connect(lambda: self.go_to_index(self.timeline.maximum()))
        self.play_button.clicked.connect(lambda: self.play(+1))
        self.back_button.clicked.connect(lambda: self.play(-1))
        self.stop_button.clicked.connect(self.stop_playback)
        self.fps_spin.valueChanged.connect(self._on_fps)
        self.branch_button.clicked.connect(self.branch_here)
        self.live_button.clicked.connect(self._toggle_live)
        self.poll_timer.timeout.connect(self._poll)
        self.play_timer.timeout.connect(self._play_tick)
        self.inflight_timer.timeout.connect(self._inflight_expired)

    # ------------------------------------------------------------------------------------------
    # settings
    # ------------------------------------------------------------------------------------------
    def _settings(self) -> QSettings | None:
        try:
            from ebm_studio.ui.main_window import app_settings
        except ImportError:  # pragma: no cover - the panel used outside the app
            return None
        return app_settings()

    def _restore_settings(self) -> None:
        s = self._settings()
        if s is None:
            return

        def get(key: str, default, cast):
            try:
                return cast(s.value(SETTINGS_PREFIX + key, default))
            except (TypeError, ValueError):
                return default

        budget = get("budget_mb", DEFAULT_BUDGET_BYTES // MB, int)
        policy = get("policy", "thin", str)
        self.budget_spin.setValue(min(max(budget, 1), self.budget_spin.maximum()))
        self.policy_box.setCurrentIndex(max(0, self.policy_box.findData(policy)))
        self.fps_spin.setValue(min(max(get("fps", 15, int), 1), 120))
        self.mode_box.setCurrentIndex(max(0, self.mode_box.findData(get("play_mode", "once", str))))
        self.export_box.frames_spin.setValue(min(max(get("max_frames", 200, int), 2), 5000))
        self.export_box.last_dir = get("last_dir", str(Path.cwd()), str)
        # the engine starts with the defaults: give it the remembered budget and policy
        if self.budget_spin.value() * MB != DEFAULT_BUDGET_BYTES:
            self._on_budget(self.budget_spin.value())
        if self.policy_box.currentData() != "thin":
            self._on_policy()

    def save_settings(self, settings: QSettings) -> None:
        """Called by the main window when it closes."""
        settings.setValue(SETTINGS_PREFIX + "budget_mb", self.budget_spin.value())
        settings.setValue(SETTINGS_PREFIX + "policy", self.policy_box.currentData())
        settings.setValue(SETTINGS_PREFIX + "fps", self.fps_spin.value())
        settings.setValue(SETTINGS_PREFIX + "play_mode", self.mode_box.currentData())
        settings.setValue(SETTINGS_PREFIX + "max_frames", self.export_box.frames_spin.value())
        settings.setValue(SETTINGS_PREFIX + "last_dir", self.export_box.last_dir)

    # ------------------------------------------------------------------------------------------
    # Qt events: showing, keys, closing the window
    # ------------------------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        win = self.window()
        if win is not self and win is not self._window_filtered:
            win.installEventFilter(self)  # to cancel a running export when the window closes
            self._window_filtered = win
            bar = getattr(win, "statusBar", None)
            if callable(bar):
                self.status.connect(partial(self._to_status_bar, bar()))
        self.request_info()
        if self._job_running:
            self.poll_timer.start()
        self.timeline.setFocus(Qt.FocusReason.OtherFocusReason)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().hideEvent(event)
        self.poll_timer.stop()  # nobody looks: no summaries needed
        self.stop_playback()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt naming)
        if (event.type() == QEvent.Type.KeyPress and isinstance(obj, QAbstractButton)
                and is_scrub_key(event)):
            # a focused button would move the focus with the arrows: here they scrub instead
            self.keyPressEvent(event)
            return True
        if obj is self._window_filtered and event.type() == QEvent.Type.Close:
            # the engine thread must be free to shut down: stop the export at its next frame
            self.export_box.cancel()
            self.play_timer.stop()
            self.poll_timer.stop()
        return False

    def event(self, event: QEvent) -> bool:  # noqa: D401 (Qt override)
        # Claim the scrub keys for any child that does not want them itself (a button, a combo
        # box), so the window-wide "Right = live single step" shortcut does not fire here.
        if event.type() == QEvent.Type.ShortcutOverride and is_scrub_key(event):
            event.accept()
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        if is_scrub_key(event):
            key = event.key()
            v, top = self.timeline.value(), self.timeline.maximum()
            target = {Qt.Key.Key_Left: v - 1, Qt.Key.Key_Right: v + 1, Qt.Key.Key_Home: 0,
                      Qt.Key.Key_End: top}[key]
            self.go_to_index(target)
            event.accept()
            return
        super().keyPressEvent(event)

    # ------------------------------------------------------------------------------------------
    # engine signals
    # ------------------------------------------------------------------------------------------
    def _on_job_state(self, info: JobInfo) -> None:
        state = info.state
        self._job_running = state in ("running", "paused")
        if self._job_running and self.isVisible():
            if not self.poll_timer.isActive():
                self.poll_timer.start()
        else:
            self.poll_timer.stop()
        self._update_live_button()

    def _poll(self) -> None:
        if self.isVisible():
            self.request_info()
        self._update_live_button()

    def _on_event(self, ev) -> None:
        if isinstance(ev, RecordingInfo):
            self._on_info(ev.info, ev.request_id)
        elif isinstance(ev, RecordingsChanged):
            self.request_info()
        elif isinstance(ev, ChainPicked):
            self._on_pick(ev)
        elif isinstance(ev, (ExportProgress, ExportDone)):
            self.export_box.on_event(ev)

    # ------------------------------------------------------------------------------------------
    # recording summaries
    # ------------------------------------------------------------------------------------------
    def request_info(self) -> None:
        """Ask the engine for the store and the shown branch (answered by ``RecordingInfo``)."""
        now = time.perf_counter()
        if self._info_pending and now - self._info_t < 2.0:
            self._info_again = True  # one more when the answer is in: never a queue of requests
            return
        self._info_id += 1
        self._info_pending = True
        self._info_again = False
        self._info_t = now
        self.host.send(RequestRecordingInfo(self.branch_id, self.chain, self._info_id))

    def _on_info(self, info: Recordings, request_id: int) -> None:
        if request_id == self._info_id:
            self._info_pending = False
        self.info = info
        self._show_memory(info)
        self._fill_branch_box(info)
        active = info.active
        switch_to = None
        if self._expect_branch is not None:
            for b in info.branches:
                if b.parent == self._expect_branch and b.branch_id == active:
                    switch_to = b.branch_id
                    self._expect_branch = None
        elif active is not None and active != self._active_seen:
            switch_to = active  # a new recording started (viewer restart, branch): show it
        self._active_seen = active
        detail = info.branch
        if info.fallback and self.branch_id is not None:
            self._message(f"Branch {self.branch_id} is gone ({info.fallback}); showing "
                          f"{'branch ' + str(detail.branch_id) if detail else 'nothing'}.")
        if switch_to is not None and (detail is None or detail.branch_id != switch_to):
            self.branch_id = switch_to
            self._go_to_end_next = True
            self._info_pending = False
            self.request_info()
            return
        if detail is None:
            self._set_empty()
        else:
            self._apply_branch(detail, info.budget)
        if not info.complete or self._info_again:
            QTimer.singleShot(0, self.request_info)

    def _on_branch_chosen(self, index: int) -> None:
        bid = self.branch_box.itemData(index)
        if bid is None or bid == self.branch_id:
            return
        self.stop_playback()
        self.branch_id = int(bid)
        self._go_to_end_next = True
        self._info_pending = False  # a new question: do not wait for the old answer
        self.request_info()

    def _show_memory(self, info: Recordings) -> None:
        used, budget = info.nbytes, max(1, info.budget)
        self.memory_bar.setValue(int(round(1000 * min(1.0, used / budget))))
        self.memory_bar.setFormat(f"{fmt_bytes(used)} of {fmt_bytes(budget)}")
        if budget != self.budget_spin.value() * MB and budget % MB == 0:
            self.budget_spin.blockSignals(True)
            self.budget_spin.setValue(budget // MB)
            self.budget_spin.blockSignals(False)

    def _fill_branch_box(self, info: Recordings) -> None:
        items = []
        for b in info.branches:
            if b.parent:
                label = f"#{b.branch_id} ← #{b.parent[0]} @ {b.parent[1]:,}"
            else:
                label = f"#{b.branch_id}"
            label += f" · {b.n_steps:,} steps"
            if b.branch_id == info.active and info.recording:
                label += " · ● rec"
            items.append((label, b.branch_id))
        models = {b.branch_id: b.model for b in info.branches}
        current = [(self.branch_box.itemText(i), self.branch_box.itemData(i))
                   for i in range(self.branch_box.count())]
        if items != current:
            self.branch_box.blockSignals(True)
            self.branch_box.clear()
            for label, bid in items:
                self.branch_box.addItem(label, bid)
                if models.get(bid):
                    self.branch_box.setItemData(self.branch_box.count() - 1,
                                                f"recorded under the model {models[bid]}",
                                                Qt.ItemDataRole.ToolTipRole)
            self.branch_box.blockSignals(False)
        self.branch_model = models.get(self.branch_id, "")
        self.branch_box.setToolTip(f"Recorded under the model {self.branch_model}"
                                   if self.branch_model else "")
        shown = self.branch_box.findData(self.branch_id)
        if shown >= 0 and shown != self.branch_box.currentIndex():
            self.branch_box.setCurrentIndex(shown)

    def _apply_branch(self, d: BranchDetail, budget: int) -> None:
        new_branch = d.branch_id != self.branch_id or self.kind != d.kind
        go_end = self._go_to_end_next or new_branch
        self._go_to_end_next = False
        old_index = self.timeline.value()
        old_step = int(self.steps[old_index]) if len(self.steps) > old_index else None
        at_end = len(self.steps) == 0 or old_index >= self.timeline.maximum()
        self.branch_id = d.branch_id
        self.kind = d.kind
        self.n_chains = int(d.n_chains or 0)
        steps = np.asarray(d.steps, np.int64)
        self.steps = steps
        i = self.branch_box.findData(self.branch_id)
        if i >= 0:
            self.branch_box.setCurrentIndex(i)
        # where the slider goes: the newest step when following the live edge, else the same step
        playing = self.play_timer.isActive()
        if len(steps) == 0:
            index = 0
        elif go_end or (at_end and not playing and not self.timeline.isSliderDown()):
            index = len(steps) - 1
        elif old_step is not None:
            index = int(np.clip(np.searchsorted(steps, old_step), 0, len(steps) - 1))
        else:
            index = 0
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, max(0, len(steps) - 1))
        self.timeline.setValue(index)
        self.timeline.setPageStep(max(1, len(steps) // 20))
        self.timeline.blockSignals(False)
        self.markers = [(int(s), str(t)) for s, t in d.markers]
        if len(steps):
            ms = np.asarray([s for s, _ in self.markers], np.float64)
            pos = np.interp(ms, steps.astype(np.float64), np.arange(len(steps), dtype=np.float64))
            self.timeline.set_markers([(float(p), s, t) for p, (s, t) in zip(pos, self.markers)])
        else:
            self.timeline.set_markers([])
        self.trace.set_markers(self.markers)
        t = d.trace
        self.trace.set_trace(t.steps, t.mean, t.lo, t.hi)
        self.track = d.track
        if self.track is not None and self.track.chain == self.chain:
            self.trace.set_chain(self.track.steps, self.track.energy, self.chain)
        else:
            self.trace.set_chain(None, None, None)
        self.chain_spin.blockSignals(True)
        self.chain_spin.setRange(-1, max(0, self.n_chains - 1))
        self.chain_spin.setValue(-1 if self.chain is None else self.chain)
        self.chain_spin.blockSignals(False)
        policy = POLICY_LABELS.get(d.policy, d.policy)
        self.kept_label.setText(f"{policy}: {d.kept}")
        per = d.bytes_per_step
        if per:
            fit = int(budget // per)
            what = "images" if self.kind == "images" else "points"
            self.per_step_label.setText(
                f"{fmt_bytes(per)} per recorded step ({self.n_chains:,} chains, {what} as "
                f"{d.storage_dtype}): the budget holds ~{fit:,} steps"
            )
        else:
            self.per_step_label.setText("")
        has = len(steps) > 0
        for w in (self.timeline, self.branch_button, self.first_button, self.last_button,
                  self.play_button, self.back_button):
            w.setEnabled(has)
        self.export_box.set_available(has)
        if not has:
            self.step_label.setText("nothing recorded in this branch yet")
        self._update_live_label()
        want = (self.branch_id, int(steps[index])) if has else None
        if want is not None and (want != self._sent or self.frame is None or new_branch):
            self._request_frame(force=new_branch)
        else:
            self._update_step_label()  # more steps recorded: "… of N recorded"
            if want is not None and self.chain is not None and self.kind == "points":
                self._update_follow()  # the path grew: redraw it

    def _set_empty(self) -> None:
        self.steps = np.zeros(0, np.int64)
        self.timeline.setRange(0, 0)
        self.timeline.set_markers([])
        for w in (self.timeline, self.branch_button, self.first_button, self.last_button,
                  self.play_button, self.back_button):
            w.setEnabled(False)
        self.export_box.set_available(False)
        self.step_label.setText("nothing recorded yet")
        self.kept_label.setText("Nothing recorded yet: start the chains in the Live chains tab; "
                                "every sampling run is recorded.")

    # ------------------------------------------------------------------------------------------
    # scrubbing
    # ------------------------------------------------------------------------------------------
    def go_to_index(self, index: int) -> None:
        """Show the recorded step at ``index`` (clipped to the recording)."""
        top = self.timeline.maximum()
        self.timeline.setValue(int(min(max(index, 0), top)))

    def go_to_step(self, step: float) -> None:
        """Show the recorded step nearest to step number ``step``."""
        if not len(self.steps):
            return
        i = int(np.searchsorted(self.steps, step))
        if i >= len(self.steps):
            i = len(self.steps) - 1
        elif i > 0 and step - self.steps[i - 1] <= self.steps[i] - step:
            i -= 1
        self.go_to_index(i)

    def current_step(self) -> int | None:
        if not len(self.steps):
            return None
        return int(self.steps[min(self.timeline.value(), len(self.steps) - 1)])

    def _on_timeline(self, _value: int) -> None:
        self._request_frame()

    def _on_trace_picked(self, step: float) -> None:
        self.go_to_step(step)

    def _request_frame(self, force: bool = False) -> None:
        step = self.current_step()
        if step is None or self.branch_id is None:
            return
        self._wanted = (self.branch_id, step)
        if self._inflight and not force:
            return  # the answer to the request in flight sends the newest wish
        self._send()

    def _send(self) -> None:
        if self._wanted is None:
            return
        t = time.perf_counter()
        self._sent, self._sent_t, self._inflight = self._wanted, t, True
        self.inflight_timer.start(int(INFLIGHT_TIMEOUT_S * 1000))
        self.host.send(FetchRecordedStep(int(self._sent[0]), int(self._sent[1]), t))

    def _inflight_expired(self) -> None:
        # the engine answered nothing (the step vanished, an error was shown): stop waiting
        if self._inflight:
            self._inflight = False
            if self._wanted != self._sent:
                self._send()

    def _on_scrub_frame(self, frame: Frame) -> None:
        t_received = time.perf_counter()
        self._inflight = False
        self.inflight_timer.stop()
        self.show_recorded(frame)
        # (request, received, drawn) times of recent scrubs, for latency break-downs
        t_request = frame.recorded.t_request if frame.recorded is not None else None
        self.scrub_timings.append((t_request, t_received, time.perf_counter()))
        if len(self.scrub_timings) > 1000:
            del self.scrub_timings[:500]
        if self._wanted is not None and self._wanted != self._sent:
            self._send()

    def show_recorded(self, frame: Frame) -> None:
        """Draw a recorded frame (and the followed chain at that step)."""
        self.frame = frame
        b = frame.recorded.branch if frame.recorded is not None else self.branch_id
        caption = f"step {frame.step:,} · {'branch' if b else 'recording'} {b}"
        s = settings_text(frame.settings)
        if s:
            caption += f" · {s}"
        self.view.show_frame(frame, caption)
        self.view.expect_paint(frame.recorded.t_request if frame.recorded is not None else None)
        self.trace.set_cursor(frame.step)
        self._update_step_label()
        self._show_marker_near(frame.step)
        self._update_follow()

    def _update_step_label(self) -> None:
        """'step 340 · 35 of 201 recorded · mean E …' for the frame shown (and the newest count)."""
        frame = self.frame
        if frame is None or not len(self.steps):
            return
        i = int(np.searchsorted(self.steps, frame.step))
        text = f"step {frame.step:,} · {i + 1:,} of {len(self.steps):,} recorded"
        finite = frame.energies[np.isfinite(frame.energies)]
        if finite.size:
            text += f" · mean E {float(finite.mean()):.4g}"
        self.step_label.setText(text)
        self.step_label.setToolTip(text)

    def _show_marker_near(self, step: int) -> None:
        """Name the last settings change at or before ``step`` (what is in force there)."""
        before = [(s, t) for s, t in self.markers if s <= step]
        if before:
            s, t = before[-1]
            self.marker_label.setText(f"last change: {t} at step {s:,}")
        else:
            self.marker_label.setText("")

    def _on_latency(self, ms: float) -> None:
        self.last_latency_ms = ms
        self.latency_label.setText(f"{ms:.0f} ms")

    # ------------------------------------------------------------------------------------------
    # live chains and branching
    # ------------------------------------------------------------------------------------------
    def _toggle_live(self) -> None:
        # the window's Play/Pause action keeps the live viewer's own button in step
        action = getattr(self.window(), "play_action", None)
        if action is not None:
            action.trigger()
        else:
            self.host.pause(not self.host.live.snapshot().paused)
        self._update_live_button()

    def _update_live_button(self) -> None:
        paused = self.host.live.snapshot().paused
        self.live_button.setText("Resume live chains" if paused else "Pause live chains")
        self._update_live_label()

    def _update_live_label(self) -> None:
        s = self.host.live.snapshot()
        self.live_label.setText(
            f"A branch samples with the live settings now in force: {s.sampler} · "
            f"T {s.temperature:.4g} · ε {s.step_size:.4g} · σ {s.noise:.4g}"
            + (" (live chains paused: the branch starts paused)" if s.paused else "")
        )

    def branch_here(self) -> None:
        """Resume sampling from the shown recorded step as a new branch (shown live)."""
        step = self.current_step()
        if step is None or self.branch_id is None:
            self._message("Nothing recorded to branch from yet.")
            return
        self._expect_branch = (self.branch_id, step)
        request = JobRequest("sample", {"branch_from": [self.branch_id, step]},
                             seed=self.seed_spin.value(), purpose="viewer")
        # start_job, not run(): a paused live viewer stays paused (its Play button stays right)
        self.host.send(StartJob(request))
        s = self.host.live.snapshot()
        live = settings_text({"sampler": s.sampler, "temperature": s.temperature,
                              "step_size": s.step_size, "noise": s.noise})
        paused = " (paused: press Space to run)" if s.paused else ""
        self._message(f"Branching from step {step:,} of branch {self.branch_id} with "
                      f"{live}{paused}.", error=False)

    # ------------------------------------------------------------------------------------------
    # budget and policy
    # ------------------------------------------------------------------------------------------
    def _on_budget(self, mb: int) -> None:
        self._info_id += 1
        self._info_pending = True
        self._info_t = time.perf_counter()
        self.host.send(SetRecordingBudget(int(mb) * MB, self._info_id))

    def _on_policy(self, _index: int = 0) -> None:
        self._info_id += 1
        self._info_pending = True
        self._info_t = time.perf_counter()
        self.host.send(SetRecordingPolicy(self.policy_box.currentData(), self._info_id))

    # ------------------------------------------------------------------------------------------
    # exports (the export group asks what to export)
    # ------------------------------------------------------------------------------------------
    def _export_source(self) -> dict:
        return {"branch": self.branch_id, "n_steps": len(self.steps), "chain": self.chain,
                "fps": float(self.fps_spin.value())}

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _to_status_bar(bar, text: str) -> None:
        bar.showMessage(text, 6000)

    def _message(self, text: str, error: bool = True) -> None:
        self.message_label.setStyleSheet("color: rgb(230, 90, 70);" if error else "")
        self.message_label.setText(text)
        if text:
            self.status.emit(text)

