"""Confident-learning ranking on synthetic out-of-fold predictions with planted label errors; corrections export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dance import label_issues as li
from dance.interpret import Predictions

CLASSES = ["bharatanatyam", "kathak", "odissi", "manipuri"]


def noisy_predictions(n_per_class: int = 30, seed: int = 0, planted: int = 6):
    """A decent model's probabilities (~90 % right, some confident mistakes) with `planted` labels flipped.

    The flipped images are ones the model finds clear (true class >= 0.8), as a mislabelled clear photo would be;
    returns the predictions, the flipped rows and the true classes.
    """
    rng = np.random.default_rng(seed)
    c = len(CLASSES)
    truth = np.repeat(np.arange(c), n_per_class)
    logits = rng.normal(0, 0.8, size=(len(truth), c))
    logits[np.arange(len(truth)), truth] += rng.uniform(1.0, 4.0, size=len(truth))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    given = truth.copy()
    clear = np.flatnonzero(probs[np.arange(len(truth)), truth] >= 0.8)
    flipped = rng.choice(clear, size=planted, replace=False)
    given[flipped] = (truth[flipped] + rng.integers(1, c, size=planted)) % c
    paths = [f"/data/train/{i}.jpg" for i in range(len(truth))]
    return Predictions(probs, given, paths, CLASSES), flipped, truth


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_planted_errors_rank_on_top_with_the_true_class_suggested(seed):
    preds, flipped, truth = noisy_predictions(seed=seed)
    issues = li.find_label_issues(preds)
    assert list(issues.columns) == li.ISSUE_COLUMNS
    top = issues.head(len(flipped))
    planted = {f"{i}.jpg" for i in flipped}
    assert set(top["image"]) == planted
    for row in top.itertuples():
        i = int(row.image.split(".")[0])
        assert row.given == CLASSES[preds.targets[i]] and row.suggested == CLASSES[truth[i]]
        assert row.suggested_prob > row.self_confidence
    assert issues["margin"].is_monotonic_increasing
    assert len(issues) < 3 * len(flipped)  # a short list to review, not the whole data set


def test_thresholds_are_mean_self_confidence_and_clean_labels_give_no_issues():
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    targets = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(li.class_thresholds(probs, targets, 2), [0.8, 0.7])
    np.testing.assert_array_equal(li.confident_classes(probs, targets), [0, -1, 1, -1])
    assert li.find_label_issues(Predictions(probs, targets, list("abcd"), ["x", "y"])).empty


def test_a_disputed_image_by_hand():
    # Image d is labelled x but gets 0.85 for y (y's threshold is 0.85): flagged, suggested y, margin -0.7.
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.15, 0.85], [0.15, 0.85]])
    targets = np.array([0, 0, 1, 0])
    issues = li.find_label_issues(Predictions(probs, targets, ["a", "b", "c", "d"], ["x", "y"]))
    assert issues[["image", "given", "suggested"]].values.tolist() == [["d", "x", "y"]]
    assert issues.loc[0, "margin"] == pytest.approx(-0.7) and issues.loc[0, "self_confidence"] == pytest.approx(0.15)


def test_corrections_export_in_issue_order_and_atomic(tmp_path):
    preds, _, _ = noisy_predictions()
    issues = li.find_label_issues(preds)
    paths = issues["path"].tolist()
    decisions = {paths[2]: ("remove", None), paths[0]: ("relabel", issues.loc[0, "suggested"]), paths[1]: ("keep", None)}
    frame = li.corrections_frame(issues, decisions)
    assert list(frame.columns) == li.CORRECTION_COLUMNS
    assert frame["Image"].tolist() == issues["image"].head(3).tolist()
    assert frame["action"].tolist() == ["relabel", "keep", "remove"]
    assert frame["new_label"].tolist() == [issues.loc[0, "suggested"], issues.loc[1, "given"], ""]
    out = li.write_corrections(frame, tmp_path / "runs" / "label_corrections.csv")
    back = pd.read_csv(out, keep_default_na=False)
    assert back["Image"].tolist() == frame["Image"].tolist() and back["new_label"].tolist() == frame["new_label"].tolist()
    with pytest.raises(ValueError, match="unknown action"):
        li.corrections_frame(issues, {paths[0]: ("delete", None)})
