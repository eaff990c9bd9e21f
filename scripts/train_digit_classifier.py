"""Train the digit quality meter's classifier and write ``resources/digit_classifier.pt``.

Trained on the train split of the bundled digits only (the held-out split stays a fair reference
for the meter), with random shifts, a little pixel noise and outlier exposure (noise, blobs and the
mean digit get a flat prediction). About a minute on two CPU cores::

    python scripts/train_digit_classifier.py [--epochs 30] [--out resources/digit_classifier.pt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ebm_studio.core.bundled import resources_dir
from ebm_studio.core.digit_classifier import CLASSIFIER_FILE, save_classifier, train_classifier
from ebm_studio.core.image_data import load_digits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=resources_dir() / CLASSIFIER_FILE)
    args = p.parse_args()
    ds = load_digits()
    train = torch.from_numpy(ds.train_indices)
    held = torch.from_numpy(ds.heldout_indices)
    model = train_classifier(ds.items(train), ds.labels[train].long(), args.epochs, args.seed)
    with torch.no_grad():
        pred = model(ds.items(held)).argmax(1)
    acc = float((pred == ds.labels[held].long()).float().mean())
    print(f"held-out accuracy {acc:.4f} on {len(held)} digits")
    save_classifier(model, args.out, acc)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
