"""The widgets of the Trajectories tab and how they are laid out (see ``trajectory_scrubber``).

A mixin of :class:`~ebm_studio.ui.trajectory_scrubber.TrajectoryScrubber`: ``_build`` makes the
recording, follow, branch and export groups on the left (a scrolling column) and the view, timeline,
playback row and energy trace on the right.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QFrame,
    QScrollArea,
    QAbstractButton,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from ebm_studio.core.trajectory import DEFAULT_BUDGET_BYTES, POLICIES, POLICY_LABELS
from ebm_studio.ui.trajectory_export import ExportBox
from ebm_studio.ui.trajectory_widgets import (
    ChainView,
    RecordedView,
    ScrubTrace,
    Timeline,
)


MB = 1024**2
#: while a job records and the tab is visible, ask for the recording's state this often (ms)
POLL_MS = 500
PLAY_MODES = {"once": "Once", "loop": "Loop", "bounce": "Bounce"}
#: short names for the policy box (the core's labels are too long for the side column)
POLICY_SHORT = {"thin": "Thin: every k-th step", "newest": "Newest: ring buffer"}

TIPS = {
    "timeline": "Recorded steps of the chosen branch. Drag, or use Left/Right (one recorded step) "
    "and Home/End. Orange ticks mark changes of the live settings (hover for details).",
    "budget": "Memory all recordings together may use, in MB (1 MB = 1024² bytes). Lowering it "
    "frees memory at once: older branches go first, then the policy below applies.",
    "policy": "When the budget is full:<br><b>Thin</b>: keep every k-th step, doubling k as "
    "needed, so the recording always spans the whole run;<br><b>Newest</b>: a ring buffer that "
    "drops the oldest steps and keeps full detail of the recent past.",
    "branch_box": "Recordings: each start of the live chains is a root branch; 'Branch from here' "
    "adds a branch that continues from a recorded step. Older branches are dropped first when the "
    "budget needs the space.",
    "branch": "Resume sampling from exactly the shown recorded state as a new branch, with the "
    "live settings now in force (set them in the Live chains tab). The old branch is kept until "
    "the budget needs the space.",
    "seed": "Noise seed of the branch: branches with the same seed and different settings see the "
    "same noise, so they differ only by the settings.",
    "fps": "Playback and export rate in frames per second (one recorded step per frame).",
    "mode": "Once: stop at the end. Loop: start again from the other end. Bounce: reverse.",
    "chain": "Follow one chain (0-based index): enlarged on the right with its own energy curve. "
    "Clicking a tile (images) or near a particle (points) picks it too; 'none' follows none.",
}


class ScrubberLayout:
    def _build(self) -> None:
        # --- centre: recorded view + followed chain, timeline, transport, trace ---------------
        self.view = RecordedView()
        self.view.setObjectName("trajectory_view")
        self.view.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys stay with the timeline
        self.view.setToolTip("The recorded state at the step of the timeline. Click a tile or a "
                             "particle to follow that chain.")
        self.view.on_latency = self._on_latency
        self.chain_view = ChainView()
        self.chain_view.setMinimumWidth(220)
        self.timeline = Timeline()
        self.timeline.setToolTip(TIPS["timeline"])
        self.step_label = QLabel("nothing recorded yet")
        self.step_label.setObjectName("trajectory_step_label")
        # in a narrow window the label gives way (its tooltip keeps the whole text)
        self.step_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.marker_label = QLabel("")
        self.marker_label.setObjectName("trajectory_marker_label")
        self.marker_label.setStyleSheet("color: rgb(255, 150, 40);")
        self.latency_label = QLabel("")
        self.latency_label.setObjectName("trajectory_latency_label")
        self.latency_label.setToolTip("Scrub latency: time from the slider move to the redrawn frame")

        def button(text: str, name: str, tip: str, icon=None) -> QPushButton:
            b = QPushButton(text)
            if icon is not None:
                b.setIcon(self.style().standardIcon(icon))
            b.setObjectName(name)
            b.setToolTip(tip)
            b.setFocusPolicy(Qt.FocusPolicy.TabFocus)  # clicking keeps the keys on the timeline
            return b

        sp = QStyle.StandardPixmap
        self.first_button = button("", "trajectory_first", "First recorded step (Home)",
                                   sp.SP_MediaSkipBackward)
        self.back_button = button("Back", "trajectory_play_back", "Play the recording backward",
                                  sp.SP_MediaSeekBackward)
        self.stop_button = button("", "trajectory_stop", "Stop playback", sp.SP_MediaStop)
        self.play_button = button("Play", "trajectory_play", "Play the recording forward",
                                  sp.SP_MediaPlay)
        self.last_button = button("", "trajectory_last", "Newest recorded step (End)",
                                  sp.SP_MediaSkipForward)
        self.fps_spin = QSpinBox()
        self.fps_spin.setObjectName("trajectory_fps")
        self.fps_spin.setRange(1, 120)
        self.fps_spin.setValue(15)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setToolTip(TIPS["fps"])
        self.mode_box = QComboBox()
        self.mode_box.setObjectName("trajectory_play_mode")
        for k, label in PLAY_MODES.items():
            self.mode_box.addItem(label, k)
        self.mode_box.setToolTip(TIPS["mode"])
        transport = QHBoxLayout()
        for w in (self.first_button, self.back_button, self.stop_button, self.play_button,
                  self.last_button, self.fps_spin, self.mode_box):
            transport.addWidget(w)
        transport.addSpacing(12)
        transport.addWidget(self.step_label, 1)
        transport.addWidget(self.latency_label)

        self.trace = ScrubTrace()
        self.trace.setMinimumHeight(150)

        self.chain_caption = QLabel(self.chain_view.title)
        self.chain_caption.setObjectName("trajectory_chain_caption")
        self.chain_caption.setWordWrap(True)
        chain_box = QWidget()
        cb = QVBoxLayout(chain_box)
        cb.setContentsMargins(0, 0, 0, 0)
        cb.addWidget(self.chain_caption)
        cb.addWidget(self.chain_view, 1)
        views = QSplitter(Qt.Orientation.Horizontal)
        views.addWidget(self.view)
        views.addWidget(chain_box)
        views.setStretchFactor(0, 3)
        views.setStretchFactor(1, 1)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(views, 1)
        tl.addWidget(self.timeline)
        tl.addWidget(self.marker_label)
        tl.addLayout(transport)
        centre = QSplitter(Qt.Orientation.Vertical)
        centre.addWidget(top)
        centre.addWidget(self.trace)
        centre.setStretchFactor(0, 4)
        centre.setStretchFactor(1, 1)

        # --- left: recording, follow, branch, export -----------------------------------------
        self.branch_box = QComboBox()
        self.branch_box.setObjectName("trajectory_branch_box")
        self.branch_box.setToolTip(TIPS["branch_box"])
        self.branch_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.branch_box.setMinimumContentsLength(22)
        self.memory_bar = QProgressBar()
        self.memory_bar.setObjectName("trajectory_memory_bar")
        self.memory_bar.setRange(0, 1000)
        self.memory_bar.setTextVisible(True)
        self.memory_bar.setToolTip("Memory held by all recordings together, of the budget")
        self.budget_spin = QSpinBox()
        self.budget_spin.setObjectName("trajectory_budget")
        self.budget_spin.setRange(1, 1024 * 1024)
        self.budget_spin.setValue(DEFAULT_BUDGET_BYTES // MB)
        self.budget_spin.setSuffix(" MB")
        self.budget_spin.setKeyboardTracking(False)  # typing "512" must not apply 5 and 51 first
        self.budget_spin.setToolTip(TIPS["budget"])
        self.policy_box = QComboBox()
        self.policy_box.setObjectName("trajectory_policy")
        for k in POLICIES:
            self.policy_box.addItem(POLICY_SHORT.get(k, POLICY_LABELS[k]), k)
        self.policy_box.setToolTip(TIPS["policy"])
        self.kept_label = QLabel("nothing recorded yet")
        self.kept_label.setObjectName("trajectory_kept_label")
        self.kept_label.setWordWrap(True)
        self.per_step_label = QLabel("")
        self.per_step_label.setObjectName("trajectory_per_step_label")
        self.per_step_label.setWordWrap(True)
        self.live_button = QPushButton("Pause live chains")
        self.live_button.setObjectName("trajectory_live_button")
        self.live_button.setToolTip("Pause or resume the live chains (Space); scrubbing works "
                                    "either way")
        rec_form = QFormLayout()
        rec_form.addRow("Branch", self.branch_box)
        rec_form.addRow("Budget", self.budget_spin)
        rec_form.addRow("When full", self.policy_box)
        rec_box = QGroupBox("Recording")
        rv = QVBoxLayout(rec_box)
        rv.addLayout(rec_form)
        rv.addWidget(self.memory_bar)
        rv.addWidget(self.kept_label)
        rv.addWidget(self.per_step_label)
        rv.addWidget(self.live_button)

        self.chain_spin = QSpinBox()
        self.chain_spin.setObjectName("trajectory_chain")
        self.chain_spin.setRange(-1, 0)
        self.chain_spin.setValue(-1)
        self.chain_spin.setSpecialValueText("none")
        self.chain_spin.setKeyboardTracking(False)
        self.chain_spin.setToolTip(TIPS["chain"])
        self.chain_label = QLabel("")
        self.chain_label.setObjectName("trajectory_chain_label")
        self.chain_label.setWordWrap(True)
        follow_box = QGroupBox("Follow one chain")
        ff = QFormLayout(follow_box)
        ff.addRow("Chain #", self.chain_spin)
        ff.addRow(self.chain_label)

        self.branch_button = QPushButton("Branch from this step")
        self.branch_button.setObjectName("trajectory_branch_button")
        self.branch_button.setToolTip(TIPS["branch"])
        self.seed_spin = QSpinBox()
        self.seed_spin.setObjectName("trajectory_branch_seed")
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip(TIPS["seed"])
        self.live_label = QLabel("")
        self.live_label.setObjectName("trajectory_live_settings")
        self.live_label.setWordWrap(True)
        branch_box = QGroupBox("Branch")
        bf = QFormLayout(branch_box)
        bf.addRow("Noise seed", self.seed_spin)
        bf.addRow(self.live_label)
        bf.addRow(self.branch_button)

        self.export_box = ExportBox(self.host, self._export_source)
        self.export_box.message.connect(self._message)

        self.message_label = QLabel("")
        self.message_label.setObjectName("trajectory_message")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        for w in (rec_box, follow_box, branch_box, self.export_box):
            lv.addWidget(w)
        lv.addWidget(self.message_label)
        lv.addStretch(1)
        left.setMinimumWidth(330)
        left.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        # a scroll area keeps every row at its natural height on short screens (squeezed into the
        # window, the recording rows overlapped and became unreadable)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(350)
        scroll.setMaximumWidth(420)

        lay = QHBoxLayout(self)
        lay.addWidget(scroll)
        lay.addWidget(centre, 1)
        self.setFocusProxy(self.timeline)
        for b in self.findChildren(QAbstractButton):
            b.installEventFilter(self)  # see eventFilter: arrows scrub, not move the focus

        self.poll_timer = QTimer(self)
        self.poll_timer.setInterval(POLL_MS)
        self.play_timer = QTimer(self)
        self.inflight_timer = QTimer(self)
        self.inflight_timer.setSingleShot(True)
        self._set_empty()

