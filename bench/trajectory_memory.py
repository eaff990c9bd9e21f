"""Memory per recorded step and scrub-fetch time of the trajectory recorder.

Two typical runs: 64 digit chains (1×28×28 images, stored as uint8 and as float16) and 4096 2-D
particles (float32). Prints bytes per step, how many steps the default 256 MiB budget holds, and the
time of ``record`` (the engine's per-step cost), ``index_of`` + ``get`` (one scrub fetch) and
``get`` + ``image_grid`` (a scrub fetch turned into a displayable frame). Times are the minimum of
several repeats (other load on a shared machine only ever adds time).

Run: ``python bench/trajectory_memory.py``
"""

from __future__ import annotations

import time

import numpy as np

from ebm_studio.core.imaging import histogram2d, image_grid
from ebm_studio.core.trajectory import DEFAULT_BUDGET_BYTES, TrajectoryRecorder


def best_time(fn, repeats: int = 7, number: int = 200) -> float:
    """Minimum over ``repeats`` of the mean time of ``number`` calls, in microseconds."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best * 1e6


def bench(label: str, make_state, n_steps: int, frame, **kwargs) -> None:
    rng = np.random.default_rng(0)
    states = [make_state(rng) for _ in range(8)]
    energies = rng.normal(size=len(states[0])).astype(np.float32)
    rec = TrajectoryRecorder(**kwargs)
    settings = {"temperature": 1.0, "step_size": 0.01, "noise": 0.005, "sampler": "langevin"}
    for s in range(n_steps):
        rec.record(s, states[s % 8], energies, accept=0.5, settings=settings)
    per_step = rec.bytes_per_step
    data = states[0].nbytes
    fit = DEFAULT_BUDGET_BYTES // per_step

    counter = iter(range(n_steps, 10**9))
    t_record = best_time(
        lambda: rec.record(next(counter), states[0], energies, accept=0.5, settings=settings),
        number=100,
    )
    n = len(rec)
    k = iter(range(10**9))
    t_get = best_time(lambda: rec.get(rec.index_of(next(k) * 7919 % n)))
    t_frame = best_time(lambda: frame(rec.get(next(k) * 7919 % n).state), number=50)
    print(
        f"{label:<34} {per_step:>8,} B/step stored (state as float32: {data:>7,} B) "
        f"-> {fit:>5,} steps in 256 MiB | record {t_record:6.1f} us | "
        f"scrub: index_of+get {t_get:6.1f} us, get+frame {t_frame:6.1f} us"
    )


def main() -> None:
    digits = lambda rng: rng.uniform(-1, 1, (64, 1, 28, 28)).astype(np.float32)  # noqa: E731
    particles = lambda rng: rng.normal(size=(4096, 2)).astype(np.float32)  # noqa: E731
    grid = image_grid
    hist = lambda s: histogram2d(s, (-4, 4), (-4, 4), 256)  # noqa: E731
    print(f"bench/trajectory_memory.py  (numpy {np.__version__})")
    bench("64 digit chains 1x28x28, uint8", digits, 500, grid)
    bench("64 digit chains 1x28x28, float16", digits, 500, grid, image_dtype="float16")
    bench("4096 2-D particles, float32", particles, 500, hist)
    # a full budget with thinning: what does one record() cost when it triggers a thin?
    rng = np.random.default_rng(1)
    x = digits(rng)
    rec = TrajectoryRecorder(budget_bytes=64 * 1024**2)
    t0 = time.perf_counter()
    for s in range(5000):
        rec.record(s, x)
    dt = time.perf_counter() - t0
    print(
        f"5,000 steps of 64 digits into 64 MiB (thin): {dt:.2f} s total, {len(rec):,} kept, "
        f"{rec.nbytes / 2**20:.1f} MiB held; {rec.kept_description}"
    )


if __name__ == "__main__":
    main()
