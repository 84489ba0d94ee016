"""Paired comparison of CV runs: fold pairing, the corrected t-test, the sign test and the verdict."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from dance import cli
from dance.errors import DataError
from dance.training.compare import compare_runs, paired_t_pvalues, sign_test_pvalue


def fake_run(root, name, scores, sha_prefix="f", k=5):
    """A report.json with one fold per score (k folds per repeat)."""
    folds = [{"repeat": i // k, "fold": i % k, "macro_f1": s, "accuracy": s, "val_sha1": f"{sha_prefix}{i}",
              "class_f1": {"kuchipudi": s / 2}} for i, s in enumerate(scores)]
    (root / name).mkdir()
    (root / name / "report.json").write_text(json.dumps({"name": name, "k": k, "folds": folds}))
    return root / name


def test_corrected_t_test_is_wider_than_the_plain_one():
    diffs = np.array([0.02, 0.03, 0.01, 0.04, 0.02, 0.03, 0.0, 0.02, 0.05, 0.01])
    corrected, naive = paired_t_pvalues(diffs, test_share=0.2)
    assert naive == pytest.approx(stats.ttest_rel(diffs + 0.5, np.full(10, 0.5)).pvalue)
    t = diffs.mean() / math.sqrt(diffs.var(ddof=1) * (1 / 10 + 0.25))
    assert corrected == pytest.approx(2 * stats.t.sf(t, 9)) and corrected > naive


def test_sign_test_counts_wins_among_non_ties():
    assert sign_test_pvalue(np.array([0.1] * 10)) == pytest.approx(2 / 2**10)
    assert sign_test_pvalue(np.array([0.1, -0.1, 0.0])) == 1.0


def test_a_consistent_gain_is_real_and_a_shuffle_is_noise(tmp_path):
    rng = np.random.default_rng(0)
    base = 0.75 + rng.normal(0, 0.04, 15)  # fold-to-fold spread larger than the gain
    a = fake_run(tmp_path, "a", base)
    better = fake_run(tmp_path, "b", base + 0.03 + rng.normal(0, 0.005, 15))
    noisy = fake_run(tmp_path, "c", base + rng.normal(0, 0.04, 15))
    gain = compare_runs(a, better)
    assert gain.verdict == "real" and gain.mean_diff == pytest.approx(0.03, abs=0.005) and len(gain.folds) == 15
    assert compare_runs(a, noisy).verdict == "within noise"
    assert compare_runs(a, a).mean_diff == 0 and compare_runs(a, a).verdict == "within noise"
    assert compare_runs(a, better, metric="f1:kuchipudi").mean_diff == pytest.approx(gain.mean_diff / 2)


def test_runs_on_other_folds_are_not_paired(tmp_path):
    a = fake_run(tmp_path, "a", [0.7] * 5)
    with pytest.raises(DataError, match="same images"):
        compare_runs(a, fake_run(tmp_path, "b", [0.8] * 5, sha_prefix="g"))
    with pytest.raises(DataError, match="different folds"):
        compare_runs(a, fake_run(tmp_path, "c", [0.8] * 10))
    with pytest.raises(DataError, match="report.json"):
        compare_runs(a, tmp_path / "missing")


def test_cv_compare_command_prints_the_verdict(tmp_path, capsys):
    a = fake_run(tmp_path, "a", [0.70, 0.72, 0.74, 0.71, 0.73])
    b = fake_run(tmp_path, "b", [0.75, 0.78, 0.79, 0.75, 0.79])
    assert cli.main(["cv-compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "mean difference +0.0520" in out and "verdict: real (b is better)" in out
    assert cli.main(["cv-compare", str(a), str(tmp_path / "nothing")]) == 2
    assert "report.json" in capsys.readouterr().err
