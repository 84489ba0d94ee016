"""Commands that judge a checkpoint or its labels: evaluate, calibrate, label-issues."""

from __future__ import annotations

import argparse
from pathlib import Path

from dance.cli.common import add_data, add_weights
from dance.config import CALIBRATION_BINS, ISSUES_SHOWN, TARGET_ACCURACY


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Metrics, per-class report, confusion matrix and misclassified images on a labelled split."""
    from dance.inference.assess import evaluate_checkpoint
    from dance.paths import evaluation_stem

    preds, split = evaluate_checkpoint(args.weights, args.data, args.split, tta=args.tta)
    json_path, csv_path = preds.save(args.output or evaluation_stem())
    m = preds.metrics()
    print(f"{split}: {m['count']} images  accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}"
          f"  weighted-F1 {m['weighted_f1']:.4f}")
    print(preds.report().round(3).to_string())
    print("confusion (rows true, columns predicted):")
    print(preds.confusion())
    print(f"wrote {json_path} and {csv_path}")
    return 0


def add_evaluate(sub) -> None:
    """`dance evaluate`."""
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on its hold-out (or all labelled images)")
    add_data(p)
    add_weights(p)
    p.add_argument("--split", choices=("holdout", "all"), default="holdout",
                   help="the checkpoint's hold-out, or every labelled image (optimistic)")
    p.add_argument("--output", help="stem of the .json and .csv written (default: <runs>/evaluation)")
    p.add_argument("--tta", action="store_true")
    p.set_defaults(func=cmd_evaluate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit the temperature and the "not sure" threshold on out-of-fold or hold-out predictions; store them."""
    from dance.errors import DataError
    from dance.models import checkpoint
    from dance.trust.calibrate import calibrate, save_calibration

    ckpt = checkpoint.load(args.weights)
    if args.oof:
        from dance.training.cv import load_oof

        preds = load_oof(args.oof)
        if set(preds.classes) != set(ckpt.classes):
            raise DataError(f"{args.oof}: its classes ({', '.join(preds.classes)}) differ from "
                            f"{ckpt.name}'s ({', '.join(ckpt.classes)}).")
        source = f"out-of-fold: {args.oof}"
    else:
        from dance.inference import serving
        from dance.inference.assess import evaluate_checkpoint

        # Fit on raw probabilities: drop any earlier calibration rather than stacking a new one on it.
        raw = serving.from_checkpoint(ckpt.uncalibrated())
        preds, source = evaluate_checkpoint(ckpt.path, args.data, "holdout", predictor=raw)
    result = calibrate(preds, source, target_accuracy=args.target_accuracy, bins=args.bins)
    print(f"{source}: {result.count} images")
    print(f"temperature {result.temperature:.3f}  ECE {result.ece_before:.4f} -> {result.ece_after:.4f}"
          f"  NLL {result.nll_before:.4f} -> {result.nll_after:.4f}")
    print(f"'not sure' below {result.unsure_threshold:.3f}: answers {result.coverage:.1%} of images with accuracy "
          f"{result.answered_accuracy:.1%} (target {result.target_accuracy:.0%})")
    if args.dry_run:
        print("dry run: sidecar not changed")
    else:
        save_calibration(ckpt.path, result)
        print(f"wrote calibration and unsure_threshold to {ckpt.path}.json")
    return 0


def add_calibrate(sub) -> None:
    """`dance calibrate`."""
    p = sub.add_parser("calibrate", help="fit temperature scaling and the 'not sure' threshold")
    add_data(p)
    add_weights(p, "checkpoint whose sidecar receives the calibration")
    p.add_argument("--oof", help="out-of-fold predictions (runs/cv/<name>/oof.csv); default: the checkpoint's hold-out")
    p.add_argument("--target-accuracy", type=float, default=TARGET_ACCURACY,
                   help=f"accuracy the answered images must reach; lower confidence is 'not sure' "
                        f"(default {TARGET_ACCURACY})")
    p.add_argument("--bins", type=int, default=CALIBRATION_BINS,
                   help=f"confidence bins for ECE (default {CALIBRATION_BINS})")
    p.add_argument("--dry-run", action="store_true", help="print the fit without writing the sidecar")
    p.set_defaults(func=cmd_calibrate)


def cmd_label_issues(args: argparse.Namespace) -> int:
    """Rank training images whose label the out-of-fold predictions confidently dispute."""
    from dance.errors import DataError
    from dance.fileio import atomic_write_text
    from dance.training.cv import list_oof_runs, load_oof
    from dance.trust.label_issues import find_label_issues

    runs = list_oof_runs()
    path = Path(args.oof) if args.oof else (runs[0] if runs else None)
    if path is None:
        raise DataError("no out-of-fold predictions under runs/cv/; run `python -m dance cv` first or pass --oof PATH.")
    preds = load_oof(path)
    issues = find_label_issues(preds)
    print(f"{path}: {len(issues)} of {len(preds.targets)} images look mislabelled (most disputed first)")
    if not issues.empty:
        shown = issues.head(args.top)[["image", "given", "suggested", "self_confidence", "suggested_prob"]]
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.output:
        atomic_write_text(args.output, issues.to_csv(index=False))
        print(f"wrote {len(issues)} rows to {args.output}")
    return 0


def add_label_issues(sub) -> None:
    """`dance label-issues`."""
    p = sub.add_parser("label-issues", help="rank training images whose label looks wrong")
    p.add_argument("--oof", help="out-of-fold predictions (default: the newest runs/cv/*/oof.csv)")
    p.add_argument("--top", type=int, default=ISSUES_SHOWN, help=f"rows printed (default {ISSUES_SHOWN})")
    p.add_argument("--output", help="also write every flagged image to this CSV")
    p.set_defaults(func=cmd_label_issues)
