"""Predictor and ImagePrediction directly: batching, bad files, progress, thresholds, the calibration switch."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import encode
from PIL import Image

from dance.inference import serving
from dance.inference.predict import ImagePrediction, Predictor, image_files
from dance.models import checkpoint


def _jpeg(colour) -> bytes:
    return encode(Image.new("RGB", (50, 40), colour), "JPEG")


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint) -> Predictor:
    return serving.load(tiny_checkpoint, backend="torch")


def test_predict_keeps_order_reports_bad_files_and_calls_progress(predictor):
    sources = [(f"img{i}.jpg", _jpeg((20 * i, 90, 200 - 20 * i))) for i in range(5)]
    sources.insert(2, ("bad.jpg", b"not an image"))
    calls = []
    preds = predictor.predict(sources, batch_size=2, progress=lambda done, total: calls.append((done, total)))
    assert [p.image for p in preds] == [name for name, _ in sources]
    assert [p.ok for p in preds] == [True, True, False, True, True, True]
    assert "bad.jpg" in preds[2].error and preds[2].label is None
    assert calls[-1] == (6, 6) and all(total == 6 for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls) and len(calls) >= 3
    # batching changes nothing: one image alone gets the same probabilities as inside a batch
    alone = predictor.predict([sources[0]])[0]
    assert np.allclose(list(alone.probs.values()), list(preds[0].probs.values()), atol=1e-6)


def test_probabilities_sum_to_one_and_rank_descending(predictor):
    pred = predictor.predict([("x.jpg", _jpeg((200, 30, 30)))])[0]
    assert sum(pred.probs.values()) == pytest.approx(1.0)
    ranked = [p for _, p in pred.ranked]
    assert ranked == sorted(ranked, reverse=True) and pred.confidence == ranked[0]
    assert set(pred.to_dict()) == {"image", "label", "confidence", "unsure", "probs"}


def test_unsure_follows_the_threshold():
    pred = ImagePrediction("a", {"x": 0.55, "y": 0.45}, threshold=0.6)
    assert pred.unsure and pred.label == "x"
    assert not ImagePrediction("a", {"x": 0.65, "y": 0.35}, threshold=0.6).unsure
    assert not ImagePrediction("a", error="a: broken").unsure
    assert ImagePrediction("a", error="a: broken").to_dict() == {"image": "a", "error": "a: broken"}


def test_uncalibrated_checkpoint_gives_the_raw_softmax(tiny_checkpoint):
    ckpt = checkpoint.load(tiny_checkpoint)
    ckpt.meta = {**ckpt.meta, "calibration": {"temperature": 3.0}, "unsure_threshold": 0.7}
    raw = ckpt.uncalibrated()
    assert raw.temperature == 1.0 and "unsure_threshold" not in raw.meta and raw.model is ckpt.model
    assert ckpt.temperature == 3.0  # the original keeps its calibration
    source = [("x.jpg", _jpeg((30, 200, 30)))]
    hot = serving.from_checkpoint(ckpt).predict(source)[0]
    cold = serving.from_checkpoint(raw).predict(source)[0]
    assert hot.threshold == 0.7 and cold.threshold != 0.7  # the stored threshold is gone (the default rule applies)
    assert max(cold.probs.values()) > max(hot.probs.values())  # T = 3 flattens the calibrated answer


def test_image_files_expands_folders_and_keeps_files(tmp_path):
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "a.JPG").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in image_files([tmp_path])] == ["a.JPG", "b.png"]
    assert image_files([tmp_path / "notes.txt"]) == [tmp_path / "notes.txt"]
