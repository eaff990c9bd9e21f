"""Start-up checks: a missing xcb library or display gives an actionable message, not an abort."""

from __future__ import annotations

import ebm_studio.platform_check as pc
from ebm_studio.app import run_gui


def test_missing_xcb_libraries_print_the_install_hint(monkeypatch, capsys):
    monkeypatch.setattr(pc.sys, "platform", "linux")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(pc.ctypes.util, "find_library", lambda name: None if "icccm" in name or "keysyms" in name else "lib")
    assert run_gui() == 1
    err = capsys.readouterr().err
    assert "apt-get install libxcb-icccm4 libxcb-keysyms1" in err


def test_no_display_is_explained(monkeypatch, capsys):
    monkeypatch.setattr(pc.sys, "platform", "linux")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert run_gui() == 1
    assert "no display" in capsys.readouterr().err


def test_offscreen_and_complete_systems_pass(monkeypatch):
    monkeypatch.setattr(pc.sys, "platform", "linux")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert pc.gui_problem() is None
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(pc.ctypes.util, "find_library", lambda name: "lib")
    assert pc.gui_problem() is None
