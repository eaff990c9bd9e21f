"""Print the table of ``checkpoints/README.md`` from the bundled checkpoints' stored reports.

    python scripts/examples_table.py
"""

from __future__ import annotations

from ebm_studio.core.bundled import example_checkpoints
from ebm_studio.core.checkpoint import load_checkpoint


def main() -> None:
    print("| example | data | steps | training time | machine | quality (meter, n) | size |")
    print("|---|---|---|---|---|---|---|")
    for name, path in example_checkpoints().items():
        ckpt = load_checkpoint(path)
        r = ckpt.report
        q = dict(r.get("quality") or {})
        meter, n = q.pop("meter", "?"), q.pop("n", "?")
        figures = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in q.items())
        figures = f"{figures} ({meter}, {n})" if figures else "no meter (no closed-form density)"
        seconds = r.get("train_seconds")
        print(f"| `{name}` | {ckpt.data.get('name', '?')} | {ckpt.step:,} | "
              f"{seconds:.0f} s | {r.get('machine', '?').replace('1 threads', '1 thread')} | {figures} | "
              f"{path.stat().st_size / 2**20:.1f} MB |" if seconds else
              f"| `{name}` | {ckpt.data.get('name', '?')} | {ckpt.step:,} | ? | ? | {figures} | "
              f"{path.stat().st_size / 2**20:.1f} MB |")


if __name__ == "__main__":
    main()
