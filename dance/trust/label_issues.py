"""Label-issue finder: training images whose given label the model, on out-of-fold predictions, confidently disputes.

The rule is confident learning's (Northcutt, Jiang & Chuang, JAIR 2021): the threshold of class j is
the mean probability of j over the images labelled j (the class's self-confidence); an image is
"confidently" of class j when p_j reaches that threshold, and of the most probable such class when several
do. An image whose confident class differs from its given label is a likely label issue. Issues are
ranked by normalised margin, p(given) - max p(other): the more the model prefers another class, the higher.

Corrections are reviewed by a person and exported as a CSV; the data set itself is never edited.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from dance import paths
from dance.fileio import atomic_write_text
from dance.trust.interpret import Predictions

CORRECTIONS_NAME = "label_corrections.csv"  # written in the runs folder
ACTIONS = ("keep", "relabel", "remove")
ISSUE_COLUMNS = ["path", "image", "given", "suggested", "self_confidence", "suggested_prob", "margin"]
CORRECTION_COLUMNS = ["Image", "given", "action", "new_label", "suggested", "self_confidence"]


def class_thresholds(probs: np.ndarray, targets: np.ndarray, classes: int) -> np.ndarray:
    """Per-class threshold: mean predicted probability of class j over images labelled j (inf when none are)."""
    thresholds = np.full(classes, np.inf)
    for j in range(classes):
        mask = targets == j
        if mask.any():
            thresholds[j] = probs[mask, j].mean()
    return thresholds


def confident_classes(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per image, the most probable class whose probability reaches its threshold; -1 when none does."""
    thresholds = class_thresholds(probs, targets, probs.shape[1])
    above = probs >= thresholds[None, :] - 1e-9  # a mean of equal values can round just above them
    masked = np.where(above, probs, -1.0)
    return np.where(above.any(1), masked.argmax(1), -1)


def find_label_issues(preds: Predictions) -> pd.DataFrame:
    """Likely mislabelled images, most disputed first: path, image, given, suggested, self_confidence, suggested_prob, margin."""
    probs, targets = preds.probs, preds.targets
    rows = np.arange(len(targets))
    confident = confident_classes(probs, targets)
    flagged = np.flatnonzero((confident >= 0) & (confident != targets))
    self_conf = probs[rows, targets]
    others = probs.copy()
    others[rows, targets] = -1.0
    best_other = others.max(1)
    margin = self_conf - best_other
    frame = pd.DataFrame({
        "path": [preds.paths[i] for i in flagged],
        "image": [Path(preds.paths[i]).name for i in flagged],
        "given": [preds.classes[targets[i]] for i in flagged],
        "suggested": [preds.classes[confident[i]] for i in flagged],
        "self_confidence": self_conf[flagged],
        "suggested_prob": probs[flagged, confident[flagged]],
        "margin": margin[flagged],
    }, columns=ISSUE_COLUMNS)
    return frame.sort_values(["margin", "self_confidence"], kind="stable").reset_index(drop=True)


def corrections_frame(issues: pd.DataFrame, decisions: Mapping[str, tuple[str, str | None]]) -> pd.DataFrame:
    """The reviewed images as a table (Image, given, action, new_label, suggested, self_confidence), in issue order.

    `decisions` maps an issue's path to (action, new label); the new label is the given one for "keep",
    empty for "remove".
    """
    records = []
    for row in issues.itertuples(index=False):
        if row.path not in decisions:
            continue
        action, label = decisions[row.path]
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
        new_label = row.given if action == "keep" else (label or "") if action == "relabel" else ""
        records.append({"Image": row.image, "given": row.given, "action": action, "new_label": new_label,
                        "suggested": row.suggested, "self_confidence": round(float(row.self_confidence), 4)})
    return pd.DataFrame(records, columns=CORRECTION_COLUMNS)


def corrections_csv(frame: pd.DataFrame) -> str:
    """CSV text of a corrections table (what the download button and the file hold)."""
    return frame.to_csv(index=False)


def write_corrections(frame: pd.DataFrame, path: str | os.PathLike | None = None) -> Path:
    """Atomically write the corrections CSV (default: label_corrections.csv in the runs folder); the data set is untouched."""
    return atomic_write_text(path or paths.runs_root() / CORRECTIONS_NAME, corrections_csv(frame))
