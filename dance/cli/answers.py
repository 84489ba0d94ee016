"""Commands that answer with a checkpoint: predict, submit, explain, export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dance.cli.common import add_data, add_precision, add_weights
from dance.config import BACKENDS, INT8_CALIBRATION_IMAGES, TOP_LABELS, VIDEO_FPS, VIDEO_MIN_SEGMENT
from dance.errors import DanceError
from dance.paths import SUBMISSION_FILE


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


def add_predict(sub) -> None:
    """`dance predict`."""
    p = sub.add_parser("predict", help="classify image or video files, or folders of them")
    p.add_argument("images", nargs="+", help="photos, videos (.mp4 .m4v .mov .webm .mkv .avi) or folders")
    add_weights(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--top", type=int, default=TOP_LABELS, help=f"labels shown per image (default: {TOP_LABELS})")
    p.add_argument("--tta", action="store_true", help="test-time augmentation (flip + crops)")
    p.add_argument("--backend", choices=BACKENDS, default=BACKENDS[0],
                   help="inference engine (auto: the shipped ONNX model without torch when its hash checks out)")
    add_precision(p)
    p.add_argument("--fps", type=float, default=VIDEO_FPS,
                   help=f"video frames classified per second of video (default {VIDEO_FPS:g})")
    p.add_argument("--min-segment", type=float, default=VIDEO_MIN_SEGMENT,
                   help=f"seconds a video's answer must hold to start a new segment (default {VIDEO_MIN_SEGMENT:g})")
    p.add_argument("--save", metavar="DIR", help="write <video>.frames.csv, .segments.csv and .json here")
    p.set_defaults(func=cmd_predict)


def cmd_submit(args: argparse.Namespace) -> int:
    """Write the HackerEarth submission CSV (Image,target) for test.csv."""
    from dance.data.labels import load_unlabelled
    from dance.fileio import atomic_write_bytes
    from dance.inference import serving
    from dance.inference.submission import submission_csv
    from dance.paths import find_data_dir

    paths = load_unlabelled(find_data_dir(args.data))
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


def add_submit(sub) -> None:
    """`dance submit`."""
    p = sub.add_parser("submit", help="write the HackerEarth submission CSV for test.csv")
    add_data(p)
    add_weights(p)
    p.add_argument("--output", default=SUBMISSION_FILE, help=f"default: {SUBMISSION_FILE}")
    p.add_argument("--tta", action="store_true")
    add_precision(p)
    p.set_defaults(func=cmd_submit)


def cmd_explain(args: argparse.Namespace) -> int:
    """Grad-CAM overlay PNG for one image: where the model looked for the predicted (or --class) class."""
    import io

    from dance.data.images import load_image
    from dance.fileio import atomic_write_bytes
    from dance.inference.explain import explain

    source = Path(args.image)
    picture, name, prob = explain(args.weights, load_image(source, name=str(source)), args.class_name)
    output = Path(args.output) if args.output else Path.cwd() / f"{source.stem}.cam.png"
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    atomic_write_bytes(output, buffer.getvalue())
    print(f"{source}: Grad-CAM for {name} (p={prob:.3f}) written to {output}")
    return 0


def add_explain(sub) -> None:
    """`dance explain`."""
    p = sub.add_parser("explain", help="Grad-CAM overlay: where the model looked")
    p.add_argument("image")
    add_weights(p)
    p.add_argument("--class", dest="class_name", help="class to explain (default: the predicted one)")
    p.add_argument("--output", help="PNG to write (default: ./<image-stem>.cam.png)")
    p.set_defaults(func=cmd_explain)


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
    return _report_int8(result)


def _report_int8(result) -> int:
    """The int8 check on stdout; 1 when the int8 model was refused."""
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


def add_export(sub) -> None:
    """`dance export`."""
    p = sub.add_parser("export", help="export a checkpoint to ONNX (faster CPU inference)")
    p.add_argument("--onnx", action="store_true", help="write <checkpoint>.onnx")
    p.add_argument("--int8", action="store_true",
                   help="also write <checkpoint>.int8.onnx (static QDQ, calibrated on training images, checked)")
    p.add_argument("--calibration", type=int, default=INT8_CALIBRATION_IMAGES,
                   help=f"training images used to calibrate int8 (default {INT8_CALIBRATION_IMAGES})")
    add_data(p)
    add_weights(p)
    p.add_argument("--output", help="file to write (default: beside the checkpoint)")
    p.set_defaults(func=cmd_export)
