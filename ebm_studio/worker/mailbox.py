"""A one-slot mailbox: the engine puts the newest frame, the GUI takes it. Latest wins.

The engine emits its "frame ready" signal only when the slot was empty, so at most one such signal
is ever queued: however fast the sampler runs, the GUI never builds a backlog.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item: T | None = None
        self.dropped = 0  # frames replaced before the GUI took them (for benchmarks)

    def put(self, item: T) -> bool:
        """Store ``item``; True when the slot was empty (the caller should notify the reader)."""
        with self._lock:
            was_empty = self._item is None
            if not was_empty:
                self.dropped += 1
            self._item = item
            return was_empty

    def take(self) -> T | None:
        with self._lock:
            item, self._item = self._item, None
            return item
