"""Assemble the full window: the main window plus every tool panel that exists."""

from __future__ import annotations

from ebm_studio.ui.main_window import MainWindow


def build_window(device: str = "auto", start_demo: bool = True) -> MainWindow:
    """The main window with all panels added as tabs."""
    return MainWindow(device=device, start_demo=start_demo)
