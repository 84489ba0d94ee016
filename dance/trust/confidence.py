"""How far a set of predictions' confidence can be trusted: the calibration view the Evaluate page draws.

A checkpoint's predictions already include its temperature (the Predictor applies it); out-of-fold
predictions are raw, so a temperature and a "not sure" threshold are fitted on them here, as
`dance calibrate --oof` would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dance.trust.calibrate import apply_temperature, calibrate, ece, reliability_table
from dance.trust.interpret import Predictions


@dataclass
class Answered:
    """What a "not sure" threshold leaves answered: the share of images and their accuracy (None if none)."""

    share: float
    accuracy: float | None


def answered(probs: np.ndarray, targets: np.ndarray, threshold: float) -> Answered:
    """Share of images whose top probability reaches `threshold`, and the accuracy on those."""
    probs = np.asarray(probs, dtype=float)
    if len(probs) == 0:
        return Answered(0.0, None)
    kept = probs.max(1) >= threshold
    correct = probs.argmax(1) == np.asarray(targets)
    return Answered(float(kept.mean()), float(correct[kept].mean()) if kept.any() else None)


@dataclass
class CalibrationView:
    """Everything the calibration section shows, computed once from one set of predictions."""

    temperature: float
    calibrated: bool  # whether a temperature was fitted at all
    fitted_here: bool  # fitted on these predictions (out-of-fold) rather than read from the checkpoint
    reliability: pd.DataFrame
    calibrated_probs: np.ndarray
    threshold: float
    ece_before: float
    ece_after: float
    ece_here: tuple[float, float] | None  # ECE before -> after on these images, when the headline is the sidecar's
    measured_on: dict[str, Any] | None  # the sidecar's calibration `source` and `count`, when ECE is quoted from it
    answered: Answered


def calibration_view(preds: Predictions, source: str, meta: dict[str, Any] | None = None) -> CalibrationView:
    """The calibration view of `preds`; `meta`: the sidecar of the checkpoint that made them (None: out-of-fold)."""
    if meta is None:
        fitted = calibrate(preds, source)
        probs = apply_temperature(preds.probs, fitted.temperature)
        return CalibrationView(fitted.temperature, True, True, reliability_table(preds, fitted.temperature), probs,
                               fitted.unsure_threshold, fitted.ece_before, fitted.ece_after, None, None,
                               answered(probs, preds.targets, fitted.unsure_threshold))
    block = meta.get("calibration")
    block = block if isinstance(block, dict) else None
    temperature = float(block.get("temperature", 1.0)) if block else 1.0
    threshold = float(meta.get("unsure_threshold", 0.0))
    table = reliability_table(preds, temperature, already_calibrated=True)
    if block is None:
        table = table[table["series"] == "uncalibrated"]
    raw = apply_temperature(preds.probs, 1 / temperature)
    here = (ece(raw, preds.targets), ece(preds.probs, preds.targets))
    quoted = block is not None and "ece_before" in block and "ece_after" in block
    before, after = (float(block["ece_before"]), float(block["ece_after"])) if quoted else here
    measured_on = {"source": block.get("source", "its calibration set"), "count": block.get("count", "?")} \
        if quoted else None
    return CalibrationView(temperature, block is not None, False, table, preds.probs, threshold, before, after,
                           here if quoted else None, measured_on, answered(preds.probs, preds.targets, threshold))
