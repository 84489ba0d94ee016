"""Calibrated confidence: temperature scaling, expected calibration error, reliability bins, "not sure" threshold.

Temperature scaling divides every logit by one number T fitted to minimise the negative log-likelihood
on predictions the model did not train on (out-of-fold or hold-out). Only probabilities are stored there,
so their logs serve as logits: softmax(log p / T) equals softmax(z / T) for the original logits z.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from dance.config import CALIBRATION_BINS, TARGET_ACCURACY
from dance.trust.interpret import Predictions

DEFAULT_BINS = CALIBRATION_BINS
DEFAULT_TARGET_ACCURACY = TARGET_ACCURACY
_T_RANGE = (0.05, 20.0)


def _as_arrays(probs, targets) -> tuple[np.ndarray, np.ndarray]:
    """Float64 (N, C) probabilities and int64 (N,) targets, checked for matching lengths."""
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != len(targets):
        raise ValueError(f"expected (N, C) probabilities and N targets, got {probs.shape} and {targets.shape}")
    return probs, targets


def log_probs(probs) -> np.ndarray:
    """Probabilities -> log-probabilities usable as logits (zeros clipped so logs stay finite)."""
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0))


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """Rescale probabilities as softmax(log p / T), the same as dividing the model's logits by T."""
    return np.exp(log_softmax(log_probs(probs) / float(temperature), axis=1))


def nll(probs, targets) -> float:
    """Mean negative log-likelihood of the true classes."""
    probs, targets = _as_arrays(probs, targets)
    return float(-log_probs(probs)[np.arange(len(targets)), targets].mean())


def fit_temperature(probs, targets) -> float:
    """The temperature T minimising the NLL of softmax(log p / T) on these labelled predictions."""
    probs, targets = _as_arrays(probs, targets)
    logits = log_probs(probs)
    rows = np.arange(len(targets))

    def loss(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[rows, targets].mean())

    # Searching log T keeps T positive and treats "twice as hot" and "twice as cold" symmetrically.
    result = minimize_scalar(loss, bounds=tuple(np.log(_T_RANGE)), method="bounded", options={"xatol": 1e-5})
    return float(np.exp(result.x))


def ece(probs, targets, bins: int = DEFAULT_BINS) -> float:
    """Expected calibration error: the count-weighted mean |accuracy - confidence| over equal-width confidence bins."""
    table = reliability_bins(probs, targets, bins)
    if table.empty:
        return 0.0
    weights = table["count"] / table["count"].sum()
    return float((weights * (table["accuracy"] - table["confidence"]).abs()).sum())


def reliability_bins(probs, targets, bins: int = DEFAULT_BINS, series: str = "model") -> pd.DataFrame:
    """Per non-empty confidence bin: mean confidence, accuracy and count (columns series, confidence, accuracy, count)."""
    probs, targets = _as_arrays(probs, targets)
    confidence = probs.max(1)
    correct = (probs.argmax(1) == targets).astype(float)
    # Bin i holds confidences in (i/bins, (i+1)/bins]; the top-1 probability is always >= 1/C > 0.
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            rows.append({"series": series, "confidence": float(confidence[mask].mean()),
                         "accuracy": float(correct[mask].mean()), "count": int(mask.sum())})
    return pd.DataFrame(rows, columns=["series", "confidence", "accuracy", "count"])


def coverage_curve(probs, targets) -> pd.DataFrame:
    """For every threshold t (each distinct confidence, plus 0): share of images with confidence >= t and their accuracy."""
    probs, targets = _as_arrays(probs, targets)
    if len(targets) == 0:
        return pd.DataFrame(columns=["threshold", "coverage", "accuracy"])
    confidence = probs.max(1)
    correct = probs.argmax(1) == targets
    order = np.argsort(-confidence, kind="stable")
    conf_sorted, correct_sorted = confidence[order], correct[order]
    answered = np.arange(1, len(order) + 1)
    accuracy = np.cumsum(correct_sorted) / answered
    # Keep the last position of each run of equal confidences: a threshold answers every tie or none.
    last = np.r_[conf_sorted[1:] != conf_sorted[:-1], True]
    frame = pd.DataFrame({"threshold": conf_sorted[last], "coverage": answered[last] / len(order),
                          "accuracy": accuracy[last]})
    if frame["threshold"].iloc[-1] > 0:
        frame.loc[len(frame)] = {"threshold": 0.0, "coverage": 1.0, "accuracy": float(correct.mean())}
    return frame.sort_values("threshold").reset_index(drop=True)


def choose_threshold(probs, targets, target_accuracy: float = DEFAULT_TARGET_ACCURACY, min_answered: int = 10) -> float:
    """The lowest confidence threshold whose answered images (confidence >= t) reach `target_accuracy`.

    Thresholds answering fewer than `min_answered` images are ignored (their accuracy is noise); when
    none reaches the target, the threshold with the best accuracy among the rest is returned.
    """
    curve = coverage_curve(probs, targets)
    if curve.empty:
        return 0.0
    answered = curve["coverage"] * len(np.asarray(targets))
    usable = curve[answered >= min(min_answered, answered.max())]
    good = usable[usable["accuracy"] >= target_accuracy]
    if not good.empty:
        threshold = float(good["threshold"].min())
    else:
        threshold = float(usable.loc[usable["accuracy"].idxmax(), "threshold"])
    return 0.0 if threshold <= 0 else threshold


@dataclass
class Calibration:
    """A fitted temperature and "not sure" threshold, with the evidence behind them."""

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    unsure_threshold: float
    target_accuracy: float
    coverage: float  # share of the calibration images answered at the threshold
    answered_accuracy: float  # their accuracy
    count: int
    bins: int
    source: str

    def sidecar_fields(self) -> dict:
        """The fields written into a checkpoint sidecar: `calibration` and `unsure_threshold`."""
        return {"calibration": asdict(self), "unsure_threshold": self.unsure_threshold}


def calibrate(preds: Predictions, source: str, target_accuracy: float = DEFAULT_TARGET_ACCURACY,
              bins: int = DEFAULT_BINS) -> Calibration:
    """Fit a temperature on uncalibrated predictions, then pick the "not sure" threshold on the calibrated ones."""
    if len(preds.targets) == 0:
        raise ValueError("no predictions to calibrate on")
    temperature = fit_temperature(preds.probs, preds.targets)
    calibrated = apply_temperature(preds.probs, temperature)
    threshold = choose_threshold(calibrated, preds.targets, target_accuracy)
    answered = calibrated.max(1) >= threshold
    correct = calibrated.argmax(1) == preds.targets
    return Calibration(
        temperature=temperature,
        ece_before=ece(preds.probs, preds.targets, bins), ece_after=ece(calibrated, preds.targets, bins),
        nll_before=nll(preds.probs, preds.targets), nll_after=nll(calibrated, preds.targets),
        unsure_threshold=threshold, target_accuracy=target_accuracy,
        coverage=float(answered.mean()), answered_accuracy=float(correct[answered].mean()) if answered.any() else 0.0,
        count=int(len(preds.targets)), bins=bins, source=source,
    )


def reliability_table(preds: Predictions, temperature: float, bins: int = DEFAULT_BINS,
                      already_calibrated: bool = False) -> pd.DataFrame:
    """Reliability bins before and after temperature scaling, ready for `dance.plots.reliability_figure`.

    Out-of-fold predictions are raw; a calibrated Predictor's (hold-out) predictions already include T,
    so pass `already_calibrated=True` and the raw ones are recovered with temperature 1 / T.
    """
    raw = apply_temperature(preds.probs, 1 / temperature) if already_calibrated else preds.probs
    before = reliability_bins(raw, preds.targets, bins, series="uncalibrated")
    after = reliability_bins(apply_temperature(raw, temperature), preds.targets, bins,
                             series=f"calibrated (T={temperature:.2f})")
    return pd.concat([before, after], ignore_index=True)


def save_calibration(stem: str | os.PathLike, result: Calibration) -> dict:
    """Record the calibration and threshold in the checkpoint's sidecar (atomically); returns the new sidecar."""
    from dance.models.checkpoint import update_sidecar

    return update_sidecar(stem, **result.sidecar_fields())
