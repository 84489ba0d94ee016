"""Unlabelled photos in distillation: teacher targets only, never a copy of a validation image, same folds."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from test_distill import small_cfg  # the tiny distillation recipe

from dance.data.splits import kfold_splits
from dance.errors import DanceError, DataError
from dance.training import cv as cv_module
from dance.training.cv import cross_validate
from dance.training.distill import UNLABELLED, unlabelled_images
from dance.training.train import check_settings, prepare_data, train


@pytest.fixture(scope="module")
def unlabelled_dir(synth_data, tmp_path_factory):
    """The synthetic test/ photos plus re-encoded copies of three training photos."""
    folder = tmp_path_factory.mktemp("unlabelled")
    for p in (synth_data / "test").iterdir():
        shutil.copy(p, folder / p.name)
    for name in ("circle0.jpg", "square3.jpg", "stripes5.jpg"):
        Image.open(synth_data / "train" / name).save(folder / f"copy-{name}.png")  # re-encoded: same pixels
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def teacher_run(synth_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    cross_validate(small_cfg(), synth_data, k=2, name="t", out_root=root, save_fold_models=True)
    return root / "t" / "folds" / "fold-{fold}"


def test_unlabelled_copies_of_validation_images_never_train_and_carry_no_label(
        synth_data, unlabelled_dir, teacher_run, tmp_path, monkeypatch):
    seen = []
    real = cv_module.make_loader
    def spy(tensors, labels, index, *args, **kwargs):
        if args[2]:  # shuffle: a training loader (validation loaders keep their order)
            seen.append((len(tensors), np.asarray(labels)[np.asarray(index)], np.asarray(index)))
        return real(tensors, labels, index, *args, **kwargs)

    monkeypatch.setattr(cv_module, "make_loader", spy)
    cfg = small_cfg(teacher=str(teacher_run), unlabelled=str(unlabelled_dir))
    result = cross_validate(cfg, synth_data, k=2, name="u", out_root=tmp_path)
    prepared = prepare_data(cfg, synth_data)
    n, names = len(prepared.dataset), prepared.dataset.names
    copies = {f"copy-{name}.png": names.index(name) for name in ("circle0.jpg", "square3.jpg", "stripes5.jpg")}
    splits = kfold_splits(prepared.dataset.labels, prepared.groups, k=2, seed=0)
    # the folds are those of a run without unlabelled images (the teacher's): labelled groups unchanged
    labelled_only = prepare_data(small_cfg(), synth_data)
    plain = kfold_splits(labelled_only.dataset.labels, labelled_only.groups, k=2, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, plain))
    assert len(seen) == 2
    for (train_idx, val_idx), (_, labels, index), fold in zip(splits, seen, result.folds):
        extra = index[index >= n] - n
        used = {prepared.unlabelled_names[u] for u in extra}
        assert (labels[index >= n] == UNLABELLED).all()  # no label of theirs is ever used
        assert set(index[index < n]) == set(train_idx)  # the labelled rows are the fold's own
        for copy, original in copies.items():
            assert (copy in used) == (original in set(train_idx))  # a copy of a validation photo stays out
        assert {"t0.png", "t1.png", "t2.png", "t3.png"} <= used and fold["unlabelled_used"] == len(used)
    assert len(result.oof.paths) == n and all("/train/" in p for p in result.oof.paths)  # scored on labelled only


def test_train_with_unlabelled_records_what_it_used(synth_data, unlabelled_dir, tiny_checkpoint, tmp_path):
    from dance.models import checkpoint

    cfg = small_cfg(teacher=str(tiny_checkpoint), unlabelled=str(unlabelled_dir), image_size=64)
    meta = checkpoint.read_sidecar(tiny_checkpoint)
    cfg.seed, cfg.val_fraction = meta["split"]["seed"], meta["split"]["val_fraction"]  # the teacher's hold-out
    stem = train(cfg, synth_data, tmp_path / "s").checkpoint
    record = checkpoint.read_sidecar(stem)["unlabelled"]
    assert record["images"] == 7 and {"t0.png", "t3.png"} <= set(record["used"])


def test_unlabelled_needs_a_teacher_and_a_folder_with_images(tmp_path):
    with pytest.raises(DanceError, match="need a teacher"):
        check_settings(small_cfg(unlabelled=str(tmp_path)))
    with pytest.raises(DataError, match="no images"):
        unlabelled_images(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        unlabelled_images(tmp_path / "missing")
