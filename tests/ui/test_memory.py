"""Long runs hold steady memory: once the recording budget is full, the resident set of the whole
app (GUI, engine thread, recorder) stays within 10 % over 10,000 viewer steps with recording and
over 2,000 training steps."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from ebm_studio.worker.requests import JobRequest

from test_training_panel import tiny_2d

STATM = Path("/proc/self/statm")
LONG = 120000


def rss_bytes() -> int:
    gc.collect()
    return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_at(qtbot, reached) -> int:
    qtbot.waitUntil(reached, timeout=LONG)
    return rss_bytes()


@pytest.mark.slow
@pytest.mark.skipif(not STATM.exists(), reason="reads the resident set from /proc")
def test_memory_stays_flat_over_long_viewer_and_training_runs(make_window, qtbot):
    w = make_window(False)
    qtbot.waitUntil(lambda: bool(w.model_info), timeout=10000)
    scrubber = w.panels["trajectories"]
    scrubber.budget_spin.setValue(4)  # MB: the recording fills it early, then keeps thinning
    w.host.update_live(steps_per_frame=50, sampler="langevin")
    w.host.run(JobRequest("sample", {"n_chains": 1024}, max_steps=10_000, purpose="viewer"))

    def step_reached(n):
        viewer = w.host.engine.slots["viewer"]
        return lambda: viewer.job is not None and viewer.job.step >= n

    before = rss_at(qtbot, step_reached(2_000))
    qtbot.waitUntil(lambda: w.job_info.state == "finished", timeout=LONG)
    after = rss_bytes()
    assert w.engine.trajectories.nbytes <= 4 * 1024**2
    print(f"viewer 2,000 -> 10,000 steps: RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MB")
    assert after <= 1.10 * before, f"viewer: {before / 2**20:.0f} MB -> {after / 2**20:.0f} MB"

    p = w.panels["training"]
    w.tabs.setCurrentWidget(p)
    qtbot.waitUntil(lambda: p.data.name == "8gaussians" and not p.data.busy, timeout=10000)
    tiny_2d(p, qtbot)
    p.form.total_steps.setValue(2_400)
    p.form.record.setValue(1)  # every step's negatives into the recording
    p.train_button.click()
    before = rss_at(qtbot, lambda: p.step >= 400)
    qtbot.waitUntil(lambda: p.state == "finished", timeout=LONG)
    after = rss_bytes()
    print(f"training 400 -> 2,400 steps: RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MB")
    assert after <= 1.10 * before, f"training: {before / 2**20:.0f} MB -> {after / 2**20:.0f} MB"
