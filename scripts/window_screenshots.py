"""Screenshots of every tab at the default window size (1280×820) and at 1100×700, plus one
contact sheet of them all: the check that nothing is clipped, as a person sees it.

    QT_QPA_PLATFORM=offscreen python scripts/window_screenshots.py OUT_DIR [--sheet docs/window_sizes.png]

Each tab is shown for a few seconds first, so the live views hold real frames (the demo chains
run, the landscape is computed, the image tools open their bundled models).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

SIZES = ((1280, 820), (1100, 700))
SETTLE_S = 3.0


def _spin(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for one PNG per tab and size")
    parser.add_argument("--sheet", type=Path, help="also write all shots side by side into this PNG")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("EBM_STUDIO_SETTINGS_ORG", "EBMStudioScreenshots")
    os.environ.setdefault("EBM_STUDIO_AUTOSAVE_DIR", tempfile.mkdtemp(prefix="ebm-shots-"))
    from PySide6.QtWidgets import QApplication

    from ebm_studio.ui.app_window import build_window

    app = QApplication.instance() or QApplication(sys.argv)
    window = build_window(device="cpu", start_demo=True)
    window.show()
    args.out.mkdir(parents=True, exist_ok=True)
    shots: list[tuple[str, Path]] = []
    try:
        for w, h in SIZES:
            window.resize(w, h)
            for i in range(window.tabs.count()):
                window.tabs.setCurrentIndex(i)
                _spin(app, SETTLE_S)
                name = window.tabs.tabText(i).lower().replace(" ", "-")
                path = args.out / f"{name}-{w}x{h}.png"
                window.grab().save(str(path))
                shots.append((f"{window.tabs.tabText(i)} - {w}x{h}", path))
                print(path)
    finally:
        window.close()
    if args.sheet is not None:
        _contact_sheet(shots, args.sheet)
        print(args.sheet)
    return 0


def _contact_sheet(shots: list[tuple[str, Path]], out: Path, width: int = 440) -> None:
    """All shots as thumbnails ``width`` pixels wide, two columns (one per window size)."""
    from PIL import Image, ImageDraw

    thumbs = []
    for label, path in shots:
        im = Image.open(path).convert("RGB")
        im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        band = Image.new("RGB", (width, im.height + 18), "white")
        band.paste(im, (0, 18))
        ImageDraw.Draw(band).text((4, 3), label, fill="black")
        thumbs.append(band)
    per_size = len(thumbs) // len(SIZES)
    columns = [thumbs[k * per_size:(k + 1) * per_size] for k in range(len(SIZES))]
    height = max(sum(t.height for t in col) for col in columns)
    sheet = Image.new("RGB", (width * len(columns) + 8 * (len(columns) - 1), height), "white")
    for c, col in enumerate(columns):
        y = 0
        for t in col:
            sheet.paste(t, (c * (width + 8), y))
            y += t.height
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(256).save(out, optimize=True)  # a palette keeps the sheet small


if __name__ == "__main__":
    sys.exit(main())
