"""Training speed with a busy neighbour: 1 thread vs all cores, OpenMP spinning vs passive waiting.

A user's machine always has other load. OpenMP threads that spin-wait for a descheduled peer can
lose an order of magnitude; this prints steps/s of 2-D and digits training for each setting, side
by side, with and without one busy process, each in a fresh process (the OpenMP wait policy is
read when torch loads). The last case starts with all threads, as a run does whose neighbour came
later, and lets ``ThreadGovernor`` (what ``ebm-studio train`` and the app use) adjust the count:

    python bench/threads_under_load.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time, torch
from ebm_studio.core.config import preset_2d, preset_digits
from ebm_studio.core.threads import ThreadGovernor
from ebm_studio.core.training import Trainer
threads, which, seconds, governed = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
torch.set_num_threads(threads)
# as ebm-studio train runs: started with these threads, the governor re-checks the neighbours
gov = ThreadGovernor(torch.set_num_threads, threads) if governed else None
cfg = preset_2d("8gaussians") if which == "2-D" else preset_digits()
cfg.device = "cpu"
if which == "digits":
    cfg.sampler.steps = 20
t = Trainer(cfg)
t.step()
t0, n = time.perf_counter(), 0
while time.perf_counter() - t0 < seconds:
    if gov is not None:
        gov.poll()
    t.step(); n += 1
print(json.dumps(n / (time.perf_counter() - t0)))
"""


def run(threads: int, which: str, seconds: float, passive: bool, governed: bool = False) -> float:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), which, str(seconds), str(int(governed))],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=8.0)
    args = p.parse_args()
    cores = os.cpu_count() or 2
    print(f"{cores} cores; steps/s (higher is better)")
    print(f"{'case':46s} {'2-D':>8s} {'digits':>8s}")
    for busy in (False, True):
        neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            for threads, passive, governed in ((1, False, False), (cores, False, False), (cores, True, False),
                                               (cores, False, True)):
                label = (f"{'busy neighbour, ' if busy else 'idle, '}{threads} thread"
                         f"{'s' if threads > 1 else ''}{', passive wait' if passive else ''}"
                         f"{' at start, then governed' if governed else ''}")
                rates = [run(threads, w, args.seconds, passive, governed) for w in ("2-D", "digits")]
                print(f"{label:46s} {rates[0]:8.1f} {rates[1]:8.2f}", flush=True)
        finally:
            if neighbour is not None:
                neighbour.kill()


if __name__ == "__main__":
    main()
