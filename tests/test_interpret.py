"""Predictions: metrics, confusion, cells, top losses, most-confused pairs, saving."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dance.trust.interpret import Predictions


@pytest.fixture()
def preds():
    probs = np.array([
        [0.8, 0.1, 0.1],  # a -> a
        [0.2, 0.7, 0.1],  # a -> b
        [0.1, 0.6, 0.3],  # b -> b
        [0.5, 0.4, 0.1],  # b -> a
        [0.3, 0.6, 0.1],  # c -> b
        [0.1, 0.1, 0.8],  # c -> c
    ])
    return Predictions(probs, np.array([0, 0, 1, 1, 2, 2]), [f"/x/{i}.jpg" for i in range(6)], ["a", "b", "c"])


def test_metrics(preds):
    m = preds.metrics()
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["count"] == 6
    assert 0 < m["macro_f1"] < 1


def test_confusion_counts_and_normalised(preds):
    assert preds.confusion().tolist() == [[1, 1, 0], [1, 1, 0], [0, 1, 1]]
    assert np.allclose(preds.confusion(normalize=True).sum(1), 1)


def test_cell_selects_exactly_those_images_by_loss(preds):
    cell = preds.cell("c", "b")
    assert cell["image"].tolist() == ["4.jpg"]
    assert preds.cell("a", "a")["image"].tolist() == ["0.jpg"]


def test_top_losses_sorted(preds):
    top = preds.top_losses(3)
    assert list(top["loss"]) == sorted(top["loss"], reverse=True)
    assert top["image"].iloc[0] == "4.jpg"  # true class c got 0.1, as did 1.jpg's a -> but 0.2 > 0.1


def test_most_confused(preds):
    pairs = preds.most_confused()
    assert len(pairs) == 3 and set(pairs["count"]) == {1}


def test_report_per_class(preds):
    report = preds.report()
    assert list(report.index) == ["a", "b", "c"]
    assert report.loc["c", "precision"] == pytest.approx(1.0)


def test_save(preds, tmp_path):
    json_path, csv_path = preds.save(tmp_path / "eval")
    data = json.loads(json_path.read_text())
    assert data["metrics"]["accuracy"] == pytest.approx(0.5)
    assert len(data["misclassified"]) == 3
    assert csv_path.read_text().count("\n") == 7
