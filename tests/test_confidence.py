"""The Evaluate page's calibration view, computed in the backend: answered share/accuracy, fitted vs stored calibration."""

from __future__ import annotations

import numpy as np
import pytest

from dance.trust.calibrate import apply_temperature, calibrate, ece
from dance.trust.confidence import answered, calibration_view
from dance.trust.interpret import Predictions


def _preds(seed: int = 0, n: int = 120) -> Predictions:
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 2.5 * np.eye(3)[targets] * (rng.random(n) < 0.7)[:, None]
    probs = np.exp(logits * 2) / np.exp(logits * 2).sum(1, keepdims=True)  # over-confident on purpose
    return Predictions(probs, targets, [f"{i}.jpg" for i in range(n)], ["a", "b", "c"])


def test_answered_counts_images_at_or_above_the_threshold():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.55, 0.45]])
    targets = np.array([0, 1, 1, 0])
    result = answered(probs, targets, 0.6)
    assert result.share == 0.75 and result.accuracy == pytest.approx(2 / 3)
    assert answered(probs, targets, 0.95).accuracy is None and answered(probs, targets, 0.95).share == 0.0
    assert answered(np.zeros((0, 2)), np.zeros(0, dtype=int), 0.5).share == 0.0


def test_out_of_fold_predictions_are_fitted_here_like_dance_calibrate_oof():
    preds = _preds()
    view = calibration_view(preds, "oof")
    fitted = calibrate(preds, "oof")
    assert view.fitted_here and view.calibrated and view.measured_on is None
    assert view.temperature == fitted.temperature and view.threshold == fitted.unsure_threshold
    assert np.allclose(view.calibrated_probs, apply_temperature(preds.probs, fitted.temperature))
    assert view.answered.share == pytest.approx(fitted.coverage)
    assert view.answered.accuracy == pytest.approx(fitted.answered_accuracy)


def test_a_checkpoints_own_calibration_is_quoted_and_measured_here():
    raw = _preds(1)
    t = 1.7
    shown = Predictions(apply_temperature(raw.probs, t), raw.targets, raw.paths, raw.classes)  # as a Predictor gives
    meta = {"calibration": {"temperature": t, "ece_before": 0.2, "ece_after": 0.05, "source": "oof", "count": 99},
            "unsure_threshold": 0.6}
    view = calibration_view(shown, "hold-out", meta)
    assert not view.fitted_here and view.calibrated and (view.ece_before, view.ece_after) == (0.2, 0.05)
    assert view.measured_on == {"source": "oof", "count": 99} and view.threshold == 0.6
    assert view.ece_here[0] == pytest.approx(ece(raw.probs, raw.targets), abs=1e-9)
    assert view.ece_here[1] == pytest.approx(ece(shown.probs, shown.targets))
    assert list(view.reliability["series"].unique()) == ["uncalibrated", f"calibrated (T={t:.2f})"]


def test_an_uncalibrated_checkpoint_shows_only_its_raw_reliability():
    preds = _preds(2)
    view = calibration_view(preds, "hold-out", {})
    assert not view.calibrated and view.temperature == 1.0 and view.threshold == 0.0
    assert view.ece_before == pytest.approx(view.ece_after) == pytest.approx(ece(preds.probs, preds.targets))
    assert list(view.reliability["series"].unique()) == ["uncalibrated"] and view.answered.share == 1.0
