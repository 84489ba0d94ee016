"""Commands that make checkpoints or check their data: train, cv, attach-cv, check."""

from __future__ import annotations

import argparse
import sys

from dance.cli.common import ConsoleProgress, add_data, add_train_options, add_weights, config_from_args
from dance.config import CV_FOLDS, CV_REPEATS


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model and save a checkpoint (never over an existing one, weights/default too, without --overwrite)."""
    from dance.training import distributed
    from dance.training.train import train

    result = train(config_from_args(args), args.data, args.output, callbacks=[ConsoleProgress()], resume=args.resume,
                   overwrite=bool(args.output) and args.overwrite)
    if not distributed.is_main():
        return 0  # under torchrun, rank 0 alone writes and prints
    stem = result.checkpoint
    print(f"saved {stem}.safetensors and {stem}.json, learning curves in {stem.name}.history.json / .html")
    if result.holdout is not None:
        m = result.holdout.metrics()
        print(f"hold-out: accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
              f"weighted-F1 {m['weighted_f1']:.4f}  ({m['count']} images)")
    return 0


def add_train(sub) -> None:
    """`dance train`."""
    p = sub.add_parser("train", help="train a model and save a checkpoint")
    add_data(p)
    p.add_argument("--output", help="checkpoint stem (default weights/<model>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run writing to --output")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the existing checkpoint named by --output (needed for weights/default too)")
    add_train_options(p)
    p.set_defaults(func=cmd_train)


def cmd_cv(args: argparse.Namespace) -> int:
    """Stratified, grouped k-fold cross-validation with out-of-fold probabilities and a report."""
    from tqdm import tqdm

    from dance import paths
    from dance.training.cv import cross_validate

    bars = []

    def on_fold(done, total, fold):
        if not bars:
            bars.append(tqdm(total=total, initial=0, desc="folds", file=sys.stderr))
        bars[0].update(1)
        print(f"fold {fold['fold']} (repeat {fold['repeat']}): accuracy {fold['accuracy']:.4f}  "
              f"macro-F1 {fold['macro_f1']:.4f}  {fold['train_seconds']}s", flush=True)

    result = cross_validate(config_from_args(args), args.data, k=args.folds, repeats=args.repeats, name=args.name,
                            tta=args.tta, save_fold_models=args.save_fold_models,
                            grouped=not args.ungrouped, only_repeat=args.only_repeat,
                            feature_cache=paths.runs_root() / "cache" / "probe-features",
                            callbacks=[ConsoleProgress(quiet=True)], fold_progress=on_fold,
                            command=" ".join(["python -m dance", *sys.argv[1:]]))
    for bar in bars:
        bar.close()
    s = result.summary
    print(f"{s['k']}-fold CV of {s['model']} at {s['image_size']} px: macro-F1 {s['macro_f1']['mean']:.4f} ± "
          f"{s['macro_f1']['std']:.4f}  accuracy {s['accuracy']['mean']:.4f} ± {s['accuracy']['std']:.4f}"
          f"  ({len(s['folds'])} folds, {s['protocol']})")
    weakest = sorted(s["class_f1"].items(), key=lambda item: item[1]["mean"])[:2]
    print("weakest classes: " + ", ".join(f"{c} F1 {v['mean']:.4f} ± {v['std']:.4f}" for c, v in weakest))
    if s["protocol"] != "grouped":
        print("note: ungrouped folds put near-duplicate photos on both sides; not the figure that counts")
    print(f"wrote {result.out_dir}/report.md, report.json and oof.csv")
    return 0


def add_cv(sub) -> None:
    """`dance cv`."""
    p = sub.add_parser("cv", help="k-fold cross-validation, split by source image")
    add_data(p)
    p.add_argument("--folds", type=int, default=CV_FOLDS, help=f"default: {CV_FOLDS}")
    p.add_argument("--repeats", type=int, default=CV_REPEATS, help=f"repeats with other splits (default: {CV_REPEATS})")
    p.add_argument("--name", help="run name under runs/cv/ (default <model>-<size>-<time>)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation on held-out folds")
    p.add_argument("--save-fold-models", action="store_true",
                   help="keep each fold's model under runs/cv/<name>/folds/ (teachers for a distilled cv run)")
    p.add_argument("--ungrouped", action="store_true",
                   help="plain stratified folds, near-duplicates on both sides (only to compare with published "
                        "numbers; the grouped default is the figure that counts)")
    p.add_argument("--only-repeat", type=int, default=None, metavar="R",
                   help="run only repeat R (0-based) of --repeats, so repeats train in parallel; join with cv-merge")
    add_train_options(p)
    p.set_defaults(func=cmd_cv)


def cmd_cv_merge(args: argparse.Namespace) -> int:
    """Join `cv --only-repeat` parts of one recipe into one repeated run."""
    from dance.training.merge import merge_runs

    s = merge_runs(args.parts, args.name)
    print(f"{args.name}: {len(s['folds'])} folds from {len(args.parts)} parts, macro-F1 {s['macro_f1']['mean']:.4f} ± "
          f"{s['macro_f1']['std']:.4f}  accuracy {s['accuracy']['mean']:.4f} ± {s['accuracy']['std']:.4f}")
    return 0


def add_cv_merge(sub) -> None:
    """`dance cv-merge`."""
    p = sub.add_parser("cv-merge", help="join the --only-repeat parts of one cv recipe into one run")
    p.add_argument("name", help="name of the merged run under runs/cv/")
    p.add_argument("parts", nargs="+", help="the part runs (runs/cv/<name>), one per repeat")
    p.set_defaults(func=cmd_cv_merge)


def cmd_cv_ensemble(args: argparse.Namespace) -> int:
    """Score an ensemble of CV runs on their common folds (each fold: only the members' models of that fold)."""
    from dance.training.ensemble import ensemble_runs

    s = ensemble_runs(args.runs, name=args.name, tta=args.tta, command=" ".join(["python -m dance", *sys.argv[1:]]))
    tta = f"  with TTA {s['tta_metrics']['macro_f1']['mean']:.4f}" if s["tta_metrics"] else ""
    print(f"ensemble of {len(args.runs)} runs, {len(s['folds'])} folds: macro-F1 {s['macro_f1']['mean']:.4f} ± "
          f"{s['macro_f1']['std']:.4f}  accuracy {s['accuracy']['mean']:.4f} ± {s['accuracy']['std']:.4f}{tta}")
    print(f"wrote runs/cv/{s['name']}/report.md, report.json and oof.csv")
    return 0


def add_cv_ensemble(sub) -> None:
    """`dance cv-ensemble`."""
    p = sub.add_parser("cv-ensemble", help="score an ensemble of cv runs made on the same folds (no training)")
    p.add_argument("runs", nargs="+", help="cv run folders (runs/cv/<name>), all on the same folds")
    p.add_argument("--name", help="run name under runs/cv/ (default ensemble-<members>)")
    p.add_argument("--tta", action="store_true", help="also score the members' TTA predictions")
    p.set_defaults(func=cmd_cv_ensemble)


def cmd_cv_compare(args: argparse.Namespace) -> int:
    """Paired comparison of two CV runs on the same folds: per-fold differences, p-values, a verdict."""
    import json

    from dance.training.compare import compare_runs, comparison_text

    comparison = compare_runs(args.run_a, args.run_b, metric=args.metric, tta=args.tta)
    print(json.dumps(comparison.to_dict()) if args.json else comparison_text(comparison))
    return 0


def add_cv_compare(sub) -> None:
    """`dance cv-compare`."""
    p = sub.add_parser("cv-compare", help="paired comparison of two cv runs on the same folds")
    p.add_argument("run_a", help="baseline cv run folder (runs/cv/<name>)")
    p.add_argument("run_b", help="the run compared with it")
    p.add_argument("--metric", default="macro_f1", help="macro_f1 (default), accuracy, weighted_f1 or f1:<class>")
    p.add_argument("--tta", action="store_true", help="compare the runs' TTA scores")
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON object")
    p.set_defaults(func=cmd_cv_compare)


def cmd_attach_cv(args: argparse.Namespace) -> int:
    """Record a CV run's scores in a checkpoint's sidecar and copy its out-of-fold files beside the checkpoint."""
    from dance.models import checkpoint
    from dance.training.cv import attach_cv

    stem = checkpoint.resolve(args.weights)
    scores = attach_cv(args.run, stem, force=args.force)
    print(f"{stem.name}: cv macro-F1 {scores['macro_f1_mean']:.4f} ± {scores['macro_f1_std']:.4f}, accuracy "
          f"{scores['accuracy_mean']:.4f} ± {scores['accuracy_std']:.4f} recorded from {args.run}")
    return 0


def add_attach_cv(sub) -> None:
    """`dance attach-cv`."""
    p = sub.add_parser("attach-cv", help="record a cv run's scores in a checkpoint trained with the same recipe")
    p.add_argument("run", help="the cv run folder (runs/cv/<name>)")
    add_weights(p)
    p.add_argument("--force", action="store_true",
                   help="attach even if recipe settings other than model and size differ")
    p.set_defaults(func=cmd_attach_cv)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a data set's CSV rows and decode every image, without training."""
    from dance.training.train import check_data

    prepared = check_data(args.data)
    ds = prepared.dataset
    groups = len(set(prepared.groups.tolist()))
    print(f"{prepared.data_dir}: {len(ds)} valid images, {len(ds.classes)} classes, {groups} source-image groups")
    return 0


def add_check(sub) -> None:
    """`dance check`."""
    p = sub.add_parser("check", help="validate a data set (rows and images) without training")
    add_data(p)
    p.set_defaults(func=cmd_check)
