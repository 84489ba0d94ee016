"""Temperature scaling, ECE, reliability bins, coverage curve and the "not sure" threshold on synthetic predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import copy_checkpoint
from scipy.special import softmax

from dance.trust import calibrate as cal
from dance.trust.interpret import Predictions


def synthetic(true_temperature: float, n: int = 3000, classes: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities softmax(z / T_true) for logits z under which labels are drawn exactly from softmax(z)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.0, size=(n, classes))
    logits[np.arange(n), rng.integers(0, classes, n)] += 2.0
    true_p = softmax(logits, axis=1)
    targets = np.array([rng.choice(classes, p=p) for p in true_p])
    return softmax(logits / true_temperature, axis=1), targets


def test_over_confident_gets_temperature_above_one_and_lower_ece():
    probs, targets = synthetic(true_temperature=0.4)  # logits scaled up 2.5x: over-confident
    t = cal.fit_temperature(probs, targets)
    assert 2.1 < t < 2.9
    fixed = cal.apply_temperature(probs, t)
    assert cal.ece(probs, targets) > 0.1
    assert cal.ece(fixed, targets) < 0.03
    assert cal.nll(fixed, targets) < cal.nll(probs, targets)


def test_under_confident_gets_temperature_below_one():
    probs, targets = synthetic(true_temperature=2.0, seed=1)
    t = cal.fit_temperature(probs, targets)
    assert 0.4 < t < 0.6
    assert cal.ece(cal.apply_temperature(probs, t), targets) < cal.ece(probs, targets) / 2


def test_calibrated_data_keeps_temperature_near_one():
    probs, targets = synthetic(true_temperature=1.0, seed=2)
    assert abs(cal.fit_temperature(probs, targets) - 1.0) < 0.1


def test_apply_temperature_keeps_ranking_and_sums_to_one():
    probs, _ = synthetic(0.5, n=50)
    hot = cal.apply_temperature(probs, 3.0)
    np.testing.assert_allclose(hot.sum(1), 1.0)
    assert (hot.argmax(1) == probs.argmax(1)).all()
    assert (hot.max(1) < probs.max(1)).all()
    np.testing.assert_allclose(cal.apply_temperature(probs, 1.0), probs, atol=1e-9)


def test_ece_by_hand():
    # Two images at confidence 0.9 (one right): |0.5 - 0.9| = 0.4; two at 0.6 (both right): |1 - 0.6| = 0.4.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    targets = np.array([0, 1, 1, 1])
    assert cal.ece(probs, targets, bins=10) == pytest.approx(0.4)
    table = cal.reliability_bins(probs, targets, bins=10, series="x")
    assert list(table.columns) == ["series", "confidence", "accuracy", "count"]
    np.testing.assert_allclose(table[["confidence", "accuracy", "count"]].to_numpy(float), [[0.6, 1.0, 2], [0.9, 0.5, 2]])
    assert set(table["series"]) == {"x"}


def test_coverage_curve_by_hand():
    probs = np.array([[0.95, 0.05], [0.8, 0.2], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    targets = np.array([0, 0, 1, 1, 0])
    curve = cal.coverage_curve(probs, targets)
    assert list(curve.columns) == ["threshold", "coverage", "accuracy"]
    np.testing.assert_allclose(curve.to_numpy(float), [
        [0.0, 1.0, 3 / 5], [0.55, 1.0, 3 / 5], [0.7, 4 / 5, 3 / 4], [0.8, 3 / 5, 2 / 3], [0.95, 1 / 5, 1.0]])


def test_threshold_is_lowest_reaching_target():
    probs = np.array([[0.95, 0.05], [0.8, 0.2], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    targets = np.array([0, 0, 1, 1, 0])
    assert cal.choose_threshold(probs, targets, target_accuracy=0.7, min_answered=1) == pytest.approx(0.7)
    assert cal.choose_threshold(probs, targets, target_accuracy=0.5, min_answered=1) == 0.0
    # Unreachable target: the best accuracy among thresholds answering >= 3 (0.7 answers 4 at 3/4).
    assert cal.choose_threshold(probs, targets, target_accuracy=0.99, min_answered=3) == pytest.approx(0.7)


def test_calibrate_stores_temperature_and_threshold_in_sidecar(tiny_checkpoint, tmp_path):

    from dance.inference import serving
    from dance.models import checkpoint

    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "copy")
    probs, targets = synthetic(true_temperature=0.4, classes=3, n=600, seed=3)
    result = cal.calibrate(Predictions(probs, targets, [f"{i}.jpg" for i in range(600)], ["a", "b", "c"]),
                           source="synthetic", target_accuracy=0.9)
    assert result.temperature > 1.5 and result.ece_after < result.ece_before
    assert result.answered_accuracy >= 0.9 and 0 < result.coverage < 1
    cal.save_calibration(stem, result)
    predictor = serving.from_checkpoint(checkpoint.load(stem))
    assert predictor.temperature == pytest.approx(result.temperature)
    assert predictor.threshold == pytest.approx(result.unsure_threshold)
    assert predictor.ckpt.meta["calibration"]["source"] == "synthetic"


def test_cli_calibrates_from_oof_and_predict_says_not_sure(tiny_checkpoint, synth_data, tmp_path, capsys):

    from dance.cli import main
    from dance.models.checkpoint import read_sidecar, update_sidecar
    from dance.training.cv import save_oof

    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "cal")
    probs, targets = synthetic(true_temperature=0.4, classes=3, n=400, seed=4)
    classes = read_sidecar(stem)["classes"]
    oof = tmp_path / "oof.csv"
    save_oof(oof, Predictions(probs, targets, [f"/d/{i}.jpg" for i in range(400)], classes), np.arange(400) % 5)

    assert main(["calibrate", "--weights", str(stem), "--oof", str(oof), "--target-accuracy", "0.95"]) == 0
    out = capsys.readouterr().out
    meta = read_sidecar(stem)
    cal_meta = meta["calibration"]
    assert cal_meta["temperature"] > 1.5 and cal_meta["ece_after"] < cal_meta["ece_before"]
    assert cal_meta["source"].endswith("oof.csv") and f"{cal_meta['temperature']:.3f}" in out
    assert 0 < meta["unsure_threshold"] < 1 and cal_meta["answered_accuracy"] >= 0.95
    # The highest threshold allowed: every answer becomes "not sure", shown with its top two classes.
    update_sidecar(stem, unsure_threshold=1.0)
    assert main(["predict", str(synth_data / "test" / "t0.png"), "--weights", str(stem)]) == 0
    line = capsys.readouterr().out.strip()
    assert ": not sure: " in line and " or " in line and sum(c in line for c in classes) == 2


def test_reliability_table_has_both_series_and_undoes_an_applied_temperature():
    probs, targets = synthetic(true_temperature=0.5, n=800, classes=4, seed=5)
    preds = Predictions(probs, targets, [str(i) for i in range(800)], list("abcd"))
    t = cal.fit_temperature(probs, targets)
    table = cal.reliability_table(preds, t)
    assert list(table["series"].unique()) == ["uncalibrated", f"calibrated (T={t:.2f})"]
    assert table.groupby("series", sort=False)["count"].sum().tolist() == [800, 800]
    shown = Predictions(cal.apply_temperature(probs, t), targets, preds.paths, preds.classes)
    pd.testing.assert_frame_equal(cal.reliability_table(shown, t, already_calibrated=True), table, atol=1e-9)
    np.testing.assert_allclose(cal.apply_temperature(cal.apply_temperature(probs, t), 1 / t), probs, atol=1e-9)
