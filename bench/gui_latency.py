"""Main-thread responsiveness while the engine samples at full speed.

Runs the real window offscreen, opens a model (a ConvNet on 1×28×28 with 64 chains, then a 2-D MLP
with 4096 particles), sets the viewer to full speed (1000 steps per frame), and measures the GUI
event loop with a 5 ms timer probe: the stall is how late each tick fires. Prints p50, p99 and max
stall, frames drawn per second and the sampler's chain-steps per second.

    QT_QPA_PLATFORM=offscreen python bench/gui_latency.py [--seconds 5] [--with-tool]

``--with-tool`` runs an inpainting job (4 proposals on the bundled digits model) beside the viewer:
two jobs in their own engine slots, interleaved in ~15 ms slices.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from ebm_studio.core.checkpoint import energy_checkpoint, save_checkpoint  # noqa: E402
from ebm_studio.core.energies import ConvEnergy, MLPEnergy  # noqa: E402


def spin(app: QApplication, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)


def measure(app, window, seconds: float) -> dict:
    stalls: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        stalls.append(max(0.0, (now - last[0]) / 1e6 - 5.0))
        last[0] = now

    probe = QTimer()
    probe.setInterval(5)
    probe.timeout.connect(tick)
    frames0 = window.viewer.view.frames_drawn
    rates: list[float] = []
    window.engine.frame_ready.connect(lambda slot: None)
    t0 = time.perf_counter()
    probe.start()
    end = t0 + seconds
    while time.perf_counter() < end:
        app.processEvents()
        text = window.rate_label.text().split()
        if text:
            rates.append(float(text[0].replace(",", "")))
        time.sleep(0.0005)
    probe.stop()
    dt = time.perf_counter() - t0
    s = np.asarray(stalls)
    return {
        "p50": float(np.percentile(s, 50)),
        "p99": float(np.percentile(s, 99)),
        "max": float(s.max()),
        "fps": (window.viewer.view.frames_drawn - frames0) / dt,
        "steps_per_s": float(np.median(rates)) if rates else 0.0,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--with-tool", action="store_true",
                    help="also run an inpainting job (bundled digits model) beside the viewer")
    ap.add_argument("--with-training", action="store_true",
                    help="also train a 2-D model in the Training tab; the viewer samples the model "
                         "being trained beside the run (2-D case only)")
    ap.add_argument("--threads", type=int, default=None,
                    help="the engine's torch threads (default: as the app sets them)")
    args = ap.parse_args()
    from ebm_studio.app import _leave_a_core_for_the_gui
    from ebm_studio.core.allocator import tune_allocator
    from ebm_studio.core.threads import engine_start_threads, keep_engine_threads
    from ebm_studio.ui.app_window import build_window

    tune_allocator()
    _leave_a_core_for_the_gui()
    if args.threads:  # the engine's threads, kept: the governor leaves the other cores alone
        keep_engine_threads(args.threads)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp())
    conv = save_checkpoint(
        energy_checkpoint(ConvEnergy(1, 28, 16), data={"name": "digits", "kind": "images", "value_range": [-1, 1]},
                          sampler={"kind": "tuned", "step_size": 10.0, "noise": 0.005, "clip_grad": 0.03}),
        tmp / "conv.pt",
    )
    mlp = save_checkpoint(
        energy_checkpoint(MLPEnergy(2, (128, 128, 128)), data={"name": "8gaussians", "kind": "points",
                                                               "value_range": [-4, 4]},
                          sampler={"kind": "langevin", "step_size": 0.01}),
        tmp / "mlp.pt",
    )
    window = build_window(device="cpu")
    window.ask_unsaved = lambda steps: "discard"  # the bench's runs are not worth a modal box
    window.resize(1280, 800)
    window.show()
    spin(app, 1.0)
    print(f"torch {torch.__version__}, {engine_start_threads()} engine threads; {args.seconds:.0f} s per case; "
          "5 ms probe timer in the GUI thread")
    print(f"{'case':32s} {'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>7s} {'frames/s':>9s} {'chain-steps/s':>14s}")
    cases = [("ConvNet 28x28, 64 chains", conv, 64), ("2-D MLP, 4096 particles", mlp, 4096)]
    if args.with_training:
        cases = cases[1:]
    for name, path, chains in cases:
        window.open_checkpoint(str(path))
        spin(app, 1.0)
        if args.with_training:  # a training run in its own slot; the viewer follows its model
            panel = window.panels["training"]
            panel.form.total_steps.setValue(10**6)
            panel.train_button.click()
            spin(app, 2.0)
            window.viewer.set_paused(False)  # it gave way to the run: run it beside instead
            name += " + training"
        window.viewer.chains_spin.setValue(chains)
        window.viewer.spf.setValue(1000)
        if args.with_tool:  # a second job in its own engine slot, interleaved with the viewer
            tool = window.panels["inpaint"]
            tool.run_view.steps_spin.setValue(100000)
            tool.run()
            name += " + inpainting"
        spin(app, 1.5)  # warm-up: first allocations and kernels
        r = measure(app, window, args.seconds)
        if args.with_tool:
            from ebm_studio.worker.tool_api import StopToolRun

            window.host.send_tool(StopToolRun("inpaint"))
        if args.with_training:
            window.host.stop("training")
        print(f"{name:32s} {r['p50']:7.1f} {r['p99']:7.1f} {r['max']:7.1f} {r['fps']:9.1f} "
              f"{r['steps_per_s'] * chains:14,.0f}")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
