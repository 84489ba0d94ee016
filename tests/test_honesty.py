"""dance.trust.honesty: the 1/N 'not sure' rule for uncalibrated checkpoints and the poor-accuracy warning."""

from __future__ import annotations

import json
import shutil

import pytest

from dance.inference import serving
from dance.models import checkpoint
from dance.trust.honesty import accuracy_warning, halfway, measured_accuracy, unsure_rule

CLASSES8 = 8


def test_halfway_sits_between_chance_and_certainty():
    assert halfway(8) == pytest.approx((1 / 8 + 1) / 2)
    assert halfway(2) == pytest.approx(0.75)
    assert halfway(3) == pytest.approx(2 / 3)


def test_uncalibrated_checkpoint_uses_the_rule_and_a_calibrated_one_keeps_its_threshold():
    assert unsure_rule({}, CLASSES8) == (pytest.approx(halfway(8)), False)
    assert unsure_rule({"unsure_threshold": 0.64}, CLASSES8) == (0.64, True)
    assert unsure_rule({"unsure_threshold": None}, CLASSES8)[1] is False


def test_accuracy_warning_names_the_poor_figure_and_where_it_was_measured():
    poor = {"metrics": {"holdout": {"accuracy": 0.0, "count": 12}}}
    text = accuracy_warning(poor, CLASSES8, "quick")
    assert text.startswith("quick is often wrong: 0.0% accuracy on its hold-out of 12 images")
    assert "chance is 12.5%" in text
    good_cv_poor_holdout = {"metrics": {"cv": {"accuracy_mean": 0.78}, "holdout": {"accuracy": 0.1}}}
    assert measured_accuracy(good_cv_poor_holdout) == (0.78, "cross-validation")
    assert accuracy_warning(good_cv_poor_holdout, CLASSES8, "x") is None
    assert "never tested" in accuracy_warning({"metrics": {}}, CLASSES8, "x")


def test_a_low_top_probability_of_an_uncalibrated_checkpoint_reads_not_sure(tiny_checkpoint, tmp_path):
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_checkpoint.with_suffix(suffix), tmp_path / f"fresh{suffix}")
    meta = json.loads((tmp_path / "fresh.json").read_text())
    meta.pop("unsure_threshold", None)
    meta.pop("calibration", None)
    meta["metrics"] = {"holdout": {"accuracy": 0.25, "count": 6}}
    (tmp_path / "fresh.json").write_text(json.dumps(meta))
    predictor = serving.from_checkpoint(checkpoint.load(tmp_path / "fresh"))
    assert predictor.threshold == pytest.approx(halfway(len(predictor.classes)))
    assert not predictor.threshold_calibrated
    assert "often wrong: 25.0% accuracy on its hold-out of 6 images" in predictor.warning
    flat = {c: 1 / len(predictor.classes) + (0.01 if i == 0 else -0.01 / (len(predictor.classes) - 1))
            for i, c in enumerate(predictor.classes)}
    from dance.inference.predict import ImagePrediction

    assert ImagePrediction("x.png", flat, threshold=predictor.threshold).unsure
