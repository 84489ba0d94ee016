"""An ensemble of CV runs scored honestly: each fold's ensemble uses only the members' models of that fold.

Every member's out-of-fold probability for an image comes from its model that never saw the image's fold, so
averaging the members' out-of-fold log-probabilities, fold by fold, is exactly the score of an ensemble of
their fold models — provided the members ran on identical folds, which is checked (fold fingerprints).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from dance import paths
from dance.errors import DataError
from dance.fileio import atomic_write_json, atomic_write_text
from dance.training.compare import read_report
from dance.training.cv import _fold_metrics, _mean_std, fold_fingerprint, load_oof, report_markdown, save_oof
from dance.trust.interpret import Predictions

METRICS = ("accuracy", "macro_f1", "weighted_f1")


def _oof_file(run: Path, repeats: int, repeat: int, tta: bool) -> Path:
    """A member's out-of-fold file for one repeat (oof.csv itself when the run has one repeat)."""
    stem = "oof-tta" if tta else "oof"
    path = run / (f"{stem}.csv" if repeats == 1 else f"{stem}-r{repeat}.csv")
    if not path.is_file():
        raise DataError(f"{run}: has no {path.name}" + (" (cross-validate it with --tta)" if tta else
                        " (per-repeat files are written since repeats are scored per fold)") + ".")
    return path


def _mean_log_probs(members: Sequence[Predictions]) -> np.ndarray:
    """Normalised geometric mean of the members' probabilities (= averaged log-probabilities)."""
    logp = np.mean([np.log(np.clip(m.probs, 1e-12, 1.0)) for m in members], axis=0)
    probs = np.exp(logp - logp.max(1, keepdims=True))
    return probs / probs.sum(1, keepdims=True)


def ensemble_runs(runs: Sequence[str | os.PathLike], name: str | None = None, tta: bool = False,
                  out_root: Path | None = None, command: str | None = None) -> dict:
    """Score the ensemble of CV runs fold by fold; writes runs/cv/<name>/ like a CV run and returns its summary."""
    if len(runs) < 2:
        raise DataError("an ensemble needs at least two cross-validation runs.")
    dirs = [Path(r) for r in runs]
    reports = [read_report(d) for d in dirs]
    first = reports[0]
    keys = [(f["repeat"], f["fold"], f.get("val_sha1")) for f in first["folds"]]
    for d, r in zip(dirs, reports):
        if [(f["repeat"], f["fold"], f.get("val_sha1")) for f in r["folds"]] != keys or None in [k[2] for k in keys]:
            raise DataError(f"{d} did not run on the same folds as {dirs[0]}; ensemble only runs with the same data, "
                            "--folds, --repeats, --seed and protocol.")
    k, repeats = int(first["k"]), int(first["repeats"])
    present = sorted({f["repeat"] for f in first["folds"]})  # all, or the one of an --only-repeat run
    folds, repeat_probs, repeat_tta, fold_of = [], [], [], None
    for position, r in enumerate(present):
        members = [load_oof(_oof_file(d, repeats, r, False)) for d in dirs]
        fold_col = pd.read_csv(_oof_file(dirs[0], repeats, r, False), usecols=["fold"])["fold"].to_numpy()
        base = members[0]
        for d, m in zip(dirs, members):
            if [Path(p).name for p in m.paths] != [Path(p).name for p in base.paths] or m.classes != base.classes:
                raise DataError(f"{d}: its out-of-fold images or classes differ from {dirs[0]}'s.")
        probs = _mean_log_probs(members)
        tta_probs = _mean_log_probs([load_oof(_oof_file(d, repeats, r, True)) for d in dirs]) if tta else None
        repeat_probs.append(probs)
        repeat_tta.append(tta_probs)
        fold_of = fold_col if fold_of is None else fold_of
        for fold in range(k):
            idx = np.nonzero(fold_col == fold)[0]
            sha = fold_fingerprint([Path(base.paths[i]).name for i in idx])
            if sha != keys[position * k + fold][2]:
                raise DataError(f"{dirs[0]}: the fold column of its out-of-fold file does not match its report.")
            record = {"repeat": r, "fold": fold, "images": int(len(idx)), "val_sha1": sha,
                      **_fold_metrics(probs[idx], base.targets[idx], base.classes)}
            if tta:
                record["tta"] = _fold_metrics(tta_probs[idx], base.targets[idx], base.classes)
            folds.append(record)
    oof = Predictions(np.mean(repeat_probs, axis=0), base.targets, base.paths, base.classes)
    name = name or "ensemble-" + "+".join(r["name"] for r in reports)
    summary = {
        "name": name, "command": command, "model": " + ".join(r["model"] for r in reports), "method": "ensemble",
        "members": [r["name"] for r in reports], "image_size": "/".join(str(r["image_size"]) for r in reports),
        "k": k, "repeats": repeats, "only_repeat": first.get("only_repeat"), "tta": tta,
        "protocol": first.get("protocol", "grouped"),
        "images": len(base.targets), "device": " + ".join(sorted({r["device"] for r in reports})),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "config": {},
        **{m: _mean_std([f[m] for f in folds]) for m in METRICS},
        "oof": oof.metrics(), "per_class_f1": oof.report()["f1"].round(4).to_dict(),
        "class_f1": {c: _mean_std([f["class_f1"][c] for f in folds]) for c in base.classes},
        "tta_metrics": {m: _mean_std([f["tta"][m] for f in folds]) for m in METRICS} if tta else None,
        "feature_seconds": 0.0,
        "train_seconds_total": round(sum(r["train_seconds_total"] for r in reports), 1),  # the members' training
        "folds": folds,
    }
    out_dir = (out_root or paths.cv_root()) / name
    save_oof(out_dir / "oof.csv", oof, fold_of)
    if tta:
        save_oof(out_dir / "oof-tta.csv", Predictions(np.mean(repeat_tta, axis=0), base.targets, base.paths,
                                                      base.classes), fold_of)
    if repeats > 1:
        for position, r in enumerate(present):
            fold_col = pd.read_csv(_oof_file(dirs[0], repeats, r, False), usecols=["fold"])["fold"].to_numpy()
            save_oof(out_dir / f"oof-r{r}.csv", Predictions(repeat_probs[position], base.targets, base.paths,
                                                            base.classes), fold_col)
            if tta:
                save_oof(out_dir / f"oof-tta-r{r}.csv", Predictions(repeat_tta[position], base.targets, base.paths,
                                                                    base.classes), fold_col)
    atomic_write_json(out_dir / "report.json", summary)
    atomic_write_text(out_dir / "report.md", report_markdown(summary))
    return summary
