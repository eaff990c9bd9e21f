"""The typed protocol of the image tools (inpainting, translation): what the GUI sends, what comes back.

Each tool is an *owner* (``"inpaint"``, ``"translate"``) with its own model, its own run, its own
live settings and its own frame mailbox in the engine, so tools run beside the viewer and a
training run instead of replacing them. The GUI sends the command dataclasses below through
``EngineHost.send_tool``; the engine answers with the event dataclasses on ``Engine.tool_event``
and puts frames into ``Engine.tool_frames(owner)``. Only plain data crosses: numpy arrays, numbers,
strings, enums. Images are float32 (C, H, W) in [-1, 1]; masks boolean (H, W), True = fill in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

TOOL_KINDS = ("inpaint", "translate")


# --------------------------------------------------------------------------------------------
# Commands (GUI → engine)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenToolModel:
    """Load a checkpoint as this tool's model (the viewer's model is untouched)."""

    owner: str
    path: str


@dataclass(frozen=True)
class LoadToolImage:
    """Fit an image to the tool's model: exactly one of ``path``, ``pixels`` (uint8 (H, W[, C]),
    e.g. pasted) or ``heldout`` (index of a held-out item of the model's data set)."""

    owner: str
    path: str | None = None
    pixels: np.ndarray | None = None
    heldout: int | None = None
    #: with ``heldout``: take the item from this built-in data set instead of the model's own
    dataset: str | None = None
    #: shown in the source note ("pasted image", "sketch", …)
    label: str = ""
    #: echoed in :class:`ToolImageReady`, so the GUI can drop answers to requests it superseded
    request: int = 0


@dataclass(frozen=True)
class StartToolRun:
    """Start a run: ``n`` proposals from ``image`` (with ``mask`` for inpainting)."""

    owner: str
    kind: str  # "inpaint" or "translate"
    image: np.ndarray
    mask: np.ndarray | None = None
    n: int = 4
    steps: int = 100
    fill: str = "noise"
    seed: int = 0


@dataclass(frozen=True)
class StopToolRun:
    owner: str


@dataclass(frozen=True)
class FetchToolStep:
    """Ask for the recorded state of ``step`` of the last run (scrubbing)."""

    owner: str
    step: int


@dataclass(frozen=True)
class SaveToolResult:
    """Write the run's source, mask, proposals and energies: ``.png`` (a strip) or ``.npz``;
    ``step`` picks a recorded step (None: the newest), ``gif`` writes the recorded run."""

    owner: str
    path: str
    step: int | None = None


@dataclass(frozen=True)
class WakeTool:
    """The tool's live settings changed (pause, resume, single step): look at them now."""

    owner: str


ToolCommand = (OpenToolModel | LoadToolImage | StartToolRun | StopToolRun | FetchToolStep | SaveToolResult
               | WakeTool)


# --------------------------------------------------------------------------------------------
# Events (engine → GUI)
# --------------------------------------------------------------------------------------------


class RunState(Enum):
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"
    ERROR = "error"


@dataclass(frozen=True)
class ToolModelInfo:
    """What a tool needs to know about its model."""

    name: str
    path: str
    kind: str  # "images" or "points"
    event_shape: tuple[int, ...]
    sampler: dict  # the model's own sampler settings (kind, step_size, noise, temperature, steps)
    heldout_count: int = 0


@dataclass(frozen=True)
class ToolModelChanged:
    owner: str
    model: ToolModelInfo


@dataclass(frozen=True)
class ToolImageReady:
    owner: str
    image: np.ndarray  # (C, H, W) float32 in [-1, 1]
    notes: tuple[str, ...] = ()
    source: str = ""
    request: int = 0


@dataclass(frozen=True)
class ToolRunChanged:
    owner: str
    state: RunState
    step: int = 0
    steps: int = 0
    message: str = ""


@dataclass(frozen=True)
class ToolSaved:
    owner: str
    path: str


@dataclass(frozen=True)
class ToolError:
    owner: str
    message: str


ToolEvent = ToolModelChanged | ToolImageReady | ToolRunChanged | ToolSaved | ToolError


@dataclass
class ToolFrame:
    """The state of a tool's run at one step: fresh copies, small (a few proposals)."""

    owner: str
    step: int
    proposals: np.ndarray  # (n, C, H, W) float32
    energies: np.ndarray  # (n,)
    #: (k,) steps and (k, n) mean traces along the run so far (energy; RMS distance from the start)
    trace_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    energy_trace: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    distance_trace: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    recorded: bool = False  # a scrubbed (recorded) step rather than the live state
    steps_per_sec: float = 0.0
