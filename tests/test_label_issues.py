"""Confident-learning ranking on synthetic out-of-fold predictions with planted label errors; corrections export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import plain
from helpers import copy_checkpoint

from dance.trust import label_issues as li
from dance.trust.interpret import Predictions

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


def test_cli_prints_ranking_from_oof_file(tmp_path, capsys):
    from dance.cli import main
    from dance.training.cv import save_oof

    preds, flipped, _ = noisy_predictions()
    oof = tmp_path / "oof.csv"
    save_oof(oof, preds, np.arange(len(preds.targets)) % 5)
    out_csv = tmp_path / "issues.csv"
    assert main(["label-issues", "--oof", str(oof), "--top", "3", "--output", str(out_csv)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "images look mislabelled" in lines[0] and "suggested" in lines[1]
    shown = [line.split()[0] for line in lines[2:5]]
    assert set(shown) <= {f"{i}.jpg" for i in flipped} and len(shown) == 3
    assert len(pd.read_csv(out_csv)) == len(li.find_label_issues(preds))
    assert main(["label-issues", "--oof", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err


def test_review_page_relabels_and_exports_without_touching_data(tiny_checkpoint, synth_data, tmp_path, monkeypatch):
    from pathlib import Path

    from conftest import SYNTH_CLASSES
    from streamlit.testing.v1 import AppTest

    from dance.training import cv
    from dance.training.cv import save_oof
    from dance.ui.widgets import md_escape

    weights = tmp_path / "weights"
    copy_checkpoint(tiny_checkpoint, weights, "default")
    monkeypatch.setenv("DANCE_WEIGHTS_DIR", str(weights))
    # Out-of-fold predictions for the synthetic training images: right and confident, except one flipped label.
    paths = sorted((synth_data / "train").glob("*.jpg"))
    truth = np.array([SYNTH_CLASSES.index(p.name.rstrip("0123456789.jpg")) for p in paths])
    probs = np.full((len(paths), 3), 0.05)
    probs[np.arange(len(paths)), truth] = 0.9
    given = truth.copy()
    given[0] = (truth[0] + 1) % 3
    oof = tmp_path / "cv" / "run" / "oof.csv"
    save_oof(oof, Predictions(probs, given, [str(p) for p in paths], SYNTH_CLASSES), np.arange(len(paths)) % 3)
    monkeypatch.setattr(cv, "list_oof_runs", lambda root=None: [oof])
    before = (synth_data / "train.csv").read_text()

    page = str(Path(__file__).resolve().parents[1] / "dance" / "ui" / "pages" / "label_issues.py")
    at = AppTest.from_file(page, default_timeout=120).run()
    assert not at.exception, at.exception
    assert any("1** of 24 images look mislabelled" in m.value for m in at.markdown)
    captions = [plain(c) for element in at.image for c in element.captions]
    assert paths[0].name in captions  # the photo, and Grad-CAM overlays for the given and the suggested class
    assert sum("where default sees" in c for c in captions) == 2
    assert any(f"Image **1** of 1: {md_escape(paths[0].name)}" in m.value for m in at.markdown)
    assert at.selectbox(key="li_label_0").value == SYNTH_CLASSES[truth[0]]
    at.button(key="li_relabel").click().run()
    assert not at.exception, at.exception
    corrections = at.dataframe[-1].value
    assert corrections[["Image", "given", "action", "new_label"]].values.tolist() == [
        [paths[0].name, SYNTH_CLASSES[given[0]], "relabel", SYNTH_CLASSES[truth[0]]]]
    assert (synth_data / "train.csv").read_text() == before


def test_ties_with_the_threshold_count_as_confident():
    # Class y's threshold is the mean of seven 0.9s, which rounds to just above 0.9 in floating point.
    assert np.mean([0.9] * 7) > 0.9
    probs = np.array([[0.1, 0.9]] * 8 + [[0.9, 0.1]] * 3)
    targets = np.array([1] * 7 + [0] * 4)
    issues = li.find_label_issues(Predictions(probs, targets, list("abcdefghijk"), ["x", "y"]))
    assert issues["image"].tolist() == ["h"]
