"""The quick mode of the Your data page, timed: zip -> import -> check -> linear probe -> checkpoint (bench/your_data.md).

Builds a zip of `--per-class` real photos of `--classes` dance forms (one folder per class), then runs exactly what
the page runs (datasets.import_zip, datasets.validate_set, train() with recipes.recipe("quick")) in temp folders,
so nothing is written into the project. Run: `python -m bench.your_data`.
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
    """Time each step once and print a Markdown table row."""
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
        from dance.training.train import train

        started = time.perf_counter()
        info = datasets.import_zip(archive, "bench", display="bench.zip")
        imported = time.perf_counter()
        report = datasets.validate_set(info.path)
        checked = time.perf_counter()
        result = train(recipes.recipe(recipes.QUICK, report.counts), info.path, Path(tmp) / "weights" / "bench")
        trained = time.perf_counter()
    metrics = result.holdout.metrics() if result.holdout is not None else {}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"| {args.classes} x {args.per_class} | {imported - started:.1f} s | {checked - imported:.1f} s | "
          f"{trained - checked:.1f} s | **{trained - started:.1f} s** | {metrics.get('accuracy', float('nan')):.2f} "
          f"({metrics.get('count', 0)} images) | {os.cpu_count()} cores, torch {torch.get_num_threads()} threads, "
          f"load average {load:.1f}, {platform.processor() or platform.machine()} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
