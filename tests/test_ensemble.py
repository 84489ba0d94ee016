"""Teacher ensembles and ensembles of CV runs, scored only with models that never saw the fold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from test_distill import small_cfg  # the tiny distillation recipe
from torch import nn

from dance.errors import DataError
from dance.training.compare import compare_runs
from dance.training.cv import cross_validate, load_oof
from dance.training.engine import TeacherEnsemble
from dance.training.ensemble import ensemble_runs


@pytest.fixture(scope="module")
def two_runs(synth_data, tmp_path_factory):
    """Two 2-fold CV runs on the same folds (other architectures and input sizes), fold models kept."""
    root = tmp_path_factory.mktemp("cv")
    cross_validate(small_cfg(), synth_data, k=2, name="a", out_root=root, save_fold_models=True, tta=True)
    cross_validate(small_cfg(model="seed-cnn-bn", image_size=64), synth_data, k=2, name="b", out_root=root,
                   save_fold_models=True, tta=True)
    return root


class Constant(nn.Module):
    """Returns fixed logits and records the input side it was fed."""

    def __init__(self, logits):
        super().__init__()
        self.logits, self.seen = torch.tensor(logits), []

    def forward(self, x):
        self.seen.append(x.shape[-1])
        return self.logits.expand(len(x), -1)


def test_teacher_ensemble_averages_log_probabilities_at_each_members_size():
    a, b = Constant([2.0, 0.0, 0.0]), Constant([0.0, 1.0, 0.0])
    out = TeacherEnsemble([a, b], [32, 48])(torch.zeros(2, 3, 40, 40))
    expected = (a.logits.log_softmax(0) + b.logits.log_softmax(0)) / 2
    assert torch.allclose(out, expected.expand(2, -1)) and (a.seen, b.seen) == ([32], [48])


def test_student_distils_from_an_ensemble_of_each_folds_teachers_only(synth_data, two_runs, tmp_path):
    pattern = f"{two_runs}/a/folds/fold-{{fold}}, {two_runs}/b/folds/fold-{{fold}}"
    result = cross_validate(small_cfg(teacher=pattern), synth_data, k=2, name="student", out_root=tmp_path)
    assert len(result.folds) == 2 and result.summary["config"]["teacher"] == pattern
    # with another seed the folds differ: both teachers saw some of each validation fold, and that is refused
    with pytest.raises(DataError, match="fold 0"):
        cross_validate(small_cfg(teacher=pattern, seed=5), synth_data, k=2, name="leaky", out_root=tmp_path)


def test_ensemble_of_runs_is_scored_fold_by_fold(two_runs, tmp_path):
    summary = ensemble_runs([two_runs / "a", two_runs / "b"], name="ab", tta=True, out_root=tmp_path)
    a, b = load_oof(two_runs / "a" / "oof.csv"), load_oof(two_runs / "b" / "oof.csv")
    geometric = np.sqrt(a.probs * b.probs)
    expected = geometric / geometric.sum(1, keepdims=True)
    assert np.allclose(load_oof(tmp_path / "ab" / "oof.csv").probs, expected, atol=1e-6)
    fold0 = np.nonzero(pd.read_csv(two_runs / "a" / "oof.csv")["fold"].to_numpy() == 0)[0]
    accuracy = float((expected[fold0].argmax(1) == a.targets[fold0]).mean())
    assert summary["folds"][0]["accuracy"] == pytest.approx(accuracy)
    assert summary["method"] == "ensemble" and summary["tta_metrics"] is not None
    assert compare_runs(two_runs / "a", tmp_path / "ab").folds[0]["fold"] == 0  # pairs with its members


def test_ensemble_refuses_runs_on_other_folds(synth_data, two_runs, tmp_path):
    cross_validate(small_cfg(seed=4), synth_data, k=2, name="other", out_root=tmp_path)
    with pytest.raises(DataError, match="same folds"):
        ensemble_runs([two_runs / "a", tmp_path / "other"], name="x", out_root=tmp_path)
    with pytest.raises(DataError, match="at least two"):
        ensemble_runs([two_runs / "a"], out_root=tmp_path)
