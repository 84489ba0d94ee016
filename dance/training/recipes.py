"""Recipes for training on a person's own data set: quick (a linear probe on frozen features) or full (fine-tune)."""

from __future__ import annotations

import os
from typing import Mapping

from dance.config import TrainConfig
from dance.errors import DataError

QUICK, FULL = "quick", "full"
MODES = {QUICK: "Quick: a linear probe on frozen EfficientNet-Lite0 features (seconds on a CPU)",
         FULL: "Full: fine-tune the whole EfficientNet-Lite0 (minutes on a CPU, usually more accurate)"}
HOLDOUT_MIN = 5  # images per class before a hold-out fifth is kept aside (a 5-fold split needs 5 of each)


def holdout_fraction(counts: Mapping[str, int]) -> float:
    """0.2 when every class can spare a fifth for the hold-out, else 0 (train on everything, no hold-out score)."""
    return 0.2 if counts and min(counts.values()) >= HOLDOUT_MIN else 0.0


def recipe(mode: str, counts: Mapping[str, int]) -> TrainConfig:
    """The TrainConfig of a mode for a set with these class counts."""
    val = holdout_fraction(counts)
    if mode == QUICK:
        return TrainConfig(model="effnet-lite0", method="probe", probe_views=2, val_fraction=val)  # plain + mirror
    if mode == FULL:
        return TrainConfig(model="effnet-lite0", epochs=10, batch_size=16, val_fraction=val)
    raise DataError(f"Unknown training mode {mode!r}; use {' or '.join(MODES)}.")


def cv_folds(counts: Mapping[str, int]) -> int:
    """Folds for cross-validating a set: 5, or fewer when the smallest class is smaller; at least 2."""
    smallest = min(counts.values()) if counts else 0
    if smallest < 2:
        raise DataError("Cross-validation needs at least 2 images in every class.")
    return min(5, smallest)


def cross_validate_set(folder: str | os.PathLike, counts: Mapping[str, int], name: str):
    """Grouped k-fold CV of the quick recipe on a set (features once, a head per fold); the run goes to runs/cv."""
    from dance.training.cv import cross_validate

    k = cv_folds(counts)
    return cross_validate(recipe(QUICK, counts), folder, k=k, name=name,
                          command=f"python -m dance cv --data {folder} --folds {k} --method probe --probe-views 2")
