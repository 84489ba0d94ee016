"""The plotly figure builders directly: which traces, in which order, carrying which values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dance.plots import (
    class_distribution_figure,
    confusion_figure,
    coverage_figure,
    history_figure,
    image_size_figure,
    probability_figure,
    reliability_figure,
)


def test_history_has_train_and_validation_curves_per_metric():
    history = [{"epoch": 1, "train_loss": 2.0, "train_acc": 0.3, "val_loss": 2.2, "val_acc": 0.25},
               {"epoch": 2, "train_loss": 1.0, "train_acc": 0.6, "val_loss": 1.5, "val_acc": 0.5}]
    fig = history_figure(history)
    assert [t.name for t in fig.data] == ["train loss", "val loss", "train acc", "val acc"]
    assert list(fig.data[1].y) == [2.2, 1.5] and fig.data[1].line.dash == "dash"
    assert [t.name for t in history_figure([{"epoch": 1, "train_loss": 1.0, "train_acc": 0.5}]).data] == [
        "train loss", "train acc"]
    assert len(history_figure([]).data) == 0


def test_probabilities_ranked_with_the_highlight_coloured():
    fig = probability_figure({"a": 0.2, "b": 0.7, "c": 0.1}, highlight="b")
    bar = fig.data[0]
    assert list(bar.y) == ["c", "a", "b"] and list(bar.text) == ["10.0%", "20.0%", "70.0%"]  # most likely on top
    assert bar.marker.color[-1] != bar.marker.color[0]


def test_confusion_cells_name_their_true_and_predicted_class():
    classes = ["x", "y"]
    fig = confusion_figure(np.array([[3, 1], [0, 2]]), classes)
    assert [list(c) for c in fig.data[0].customdata] == [["x", "x", 3.0], ["x", "y", 1.0], ["y", "x", 0.0],
                                                         ["y", "y", 2.0]]
    assert [a.text for a in fig.layout.annotations] == ["3", "1", "0", "2"]
    assert len(fig.layout.shapes) == 4 + 2  # a cell each, then the diagonal's outlines
    normalized = confusion_figure(np.array([[0.75, 0.25], [0.0, 1.0]]), classes, normalized=True)
    assert [a.text for a in normalized.layout.annotations] == ["75%", "25%", "0%", "100%"]


def test_reliability_coverage_sizes_and_distribution():
    bins = pd.DataFrame({"series": ["raw", "raw", "calibrated"], "confidence": [0.5, 0.9, 0.7],
                         "accuracy": [0.4, 0.8, 0.7], "count": [5, 5, 10]})
    assert [t.name for t in reliability_figure(bins).data] == ["perfect", "raw", "calibrated"]
    curve = pd.DataFrame({"threshold": [0.0, 0.5, 0.9], "coverage": [1.0, 0.6, 0.2], "accuracy": [0.7, 0.8, 1.0]})
    marked = coverage_figure(curve, threshold=0.52).data[1]
    assert (list(marked.x), list(marked.y)) == ([0.6], [0.8])  # the curve's point nearest the threshold
    assert len(coverage_figure(curve).data) == 1
    sizes = pd.DataFrame({"image": ["a", "b", "c"], "width": [100, 200, 300], "height": [50, 60, 70],
                          "label": ["k", "m", "k"]})
    assert [(t.name, list(t.x)) for t in image_size_figure(sizes).data] == [("k", [100, 300]), ("m", [200])]
    counts = pd.Series({"k": 4, "m": 2})
    assert list(class_distribution_figure(counts).data[0].y) == [4, 2]
