"""Linear probe: frozen ImageNet features + logistic-regression head folded into an ordinary checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import small_config

from dance.config import AugmentConfig, TrainConfig
from dance.errors import DanceError
from dance.inference import serving
from dance.models import checkpoint
from dance.training.cv import cross_validate
from dance.training.probe import fit_head, head_logits
from dance.training.train import train


def probe_cfg(**changes):
    return small_config(model="effnet-lite0", method="probe", probe_views=3, val_fraction=0.25,
                        augment=AugmentConfig(preset="article"), **changes)


def test_fit_head_folds_standardisation_into_weights():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 1, 5))
    views = base + 0.05 * rng.normal(size=(60, 2, 5))  # two views of each image, nearly identical
    x = views * [1, 10, 100, 0.1, 1] + [0, 5, -3, 1, 2]  # wildly different feature scales
    y = (base[:, 0, 1] > 0).astype(int)
    weight, bias = fit_head(x, y, c=10.0, classes=3)
    preds = head_logits(x[:, 0], weight, bias).argmax(1)
    assert (preds == y).mean() > 0.9
    assert (preds != 2).all()  # a class never seen in training is never predicted


def test_probe_checkpoint_reloads_with_the_holdout_probabilities(synth_data, tmp_path):
    result = train(probe_cfg(), synth_data, tmp_path / "p")
    assert len(result.history) == 1 and result.history[0]["train_acc"] > 0.9
    predictor = serving.from_checkpoint(checkpoint.load(result.checkpoint))
    preds = predictor.predict(result.holdout.paths)
    probs = np.array([[p.probs[c] for c in predictor.classes] for p in preds])
    assert np.allclose(probs, result.holdout.probs, atol=1e-4)
    assert result.holdout.metrics()["accuracy"] >= 0.8  # the classes are easy: coloured squares and stripes


def test_probe_cv_reports_tta_from_mirrored_views(synth_data, tmp_path):
    result = cross_validate(probe_cfg(), synth_data, k=2, name="p", tta=True, out_root=tmp_path)
    assert result.summary["method"] == "probe" and result.summary["feature_seconds"] > 0
    assert result.summary["macro_f1"]["mean"] > 0.7 and result.summary["tta_metrics"] is not None


def test_probe_needs_a_pretrained_backbone(synth_data, tmp_path):
    with pytest.raises(DanceError, match="pretrained backbone"):
        train(TrainConfig(model="seed-cnn", method="probe", image_size=64), synth_data, tmp_path / "x")
