"""Start the GUI: check the platform, create the application and the main window."""

from __future__ import annotations

import sys


#: cores the engine leaves to the GUI thread (beyond those other processes keep busy)
ENGINE_RESERVE = 1


def _leave_a_core_for_the_gui() -> None:
    """Keep torch off the GUI thread's cores: that thread runs torch serially, and the engine thread
    takes the idle cores but ``ENGINE_RESERVE`` (and keeps following them while the app runs).

    The GUI thread must never own an OpenMP team (see ``core/threads.keep_torch_serial_here``).
    """
    from ebm_studio.core.threads import govern_engine_threads, keep_torch_serial_here

    keep_torch_serial_here()
    govern_engine_threads(reserve=ENGINE_RESERVE)


def _close_on_ctrl_c(window) -> None:
    """Ctrl+C in the terminal closes the window the normal way (jobs stop, the thread joins) instead
    of raising KeyboardInterrupt inside whatever slot happens to run."""
    import signal

    from PySide6.QtCore import QTimer

    signal.signal(signal.SIGINT, lambda *_: window.close())
    # Python runs signal handlers only between bytecodes of the main thread: wake it now and then
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(250)


#: the bundled example the window opens with when no checkpoint is named
STARTUP_EXAMPLE = "8gaussians"


def run_gui(checkpoint: str | None = None) -> int:
    from ebm_studio.platform_check import gui_problem

    problem = gui_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    _leave_a_core_for_the_gui()  # (cli.main tuned the allocator before anything else)
    from PySide6.QtWidgets import QApplication

    from ebm_studio.ui.app_window import build_window

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("EBM Studio")
    app.setOrganizationName("EBMStudio")
    window = build_window()
    window.show()
    _close_on_ctrl_c(window)
    if checkpoint:
        window.open_checkpoint(checkpoint)
    else:
        # a trained model, alive at once (the analytic ring runs until it is loaded)
        from ebm_studio.core.bundled import example_checkpoints

        first = example_checkpoints().get(STARTUP_EXAMPLE)
        if first is not None:
            window.open_checkpoint(str(first))
    return app.exec()
