"""Data location, CSV validation, caches, grouping and splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_dataset, synthetic_image

from dance.data.cache import ImageCache
from dance.data.labels import load_labelled, read_labels
from dance.data.splits import holdout_split, kfold_splits, source_groups
from dance.errors import DataError
from dance.paths import find_data_dir


@pytest.fixture()
def data(tmp_path):
    return make_dataset(tmp_path / "d", per_class=6)


def write_csv(data, text: str, name="train.csv"):
    (data / name).write_bytes(text.encode("utf-8") if isinstance(text, str) else text)


def test_find_data_dir_order(tmp_path, monkeypatch, data):
    monkeypatch.setenv("DANCE_DATA", str(data))
    assert find_data_dir() == data.resolve()
    assert find_data_dir(data) == data.resolve()


def test_find_data_dir_names_every_place(tmp_path, monkeypatch):
    monkeypatch.delenv("DANCE_DATA", raising=False)
    with pytest.raises(DataError) as err:
        find_data_dir(tmp_path / "nowhere")
    assert "nowhere" in str(err.value) and "--data" in str(err.value)


def test_classes_sorted_and_labels_indexed(data):
    ds = load_labelled(data)
    assert ds.classes == ["circle", "square", "stripes"]
    assert len(ds) == 18 and set(ds.labels.tolist()) == {0, 1, 2}
    assert all(ds.classes[l] in p.name for p, l in zip(ds.paths, ds.labels))


@pytest.mark.parametrize("row, reason", [
    ("missing.jpg,circle", "image file not found"),
    ("circle0.jpg,", "empty label"),
    ("circle0.jpg,circle", "duplicate of line 2"),
    ("../x.jpg,circle", "escapes the image folder"),
    ("/etc/passwd,circle", "absolute path"),
    (",circle", "empty image name"),
])
def test_bad_rows_are_listed_with_line_numbers(data, row, reason):
    write_csv(data, "Image,target\ncircle0.jpg,circle\nsquare0.jpg,square\n" + row + "\n")
    with pytest.raises(DataError) as err:
        load_labelled(data)
    text = str(err.value)
    assert "line 4" in text and reason in text


def test_all_bad_rows_reported_at_once(data):
    write_csv(data, "Image,target\nmissing.jpg,circle\n../a.jpg,square\ncircle0.jpg,\n")
    with pytest.raises(DataError) as err:
        load_labelled(data)
    assert "3 invalid row(s)" in str(err.value)


def test_symlink_outside_folder_refused(data, tmp_path):
    outside = tmp_path / "outside.jpg"
    synthetic_image("circle", 1).save(outside)
    (data / "train" / "link.jpg").symlink_to(outside)
    write_csv(data, "Image,target\nlink.jpg,circle\n")
    with pytest.raises(DataError, match="outside the image folder"):
        load_labelled(data)


def test_unknown_label_against_known_classes(data):
    table = read_labels(data / "train.csv", data / "train", classes=["circle", "square"])
    assert any("unknown label 'stripes'" in str(p) for p in table.problems)


def test_harmless_variations_are_normalised(data):
    text = "\ufeffIMAGE , Target\r\n circle0.jpg , CIRCLE \r\nsquare0.jpg,Square\r\nstripes0.jpg,stripes\r\n"
    write_csv(data, text)
    ds = load_labelled(data)
    assert ds.classes == ["circle", "square", "stripes"] and len(ds) == 3


@pytest.mark.parametrize("content, message", [
    ("circle0.jpg,circle\nsquare0.jpg,square\n", "no header row"),
    ("name,kind\ncircle0.jpg,circle\n", "expected columns Image,target"),
    ("", "empty"),
])
def test_bad_headers(data, content, message):
    write_csv(data, content)
    with pytest.raises(DataError, match=message):
        load_labelled(data)


def test_non_utf8_csv(data):
    write_csv(data, "Image,target\ncircle0.jpg,c\xe9rcle\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_labelled(data)


def test_limit_keeps_every_class(data):
    ds = load_labelled(data, limit=6)
    assert len(ds) == 6 and sorted(set(ds.labels.tolist())) == [0, 1, 2]


def test_cache_decodes_once_and_downscales(data, monkeypatch):
    ds = load_labelled(data)
    cache = ImageCache(side=32)
    calls = []
    import dance.data.cache as data_module

    real = data_module.load_image
    monkeypatch.setattr(data_module, "load_image", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = cache.load_all(ds.paths)
    second = cache.load_all(ds.paths)
    assert len(calls) == len(ds)
    assert all(a is b for a, b in zip(first, second))
    assert first[0].dtype == torch.uint8 and min(first[0].shape[1:]) == 32


def test_disk_cache_round_trip(data, tmp_path):
    ds = load_labelled(data)
    a = ImageCache(side=40, disk_dir=tmp_path / "c").load_all(ds.paths[:3])
    assert len(list((tmp_path / "c").glob("*.npy"))) == 3
    b = ImageCache(side=40, disk_dir=tmp_path / "c").load_all(ds.paths[:3])
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_unreadable_images_listed_before_training(data):
    (data / "train" / "circle1.jpg").write_bytes(b"not an image")
    ds = load_labelled(data)
    with pytest.raises(DataError) as err:
        ImageCache(side=32).load_all(ds.paths)
    assert "circle1.jpg" in str(err.value) and "1 image(s)" in str(err.value)


def _smooth(kind, seed):
    from PIL import ImageFilter

    img = synthetic_image(kind, seed, size=96).filter(ImageFilter.GaussianBlur(6))
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).contiguous()


def test_near_duplicates_share_a_group():
    base = _smooth("circle", 1)
    resized = torch.nn.functional.interpolate(base[None].float(), size=(60, 60), mode="area")[0].round().byte()
    other = _smooth("stripes", 2)
    groups = source_groups([base, resized, other])
    assert groups[0] == groups[1] != groups[2]


def test_kfold_stratified_disjoint_grouped_reproducible():
    labels = np.repeat(np.arange(4), 10)
    groups = np.arange(40) // 2  # pairs of copies
    splits = kfold_splits(labels, groups, k=5, seed=3)
    again = kfold_splits(labels, groups, k=5, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))
    seen = np.concatenate([va for _, va in splits])
    assert sorted(seen.tolist()) == list(range(40))
    for tr, va in splits:
        assert not set(tr) & set(va)
        assert not set(groups[tr]) & set(groups[va])
        assert np.bincount(labels[va], minlength=4).min() >= 1
    other = kfold_splits(labels, groups, k=5, seed=4)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(splits, other))


def test_ungrouped_kfold_lets_copies_straddle_folds():
    labels = np.repeat(np.arange(4), 10)
    groups = np.arange(40) // 2  # pairs of copies
    straddling = 0
    for tr, va in kfold_splits(labels, groups, k=5, seed=0, grouped=False):
        assert np.bincount(labels[va], minlength=4).tolist() == [2, 2, 2, 2]  # still stratified
        straddling += len(set(groups[tr]) & set(groups[va]))
    assert straddling > 0  # the plain split public notebooks use: the grouped one never does this


def test_holdout_is_about_twenty_percent():
    labels = np.repeat(np.arange(5), 20)
    tr, va = holdout_split(labels, np.arange(100), 0.2, seed=0)
    assert len(va) == 20 and len(tr) == 80
    assert np.bincount(labels[va]).tolist() == [4] * 5


def test_kfold_needs_enough_images_per_class():
    with pytest.raises(DataError, match="smallest class"):
        kfold_splits(np.array([0, 0, 1, 1, 1]), np.arange(5), k=3)
