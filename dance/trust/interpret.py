"""Evaluation computed once: a `Predictions` object whose metrics, confusion matrix and galleries are cheap views."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

from dance.fileio import atomic_write_json, atomic_write_text
from dance.models.sidecar import suffixed


@dataclass
class Predictions:
    """Class probabilities for labelled images; everything else is derived from these."""

    probs: np.ndarray  # (N, C), rows sum to 1
    targets: np.ndarray  # (N,) integer labels
    paths: list[str]
    classes: list[str]

    def __post_init__(self):
        self.probs = np.asarray(self.probs, dtype=np.float64)
        self.targets = np.asarray(self.targets, dtype=np.int64)
        self.paths = [str(p) for p in self.paths]

    @property
    def preds(self) -> np.ndarray:
        """Predicted class index per image."""
        return self.probs.argmax(1)

    @property
    def confidence(self) -> np.ndarray:
        """Probability of the predicted class."""
        return self.probs.max(1)

    @property
    def losses(self) -> np.ndarray:
        """Cross-entropy of the true class per image."""
        true_p = self.probs[np.arange(len(self.targets)), self.targets]
        return -np.log(np.clip(true_p, 1e-12, 1.0))

    def metrics(self) -> dict[str, float]:
        """Accuracy, macro F1 and weighted F1."""
        labels = list(range(len(self.classes)))
        return {
            "accuracy": float(accuracy_score(self.targets, self.preds)),
            "macro_f1": float(f1_score(self.targets, self.preds, labels=labels, average="macro", zero_division=0)),
            "weighted_f1": float(f1_score(self.targets, self.preds, labels=labels, average="weighted", zero_division=0)),
            "count": int(len(self.targets)),
        }

    def report(self) -> pd.DataFrame:
        """Per-class precision, recall, F1 and support (scikit-learn's classification report)."""
        table = classification_report(
            self.targets, self.preds, labels=list(range(len(self.classes))), target_names=self.classes,
            output_dict=True, zero_division=0,
        )
        frame = pd.DataFrame(table).T.loc[self.classes, ["precision", "recall", "f1-score", "support"]]
        frame["support"] = frame["support"].astype(int)
        return frame.rename(columns={"f1-score": "f1"})

    def confusion(self, normalize: bool = False) -> np.ndarray:
        """Confusion matrix, rows = true class, columns = predicted; row-normalised on request."""
        matrix = confusion_matrix(self.targets, self.preds, labels=list(range(len(self.classes))))
        if normalize:
            sums = matrix.sum(1, keepdims=True)
            return np.divide(matrix, sums, out=np.zeros_like(matrix, dtype=float), where=sums > 0)
        return matrix

    def table(self) -> pd.DataFrame:
        """One row per image: path, name, true, predicted, confidence, loss, correct."""
        return pd.DataFrame({
            "path": self.paths,
            "image": [Path(p).name for p in self.paths],
            "true": [self.classes[i] for i in self.targets],
            "predicted": [self.classes[i] for i in self.preds],
            "confidence": self.confidence,
            "loss": self.losses,
            "correct": self.preds == self.targets,
        })

    def cell(self, true: str, predicted: str) -> pd.DataFrame:
        """Images with the given true and predicted class, highest loss first (a confusion-matrix cell)."""
        frame = self.table()
        chosen = frame[(frame["true"] == true) & (frame["predicted"] == predicted)]
        return chosen.sort_values("loss", ascending=False).reset_index(drop=True)

    def misclassified(self) -> pd.DataFrame:
        """Wrongly predicted images, highest loss first."""
        frame = self.table()
        return frame[~frame["correct"]].sort_values("loss", ascending=False).reset_index(drop=True)

    def top_losses(self, k: int = 12) -> pd.DataFrame:
        """The k images the model finds hardest (largest loss), right or wrong."""
        return self.table().sort_values("loss", ascending=False).head(k).reset_index(drop=True)

    def most_confused(self, min_count: int = 1) -> pd.DataFrame:
        """Off-diagonal (true, predicted, count) pairs, most frequent first."""
        matrix = self.confusion()
        rows = [
            {"true": self.classes[i], "predicted": self.classes[j], "count": int(matrix[i, j])}
            for i in range(len(self.classes)) for j in range(len(self.classes))
            if i != j and matrix[i, j] >= min_count
        ]
        frame = pd.DataFrame(rows, columns=["true", "predicted", "count"])
        return frame.sort_values("count", ascending=False, kind="stable").reset_index(drop=True)

    def save(self, stem: str | os.PathLike) -> tuple[Path, Path]:
        """Write `<stem>.json` (metrics, report, confusion, misclassified) and `<stem>.csv` (per image)."""
        stem = Path(stem)
        summary = {
            "metrics": self.metrics(),
            "classes": self.classes,
            "per_class": self.report().reset_index(names="class").to_dict(orient="records"),
            "confusion": self.confusion().tolist(),
            "misclassified": self.misclassified()[["image", "true", "predicted", "confidence"]].to_dict(orient="records"),
        }
        json_path = atomic_write_json(suffixed(stem, ".json"), summary)
        csv_path = atomic_write_text(suffixed(stem, ".csv"), self.table().drop(columns="path").to_csv(index=False))
        return json_path, csv_path

