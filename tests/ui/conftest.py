"""Fixtures for GUI tests: isolated settings, a main window that is always shut down cleanly."""

from __future__ import annotations

import pytest

from PySide6.QtCore import QSettings, QThread, QTimer


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """QSettings of the tests live in a temporary folder, never in the user's."""
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    monkeypatch.setenv("EBM_STUDIO_SETTINGS_ORG", "EBMStudioTests")
    yield


@pytest.fixture
def make_window(qtbot, tmp_path, monkeypatch):
    """Build the full main window (``start_demo`` as asked); closed and joined at teardown.

    A test fails if anything outlives the window: the engine thread, a job of the engine or of
    an image tool, or an active QTimer of the window or the engine.
    """
    monkeypatch.setenv("EBM_STUDIO_AUTOSAVE_DIR", str(tmp_path / "autosave"))
    from ebm_studio.ui.app_window import build_window
    from ebm_studio.worker.tool_api import RunState

    windows = []

    def make(start_demo: bool = True, device: str = "cpu"):
        w = build_window(device=device, start_demo=start_demo)
        qtbot.addWidget(w)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        thread: QThread = w.host.thread
        w.close()
        assert thread.wait(3000), "the engine thread did not stop within 3 s"
        assert not thread.isRunning(), "a QThread was left running"
        engine = w.host.engine
        alive = [job.kind for job in engine.jobs]
        assert not alive, f"jobs outlived the window: {alive}"
        left = [owner for owner, slot in engine.tool_slots.items()
                if slot.state in (RunState.RUNNING, RunState.PAUSED)]
        assert not left, f"image tool runs outlived the window: {left}"
        timers = [t for obj in (w, engine) for t in obj.findChildren(QTimer) if t.isActive()]
        assert not timers, "active timers outlived the window: " + ", ".join(
            f"{t.parent().__class__.__name__}.{t.objectName() or 'timer'}" for t in timers)


@pytest.fixture
def window(make_window):
    return make_window(True)


def wait_for_frames(qtbot, view_counter, n: int, timeout: int = 10000) -> None:
    """Wait until ``view_counter()`` has grown by ``n``."""
    start = view_counter()
    qtbot.waitUntil(lambda: view_counter() >= start + n, timeout=timeout)


@pytest.fixture(autouse=True)
def no_close_questions(monkeypatch):
    """Closing a window with unsaved training steps asks in a modal box; tests answer Discard
    unless they say otherwise (a modal box would wait forever offscreen)."""
    from ebm_studio.ui.main_window import MainWindow

    monkeypatch.setattr(MainWindow, "ask_unsaved", lambda self, steps: "discard")
