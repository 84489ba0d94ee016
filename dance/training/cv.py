"""Honest cross-validation: stratified k-fold grouped by source image, out-of-fold probabilities, reports.

Each run writes `runs/cv/<name>/oof.csv` (one row per training image: its fold, label and
out-of-fold probabilities), `report.json` and `report.md` (per-fold and mean ± std metrics).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from dance import paths
from dance.config import CV_FOLDS, CV_REPEATS, CVConfig, TrainConfig
from dance.data.splits import kfold_splits
from dance.errors import DanceError, DataError
from dance.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from dance.markup import md_escape
from dance.models import checkpoint
from dance.models.spec import RunSpec, resolve_run_spec
from dance.paths import find_data_dir
from dance.training.distill import training_set
from dance.training.engine import Callback, device_name, fit, pick_device, predict_logits, softmax_np
from dance.training.probe import cached_views, fit_head, probe_model, view_probs
from dance.training.train import (
    PreparedData,
    build_state,
    check_settings,
    eval_loader,
    load_teachers,
    make_loader,
    prepare_data,
    sidecar_meta,
)
from dance.training.transforms import build_train_transform
from dance.trust.interpret import Predictions


@dataclass
class CVResult:
    """Out-of-fold predictions, per-fold metrics and where the report was written."""

    oof: Predictions
    folds: list[dict]
    summary: dict
    out_dir: Path | None


def _mean_std(values: Sequence[float]) -> dict:
    """Mean and sample standard deviation."""
    arr = np.asarray(values, dtype=float)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0}


def cross_validate(
    cfg: TrainConfig,
    data_dir: str | os.PathLike | None = None,
    k: int = CV_FOLDS,
    repeats: int = CV_REPEATS,
    name: str | None = None,
    tta: bool = False,
    out_root: Path | None = None,
    save: bool = True,
    callbacks: list[Callback] = (),
    prepared: PreparedData | None = None,
    fold_progress=None,
    command: str | None = None,
    save_fold_models: bool = False,
    grouped: bool = True,
    feature_cache: Path | None = None,
    only_repeat: int | None = None,
) -> CVResult:
    """Train one model per fold (k folds x repeats) and collect out-of-fold probabilities for every image.

    With repeats > 1 each image gets one held-out prediction per repeat; the saved probabilities are their mean
    (`oof.csv`), and each repeat's own are kept too (`oof-r<n>.csv`, what an ensemble of runs is scored on).
    `grouped=False` uses the plain stratified split (near-duplicates on both sides; reported as such).
    `feature_cache`: a folder where probe runs keep their backbone features for the next run with the same views.
    `only_repeat`: run just that repeat's k folds (same folds and seeds as in the full run), so the repeats of one
    recipe can train in parallel jobs; `python -m dance cv-merge` joins them into one run.
    `save_fold_models` keeps each fold's model as `<run>/folds/fold-<n>` (a teacher for a distilled CV run,
    whose `--teacher` then names `<run>/folds/fold-{fold}`).
    """
    check_settings(cfg)  # the same ranges as train, before anything is decoded or written
    cv_problems = CVConfig(folds=k, repeats=repeats).problems()
    if cv_problems:
        raise DanceError(f"Invalid cross-validation settings: {'; '.join(cv_problems)}.")
    run, device = resolve_run_spec(cfg), pick_device(cfg.device)
    prepared = prepared or prepare_data(cfg, data_dir, run=run)
    ds = prepared.dataset
    splits = kfold_splits(ds.labels, prepared.groups, k=k, seed=cfg.seed, repeats=repeats, grouped=grouped)
    if only_repeat is not None and not 0 <= only_repeat < repeats:
        raise DataError(f"--only-repeat must be between 0 and {repeats - 1} (there are {repeats} repeats).")
    selected = [n for n in range(len(splits)) if only_repeat is None or n // k == only_repeat]
    name = name or f"{cfg.model}-{run.input_size}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out_dir = (out_root or paths.cv_root()) / name if save else None
    fold_run = _FoldRun(cfg, run, prepared, device, list(callbacks), tta, k,
                        out_dir if save_fold_models else None, feature_cache)
    tally = _OutOfFold(len(ds), len(ds.classes), repeats, tta)
    folds = []
    for number in selected:
        train_idx, val_idx = splits[number]
        if grouped and set(prepared.groups[train_idx]) & set(prepared.groups[val_idx]):
            raise DataError("internal error: a source image sits on both sides of a fold")
        started = time.perf_counter()
        probs, tta_probs, history, unlabelled_used = fold_run.predict(number, train_idx, val_idx)
        tally.add(val_idx, number // k, number % k, probs, tta_probs)
        folds.append(_fold_record(number, k, ds, val_idx, probs, tta_probs, history, started, unlabelled_used))
        if fold_progress:
            fold_progress(len(folds), len(selected), folds[-1])
    oof = tally.predictions(ds)
    summary = _summary(cfg, run, ds, oof, folds, device, name, command, k, repeats, tta, grouped, fold_run)
    summary["only_repeat"] = only_repeat
    if out_dir is not None:
        _write_run(out_dir, ds, tally, splits, k, summary, sorted({n // k for n in selected}))
    return CVResult(oof, folds, summary, out_dir)


class _FoldRun:
    """Trains (or, for the probe, fits the head of) each fold's model and returns its held-out probabilities."""

    def __init__(self, cfg: TrainConfig, run: RunSpec, prepared: PreparedData, device, callbacks: list[Callback],
                 tta: bool, k: int, fold_models: Path | None, feature_cache: Path | None):
        self.cfg, self.run, self.prepared, self.device = cfg, run, prepared, device
        self.callbacks, self.tta, self.k, self.fold_models = callbacks, tta, k, fold_models
        self.train_tf = build_train_transform(cfg.augment, run.augment_size, run.mean, run.std)
        self.features, self.feature_seconds, self.features_cached = None, 0.0, False
        if cfg.method == "probe":  # backbone features of every view, computed once for all folds
            model = probe_model(cfg, run, len(prepared.dataset.classes))
            self.features, self.feature_seconds, self.features_cached = cached_views(
                cfg, run, model, prepared.tensors, feature_cache)

    def predict(self, number: int, train_idx: np.ndarray, val_idx: np.ndarray):
        """(held-out probabilities, their TTA version or None, the fold's history, unlabelled images trained on)."""
        if self.features is not None:  # the probe: only the head is fitted per fold
            labels, classes = self.prepared.dataset.labels, len(self.prepared.dataset.classes)
            weight, bias = fit_head(self.features[train_idx], labels[train_idx], self.cfg.probe_c, classes,
                                    self.cfg.class_weights)
            tta_probs = view_probs(self.features[val_idx], weight, bias, tta=True) if self.tta else None
            return view_probs(self.features[val_idx], weight, bias), tta_probs, [], 0
        return self._train(number, train_idx, val_idx)

    def _train(self, number: int, train_idx: np.ndarray, val_idx: np.ndarray):
        """Fine-tune a fresh model on the fold's training images (seed + fold number) and score its held-out ones."""
        cfg, prepared, ds = self.cfg, self.prepared, self.prepared.dataset
        fold_cfg = TrainConfig.from_dict({**cfg.to_dict(), "seed": cfg.seed + number})
        val_names = [ds.paths[i].name for i in val_idx]
        teacher = None
        if cfg.teacher:  # each fold's own teacher: one trained on another split would leak this fold's answers
            teacher = load_teachers(cfg, number, prepared, self.run, val_names, f"fold {number}'s validation set")
        # unlabelled photos (teacher targets only) join, except copies of this fold's validation images
        tensors, all_labels, index, used = training_set(prepared.tensors, ds.labels, train_idx, val_idx,
                                                        prepared.unlabelled, prepared.joint_groups)
        train_loader = make_loader(tensors, all_labels, index, self.train_tf, cfg.batch_size, True, fold_cfg.seed,
                                   cfg.workers)
        val_loader = eval_loader(prepared, val_idx, self.run)
        state = build_state(fold_cfg, self.run, len(ds.classes), len(train_loader), teacher, ds.labels[train_idx])
        fit(fold_cfg, state, train_loader, None, self.device, self.callbacks)
        if self.fold_models is not None:
            split = {"val_fraction": round(len(val_idx) / len(ds), 4), "seed": cfg.seed, "k": self.k, "fold": number,
                     "val_images": val_names}
            checkpoint.save(self.fold_models / "folds" / f"fold-{number}", state.model,
                            sidecar_meta(fold_cfg, self.run, prepared, history=state.history, split=split))
        probs = softmax_np(predict_logits(state.model, val_loader, self.device)[0])
        tta_probs = None
        if self.tta:  # the same fold model, scored both ways, so the TTA effect is measured on equal terms
            tta_probs = softmax_np(predict_logits(state.model, val_loader, self.device, tta=True)[0])
        return probs, tta_probs, state.history, len(used)


class _OutOfFold:
    """Sums each image's held-out probabilities over repeats (plain and TTA), keeps each repeat's, and its fold."""

    def __init__(self, images: int, classes: int, repeats: int, tta: bool):
        self.sum = np.zeros((images, classes))
        self.tta_sum = np.zeros_like(self.sum) if tta else None
        self.per_repeat = np.zeros((repeats, images, classes))
        self.per_repeat_tta = np.zeros_like(self.per_repeat) if tta else None
        self.seen = np.zeros(images, dtype=int)
        self.fold_of = np.full(images, -1)

    def add(self, index: np.ndarray, repeat: int, fold: int, probs: np.ndarray, tta_probs: np.ndarray | None) -> None:
        """Record one fold's held-out probabilities."""
        self.sum[index] += probs
        self.per_repeat[repeat, index] = probs
        if self.tta_sum is not None:
            self.tta_sum[index] += tta_probs
            self.per_repeat_tta[repeat, index] = tta_probs
        self.seen[index] += 1
        self.fold_of[index] = fold

    def predictions(self, ds, tta: bool = False) -> Predictions:
        """The mean out-of-fold probabilities (or their TTA version) as Predictions."""
        total = self.tta_sum if tta else self.sum
        return Predictions(total / np.maximum(self.seen, 1)[:, None], ds.labels, [str(p) for p in ds.paths],
                           ds.classes)


def _fold_record(number: int, k: int, ds, val_idx: np.ndarray, probs: np.ndarray, tta_probs: np.ndarray | None,
                 history: list[dict], started: float, unlabelled_used: int = 0) -> dict:
    """One fold's line of the report: where it sits, its metrics (and TTA's), time and final training loss."""
    targets = ds.labels[val_idx]
    record = {
        "repeat": number // k, "fold": number % k, "images": int(len(val_idx)),
        "val_sha1": fold_fingerprint([ds.paths[i].name for i in val_idx]),
        **_fold_metrics(probs, targets, ds.classes),
        "train_seconds": round(time.perf_counter() - started, 1),
        "final_train_loss": history[-1]["train_loss"] if history else math.nan,
        "unlabelled_used": unlabelled_used,
    }
    if tta_probs is not None:
        record["tta"] = _fold_metrics(tta_probs, targets, ds.classes)
    return record


def _summary(cfg: TrainConfig, run: RunSpec, ds, oof: Predictions, folds: list[dict], device, name: str,
             command: str | None, k: int, repeats: int, tta: bool, grouped: bool, fold_run: _FoldRun) -> dict:
    """report.json: settings, mean ± std of each metric over folds, out-of-fold metrics, per-class F1, timings."""
    metrics = ("accuracy", "macro_f1", "weighted_f1")
    feature_seconds = fold_run.feature_seconds
    return {
        "name": name, "command": command, "model": cfg.model, "method": cfg.method, "image_size": run.input_size,
        "k": k, "repeats": repeats, "tta": tta, "protocol": "grouped" if grouped else "ungrouped",
        "images": len(ds), "device": device_name(device),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": cfg.to_dict(),
        **{metric: _mean_std([f[metric] for f in folds]) for metric in metrics},
        "oof": oof.metrics(), "per_class_f1": oof.report()["f1"].round(4).to_dict(),
        "class_f1": {c: _mean_std([f["class_f1"][c] for f in folds]) for c in ds.classes},
        "tta_metrics": {metric: _mean_std([f["tta"][metric] for f in folds]) for metric in metrics} if tta else None,
        "feature_seconds": feature_seconds,  # probe: backbone features, computed once for all folds
        "features_cached": fold_run.features_cached,  # ... by an earlier run with the same views (its time above)
        "train_seconds_total": round(feature_seconds + sum(f["train_seconds"] for f in folds), 1),
        "folds": folds,
    }


def _write_run(out_dir: Path, ds, tally: _OutOfFold, splits, k: int, summary: dict, repeats_run: list[int]) -> None:
    """oof.csv (each repeat's oof-r<n>.csv and oof-tta-r<n>.csv, oof-tta.csv), report.json and report.md."""
    oof = tally.predictions(ds)
    save_oof(out_dir / "oof.csv", oof, tally.fold_of)
    if len(tally.per_repeat) > 1:
        for r in repeats_run:
            repeat_fold = np.full(len(ds), -1)
            for number, (_, val_idx) in enumerate(splits[r * k:(r + 1) * k]):
                repeat_fold[val_idx] = number
            save_oof(out_dir / f"oof-r{r}.csv", Predictions(tally.per_repeat[r], ds.labels, oof.paths, ds.classes),
                     repeat_fold)
            if tally.per_repeat_tta is not None:
                save_oof(out_dir / f"oof-tta-r{r}.csv",
                         Predictions(tally.per_repeat_tta[r], ds.labels, oof.paths, ds.classes), repeat_fold)
    if tally.tta_sum is not None:
        save_oof(out_dir / "oof-tta.csv", tally.predictions(ds, tta=True), tally.fold_of)
    atomic_write_json(out_dir / "report.json", summary)
    atomic_write_text(out_dir / "report.md", report_markdown(summary))


def _fold_metrics(probs: np.ndarray, targets: np.ndarray, classes: Sequence[str]) -> dict:
    """Accuracy, macro-F1, weighted-F1 and each class's F1 of one fold's probabilities."""
    preds, labels = probs.argmax(1), list(range(len(classes)))
    per_class = f1_score(targets, preds, labels=labels, average=None, zero_division=0)
    return {
        "accuracy": float((preds == targets).mean()),
        "macro_f1": float(f1_score(targets, preds, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(targets, preds, labels=labels, average="weighted", zero_division=0)),
        "class_f1": {c: float(v) for c, v in zip(classes, per_class)},
    }


def fold_fingerprint(val_names: Sequence[str]) -> str:
    """SHA-1 of a fold's sorted validation image names: two runs are paired only on identical folds."""
    return hashlib.sha1("\n".join(sorted(val_names)).encode()).hexdigest()


def save_oof(path: Path, oof: Predictions, fold_of: np.ndarray) -> None:
    """Write out-of-fold probabilities as CSV: image, path, target, fold, one column per class."""
    frame = pd.DataFrame({"image": [Path(p).name for p in oof.paths], "path": oof.paths,
                          "target": [oof.classes[t] for t in oof.targets], "fold": fold_of})
    for i, c in enumerate(oof.classes):
        frame[f"prob_{c}"] = oof.probs[:, i]
    atomic_write_text(path, frame.to_csv(index=False))


def load_oof(path: str | os.PathLike) -> Predictions:
    """Read an oof.csv back into Predictions; raises DataError for a malformed file."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"image": str, "path": str, "target": str})
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read out-of-fold predictions ({exc}).") from None
    classes = [c[5:] for c in frame.columns if c.startswith("prob_")]
    if not classes or not {"path", "target"} <= set(frame.columns):
        raise DataError(f"{path}: not an out-of-fold predictions file (needs path, target and prob_* columns).")
    unknown = set(frame["target"]) - set(classes)
    if unknown:
        raise DataError(f"{path}: targets {sorted(unknown)} have no probability column.")
    lookup = {c: i for i, c in enumerate(classes)}
    probs = frame[[f"prob_{c}" for c in classes]].to_numpy(dtype=float)
    return Predictions(probs, frame["target"].map(lookup).to_numpy(), _locate(frame), classes)


def _locate(frame: pd.DataFrame) -> list[str]:
    """Image paths of an oof.csv; a run made on another machine or checkout is re-rooted at this data set's train/."""
    paths = frame["path"].tolist()
    if all(Path(p).is_file() for p in paths) or "image" not in frame.columns:
        return paths
    try:
        train_dir = find_data_dir() / "train"
    except DataError:
        return paths
    return [p if Path(p).is_file() else str(train_dir / Path(str(name)).name) for p, name in zip(paths, frame["image"])]


def list_oof_runs(root: Path | None = None) -> list[Path]:
    """oof.csv files of every saved CV run under `root` (default: the runs folder's cv/), newest first."""
    root = root or paths.cv_root()
    if not root.is_dir():
        return []
    return sorted(root.glob("*/oof.csv"), key=lambda p: p.stat().st_mtime, reverse=True)


def report_markdown(summary: dict) -> str:
    """The CV report as Markdown: settings, mean ± std, per fold, per class."""
    def pm(key):
        return f"{summary[key]['mean']:.4f} ± {summary[key]['std']:.4f}"

    protocol = ("stratified and grouped by source image" if summary.get("protocol", "grouped") == "grouped" else
                "**ungrouped** (plain stratified: near-duplicate photos sit on both sides of a split, so this "
                "score is inflated — for comparison with published numbers only, not the figure that counts)")
    lines = [
        f"# Cross-validation: {md_escape(summary['name'])}", "",
        f"- model `{summary['model']}` ({summary.get('method', 'finetune')}) at {summary['image_size']} px; "
        f"{summary['k']}-fold x {summary['repeats']} repeat(s), {protocol}; TTA: {summary['tta']}",
        f"- {summary['images']} images; device: {summary['device']}; total train time "
        f"{summary['train_seconds_total']} s; {summary['created']}",
        f"- command: `{summary.get('command') or 'python API'}`", "",
        "| metric | mean ± std over folds |", "|---|---|",
        f"| accuracy | {pm('accuracy')} |", f"| macro-F1 | {pm('macro_f1')} |",
        f"| weighted-F1 | {pm('weighted_f1')} |",
    ]
    if summary.get("tta_metrics"):
        t = summary["tta_metrics"]
        lines += [f"| {label} with TTA | {t[key]['mean']:.4f} ± {t[key]['std']:.4f} |"
                  for key, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"),
                                     ("weighted_f1", "weighted-F1"))]
    lines += [
        "", "| repeat | fold | images | accuracy | macro-F1 | weighted-F1 | train s |", "|---|---|---|---|---|---|---|",
    ]
    for f in summary["folds"]:
        lines.append(f"| {f['repeat']} | {f['fold']} | {f['images']} | {f['accuracy']:.4f} | {f['macro_f1']:.4f} | "
                     f"{f['weighted_f1']:.4f} | {f.get('train_seconds', '—')} |")
    lines += ["", "| class | out-of-fold F1 | F1 mean ± std over folds |", "|---|---|---|"]
    spread = summary.get("class_f1", {})
    lines += [f"| {md_escape(c)} | {v:.4f} | "
              + (f"{spread[c]['mean']:.4f} ± {spread[c]['std']:.4f} |" if c in spread else "— |")
              for c, v in summary["per_class_f1"].items()]
    return "\n".join(lines) + "\n"


# Settings that may differ between a CV run and the checkpoint it describes: the CV trains per-fold teachers
# and never holds out beyond its folds, and workers/device change speed, not the recipe.
_RECIPE_FREE = {"teacher", "val_fraction", "workers", "device"}


def recipe_differences(run_config: dict, checkpoint_config: dict) -> list[str]:
    """Names of the recipe settings on which a CV run and a checkpoint disagree."""
    run, ckpt = TrainConfig.from_dict(run_config).to_dict(), TrainConfig.from_dict(checkpoint_config).to_dict()
    return sorted(k for k in run if k not in _RECIPE_FREE and run[k] != ckpt[k])


def attach_cv(run_dir: str | os.PathLike, stem: str | os.PathLike, force: bool = False) -> dict:
    """Copy a CV run's report and out-of-fold files to weights/cv/<name>/ and record its scores in the sidecar.

    The run must have cross-validated the checkpoint's own recipe (`force` accepts other differences than
    architecture and input size); returns the `metrics.cv` block written.
    """
    run_dir = Path(run_dir)
    try:
        report = json.loads((run_dir / "report.json").read_text())
        model, size, config = report["model"], report["image_size"], report["config"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{run_dir}: not a cross-validation run with a readable report.json "
                        f"({type(exc).__name__}).") from None
    stem = checkpoint.resolve(stem)
    meta = checkpoint.read_sidecar(stem)
    if model != meta["arch"] or size != meta["image_size"]:
        raise DataError(f"{run_dir} cross-validated {model} at {size} px, but {stem.name} is {meta['arch']} at "
                        f"{meta['image_size']} px.")
    differences = recipe_differences(config, meta.get("config", {}))
    if differences and not force:
        raise DataError(f"{run_dir} used another recipe than {stem.name} (differs in: {', '.join(differences)}); "
                        "pass --force to attach it anyway.")
    target = stem.parent / "cv" / stem.name
    for name in ("oof.csv", "oof-tta.csv", "report.json", "report.md"):
        if (run_dir / name).is_file():
            atomic_write_bytes(target / name, (run_dir / name).read_bytes())
    scores = {f"{metric}_{stat}": report[metric][stat]
              for metric in ("macro_f1", "accuracy", "weighted_f1") for stat in ("mean", "std")}
    if report.get("tta_metrics"):
        scores.update({f"tta_{metric}_{stat}": report["tta_metrics"][metric][stat]
                       for metric in ("macro_f1", "accuracy") for stat in ("mean", "std")})
    cv_block = {**scores, "k": report.get("k"), "repeats": report.get("repeats"), "device": report.get("device"),
                "source": f"cv/{stem.name}/ beside the checkpoint ({report.get('command') or 'python API'})"}
    checkpoint.update_sidecar(stem, metrics={**meta.get("metrics", {}), "cv": cv_block})
    return cv_block
