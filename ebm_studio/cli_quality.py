"""``ebm-studio quality CKPT``: the sample-quality meter on a checkpoint, with reference points."""

from __future__ import annotations

import argparse
import sys

from ebm_studio.cli_args import Failure, _int, _positive_int


def add_parser(sub) -> None:
    q = sub.add_parser(
        "quality", help="measure a checkpoint's sample quality",
        description="Score a model with the meter that fits it: digits (classifier confidence, "
                    "classes, IS-like score, distance to the nearest training digit), textures "
                    "(histogram and spectrum distance to held-out crops) or a 2-D toy (held-out NLL "
                    "gap to the true density, per-mode mass error). Reference points are printed "
                    "beside image figures.")
    q.add_argument("checkpoint", metavar="CKPT")
    q.add_argument("--n", type=_positive_int, default=256, help="number of samples (default 256)")
    q.add_argument("--steps", type=_int, default=None,
                   help="Langevin steps from the replay buffer (default: as trained)")
    q.add_argument("--seed", type=_int, default=0)
    q.add_argument("--no-references", action="store_true", help="skip the reference points")
    q.add_argument("--store", action="store_true",
                   help="write the figures into the checkpoint's report (what `info` and File ▸ Examples show)")


def cmd_quality(args: argparse.Namespace) -> int:
    import torch

    from ebm_studio.cli_args import load_ckpt, user_errors
    from ebm_studio.core.model import ModelState
    from ebm_studio.core.quality import measure_model, meter_kind, references

    if args.steps is not None and args.steps < 0:
        raise Failure(f"--steps must be 0 or more, got {args.steps}")
    if args.n > 10000:
        raise Failure(f"--n must be at most 10000, got {args.n}")
    ckpt = load_ckpt(args.checkpoint)
    try:
        model = ModelState.from_checkpoint(ckpt, torch.device("cpu"))
        q = measure_model(model, args.n, args.steps, args.seed)
        kind = meter_kind(model.data_desc, model.event_shape)
        refs = {} if args.no_references or kind == "points" else references(kind, model.dataset(), args.n)
    except user_errors() as exc:
        raise Failure(str(exc)) from None
    except FloatingPointError as exc:
        raise Failure(f"sampling failed: {exc}") from None
    width = max([len("model"), *map(len, refs)])
    print(f"{'model':<{width}}  {q.format()}")
    for name, r in refs.items():
        print(f"{name:<{width}}  {r.format()}")
    if args.store:
        from ebm_studio.core.checkpoint import CheckpointError, compact, save_checkpoint

        ckpt.report = {**ckpt.report, "quality": {"meter": q.kind, "n": q.n, **q.figures}}
        try:  # an image buffer that was stored compactly stays compact
            save_checkpoint(compact(ckpt) if ckpt.compact_buffer else ckpt, ckpt.path)
        except CheckpointError as exc:
            raise Failure(str(exc)) from None
        print(f"stored the figures in {ckpt.path}", file=sys.stderr)
    better = ", ".join(f"{k} {v}" for k, v in q.better.items())
    print(f"({q.kind} meter, {q.n} {'held-out points' if q.kind == 'points' else 'samples'}; better: {better})",
          file=sys.stderr)
    return 0
