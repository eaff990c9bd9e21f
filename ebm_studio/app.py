"""Start the GUI: check the platform, create the application and the main window."""

from __future__ import annotations

import sys


def _leave_a_core_for_the_gui() -> None:
    """Give torch the idle cores but one: the GUI thread keeps a core of its own while the engine samples.

    On a 2-core machine torch's two spinning intra-op threads left the GUI thread waiting for a
    core, and small batches (a few hundred 2-D points) ran far slower with 2 threads than with 1.
    """
    import torch

    from ebm_studio.core.threads import choose_threads, govern_engine_threads

    torch.set_num_threads(choose_threads(reserve=1))
    govern_engine_threads(reserve=1)  # and keep following the idle cores while the app runs


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
