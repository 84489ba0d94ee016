"""How much a checkpoint's answers can be trusted: its 'not sure' rule and a warning when its tested accuracy is poor.

A checkpoint calibrated with `dance calibrate` records its own threshold. One without it (a fresh run from the Train
page) still must not look confident at 15 % when chance is 12.5 %, so it falls back to a rule relative to the number
of classes: an answer needs a top probability at least halfway from chance (1/N) to certainty. The same halfway mark
judges accuracy: a model whose cross-validated or hold-out accuracy is below it gets a visible warning.
"""

from __future__ import annotations

import math


def halfway(n_classes: int) -> float:
    """The point halfway between chance (1 / N) and certainty: 0.5625 for 8 classes, 0.667 for 3, 0.75 for 2."""
    chance = 1 / max(1, n_classes)
    return (chance + 1) / 2


def unsure_rule(meta: dict, n_classes: int) -> tuple[float, bool]:
    """(top probability below which the answer is 'not sure', whether it was calibrated for this checkpoint)."""
    value = meta.get("unsure_threshold")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value), True
    return halfway(n_classes), False


def measured_accuracy(meta: dict) -> tuple[float, str] | None:
    """(accuracy, where it was measured) preferring cross-validation over the hold-out; None when never tested."""
    metrics = meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {}
    cv = metrics.get("cv") if isinstance(metrics.get("cv"), dict) else {}
    holdout = metrics.get("holdout") if isinstance(metrics.get("holdout"), dict) else {}
    if isinstance(cv.get("accuracy_mean"), (int, float)):
        return float(cv["accuracy_mean"]), "cross-validation"
    if isinstance(holdout.get("accuracy"), (int, float)):
        count = holdout.get("count")
        return float(holdout["accuracy"]), f"its hold-out of {count} images" if count else "its hold-out"
    return None


def accuracy_warning(meta: dict, n_classes: int, name: str) -> str | None:
    """One sentence to show beside every answer when the checkpoint's tested accuracy is poor or unknown, else None."""
    tested = measured_accuracy(meta)
    if tested is None:
        return (f"{name} was never tested on images it did not train on (no hold-out, no cross-validation), so "
                "nobody knows how often it is right.")
    accuracy, where = tested
    bar = halfway(n_classes)
    if accuracy >= bar:
        return None
    return (f"{name} is often wrong: {accuracy:.1%} accuracy on {where} (chance is {1 / max(1, n_classes):.1%}, "
            f"and a usable model should reach at least {bar:.1%}). Treat its answers as guesses.")
