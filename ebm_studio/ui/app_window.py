"""Assemble the full window: the main window plus every tool panel that exists."""

from __future__ import annotations

from ebm_studio.ui.main_window import MainWindow


def build_window(device: str = "auto", start_demo: bool = True) -> MainWindow:
    """The main window with all panels added as tabs."""
    from ebm_studio.ui.inpaint_tool import InpaintTool
    from ebm_studio.ui.landscape_view import LandscapeView
    from ebm_studio.ui.translate_tool import TranslateTool
    from ebm_studio.ui.training_panel import TrainingPanel
    from ebm_studio.ui.trajectory_scrubber import TrajectoryScrubber

    window = MainWindow(device=device, start_demo=start_demo)
    window.add_tab("training", TrainingPanel(window.session), "Training")
    window.add_tab("trajectories", TrajectoryScrubber(window.session), "Trajectories")
    window.add_tab("landscape", LandscapeView(window.session), "Landscape")
    inpaint = InpaintTool(window.session)
    window.add_tab("inpaint", inpaint, "Inpainting")
    translate = TranslateTool(window.session)
    window.add_tab("translate", translate, "Translation")
    for tool in (inpaint, translate):
        tool.status.connect(lambda text: window.statusBar().showMessage(text, 5000))
        tool.start()  # queued: the engine opens the tool's model once its thread runs
    return window
