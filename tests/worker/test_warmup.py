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
    t1 = time.perf_counter()
    import torch
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    first_adam = time.perf_counter() - t1
    host.shutdown()
    print(before, after, warmup.warm_up_seconds is not None, round(first_adam, 3))
""")


def test_the_engine_warms_up_the_first_optimiser_in_the_background():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after, finished, first_adam = out.stdout.split()[-4:]
    assert (before, after, finished) == ("False", "True", "True")
    assert float(first_adam) < 0.2  # the import is done: a first optimiser is instant
