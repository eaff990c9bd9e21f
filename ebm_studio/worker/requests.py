"""Job requests: plain data built in the GUI thread (no tensors, no Qt objects).

A request names the kind of job, a configuration dict, an optional initial state and mask of free
entries (True = free), a step budget (None = endless) and a seed. Inpainting and translation are
sample jobs with an initial state and, for inpainting, a mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

JOB_KINDS = ("sample", "train", "fit")


@dataclass
class JobRequest:
    kind: str
    config: dict = field(default_factory=dict)
    init_state: np.ndarray | None = None
    mask: np.ndarray | None = None
    max_steps: int | None = None
    seed: int = 0
    #: record the run for trajectory scrubbing
    record: bool = True
    #: what the job is for, shown in the UI ("viewer", "inpaint", "translate", "branch", ...)
    purpose: str = "viewer"

    def __post_init__(self) -> None:
        if self.kind not in JOB_KINDS:
            raise ValueError(f"job kind must be one of {', '.join(JOB_KINDS)}, got {self.kind!r}")
        if self.max_steps is not None and int(self.max_steps) < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps!r}")
        if self.init_state is not None:
            self.init_state = np.array(self.init_state, dtype=np.float32, copy=True)
        if self.mask is not None:
            self.mask = np.array(self.mask, dtype=bool, copy=True)
