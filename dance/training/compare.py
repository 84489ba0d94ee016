"""Paired comparison of two cross-validation runs on the same folds: is a difference real or within the noise?

Both runs must have scored identical folds (same data, --folds, --repeats, --seed and protocol); each fold's
difference pairs the two recipes on the same training and validation images, which removes the fold-to-fold
spread that dominates "mean ± std" tables on 364 images.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from dance.errors import DataError

ALPHA = 0.05  # below this (corrected) p-value a difference is called real


@dataclass
class Comparison:
    """Per-fold differences (B - A) of one metric and the tests on them."""

    metric: str
    a: str
    b: str
    folds: list[dict]  # repeat, fold, a, b, diff
    mean_diff: float
    std_diff: float
    p_ttest: float  # paired t-test, Nadeau-Bengio corrected for the overlap of training sets across folds
    p_ttest_naive: float  # plain paired t-test (treats folds as independent; too optimistic)
    p_sign: float  # two-sided sign test on the non-zero differences
    verdict: str  # "real" or "within noise"

    def to_dict(self) -> dict:
        """Plain dict for JSON output."""
        return dict(self.__dict__)


def read_report(run: str | os.PathLike) -> dict:
    """A CV run's report.json (the run folder or the file itself); raises DataError if unreadable."""
    path = Path(run)
    path = path / "report.json" if path.is_dir() else path
    try:
        report = json.loads(path.read_text())
        report["folds"], report["name"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{run}: not a cross-validation run with a readable report.json "
                        f"({type(exc).__name__}).") from None
    return report


def _score(fold: dict, metric: str, tta: bool) -> float:
    """One fold's value of `metric` ("macro_f1", "accuracy", or "f1:<class>"), plain or with TTA."""
    block = fold.get("tta") if tta else fold
    if block is None:
        raise DataError("--tta needs both runs to have been cross-validated with --tta.")
    if metric.startswith("f1:"):
        name = metric[3:]
        if name not in block.get("class_f1", {}):
            raise DataError(f"class {name!r} has no per-fold F1 in this report (recorded since per-class fold scores).")
        return float(block["class_f1"][name])
    if metric not in block:
        raise DataError(f"unknown metric {metric!r}; use macro_f1, accuracy, weighted_f1 or f1:<class>.")
    return float(block[metric])


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike, metric: str = "macro_f1",
                 tta: bool = False) -> Comparison:
    """Pair the folds of two CV runs and test whether B - A differs from zero."""
    a, b = read_report(run_a), read_report(run_b)
    fa = {(f["repeat"], f["fold"]): f for f in a["folds"]}
    fb = {(f["repeat"], f["fold"]): f for f in b["folds"]}
    if set(fa) != set(fb):
        raise DataError(f"{a['name']} and {b['name']} have different folds ({len(fa)} vs {len(fb)}); run both with "
                        "the same --folds and --repeats.")
    mismatched = [key for key in fa if fa[key].get("val_sha1") is None
                  or fa[key].get("val_sha1") != fb[key].get("val_sha1")]
    if mismatched:
        raise DataError(f"{a['name']} and {b['name']} did not validate on the same images in {len(mismatched)} of "
                        f"{len(fa)} folds (or one predates fold fingerprints); pair only runs with the same data, "
                        "--folds, --repeats, --seed and protocol.")
    rows = []
    for key in sorted(fa):
        sa, sb = _score(fa[key], metric, tta), _score(fb[key], metric, tta)
        rows.append({"repeat": key[0], "fold": key[1], "a": sa, "b": sb, "diff": sb - sa})
    diffs = np.array([r["diff"] for r in rows])
    p_corrected, p_naive = paired_t_pvalues(diffs, test_share=1 / int(a.get("k", len(rows))))
    p_sign = sign_test_pvalue(diffs)
    return Comparison(metric + (" (TTA)" if tta else ""), a["name"], b["name"], rows, float(diffs.mean()),
                      float(diffs.std(ddof=1)) if len(diffs) > 1 else 0.0, p_corrected, p_naive, p_sign,
                      "real" if p_corrected < ALPHA else "within noise")


def paired_t_pvalues(diffs: np.ndarray, test_share: float) -> tuple[float, float]:
    """Two-sided p-values of mean(diffs) = 0: Nadeau-Bengio corrected, and the plain paired t-test.

    The folds of k-fold CV share most of their training images, so their differences are correlated; the
    correction inflates the variance by (1/J + n_test/n_train) instead of 1/J (Nadeau & Bengio, 2003).
    """
    j = len(diffs)
    if j < 2:
        return 1.0, 1.0
    var = float(np.var(diffs, ddof=1))
    mean = float(np.mean(diffs))
    if var == 0:
        p = 1.0 if mean == 0 else 0.0
        return p, p
    naive = float(stats.ttest_1samp(diffs, 0.0).pvalue)
    t = mean / math.sqrt(var * (1 / j + test_share / (1 - test_share)))
    return float(2 * stats.t.sf(abs(t), df=j - 1)), naive


def sign_test_pvalue(diffs: np.ndarray) -> float:
    """Two-sided sign test: how often B beats A among folds where they differ."""
    wins, losses = int((diffs > 0).sum()), int((diffs < 0).sum())
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5).pvalue)


def comparison_text(c: Comparison) -> str:
    """Per-fold table, the mean difference and one verdict line."""
    lines = [f"{c.metric}: B = {c.b} minus A = {c.a}", "repeat  fold       A       B    B-A"]
    lines += [f"{r['repeat']:>6}  {r['fold']:>4}  {r['a']:.4f}  {r['b']:.4f}  {r['diff']:+.4f}" for r in c.folds]
    lines.append(f"mean difference {c.mean_diff:+.4f} ± {c.std_diff:.4f} over {len(c.folds)} paired folds; "
                 f"corrected paired t-test p = {c.p_ttest:.3g} (plain {c.p_ttest_naive:.3g}), sign test "
                 f"p = {c.p_sign:.3g}")
    better = c.b if c.mean_diff > 0 else c.a
    lines.append(f"verdict: {c.verdict}" + (f" ({better} is better)" if c.verdict == "real" else
                                             f" (p >= {ALPHA}: no difference shown)"))
    return "\n".join(lines)
