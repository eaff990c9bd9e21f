"""Landscape refresh while training: time per refresh and the GUI thread's stalls.

Builds the full window (offscreen unless a display is set), shows the Landscape tab and trains the
2-D preset (8 Gaussians, MLP energy) twice per round, side by side: with the landscape refreshed
every ``--every`` training steps (256² grid evaluated in the engine thread, the heatmap, contours and
numbers redrawn in the GUI thread) and with refreshes off. A 5 ms ``QTimer`` in the GUI thread
probes responsiveness: a stall is how much later than 5 ms a tick arrives.

Printed per setting (pooled over rounds): training steps per second, the engine's time per
refresh (grid evaluation + numbers, ``landscape_for``), the GUI's time per redraw (``render``), and
the probe's stall p50 / p99 / max. Ratios compare the two settings measured in the same run; other
load on a shared machine can slow everything (see DESIGN.md), so run it on a quiet machine and
read the ratios first.

Run: ``python bench/landscape_refresh.py [--seconds 12] [--rounds 2] [--every 25]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("EBM_STUDIO_SETTINGS_ORG", "EBMStudioBench")

import numpy as np  # noqa: E402
from PySide6.QtCore import QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

PROBE_MS = 5


class Probe:
    """A 5 ms timer in the GUI thread; records how late each tick is."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(PROBE_MS)
        self.timer.timeout.connect(self._tick)
        self.last: float | None = None
        self.late_ms: list[float] = []

    def _tick(self) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.late_ms.append(max(0.0, (now - self.last) * 1000.0 - PROBE_MS))
        self.last = now

    def start(self) -> None:
        self.late_ms, self.last = [], None
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        return self.late_ms


def pump(app: QApplication, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)


def wait(app: QApplication, cond, timeout: float, what: str) -> None:
    end = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.002)


def run_phase(app, window, view, every: int, seconds: float) -> dict:
    from ebm_studio.core.config import preset_2d
    from ebm_studio.worker.api import LandscapeResult
    from ebm_studio.worker.requests import JobRequest

    engine = window.engine
    refreshes: list[float] = []
    grid_s: list[float] = []

    def on_landscape(result: LandscapeResult) -> None:
        refreshes.append(result.seconds)
        grid_s.append(result.seconds_grid)

    engine.landscape_ready.connect(on_landscape)
    cfg = preset_2d("8gaussians")
    cfg.steps = 10**6
    window.host.run(JobRequest("train", {"config": cfg.to_dict(), "landscape_every": every,
                                         "autosave_every": 0}, record=False, purpose="training"))
    # the training slot's own state: on a CPU the viewer pauses beside a run, and that newer
    # state of another slot must not hide the run's
    def training(*states: str) -> bool:
        info = window.jobs.get("training")
        return info is not None and info.kind == "train" and info.state in states

    wait(app, lambda: training("running"), 60, "the training job")
    pump(app, 2.0)  # warm-up: first steps, first refresh
    refreshes.clear()
    grid_s.clear()
    render_before = len(view.render_ms)
    drawn_before = view.landscapes_drawn
    step0, t0 = engine.model.step, time.perf_counter()
    probe = Probe()
    probe.start()
    pump(app, seconds)
    late = probe.stop()
    steps = engine.model.step - step0
    elapsed = time.perf_counter() - t0
    window.host.stop("training")
    wait(app, lambda: training("stopped", "finished"), 30, "the stop")
    engine.landscape_ready.disconnect(on_landscape)
    drawn = view.landscapes_drawn - drawn_before
    renders = list(view.render_ms)[render_before:] if drawn else []
    return {"steps_per_s": steps / elapsed, "refresh_s": refreshes, "grid_s": grid_s,
            "render_ms": renders, "late_ms": late, "drawn": drawn}


def summary(rows: list[dict]) -> dict:
    late = np.concatenate([np.asarray(r["late_ms"]) for r in rows])
    refresh = np.concatenate([np.asarray(r["refresh_s"], dtype=float) for r in rows]) * 1000.0
    grid = np.concatenate([np.asarray(r["grid_s"], dtype=float) for r in rows]) * 1000.0
    render = np.concatenate([np.asarray(r["render_ms"], dtype=float) for r in rows])
    return {
        "steps_per_s": float(np.mean([r["steps_per_s"] for r in rows])),
        "n_refresh": int(refresh.size),
        "refresh_med": float(np.median(refresh)) if refresh.size else float("nan"),
        "refresh_min": float(refresh.min()) if refresh.size else float("nan"),
        "grid_med": float(np.median(grid)) if grid.size else float("nan"),
        "render_med": float(np.median(render)) if render.size else float("nan"),
        "render_max": float(render.max()) if render.size else float("nan"),
        "p50": float(np.percentile(late, 50)),
        "p99": float(np.percentile(late, 99)),
        "max": float(late.max()),
        "ticks": int(late.size),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=12.0, help="measured seconds per phase")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (refresh on, refresh off)")
    ap.add_argument("--every", type=int, default=25, help="training steps between refreshes")
    ap.add_argument("--switch-ms", type=float, default=None,
                    help="Python's GIL switch interval in ms (default: leave it at 5 ms)")
    args = ap.parse_args()
    if args.switch_ms is not None:
        sys.setswitchinterval(args.switch_ms / 1000.0)

    app = QApplication.instance() or QApplication(sys.argv)
    tmp = tempfile.mkdtemp(prefix="ebm-bench-")
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tmp)
    os.environ.setdefault("EBM_STUDIO_AUTOSAVE_DIR", tmp)
    from ebm_studio.ui.app_window import build_window

    window = build_window(device="cpu")
    window.resize(1400, 860)
    window.show()
    view = window.panels["landscape"]
    window.tabs.setCurrentWidget(view)
    wait(app, lambda: view.landscapes_drawn > 0, 120, "the first landscape")

    on, off = [], []
    for r in range(args.rounds):
        on.append(run_phase(app, window, view, args.every, args.seconds))
        off.append(run_phase(app, window, view, 0, args.seconds))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    window.ask_unsaved = lambda steps: "discard"  # the bench's runs are not worth a modal box
    window.close()

    s_on, s_off = summary(on), summary(off)
    print(f"\nLandscape refresh while training the 2-D preset ({args.rounds} × {args.seconds:.0f} s "
          f"per setting; 256² grid, refresh every {args.every} steps; 5 ms probe in the GUI thread; "
          f"GIL switch interval {sys.getswitchinterval() * 1000:.1f} ms)")
    print(f"{'':28s}{'refresh on':>14s}{'refresh off':>14s}")
    print(f"{'training steps/s':28s}{s_on['steps_per_s']:14.1f}{s_off['steps_per_s']:14.1f}")
    print(f"{'refreshes measured':28s}{s_on['n_refresh']:14d}{'–':>14s}")
    print(f"{'engine ms/refresh (median)':28s}{s_on['refresh_med']:14.1f}{'–':>14s}")
    print(f"{'  of which grid eval':28s}{s_on['grid_med']:14.1f}{'–':>14s}")
    print(f"{'engine ms/refresh (min)':28s}{s_on['refresh_min']:14.1f}{'–':>14s}")
    print(f"{'GUI redraw ms (median)':28s}{s_on['render_med']:14.1f}{'–':>14s}")
    print(f"{'GUI redraw ms (max)':28s}{s_on['render_max']:14.1f}{'–':>14s}")
    for key, label in (("p50", "stall p50 ms"), ("p99", "stall p99 ms"), ("max", "stall max ms")):
        print(f"{label:28s}{s_on[key]:14.1f}{s_off[key]:14.1f}")
    print(f"{'probe ticks':28s}{s_on['ticks']:14d}{s_off['ticks']:14d}")
    print(f"\nratios (on / off): training speed {s_on['steps_per_s'] / s_off['steps_per_s']:.2f}, "
          f"stall p99 {s_on['p99'] / max(s_off['p99'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
