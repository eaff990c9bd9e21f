"""Start-up checks that turn Qt's bare aborts into messages a user can act on.

Qt aborts the whole process (SIGABRT) when its xcb platform plugin cannot load; by then Python
cannot catch anything. So before a ``QApplication`` exists we look for the libraries the plugin
needs and for a display, and print what to install instead.
"""

from __future__ import annotations

import ctypes.util
import os
import sys

#: Debian packages that Qt's xcb plugin needs and minimal installs lack, by the library they hold
XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1",
    "xkbcommon-x11": "libxkbcommon-x11-0",
}


def missing_xcb_packages() -> list[str]:
    """Debian packages whose libraries the xcb plugin needs but the system lacks."""
    return [pkg for lib, pkg in XCB_LIBRARIES.items() if ctypes.util.find_library(lib) is None]


def gui_problem() -> str | None:
    """A message explaining why the GUI cannot start here, or None when it should start."""
    if not sys.platform.startswith("linux"):
        return None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith("xcb"):
        return None  # offscreen, wayland, vnc...: the user chose; Qt reports its own problems
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        return (
            "ebm-studio: no display found (DISPLAY is not set).\n"
            "Run it inside a desktop session, or use the headless commands "
            "(ebm-studio train/sample/energy/info --help)."
        )
    if os.environ.get("WAYLAND_DISPLAY") and not platform:
        return None
    missing = missing_xcb_packages()
    if missing:
        return (
            "ebm-studio: Qt's xcb platform plugin cannot load; these system libraries are missing.\n"
            f"On Debian/Ubuntu install them with:\n    sudo apt-get install {' '.join(missing)}"
        )
    return None
