"""Evaluate a checkpoint on labelled images: its recorded hold-out, or every labelled image."""

from __future__ import annotations

import os

import numpy as np

from dance.data.labels import load_labelled
from dance.errors import DataError
from dance.inference import serving
from dance.inference.predict import Predictor
from dance.models.sidecar import holdout_names  # noqa: F401 - also imported from here by pages
from dance.paths import find_data_dir
from dance.trust.interpret import Predictions


def evaluate_checkpoint(
    weights: str | os.PathLike | None, data_dir: str | os.PathLike | None = None, split: str = "holdout",
    tta: bool = False, predictor: Predictor | None = None,
) -> tuple[Predictions, str]:
    """Predictions of a checkpoint on `split` ("holdout" or "all") of the labelled set."""
    predictor = predictor or serving.load(weights, backend="torch")  # scores the weights as trained
    dataset = load_labelled(find_data_dir(data_dir), classes=predictor.classes)
    if split == "holdout":
        wanted = set(holdout_names(predictor.ckpt.meta))
        if not wanted:
            raise DataError(f"{predictor.ckpt.name} was trained on every labelled image, so it has no hold-out; "
                            "use --split all (optimistic) or the cross-validation report.")
        index = [i for i, name in enumerate(dataset.names) if name in wanted]
        dataset = dataset.subset(index)
        label = f"hold-out of {predictor.ckpt.name}"
    else:
        label = f"all labelled images ({predictor.ckpt.name})"
    results = predictor.predict(dataset.paths, tta=tta)
    bad = [r.error for r in results if not r.ok]
    if bad:
        raise DataError("cannot evaluate: " + "; ".join(bad[:5]))
    probs = np.array([[r.probs[c] for c in predictor.classes] for r in results])
    return Predictions(probs, dataset.labels, [str(p) for p in dataset.paths], predictor.classes), label
