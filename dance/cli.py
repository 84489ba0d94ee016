"""Command line: `python -m dance <command>`; a thin layer over the package's functions."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from dance.config import RECIPES, VIDEO_FPS, VIDEO_MIN_SEGMENT, AugmentConfig, TrainConfig
from dance.errors import DanceError


class _ConsoleProgress:
    """tqdm bar per epoch and a one-line summary after each."""

    def __init__(self, quiet: bool = False):
        self.bar = None
        self.quiet = quiet  # CV prints one line per fold instead of per epoch

    def on_batch_end(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        """Advance the epoch's progress bar."""
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=batches, desc=f"epoch {epoch + 1}", leave=False, file=sys.stderr)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.3f}")

    def on_epoch_end(self, record: dict) -> bool:
        """Close the bar and print the epoch's summary line."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.quiet:
            return True
        parts = [f"epoch {record['epoch']:>3}"]
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            if key in record:
                parts.append(f"{key} {record[key]:.4f}")
        parts.append(f"{record['seconds']:.1f}s")
        print("  ".join(parts), flush=True)
        return True


def _add_train_options(parser: argparse.ArgumentParser) -> None:
    """Every TrainConfig / AugmentConfig field as an option, defaults from the dataclasses."""
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name in ("augment",):
            continue
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, type=type(getattr(defaults, f.name)), default=None,
                            help=f"default: {getattr(defaults, f.name)}")
    aug = AugmentConfig()
    group = parser.add_argument_group("augmentation")
    for f in fields(AugmentConfig):
        value = getattr(aug, f.name)
        flag = "--aug-" + f.name.replace("_", "-")
        if isinstance(value, bool):
            group.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes", "on"), default=None,
                               help=f"default: {value}")
        else:
            group.add_argument(flag, type=type(value), default=None, help=f"default: {value}")
    parser.add_argument("--recipe", choices=tuple(RECIPES), default="default",
                        help="start from the default transfer recipe, the seed article's, or the mild one (crop "
                             "scale 0.5, no affine, erasing 0.25, weight decay 0.02, body/head LR 4e-4/4e-3)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from a recipe plus every option the user set."""
    cfg = RECIPES[args.recipe]()
    for f in fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is not None and f.name != "augment":
            setattr(cfg, f.name, value)
    for f in fields(AugmentConfig):
        value = getattr(args, "aug_" + f.name, None)
        if value is not None:
            setattr(cfg.augment, f.name, value)
    return cfg


def cmd_train(args: argparse.Namespace) -> int:
    """Train a model and save a checkpoint (never over an existing one, weights/default too, without --overwrite)."""
    from dance.fileio import atomic_write_json, atomic_write_text
    from dance.training.train import train

    cfg = config_from_args(args)
    result = train(cfg, args.data, args.output, callbacks=[_ConsoleProgress()], resume=args.resume,
                   overwrite=bool(args.output) and args.overwrite)
    from dance.training import distributed

    if not distributed.is_main():
        return 0  # under torchrun, rank 0 alone writes and prints
    stem = result.checkpoint
    atomic_write_json(stem.with_name(stem.name + ".history.json"), result.history)
    try:
        from dance.plots import history_figure
    except ImportError:  # a bare GPU box may train without plotly; the curves stay in .history.json
        history_figure = None
    if history_figure is not None:
        atomic_write_text(stem.with_name(stem.name + ".history.html"),
                          history_figure(result.history).to_html(include_plotlyjs=True, full_html=True))
    print(f"saved {stem}.safetensors and {stem}.json")
    if result.holdout is not None:
        m = result.holdout.metrics()
        print(f"hold-out: accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  weighted-F1 {m['weighted_f1']:.4f}"
              f"  ({m['count']} images)")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Top-k labels per image, the answer and segments per video; JSON lines with --json; exit 1 if any failed."""
    from dance.data.video import is_video_path
    from dance.inference import serving
    from dance.inference.predict import image_files

    if not 0 < args.fps <= 60:
        raise DanceError(f"--fps {args.fps:g} is not between 0 and 60 frames per second.")
    predictor = serving.load(args.weights, tta=args.tta, backend=args.backend, precision=args.precision)
    for note in predictor.notes:
        print(f"note: {note}", file=sys.stderr)
    failed = False
    files: list[Path] = []
    for entry in map(Path, args.images):  # in the order given; photos between videos are predicted together
        files.extend(image_files([entry]) if not is_video_path(entry) else [entry])
        if entry.is_dir():
            files.extend(sorted(p for p in entry.iterdir() if is_video_path(p)))
    batch: list[Path] = []
    for path in files + [None]:
        if path is not None and not is_video_path(path):
            batch.append(path)
            continue
        for pred in predictor.predict(batch) if batch else []:
            failed |= _print_photo(pred, args)
        batch = []
        if path is not None:
            failed |= _predict_video(predictor, path, args)
    return 1 if failed else 0


def _print_photo(pred, args: argparse.Namespace) -> bool:
    """One photo's answer on stdout; True when it failed."""
    if args.json:
        print(json.dumps(pred.to_dict()), flush=True)
    elif not pred.ok:
        print(f"ERROR {pred.error}", flush=True)
    elif pred.unsure:  # below the calibrated threshold: say so, with the two candidates
        (first, p1), (second, p2) = pred.ranked[:2]
        print(f"{pred.image}: not sure: {first} {p1:.3f} or {second} {p2:.3f}", flush=True)
    else:
        ranked = "  ".join(f"{name} {p:.3f}" for name, p in pred.ranked[: args.top])
        print(f"{pred.image}: {ranked}", flush=True)
    return not pred.ok


def _predict_video(predictor, path: Path, args: argparse.Namespace) -> bool:
    """One video: a progress bar on stderr, the answer and segments on stdout, files with --save; True if it failed."""
    from tqdm import tqdm

    from dance.fileio import atomic_write_text
    from dance.inference.video import predict_video

    with tqdm(desc=path.name, unit="frame", leave=False, file=sys.stderr) as bar:
        def progress(done: int, total: int | None) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = predict_video(predictor, path, fps=args.fps, name=str(path), progress=progress,
                               min_segment=args.min_segment)
    if args.save and result.ok:
        stem = Path(args.save) / path.stem
        atomic_write_text(stem.with_name(stem.name + ".frames.csv"), result.frames_csv())
        atomic_write_text(stem.with_name(stem.name + ".segments.csv"), result.segments_csv())
        atomic_write_text(stem.with_name(stem.name + ".json"), result.to_json())
    if args.json:
        print(json.dumps(result.to_dict()), flush=True)
    elif not result.ok:
        print(f"ERROR {result.error}", flush=True)
    else:
        answer = result.answer
        label = f"not sure: {answer.ranked[0][0]} or {answer.ranked[1][0]}" if answer.unsure else answer.label
        print(f"{result.video}: {label} {answer.confidence:.3f} ({len(result.times)} frames at {result.fps:g} "
              f"per second)", flush=True)
        for segment in result.segments:
            print(f"  {segment.text()} ({segment.confidence:.3f})", flush=True)
    return not result.ok


def cmd_submit(args: argparse.Namespace) -> int:
    """Write the HackerEarth submission CSV (Image,target) for test.csv."""
    from dance.data.labels import load_unlabelled
    from dance.fileio import atomic_write_bytes
    from dance.inference import serving
    from dance.inference.submission import submission_csv
    from dance.paths import find_data_dir

    folder = find_data_dir(args.data)
    paths = load_unlabelled(folder)
    predictor = serving.load(args.weights, tta=args.tta, precision=args.precision)
    for note in predictor.notes:
        print(f"note: {note}", file=sys.stderr)
    preds = predictor.predict(paths)
    bad = [p for p in preds if not p.ok]
    for p in bad:
        print(f"ERROR {p.error}", file=sys.stderr)
    atomic_write_bytes(args.output, submission_csv(paths, preds))
    print(f"wrote {len(preds)} predictions to {args.output}")
    return 1 if bad else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Metrics, per-class report, confusion matrix and misclassified images on a labelled split."""
    from dance.inference.assess import evaluate_checkpoint

    preds, split = evaluate_checkpoint(args.weights, args.data, args.split, tta=args.tta)
    json_path, csv_path = preds.save(args.output)
    m = preds.metrics()
    print(f"{split}: {m['count']} images  accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}"
          f"  weighted-F1 {m['weighted_f1']:.4f}")
    print(preds.report().round(3).to_string())
    print("confusion (rows true, columns predicted):")
    print(preds.confusion())
    print(f"wrote {json_path} and {csv_path}")
    return 0


def cmd_cv(args: argparse.Namespace) -> int:
    """Stratified, grouped k-fold cross-validation with out-of-fold probabilities and a report."""
    from tqdm import tqdm

    from dance import paths
    from dance.training.cv import cross_validate

    cfg = config_from_args(args)
    bars = []

    def on_fold(done, total, fold):
        if not bars:
            bars.append(tqdm(total=total, initial=0, desc="folds", file=sys.stderr))
        bars[0].update(1)
        print(f"fold {fold['fold']} (repeat {fold['repeat']}): accuracy {fold['accuracy']:.4f}  "
              f"macro-F1 {fold['macro_f1']:.4f}  {fold['train_seconds']}s", flush=True)

    result = cross_validate(cfg, args.data, k=args.folds, repeats=args.repeats, name=args.name, tta=args.tta,
                            save_fold_models=args.save_fold_models, callbacks=[_ConsoleProgress(quiet=True)],
                            grouped=not args.ungrouped, only_repeat=args.only_repeat,
                            feature_cache=paths.runs_root() / "cache" / "probe-features",
                            fold_progress=on_fold,
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


def cmd_cv_merge(args: argparse.Namespace) -> int:
    """Join `cv --only-repeat` parts of one recipe into one repeated run."""
    from dance.training.merge import merge_runs

    s = merge_runs(args.parts, args.name)
    print(f"{args.name}: {len(s['folds'])} folds from {len(args.parts)} parts, macro-F1 {s['macro_f1']['mean']:.4f} ± "
          f"{s['macro_f1']['std']:.4f}  accuracy {s['accuracy']['mean']:.4f} ± {s['accuracy']['std']:.4f}")
    return 0


def cmd_cv_ensemble(args: argparse.Namespace) -> int:
    """Score an ensemble of CV runs on their common folds (each fold: only the members' models of that fold)."""
    from dance.training.ensemble import ensemble_runs

    s = ensemble_runs(args.runs, name=args.name, tta=args.tta,
                      command=" ".join(["python -m dance", *sys.argv[1:]]))
    tta = f"  with TTA {s['tta_metrics']['macro_f1']['mean']:.4f}" if s["tta_metrics"] else ""
    print(f"ensemble of {len(args.runs)} runs, {len(s['folds'])} folds: macro-F1 {s['macro_f1']['mean']:.4f} ± "
          f"{s['macro_f1']['std']:.4f}  accuracy {s['accuracy']['mean']:.4f} ± {s['accuracy']['std']:.4f}{tta}")
    print(f"wrote runs/cv/{s['name']}/report.md, report.json and oof.csv")
    return 0


def cmd_cv_compare(args: argparse.Namespace) -> int:
    """Paired comparison of two CV runs on the same folds: per-fold differences, p-values, a verdict."""
    from dance.training.compare import compare_runs, comparison_text

    comparison = compare_runs(args.run_a, args.run_b, metric=args.metric, tta=args.tta)
    print(json.dumps(comparison.to_dict()) if args.json else comparison_text(comparison))
    return 0


def cmd_attach_cv(args: argparse.Namespace) -> int:
    """Record a CV run's scores in a checkpoint's sidecar and copy its out-of-fold files beside the checkpoint."""
    from dance.training.cv import attach_cv

    scores = attach_cv(args.run, args.weights, force=args.force)
    print(f"{args.weights}: cv macro-F1 {scores['macro_f1_mean']:.4f} ± {scores['macro_f1_std']:.4f}, accuracy "
          f"{scores['accuracy_mean']:.4f} ± {scores['accuracy_std']:.4f} recorded from {args.run}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export a checkpoint to ONNX beside it (`<stem>.onnx`, verified against torch) and/or quantize it to int8."""
    from dance.models import checkpoint, sidecar
    from dance.models.onnx_session import recorded

    if not (args.onnx or args.int8):
        print("error: choose a format: --onnx and/or --int8", file=sys.stderr)
        return 2
    if args.onnx or recorded(sidecar.read_sidecar(sidecar.resolve(args.weights)), "fp32") is None:
        from dance.models.export import export_onnx

        path = export_onnx(checkpoint.load(args.weights), args.output)
        print(f"wrote {path} (verified against torch; `predict` and the app now use ONNX Runtime for these weights)")
    if not args.int8:
        return 0
    from dance.inference.quantize import quantize_checkpoint

    result = quantize_checkpoint(sidecar.resolve(args.weights), args.data, calibration=args.calibration,
                                 log=lambda line: print(line, flush=True))
    c = result.check
    print(f"int8 vs fp32 on {c['images']} labelled images not used for calibration: top-1 agreement "
          f"{c['top1_agreement']:.1%}, largest probability difference {c['max_prob_diff']:.3f}, accuracy "
          f"{c['fp32_accuracy_seen']:.3f} fp32 / {c['int8_accuracy_seen']:.3f} int8 (images it may have trained on)")
    if "holdout_int8" in c:
        h32, h8 = c["holdout_fp32"], c["holdout_int8"]
        print(f"hold-out ({h32['count']} images): accuracy {h32['accuracy']:.3f} fp32 / {h8['accuracy']:.3f} int8, "
              f"macro-F1 {h32['macro_f1']:.3f} / {h8['macro_f1']:.3f}")
    if not result.accepted:
        print(f"int8 refused: {c['refused']}; the fp32 model stays the served one (check stored in the sidecar)")
        return 1
    print(f"wrote {result.path} ({c['size_mb']:.1f} MB; served by default, `--precision fp32` for the other)")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a data set's CSV rows and decode every image, without training."""
    from dance.training.train import check_data

    prepared = check_data(args.data)
    ds = prepared.dataset
    groups = len(set(prepared.groups.tolist()))
    print(f"{prepared.data_dir}: {len(ds)} valid images, {len(ds.classes)} classes, {groups} source-image groups")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Grad-CAM overlay PNG for one image: where the model looked for the predicted (or --class) class."""
    import io

    from dance.data.images import load_image
    from dance.fileio import atomic_write_bytes
    from dance.inference.explain import explain

    source = Path(args.image)
    image = load_image(source, name=str(source))
    picture, name, prob = explain(args.weights, image, args.class_name)
    output = Path(args.output) if args.output else Path.cwd() / f"{source.stem}.cam.png"
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    atomic_write_bytes(output, buffer.getvalue())
    print(f"{source}: Grad-CAM for {name} (p={prob:.3f}) written to {output}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Fit the temperature and the "not sure" threshold on out-of-fold or hold-out predictions; store them in the sidecar."""
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
        meta = {k: v for k, v in ckpt.meta.items() if k not in ("calibration", "unsure_threshold")}
        raw = checkpoint.Checkpoint(ckpt.path, ckpt.model, ckpt.spec, meta)
        preds, source = evaluate_checkpoint(ckpt.path, args.data, "holdout", predictor=serving.from_checkpoint(raw))
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


def cmd_data_import(args: argparse.Namespace) -> int:
    """Check a data-set zip and store it as data/<name>; prints the `dance check` report (exit 1 with problems)."""
    from dance.data import datasets

    info = datasets.import_zip(args.zip, args.name, replace=args.replace)
    report = datasets.validate_set(info.path)
    counts = ", ".join(f"{label} {n}" for label, n in report.counts.items())
    print(f"imported {args.zip} as {info.path}: {len(report.rows)} images that pass ({counts})")
    for problem in report.problems:
        print(f"  problem: {problem}")
    for group in report.duplicates:
        print(f"  near-duplicates: {', '.join(Path(p).name for p in group)}")
    for blocker in report.blockers:
        print(f"not ready to train: {blocker}")
    print(f"train with: python -m dance train --data {info.path} --method probe --probe-views 2")
    return 1 if report.problems else 0


def cmd_data_list(args: argparse.Namespace) -> int:
    """One line per user data set: name, images per class, where it came from."""
    from dance import paths
    from dance.data import datasets
    from dance.data.labels import read_labels

    sets = datasets.list_sets()
    if not sets:
        print(f"no data sets in {paths.user_data_root()} (add one with `python -m dance data import set.zip`)")
    for info in sets:
        try:
            frame = read_labels(info.path / "train.csv", info.path / "train").frame
            counts = ", ".join(f"{k} {v}" for k, v in frame["label"].value_counts().sort_index().items())
        except DanceError as exc:
            counts = f"unreadable ({exc})"
        print(f"{info.name}\t{counts}\t{info.source}")
    return 0


def cmd_bundle_export(args: argparse.Namespace) -> int:
    """Write a checkpoint (weights, sidecar, ONNX when present) as one zip."""
    from dance.fileio import atomic_write_bytes
    from dance.models.bundle import export_bundle

    file_name, data = export_bundle(args.weights)
    target = Path(args.output or file_name)
    atomic_write_bytes(target, data)
    print(f"wrote {target} ({len(data) / 1e6:.1f} MB)")
    return 0


def cmd_bundle_import(args: argparse.Namespace) -> int:
    """Check a checkpoint zip and store it in weights/ (never over an existing name without --replace)."""
    from dance.models.bundle import import_bundle

    stem = import_bundle(args.zip, args.name, replace=args.replace)
    print(f"imported {args.zip} as {stem} (use it with --weights {stem.name})")
    return 0


def _precision_option(parser: argparse.ArgumentParser) -> None:
    """--precision for the commands that serve a model."""
    parser.add_argument("--precision", choices=("int8", "fp32"), default=None,
                        help="ONNX model to run (default: int8 when the checkpoint ships one, else fp32)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command (reusable by other tools)."""
    parser = argparse.ArgumentParser(prog="dance", description="Classify photos of Indian classical dance forms.")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_option(p):
        p.add_argument("--data", help="data folder (else $DANCE_DATA, data/dance, ../shared/data/dance)")

    p = sub.add_parser("train", help="train a model and save a checkpoint")
    data_option(p)
    p.add_argument("--output", help="checkpoint stem (default weights/<model>-<time>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the existing checkpoint named by --output (needed for weights/default too)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run writing to --output")
    _add_train_options(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="classify image or video files, or folders of them")
    p.add_argument("images", nargs="+", help="photos, videos (.mp4 .m4v .mov .webm .mkv .avi) or folders")
    p.add_argument("--weights", default="default", help="checkpoint name in weights/ or path")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--top", type=int, default=3, help="labels shown per image")
    p.add_argument("--tta", action="store_true", help="test-time augmentation (flip + crops)")
    p.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="inference engine (auto: the shipped ONNX model without torch when its hash checks out)")
    _precision_option(p)
    p.add_argument("--fps", type=float, default=VIDEO_FPS,
                   help=f"video frames classified per second of video (default {VIDEO_FPS:g})")
    p.add_argument("--min-segment", type=float, default=VIDEO_MIN_SEGMENT,
                   help=f"seconds a video's answer must hold to start a new segment (default {VIDEO_MIN_SEGMENT:g})")
    p.add_argument("--save", metavar="DIR", help="write <video>.frames.csv, .segments.csv and .json here")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on its hold-out (or all labelled images)")
    data_option(p)
    p.add_argument("--weights", default="default")
    p.add_argument("--split", choices=("holdout", "all"), default="holdout")
    p.add_argument("--output", default="runs/evaluation", help="stem for the .json and .csv written")
    p.add_argument("--tta", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("submit", help="write the HackerEarth submission CSV for test.csv")
    data_option(p)
    p.add_argument("--weights", default="default")
    p.add_argument("--output", default="submission.csv")
    p.add_argument("--tta", action="store_true")
    _precision_option(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("cv", help="k-fold cross-validation, split by source image")
    data_option(p)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--name", help="run name under runs/cv/ (default <model>-<size>-<time>)")
    p.add_argument("--tta", action="store_true", help="test-time augmentation on held-out folds")
    p.add_argument("--save-fold-models", action="store_true",
                   help="keep each fold's model under runs/cv/<name>/folds/ (teachers for a distilled cv run)")
    p.add_argument("--ungrouped", action="store_true",
                   help="plain stratified folds, near-duplicates on both sides (only to compare with published "
                        "numbers; the grouped default is the figure that counts)")
    p.add_argument("--only-repeat", type=int, default=None, metavar="R",
                   help="run only repeat R (0-based) of --repeats, so repeats train in parallel; join with cv-merge")
    _add_train_options(p)
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("cv-merge", help="join the --only-repeat parts of one cv recipe into one run")
    p.add_argument("name", help="name of the merged run under runs/cv/")
    p.add_argument("parts", nargs="+", help="the part runs (runs/cv/<name>), one per repeat")
    p.set_defaults(func=cmd_cv_merge)

    p = sub.add_parser("cv-ensemble", help="score an ensemble of cv runs made on the same folds (no training)")
    p.add_argument("runs", nargs="+", help="cv run folders (runs/cv/<name>), all on the same folds")
    p.add_argument("--name", help="run name under runs/cv/ (default ensemble-<members>)")
    p.add_argument("--tta", action="store_true", help="also score the members' TTA predictions")
    p.set_defaults(func=cmd_cv_ensemble)

    p = sub.add_parser("cv-compare", help="paired comparison of two cv runs on the same folds")
    p.add_argument("run_a", help="baseline cv run folder (runs/cv/<name>)")
    p.add_argument("run_b", help="the run compared with it")
    p.add_argument("--metric", default="macro_f1", help="macro_f1 (default), accuracy, weighted_f1 or f1:<class>")
    p.add_argument("--tta", action="store_true", help="compare the runs' TTA scores")
    p.add_argument("--json", action="store_true", help="print the comparison as one JSON object")
    p.set_defaults(func=cmd_cv_compare)

    p = sub.add_parser("attach-cv", help="record a cv run's scores in a checkpoint trained with the same recipe")
    p.add_argument("run", help="the cv run folder (runs/cv/<name>)")
    p.add_argument("--weights", default="default", help="checkpoint name in weights/ or path")
    p.add_argument("--force", action="store_true", help="attach even if recipe settings other than model and size differ")
    p.set_defaults(func=cmd_attach_cv)

    p = sub.add_parser("export", help="export a checkpoint to ONNX (faster CPU inference)")
    p.add_argument("--onnx", action="store_true", help="write <checkpoint>.onnx")
    p.add_argument("--int8", action="store_true",
                   help="also write <checkpoint>.int8.onnx (static QDQ, calibrated on training images, checked)")
    p.add_argument("--calibration", type=int, default=96, help="training images used to calibrate int8 (default 96)")
    data_option(p)
    p.add_argument("--weights", default="default", help="checkpoint name in weights/ or path")
    p.add_argument("--output", help="file to write (default: beside the checkpoint)")
    p.set_defaults(func=cmd_export)



    p = sub.add_parser("check", help="validate a data set (rows and images) without training")
    data_option(p)
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("data", help="your own data sets under data/: import a zip, list them")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("import", help="check a zip (one folder per class, or images + an Image,target CSV)")
    q.add_argument("zip")
    q.add_argument("--name", required=True, help="the new set's name (its folder under data/)")
    q.add_argument("--replace", action="store_true", help="replace a set with the same name")
    q.set_defaults(func=cmd_data_import)
    data_sub.add_parser("list", help="the data sets under data/").set_defaults(func=cmd_data_list)
    p = sub.add_parser("bundle", help="a checkpoint as one zip: export to share it, import one")
    bundle_sub = p.add_subparsers(dest="bundle_command", required=True)
    q = bundle_sub.add_parser("export", help="write <name>.zip (safetensors + sidecar + ONNX when present)")
    q.add_argument("weights", help="checkpoint name in weights/ or path")
    q.add_argument("--output", help="zip to write (default: ./<name>.zip)")
    q.set_defaults(func=cmd_bundle_export)
    q = bundle_sub.add_parser("import", help="check a checkpoint zip and add it to weights/")
    q.add_argument("zip")
    q.add_argument("--name", help="checkpoint name (default: the one inside the zip)")
    q.add_argument("--replace", action="store_true", help="replace a checkpoint with the same name")
    q.set_defaults(func=cmd_bundle_import)

    p = sub.add_parser("explain", help="Grad-CAM overlay: where the model looked")
    p.add_argument("image")
    p.add_argument("--weights", default="default", help="checkpoint name in weights/ or path")
    p.add_argument("--class", dest="class_name", help="class to explain (default: the predicted one)")
    p.add_argument("--output", help="PNG to write (default: ./<image-stem>.cam.png)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("calibrate", help="fit temperature scaling and the 'not sure' threshold")
    data_option(p)
    p.add_argument("--weights", default="default", help="checkpoint whose sidecar receives the calibration")
    p.add_argument("--oof", help="out-of-fold predictions (runs/cv/<name>/oof.csv); default: the checkpoint's hold-out")
    p.add_argument("--split", choices=("holdout",), default="holdout", help="used when --oof is not given")
    p.add_argument("--target-accuracy", type=float, default=0.9,
                   help="accuracy the answered images must reach; lower confidence is 'not sure' (default 0.9)")
    p.add_argument("--bins", type=int, default=15, help="confidence bins for ECE (default 15)")
    p.add_argument("--dry-run", action="store_true", help="print the fit without writing the sidecar")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("label-issues", help="rank training images whose label looks wrong")
    p.add_argument("--oof", help="out-of-fold predictions (default: the newest runs/cv/*/oof.csv)")
    p.add_argument("--top", type=int, default=20, help="rows printed (default 20)")
    p.add_argument("--output", help="also write every flagged image to this CSV")
    p.set_defaults(func=cmd_label_issues)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors print one line and exit 2, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
