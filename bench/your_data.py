"""The quick mode of the Your data page, timed: zip -> import -> check -> decode -> probe + checkpoint (your_data.md).

Builds a zip of `--per-class` real photos of `--classes` dance forms (one folder per class), then runs what the
page runs (datasets.import_zip, datasets.validate_set, then the TrainJob's prepare_data + train() with
recipes.recipe("quick"), which includes the ONNX export) in temp folders, so nothing is written into the project.
Run: `python -m bench.your_data`.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from dance.data.labels import load_labelled
from dance.paths import find_data_dir


def build_zip(data_dir: Path, classes: int, per_class: int) -> bytes:
    """A folder-per-class zip of the first `per_class` photos of the first `classes` dance forms."""
    labelled = load_labelled(data_dir)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for c, name in enumerate(labelled.classes[:classes]):
            paths = [p for p, label in zip(labelled.paths, labelled.labels) if label == c][:per_class]
            for path in paths:
                zf.write(path, arcname=f"{name}/{path.name}")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Time each step once (wall seconds, and in brackets CPU seconds of this process) and print a Markdown row."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--data", help="the dance data set (default: found as usual)")
    args = parser.parse_args(argv)
    archive = build_zip(find_data_dir(args.data), args.classes, args.per_class)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DANCE_USER_DATA"] = str(Path(tmp) / "data")
        os.environ["DANCE_WEIGHTS_DIR"] = str(Path(tmp) / "weights")
        from dance.data import datasets
        from dance.training import recipes
        from dance.training.train import prepare_data, train

        marks = [(time.perf_counter(), time.process_time())]

        def mark() -> None:
            marks.append((time.perf_counter(), time.process_time()))

        info = datasets.import_zip(archive, "bench", display="bench.zip")
        mark()
        report = datasets.validate_set(info.path)
        mark()
        cfg = recipes.recipe(recipes.QUICK, report.counts)
        prepared = prepare_data(cfg, info.path)
        mark()
        result = train(cfg, info.path, Path(tmp) / "weights" / "bench", prepared=prepared)
        mark()
    metrics = result.holdout.metrics() if result.holdout is not None else {}
    wall = [b[0] - a[0] for a, b in zip(marks, marks[1:])]
    cpu = [b[1] - a[1] for a, b in zip(marks, marks[1:])]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cells = " | ".join(f"{w:.1f} s ({c:.1f})" for w, c in zip(wall, cpu))
    print(f"| {args.classes} x {args.per_class} | {cells} | **{sum(wall):.1f} s ({sum(cpu):.1f})** | "
          f"{metrics.get('accuracy', float('nan')):.2f} ({metrics.get('count', 0)} images) | {os.cpu_count()} cores, "
          f"torch {torch.get_num_threads()} threads, load average {load:.1f} | {platform.machine()} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
