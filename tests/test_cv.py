"""Cross-validation harness: disjoint stratified folds, no leakage, out-of-fold file and report fields."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import small_config

from dance.config import TrainConfig
from dance.errors import DataError
from dance.models import checkpoint
from dance.training.cv import attach_cv, cross_validate, list_oof_runs, load_oof
from dance.training.train import prepare_data, train


def test_two_fold_cv_writes_oof_and_report(synth_data, tmp_path):
    result = cross_validate(small_config(), synth_data, k=2, name="t", out_root=tmp_path)
    s = json.loads((tmp_path / "t" / "report.json").read_text())
    assert {"accuracy", "macro_f1", "weighted_f1", "per_class_f1", "device", "folds", "train_seconds_total"} <= set(s)
    assert len(s["folds"]) == 2 and sum(f["images"] for f in s["folds"]) == 24
    assert set(s["macro_f1"]) == {"mean", "std"}
    assert (tmp_path / "t" / "report.md").read_text().startswith("# Cross-validation: t")
    oof = load_oof(tmp_path / "t" / "oof.csv")
    assert np.allclose(oof.probs, result.oof.probs) and np.allclose(oof.probs.sum(1), 1)
    assert list_oof_runs(tmp_path) == [tmp_path / "t" / "oof.csv"]


def test_folds_are_grouped_and_stratified_on_real_data(real_data):
    """On the real set: every image held out exactly once, classes balanced, near-duplicates kept together."""
    from dance.data.splits import kfold_splits

    prepared = prepare_data(TrainConfig(model="seed-cnn", image_size=64), real_data)
    labels, groups = prepared.dataset.labels, prepared.groups
    splits = kfold_splits(labels, groups, k=5, seed=0)
    held = np.concatenate([va for _, va in splits])
    assert sorted(held.tolist()) == list(range(len(labels)))
    for tr, va in splits:
        assert not set(groups[tr]) & set(groups[va])
        share = np.bincount(labels[va], minlength=8) / np.bincount(labels, minlength=8)
        assert share.min() > 0.1 and share.max() < 0.3


def test_tta_scored_on_the_same_fold_models(synth_data, tmp_path):
    result = cross_validate(small_config(), synth_data, k=2, name="tta", tta=True, out_root=tmp_path)
    t = result.summary["tta_metrics"]
    assert set(t) == {"accuracy", "macro_f1", "weighted_f1"} and all("tta" in f for f in result.folds)
    tta_oof = load_oof(tmp_path / "tta" / "oof-tta.csv")
    assert tta_oof.probs.shape == result.oof.probs.shape and not np.allclose(tta_oof.probs, result.oof.probs)
    assert "with TTA" in (tmp_path / "tta" / "report.md").read_text()


def test_same_seed_same_folds(synth_data, tmp_path):
    a = cross_validate(small_config(seed=3), synth_data, k=2, save=False)
    b = cross_validate(small_config(seed=3), synth_data, k=2, save=False)
    assert [f["images"] for f in a.folds] == [f["images"] for f in b.folds]
    assert np.allclose(a.oof.probs, b.oof.probs, atol=1e-6)


def test_load_oof_rejects_other_csv(tmp_path):
    from dance.errors import DataError

    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="not an out-of-fold"):
        load_oof(tmp_path / "x.csv")


def test_oof_from_another_checkout_is_re_rooted_at_the_data_set(synth_data, tmp_path, monkeypatch):
    result = cross_validate(small_config(), synth_data, k=2, name="moved", out_root=tmp_path)
    csv = tmp_path / "moved" / "oof.csv"
    csv.write_text(csv.read_text().replace(str(synth_data), "/elsewhere/data"))
    monkeypatch.setenv("DANCE_DATA", str(synth_data))
    moved = load_oof(csv)
    assert moved.paths == [str(synth_data.resolve() / "train" / p.split("/")[-1]) for p in result.oof.paths]


def test_attach_cv_records_scores_and_copies_files(synth_data, tmp_path):
    run = cross_validate(small_config(), synth_data, k=2, name="r", out_root=tmp_path / "cv", tta=True)
    stem = train(small_config(val_fraction=0.0), synth_data, tmp_path / "weights" / "m").checkpoint
    scores = attach_cv(run.out_dir, stem)
    meta = checkpoint.read_sidecar(stem)
    assert meta["metrics"]["cv"] == scores
    assert scores["macro_f1_mean"] == pytest.approx(run.summary["macro_f1"]["mean"])
    assert scores["tta_accuracy_mean"] == pytest.approx(run.summary["tta_metrics"]["accuracy"]["mean"])
    copied = tmp_path / "weights" / "cv" / "m"
    assert sorted(p.name for p in copied.iterdir()) == ["oof-tta.csv", "oof.csv", "report.json", "report.md"]
    assert (copied / "oof.csv").read_bytes() == (run.out_dir / "oof.csv").read_bytes()


def test_attach_cv_refuses_another_recipe_or_architecture(synth_data, tmp_path):
    run = cross_validate(small_config(), synth_data, k=2, name="r", out_root=tmp_path / "cv")
    longer_cfg = small_config(val_fraction=0.0)
    longer_cfg.epochs = 2
    longer = train(longer_cfg, synth_data, tmp_path / "longer").checkpoint
    with pytest.raises(DataError, match="epochs"):
        attach_cv(run.out_dir, longer)
    assert "metrics" not in checkpoint.read_sidecar(longer)
    assert attach_cv(run.out_dir, longer, force=True)["k"] == 2
    other = train(TrainConfig(model="seed-cnn-bn", epochs=1, image_size=64, val_fraction=0.0), synth_data,
                  tmp_path / "other").checkpoint
    with pytest.raises(DataError, match="seed-cnn-bn"):
        attach_cv(run.out_dir, other, force=True)
    with pytest.raises(DataError, match="report.json"):
        attach_cv(tmp_path, longer)


def test_repeats_report_every_fold_with_class_f1_and_per_repeat_oof(synth_data, tmp_path):
    result = cross_validate(small_config(), synth_data, k=2, repeats=2, name="rep", out_root=tmp_path)
    s = result.summary
    assert [(f["repeat"], f["fold"]) for f in s["folds"]] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert s["protocol"] == "grouped" and set(s["class_f1"]) == {"circle", "square", "stripes"}
    circle = [f["class_f1"]["circle"] for f in s["folds"]]
    assert s["class_f1"]["circle"]["mean"] == pytest.approx(np.mean(circle))
    assert s["macro_f1"]["mean"] == pytest.approx(np.mean([f["macro_f1"] for f in s["folds"]]))
    assert len({f["val_sha1"] for f in s["folds"]}) == 4  # another seed per repeat: other folds
    repeats = [load_oof(tmp_path / "rep" / f"oof-r{r}.csv") for r in range(2)]
    assert np.allclose((repeats[0].probs + repeats[1].probs) / 2, result.oof.probs)
    assert "F1 mean ± std over folds" in (tmp_path / "rep" / "report.md").read_text()


def test_ungrouped_cv_is_labelled_as_such(synth_data, tmp_path):
    result = cross_validate(small_config(), synth_data, k=2, name="plain", out_root=tmp_path, grouped=False)
    assert result.summary["protocol"] == "ungrouped"
    assert "not the figure that counts" in (tmp_path / "plain" / "report.md").read_text()


def test_runs_at_other_input_sizes_get_the_same_folds(synth_data, tmp_path):
    # groups are hashed at one fixed side, so a 48 px and a 96 px run can be paired, ensembled or distilled
    small = cross_validate(TrainConfig(model="seed-cnn", epochs=1, image_size=48, freeze_epochs=0), synth_data, k=2,
                           save=False)
    large = cross_validate(TrainConfig(model="seed-cnn", epochs=1, image_size=96, freeze_epochs=0), synth_data, k=2,
                           save=False)
    assert [f["val_sha1"] for f in small.folds] == [f["val_sha1"] for f in large.folds]


def test_repeats_run_in_parallel_parts_merge_into_the_full_run(synth_data, tmp_path):
    from dance.training.merge import merge_runs

    full = cross_validate(small_config(), synth_data, k=2, repeats=2, name="full", out_root=tmp_path)
    parts = [cross_validate(small_config(), synth_data, k=2, repeats=2, name=f"p{r}", out_root=tmp_path, only_repeat=r)
             for r in (1, 0)]
    assert [(f["repeat"], f["fold"]) for f in parts[0].folds] == [(1, 0), (1, 1)]
    merged = merge_runs([tmp_path / "p1", tmp_path / "p0"], "merged", out_root=tmp_path)
    key = ("repeat", "fold", "val_sha1", "macro_f1", "accuracy")
    assert [[f[k] for k in key] for f in merged["folds"]] == [[f[k] for k in key] for f in full.folds]
    assert merged["macro_f1"] == pytest.approx(full.summary["macro_f1"])
    assert np.allclose(load_oof(tmp_path / "merged" / "oof.csv").probs, full.oof.probs, atol=1e-6)
    with pytest.raises(DataError, match="distinct --only-repeat"):
        merge_runs([tmp_path / "p0", tmp_path / "p0"], "twice", out_root=tmp_path)
    with pytest.raises(DataError, match="between 0 and 1"):
        cross_validate(small_config(), synth_data, k=2, repeats=2, save=False, only_repeat=2)
