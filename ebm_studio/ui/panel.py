"""What every tab of the main window is: a widget that keeps its settings between sessions.

Panels get their state from the session (``ui/session.py``): they subscribe to its signals for
models, jobs, frames and events and send commands through ``session.host``. The window needs one
thing of them, at close: to store their settings.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from PySide6.QtCore import QSettings


@runtime_checkable
class Panel(Protocol):
    def save_settings(self, settings: QSettings) -> None:
        """Store what the user set (sizes, choices, folders) for the next session."""
