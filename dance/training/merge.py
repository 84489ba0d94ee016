"""Join the parts of one repeated CV run that trained in parallel (`cv --only-repeat R`) into one run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from dance import paths
from dance.errors import DataError
from dance.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from dance.training.compare import read_report
from dance.training.cv import _mean_std, load_oof, report_markdown, save_oof
from dance.trust.interpret import Predictions

METRICS = ("accuracy", "macro_f1", "weighted_f1")
SAME = ("model", "method", "image_size", "k", "repeats", "protocol", "config", "tta", "images")


def merge_runs(parts: Sequence[str | os.PathLike], name: str, out_root: Path | None = None) -> dict:
    """One run from `--only-repeat` parts of the same recipe (each repeat once); returns the merged summary."""
    dirs = [Path(p) for p in parts]
    reports = [read_report(d) for d in dirs]
    first = reports[0]
    for d, r in zip(dirs, reports):
        differing = [key for key in SAME if r.get(key) != first.get(key)]
        if differing:
            raise DataError(f"{d} is not a part of the same run as {dirs[0]} (differs in: {', '.join(differing)}).")
    repeats = [r.get("only_repeat") for r in reports]
    if None in repeats or len(set(repeats)) != len(repeats):
        raise DataError("cv-merge joins runs made with distinct --only-repeat values (each repeat once).")
    order = np.argsort(repeats)
    dirs, reports = [dirs[i] for i in order], [reports[i] for i in order]
    folds = [f for r in reports for f in r["folds"]]
    out_dir = (out_root or paths.cv_root()) / name
    tta = bool(first.get("tta"))
    per_repeat, per_repeat_tta = [], []
    for d, r in zip(dirs, reports):
        rep = r["only_repeat"]
        for stem, store in (("oof", per_repeat), ("oof-tta", per_repeat_tta)) if tta else (("oof", per_repeat),):
            source = d / (f"{stem}-r{rep}.csv" if first["repeats"] > 1 else f"{stem}.csv")
            if not source.is_file():
                raise DataError(f"{d}: {source.name} is missing.")
            store.append(load_oof(source))
            atomic_write_bytes(out_dir / f"{stem}-r{rep}.csv", source.read_bytes())
    base = per_repeat[0]
    fold_of = pd.read_csv(out_dir / f"oof-r{reports[0]['only_repeat']}.csv", usecols=["fold"])["fold"].to_numpy()
    oof = Predictions(np.mean([p.probs for p in per_repeat], axis=0), base.targets, base.paths, base.classes)
    save_oof(out_dir / "oof.csv", oof, fold_of)
    if tta:
        save_oof(out_dir / "oof-tta.csv", Predictions(np.mean([p.probs for p in per_repeat_tta], axis=0),
                                                      base.targets, base.paths, base.classes), fold_of)
    summary = {
        **first, "name": name, "only_repeat": None, "parts": [r["name"] for r in reports],
        "command": " ; ".join(r.get("command") or "python API" for r in reports),
        **{m: _mean_std([f[m] for f in folds]) for m in METRICS},
        "oof": oof.metrics(), "per_class_f1": oof.report()["f1"].round(4).to_dict(),
        "class_f1": {c: _mean_std([f["class_f1"][c] for f in folds]) for c in base.classes},
        "tta_metrics": {m: _mean_std([f["tta"][m] for f in folds]) for m in METRICS} if tta else None,
        "feature_seconds": round(sum(r.get("feature_seconds", 0) for r in reports), 1),
        "train_seconds_total": round(sum(r["train_seconds_total"] for r in reports), 1),
        "folds": folds,
    }
    atomic_write_json(out_dir / "report.json", summary)
    atomic_write_text(out_dir / "report.md", report_markdown(summary))
    return summary
