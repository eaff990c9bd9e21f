"""The first Train click does not wait for torch's lazy imports: the engine warms them up in the
background once it has started (checked in a fresh interpreter, where nothing imported them yet)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys, time
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from ebm_studio.worker.thread import EngineHost
    from ebm_studio.core import warmup
    before = "torch._dynamo" in sys.modules
    host = EngineHost(device="cpu")
    host.start()
    t0 = time.perf_counter()
    while not warmup.warmed_up(0.01) and time.perf_counter() - t0 < 60:
        app.processEvents()
    after = "torch._dynamo" in sys.modules
    from ebm_studio.worker.gui_gc import gui_collector
    while not gui_collector().frozen and time.perf_counter() - t0 < 60:
        app.processEvents()  # the window's thread freezes the imports at its next collection
    t1 = time.perf_counter()
    import torch
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    first_adam = time.perf_counter() - t1
    host.shutdown()
    import gc
    t2 = time.perf_counter()
    gc.collect()
    full_gc = time.perf_counter() - t2
    print(gc.get_freeze_count() > 100000, round(full_gc, 4))
    print(before, after, warmup.warm_up_seconds is not None, round(first_adam, 3))
""")


def test_the_engine_warms_up_the_first_optimiser_in_the_background():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    frozen, full_gc, before, after, finished, first_adam = out.stdout.split()[-6:]
    assert (before, after, finished) == ("False", "True", "True")
    assert float(first_adam) < 0.2  # the import is done: a first optimiser is instant
    # and the imports' objects are frozen: a full collection (which the window's thread runs while
    # an engine lives) no longer pauses it for ~0.1 s walking them
    assert frozen == "True" and float(full_gc) < 0.03
