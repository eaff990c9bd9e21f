"""Training speed in the window vs headless, side by side in one run.

Trains the "2-D quick" preset for a few seconds in the real window (offscreen, Training tab shown:
live curves, samples and landscape all drawing), then the same configuration with a bare
``Trainer`` on the same number of torch threads, and prints both rates, their ratio, the share of
one core the GUI thread used and the paints per view. The ratio is what the GUI costs training.

    QT_QPA_PLATFORM=offscreen python bench/training_gui.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from pyqtgraph.widgets.GraphicsView import GraphicsView  # noqa: E402

from gui_latency import spin  # noqa: E402 (bench/ is the script's folder)


def count_paints() -> collections.Counter:
    """Count paint events per pyqtgraph view (by object name)."""
    paints: collections.Counter = collections.Counter()
    original = GraphicsView.paintEvent

    def counted(self, event):
        paints[self.objectName() or type(self).__name__] += 1
        original(self, event)

    GraphicsView.paintEvent = counted
    return paints


def in_window(app: QApplication, seconds: float) -> tuple[float, float, dict, dict]:
    from ebm_studio.ui.app_window import build_window

    paints = count_paints()
    window = build_window(start_demo=False)
    window.ask_unsaved = lambda steps: "discard"  # the bench's run is not worth a modal box
    window.resize(1600, 1000)
    window.show()
    panel = window.panels["training"]
    window.tabs.setCurrentWidget(panel)
    spin(app, 2.0)
    box = panel.form.preset_box
    box.setCurrentIndex(box.findData("2-D quick"))
    box.activated.emit(box.currentIndex())
    spin(app, 2.0)
    config = panel._form_config().to_dict()
    panel.train_button.click()
    spin(app, 4.0)  # warm-up: the first steps build the optimiser and the buffer
    paints.clear()
    step0, t0, cpu0 = panel.step, time.perf_counter(), time.thread_time()
    spin(app, seconds)
    elapsed = time.perf_counter() - t0
    rate = (panel.step - step0) / elapsed
    gui_share = (time.thread_time() - cpu0) / elapsed
    panel.stop_button.click()
    spin(app, 1.0)
    window.close()
    return rate, gui_share, {k: v / elapsed for k, v in paints.items()}, config


def headless(config: dict, seconds: float) -> float:
    from ebm_studio.core.config import TrainConfig
    from ebm_studio.core.datasets import load_dataset
    from ebm_studio.core.threads import engine_start_threads, pin_torch_threads
    from ebm_studio.core.training import Trainer

    pin_torch_threads(engine_start_threads())  # the engine's count, here in this thread
    cfg = TrainConfig.from_dict(config)
    trainer = Trainer(cfg, load_dataset(cfg.data.name), device="cpu")
    end = time.perf_counter() + 2.0
    while time.perf_counter() < end:  # the same warm-up
        trainer.step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        trainer.step()
        n += 1
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--threads", type=int, default=None,
                    help="the engine's torch threads (default: as the app sets them)")
    args = ap.parse_args()
    os.environ.setdefault("EBM_STUDIO_AUTOSAVE_DIR", tempfile.mkdtemp(prefix="ebm-bench-"))
    app = QApplication.instance() or QApplication([])
    from ebm_studio.app import _leave_a_core_for_the_gui

    _leave_a_core_for_the_gui()  # as the app does
    if args.threads:  # the engine's threads, kept: the governor leaves the other cores alone
        from ebm_studio.core.threads import keep_engine_threads

        keep_engine_threads(args.threads)
    rate_gui, share, paints, config = in_window(app, args.seconds)
    rate_bare = headless(config, args.seconds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads (the engine's), 2-D quick preset")
    print(f"in the window : {rate_gui:7.2f} steps/s   (GUI thread used {share:.0%} of a core)")
    print(f"headless      : {rate_bare:7.2f} steps/s")
    print(f"window/headless: {rate_gui / rate_bare:.2f}")
    print("paints per second: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(paints.items())))


if __name__ == "__main__":
    main()
