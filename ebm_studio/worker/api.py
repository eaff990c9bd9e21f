"""The typed protocol of the main engine: what the panels send, and what comes back.

The GUI builds a :class:`Command` and calls ``EngineHost.send(command)``; the engine runs it in its
own thread, between steps, by the command's type (one handler per type, see :mod:`.services`).
Answers come back as :class:`Event` objects on ``Engine.event``; a panel looks at the types it
cares about (``isinstance``) and ignores the rest. Only plain data crosses: numbers, strings,
tuples, numpy arrays, frames. (The image tools speak the same way through :mod:`.tool_api`.)

Commands
    jobs and models: :class:`StartJob`, :class:`StopJob`, :class:`OpenCheckpoint`,
    :class:`SaveCheckpoint`, :class:`LoadData`, :class:`FetchRecordedStep`, :class:`SetDevice`,
    :class:`RollBack`; landscape: :class:`RequestModelInfo`, :class:`ComputeLandscape`, :class:`SetLandscapeView`,
    :class:`DropChains`; composition: :class:`Compose`, :class:`SetComposeWeights`,
    :class:`Uncompose`; drawn data: :class:`LoadPointsFile`, :class:`TrainOnPoints`; training:
    :class:`ResumeAndTrain`, :class:`RequestBufferFrame`; recordings:
    :class:`RequestRecordingInfo`, :class:`PickChain`, :class:`SetRecordingBudget`,
    :class:`SetRecordingPolicy`, :class:`ExportTrajectory`.

Events
    :class:`ModelInfo` on ``Engine.model_changed``; :class:`JobInfo` (with :class:`JobState`) on
    ``Engine.job_state``; :class:`LandscapeResult` (with a :class:`RenderedView` and its
    :class:`LandscapeNumbers`; defined in ``core.landscape_result``, since the numpy renderer in
    core builds them too) on ``Engine.landscape_ready``; on ``Engine.event``:
    :class:`DataLoaded` (with :class:`DataInfo`), :class:`RecordingsChanged`,
    :class:`ModelInfoReply`, :class:`NotTwoD`, :class:`RequestRefused`, :class:`ChainsAdded`,
    :class:`Composed`, :class:`WeightsChanged`, :class:`Uncomposed`, :class:`PointsLoaded`,
    :class:`TrainingOnPoints`, :class:`ResumeFailed`, :class:`BufferFrame`,
    :class:`RecordingInfo` (with :class:`Recordings`), :class:`ChainPicked`,
    :class:`ExportProgress`, :class:`ExportDone`, :class:`FitProgress`, :class:`FitResult` (with
    :class:`KLFits`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

# the landscape's payloads and view spec are part of this protocol; core defines them (its
# renderer builds and reads them)
from ebm_studio.core.landscape_result import (  # noqa: F401  (re-exported)
    LandscapeNumbers,
    LandscapeResult,
    RenderedView,
    ViewSpec,
)
from ebm_studio.worker.frames import Frame
from ebm_studio.worker.requests import JobRequest


#: the analytic energies a :class:`Compose` term may name, by key: label for the GUI
ANALYTIC_LABELS = {
    "8gaussians": "Ring of 8 Gaussians",
    "grid25": "Grid of 25 Gaussians",
    "banana": "Banana (twisted Gaussian)",
    "double_well": "Double well",
    "gaussian": "Standard Gaussian N(0, I)",
}
#: steps of a training run started on drawn points
DRAWN_STEPS = 1500
#: the most points a drawing (or a loaded points file) may hold
MAX_DRAWN = 100_000
#: the most chains the viewer runs (dropped chains included): enough to fill a GPU with 2-D
#: chains, whose frames carry a histogram and a few highlighted points
MAX_CHAINS = 262_144
#: the most image chains: an image frame shows every chain as a tile (4,096 is a 64×64 mosaic);
#: image chains are also bounded by the memory they need (see the sample job)
MAX_IMAGE_CHAINS = 4096


class Command:
    """Base of every command the GUI sends to the engine."""


class Event:
    """Base of every answer the engine sends to the GUI."""


# --------------------------------------------------------------------------------------------
# Commands: jobs, models, data, device
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartJob(Command):
    """Start ``request`` in its slot (``viewer``, ``training`` or ``fit``, by its purpose), ending
    only the job that slot ran."""

    request: JobRequest


@dataclass(frozen=True)
class StopJob(Command):
    slot: str = "viewer"


@dataclass(frozen=True)
class OpenCheckpoint(Command):
    """Make a checkpoint the current model (the main jobs end; the image tools keep theirs)."""

    path: str


@dataclass(frozen=True)
class SaveCheckpoint(Command):
    """Write the current model (a training run: resumably, verified first)."""

    path: str


@dataclass(frozen=True)
class LoadData(Command):
    """Load a data set for the Training tab; answered by :class:`DataLoaded` with ``request_id``."""

    name: str
    image_size: int | None = None
    channels: int | None = None
    n_preview: int = 64
    request_id: str = ""


@dataclass(frozen=True)
class FetchRecordedStep(Command):
    """The recorded state of ``step`` of branch ``branch`` as a frame (scrubbing)."""

    branch: int
    step: int
    t_request: float = 0.0


@dataclass(frozen=True)
class SetDevice(Command):
    name: str  # "cpu", "cuda", "cuda:1", "mps" or "auto"


@dataclass(frozen=True)
class RollBack(Command):
    """After a divergence: back to the last verified state, with learning rate ``lr``."""

    lr: float


# --------------------------------------------------------------------------------------------
# Commands: landscape and chains
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestModelInfo(Command):
    """Say which model is current (a panel built after the start-up announcement missed it)."""


@dataclass(frozen=True)
class ComputeLandscape(Command):
    """Remember the view's grid and display spec for later refreshes, and compute one now.

    ``n``/``grad_n``: grid and gradient-field resolution; ``xlim``/``ylim``: the box (None: the
    data box); ``view``: the display spec (quantity, temperature, contours…); ``request_id`` comes
    back with the landscape."""

    n: int | None = None
    grad_n: int | None = None
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    view: ViewSpec = ViewSpec()
    request_id: Any = None

    def params(self) -> dict:
        """The request as the landscape service reads it (a None box means the data box)."""
        p = {"xlim": self.xlim, "ylim": self.ylim, "view": self.view, "request_id": self.request_id}
        p.update({k: v for k, v in (("n", self.n), ("grad_n", self.grad_n)) if v is not None})
        return p


@dataclass(frozen=True)
class SetLandscapeView(Command):
    """Remember the view's display spec, so refreshes during training arrive rendered for it."""

    view: ViewSpec


@dataclass(frozen=True)
class DropChains(Command):
    """Add chains at ``points`` (k, 2) to the viewer's chains (or start them there)."""

    points: np.ndarray


# --------------------------------------------------------------------------------------------
# Commands: composition, drawn data, training
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compose(Command):
    """Show ``Σ wᵢ Eᵢ`` as the current model. Each term is ``{"source": "current"}``,
    ``{"source": "analytic", "name": key}`` or ``{"source": "checkpoint", "path": file}``."""

    terms: tuple[dict, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True)
class SetComposeWeights(Command):
    weights: tuple[float, ...]


@dataclass(frozen=True)
class Uncompose(Command):
    """Go back to the model (and training run) shown before :class:`Compose`."""


@dataclass(frozen=True)
class LoadPointsFile(Command):
    path: str


@dataclass(frozen=True)
class TrainOnPoints(Command):
    points: np.ndarray
    steps: int


@dataclass(frozen=True)
class ResumeAndTrain(Command):
    """Rebuild the trainer from the opened checkpoint, then start ``request`` on it (one step,
    so a failed resume never falls through to another run)."""

    request: JobRequest


@dataclass(frozen=True)
class RequestBufferFrame(Command):
    """A frame of the replay buffer: ``n_images`` random images (points: up to 16,384)."""

    n_images: int
    seed: int


# --------------------------------------------------------------------------------------------
# Commands: recordings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecordingInfo(Command):
    """The recordings and the detail of ``branch_id`` (None: the active one), with the energy
    and positions of ``chain`` when one is followed."""

    branch_id: int | None = None
    chain: int | None = None
    request_id: int = 0


@dataclass(frozen=True)
class PickChain(Command):
    """The chain recorded nearest to (x, y) at ``step`` of branch ``branch_id``."""

    branch_id: int
    step: int
    x: float
    y: float


@dataclass(frozen=True)
class SetRecordingBudget(Command):
    budget_bytes: int
    request_id: int = 0


@dataclass(frozen=True)
class SetRecordingPolicy(Command):
    policy: str  # "thin" or "newest"
    request_id: int = 0


@dataclass(frozen=True)
class ExportTrajectory(Command):
    """Write a recorded branch as ``fmt`` (gif, apng, png, npz) to ``path``. ``chain``: one chain
    (None: all); ``max_frames``: animations use at most this many evenly spaced steps; ``steps``:
    the PNG strip's steps (None: evenly spaced); ``labels``: captions with step, energy and axes.
    Setting ``cancel`` stops it at the next frame and leaves no file."""

    fmt: str
    path: str
    branch: int
    export_id: int
    cancel: threading.Event
    chain: int | None = None
    fps: float = 10.0
    max_frames: int = 200
    steps: tuple[int, ...] | None = None
    labels: bool = True


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


class JobState(str, Enum):
    """Where a main job is (a ``str`` enum, so it also compares equal to its name)."""

    IDLE = "idle"  # no job yet
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"
    DIVERGED = "diverged"
    ERROR = "error"


@dataclass(frozen=True)
class JobInfo(Event):
    """A main job's state changed (``Engine.job_state``). ``purpose`` names its slot's use
    (``viewer``, ``training``, ``fit``); ``message`` says why it ended, when it did."""

    job_id: int = 0
    kind: str = ""
    purpose: str = ""
    step: int = 0
    state: JobState = JobState.IDLE
    message: str = ""

    @property
    def active(self) -> bool:
        return self.state in (JobState.RUNNING, JobState.PAUSED)

    @property
    def ended(self) -> bool:
        return self.state in (JobState.FINISHED, JobState.STOPPED, JobState.DIVERGED, JobState.ERROR)


@dataclass(frozen=True)
class CompositionInfo:
    """The terms of a shown composition ``Σ wᵢ Eᵢ``: one label and one weight per energy."""

    labels: tuple[str, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True)
class ModelInfo:
    """The current model as the GUI sees it (``Engine.model_changed``, :class:`ModelInfoReply`).

    The engine announces its model at start-up, when a checkpoint is opened, when a training run
    (new, resumed or rolled back) makes its model current, when a composition is shown or closed
    and when the device changes. The fields up to ``step`` describe the model; the rest say what
    the announcement is about, and keep their defaults when it is about nothing more.
    """

    #: what the window title and the Save dialog call it (a file's stem, "moons (training)", …)
    name: str
    #: ``"points"`` (2-D densities) or ``"images"``
    kind: str
    #: the shape of one sample: ``(2,)`` for points, ``(C, H, W)`` for images
    event_shape: tuple[int, ...]
    #: the data box (lo, hi) on every axis: chains start there from noise, views frame it
    value_range: tuple[float, float]
    #: the model's own sampler settings (``kind``, ``step_size``, ``noise``, ``temperature``,
    #: ``steps``, …: ``core.checkpoint.sampler_defaults``), which the viewer adopts with the model
    sampler_defaults: dict[str, Any]
    #: the model carries a replay buffer, so chains can start from it
    has_buffer: bool
    #: the model describes its data set, so chains can start from data
    has_data: bool
    #: how it samples: ``plain``, ``multigrid`` or ``drl`` (see ``core.level_sampler``)
    method: str
    #: where it came from: ``builtin``, a checkpoint's path, ``memory`` or ``composition``
    source: str
    #: training steps behind the model
    step: int
    #: the checkpoint file this announcement opened (empty for every other announcement, so a
    #: device move re-announcing an opened model does not reset what the Training tab shows)
    path: str = ""
    #: the announcement comes with an optimiser state: training can go on from it
    resumable: bool = False
    #: the model is the one a training run trains (the run started, resumed or rolled back)
    training: bool = False
    #: the run's training configuration as ``TrainConfig.to_dict()`` (None: the model holds
    #: none, e.g. the demo or a weights-only checkpoint); free-form because it fills a form
    config: dict | None = None
    #: the metric history of the run or checkpoint, column name → values (``MetricsLog``)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    #: after a rollback: where the run went back to (empty otherwise)
    rolled_back: str = ""
    #: the weighted sum this model is, while a composition is shown
    composition: CompositionInfo | None = None


@dataclass(frozen=True)
class ModelInfoReply(Event):
    """The answer to :class:`RequestModelInfo`: the current model."""

    info: ModelInfo


@dataclass(frozen=True)
class DataInfo:
    """A data set as the Training tab describes it (what ``Dataset.describe()`` says of it)."""

    #: the set's own name (a built-in name, or a file's or folder's name)
    name: str
    #: ``"points"`` or ``"images"``
    kind: str
    #: the shape of one item: ``(2,)`` for points, ``(C, H, W)`` for images
    shape: tuple[int, ...]
    #: how many items it holds; None for an endless sampler (a toy density)
    count: int | None
    #: the range (lo, hi) its values lie in
    value_range: tuple[float, float]
    #: where it comes from: ``builtin`` or a path
    source: str
    #: how the values were scaled into ``value_range`` (``none`` when they were not)
    normalisation: str
    #: the items kept apart for held-out measures; None when the set draws them instead
    heldout_count: int | None = None


@dataclass(frozen=True)
class DataLoaded(Event):
    """The answer to :class:`LoadData`: the set's description and a few items to preview
    (points (n, 2) or images (n, C, H, W)), or, when it could not be loaded, ``error``."""

    request_id: str
    data: DataInfo | None = None
    preview: np.ndarray | None = None
    error: str = ""


@dataclass(frozen=True)
class RecordingsChanged(Event):
    """The recordings changed (a recording job ended, the budget or policy changed): ask for them
    again with :class:`RequestRecordingInfo`."""


@dataclass(frozen=True)
class NotTwoD(Event):
    """A landscape was asked for a model that is not 2-D."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class RequestRefused(Event):
    """A request that could not be served; nothing changed. ``request``: ``landscape``,
    ``drop``, ``compose``, ``weights``, ``uncompose``, ``points`` or ``train``."""

    request: str
    message: str


@dataclass(frozen=True)
class ChainsAdded(Event):
    added: int
    n_chains: int


@dataclass(frozen=True)
class Composed(Event):
    labels: tuple[str, ...]
    weights: tuple[float, ...]
    name: str


@dataclass(frozen=True)
class WeightsChanged(Event):
    weights: tuple[float, ...]
    name: str


@dataclass(frozen=True)
class Uncomposed(Event):
    name: str


@dataclass(frozen=True)
class PointsLoaded(Event):
    points: np.ndarray
    path: str


@dataclass(frozen=True)
class TrainingOnPoints(Event):
    name: str
    n_points: int


@dataclass(frozen=True)
class ResumeFailed(Event):
    """:class:`ResumeAndTrain` could not rebuild the run (``Engine.error`` says why)."""


@dataclass(frozen=True)
class BufferFrame(Event):
    """The answer to :class:`RequestBufferFrame`; ``frame`` is None when the run has no buffer."""

    frame: Frame | None


@dataclass(frozen=True)
class BranchSummary:
    """One recorded branch in the store's list (the scrubber's branch box)."""

    branch_id: int
    #: (branch, step) it branched from; None for a recording of its own
    parent: tuple[int, int] | None
    #: how many recorded steps it keeps, and the first and last of them (None: none yet)
    n_steps: int
    first: int | None
    last: int | None
    #: ``"points"`` or ``"images"``; None until its first step is recorded
    kind: str | None
    n_chains: int | None
    #: the name of the model it was recorded under
    model: str


@dataclass(frozen=True, eq=False)
class EnergyTrace:
    """The energy over a branch's recorded steps: mean and 10–90 % band of the finite energies
    (NaN where none is finite), at most a few thousand evenly thinned steps (float32 arrays)."""

    steps: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


@dataclass(frozen=True, eq=False)
class ChainTrack:
    """One followed chain over a branch's recorded steps."""

    chain: int
    steps: np.ndarray
    #: its energy at each of ``steps``
    energy: np.ndarray
    #: points: its position (n, D) at each of ``steps``; None for images
    state: np.ndarray | None


@dataclass(frozen=True, eq=False)
class BranchDetail:
    """Everything the scrubber shows of the branch it shows."""

    branch_id: int
    #: (branch, step) it branched from; None for a recording of its own
    parent: tuple[int, int] | None
    #: ``"points"`` or ``"images"``; None until its first step is recorded
    kind: str | None
    n_chains: int | None
    #: the shape of one chain's state, (D,) or (C, H, W)
    chain_shape: tuple[int, ...] | None
    #: the recorded step numbers, sorted (int64, read-only)
    steps: np.ndarray
    #: settings changes (step, description), oldest first
    markers: tuple[tuple[int, str], ...]
    #: a sentence saying what the budget keeps ("every 4th step since step 0", …)
    kept: str
    #: what is dropped when the budget is full: ``"thin"`` or ``"newest"``
    policy: str
    #: the current recording stride, and the base stride it is a multiple of (steps)
    stride: int
    every: int
    #: bytes it holds, and bytes one more recorded step costs (0: not known yet)
    nbytes: int
    bytes_per_step: int
    #: the dtype its states are stored in (None until the first step)
    storage_dtype: str | None
    #: it is the branch being recorded into
    active: bool
    trace: EnergyTrace
    #: the followed chain (None: no chain followed)
    track: ChainTrack | None


@dataclass(frozen=True, eq=False)
class Recordings:
    """The recordings as the trajectory scrubber sees them: the store, and one branch in detail."""

    branches: tuple[BranchSummary, ...]
    #: the branch being recorded into (None: none)
    active: int | None
    #: bytes all branches hold, and the shared budget
    nbytes: int
    budget: int
    #: what is dropped when the budget is full: ``"thin"`` or ``"newest"``
    policy: str
    #: branches evicted to free memory
    evicted: tuple[int, ...]
    #: a running job records into the active branch now
    recording: bool
    #: the branch asked for (or, failing that, the active or newest one); None: no recordings
    branch: BranchDetail | None = None
    #: why the branch asked for is not the one shown (empty: it is)
    fallback: str = ""
    #: False while the energy trace of a long recording is still being summarised: ask again
    complete: bool = True


@dataclass(frozen=True)
class RecordingInfo(Event):
    """The answer to :class:`RequestRecordingInfo`: the recordings, with the ``request_id`` it
    answers."""

    info: Recordings
    request_id: int = 0


@dataclass(frozen=True)
class ChainPicked(Event):
    """The chain nearest a click (``chain`` None and a ``message`` when there is none)."""

    chain: int | None
    message: str = ""
    branch: int | None = None
    step: int | None = None
    distance: float | None = None
    position: np.ndarray | None = None


@dataclass(frozen=True)
class ExportProgress(Event):
    export_id: int
    done: int
    total: int


@dataclass(frozen=True)
class ExportDone(Event):
    """Sent exactly once per export, whatever happened."""

    export_id: int
    ok: bool
    cancelled: bool
    message: str
    path: str
    fmt: str
    frames: int


@dataclass(frozen=True)
class FitProgress(Event):
    job_id: int
    stage: str
    fraction: float
    text: str


@dataclass(frozen=True, eq=False)
class FittedMixture:
    """One fitted q_φ, a 2-D Gaussian mixture (one component for the Gaussian), with both KLs
    against p_T by quadrature on the landscape grid (nats)."""

    #: component weights (K,), summing to 1
    weights: np.ndarray
    #: component means (K, 2)
    means: np.ndarray
    #: component covariances (K, 2, 2)
    covs: np.ndarray
    #: KL(p_T‖q): what the forward (mode-covering) fit minimises
    kl_pq: float
    #: KL(q‖p_T): what the reverse (mode-seeking) fit minimises
    kl_qp: float


@dataclass(frozen=True, eq=False)
class FitPair:
    """The two families fitted in one KL direction."""

    #: a single Gaussian (K = 1)
    gaussian: FittedMixture
    #: the K-component mixture
    mixture: FittedMixture

    def family(self, name: str) -> FittedMixture:
        """The fit of family ``name``: ``"gaussian"`` or ``"mixture"``."""
        if name not in ("gaussian", "mixture"):
            raise ValueError(f"no fitted family {name!r}: 'gaussian' or 'mixture'")
        return self.gaussian if name == "gaussian" else self.mixture


@dataclass(frozen=True, eq=False)
class KLFits:
    """Forward- and reverse-KL fits of q_φ to a 2-D model's p_T (what a ``fit`` job finds)."""

    #: fitted by KL(p‖q), maximum likelihood on p (mode covering)
    forward: FitPair
    #: fitted by KL(q‖p), reparameterised gradients that need only E (mode seeking)
    reverse: FitPair
    #: the temperature T of p_T
    temperature: float
    #: components of the mixtures
    k: int
    #: MALA samples of p_T, the steps that drew them, the final step size and the mean
    #: acceptance (None before any step)
    n_samples: int
    mcmc_steps: int
    step_size: float
    accept: float | None
    #: up to 512 of those samples (n, 2) float32
    samples: np.ndarray
    #: the quadrature grid of the KLs: cells per side and the box
    grid_n: int
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    #: the model fitted
    model_name: str
    #: how long the whole fit took
    seconds: float
    #: the fit job that found them
    job_id: int


@dataclass(frozen=True)
class FitResult(Event):
    """A fit job is done: its KL fits of the current 2-D model."""

    fits: KLFits
