"""Bringing your own data set: safe zip import (both layouts), sets built from class uploads, validation as
`dance check` does it, the quick recipe, and checkpoint bundles (export, import, refusals)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest
from conftest import synthetic_image

from dance.data import archive, datasets
from dance.errors import CheckpointError, DataError
from dance.models import bundle, checkpoint
from dance.training import recipes


def jpeg(kind: str, seed: int, size: int = 48) -> bytes:
    """A small synthetic JPEG of class `kind`."""
    buffer = io.BytesIO()
    synthetic_image(kind, seed, size).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_zip(entries: dict[str, bytes], links: dict[str, str] = ()) -> bytes:
    """A zip holding `entries` (name -> bytes) and symbolic links (name -> target)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in dict(links).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


def class_zip(per_class: int = 6, top: str = "", kinds=("circle", "stripes")) -> bytes:
    """A folder-per-class zip of synthetic images."""
    return make_zip({f"{top}{kind}/{i}.jpg": jpeg(kind, 10 * c + i) for c, kind in enumerate(kinds)
                     for i in range(per_class)})


@pytest.fixture()
def user_data(tmp_path, monkeypatch) -> Path:
    """An empty user-data root ($DANCE_USER_DATA) and weights folder ($DANCE_WEIGHTS_DIR) in tmp_path."""
    monkeypatch.setenv("DANCE_USER_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("DANCE_WEIGHTS_DIR", str(tmp_path / "weights"))
    return tmp_path / "data"


def test_user_data_root_is_the_project_data_folder_unless_overridden(monkeypatch, tmp_path):
    from dance import paths

    monkeypatch.delenv("DANCE_USER_DATA", raising=False)
    assert paths.user_data_root() == paths.PROJECT_ROOT / "data"
    monkeypatch.setenv("DANCE_USER_DATA", str(tmp_path))
    assert paths.user_data_root() == tmp_path


def test_folder_layout_zip_becomes_an_ordinary_data_set(user_data):
    info = datasets.import_zip(class_zip(top="holiday/"), "pets", display="pets.zip")
    assert info.path == user_data / "pets"
    report = datasets.validate_set(info.path)
    assert report.counts == {"circle": 6, "stripes": 6} and report.problems == [] and report.ready
    assert (info.path / "train" / "circle" / "0.jpg").is_file()
    from dance.training.train import check_data  # what `dance check --data data/pets` runs

    prepared = check_data(info.path)
    assert prepared.dataset.classes == ["circle", "stripes"] and len(prepared.dataset) == 12
    assert [s.name for s in datasets.list_sets()] == ["pets"]
    assert [p.name for p in user_data.iterdir()] == ["pets"]  # no temp folder left behind


def test_csv_layout_zip_keeps_its_csv_and_reports_its_bad_rows(user_data):
    entries = {f"train/{i}.jpg": jpeg("circle" if i % 2 else "square", i) for i in range(8)}
    entries["train/broken.jpg"] = b"not a jpeg at all"
    entries["test/t.jpg"] = jpeg("circle", 99)  # outside the image folder: left out
    rows = [f"{i}.jpg,{'circle' if i % 2 else 'square'}" for i in range(8)] + ["broken.jpg,circle", "gone.jpg,square"]
    entries["train.csv"] = ("Image,target\n" + "\n".join(rows) + "\n").encode()
    info = datasets.import_zip(make_zip(entries), "csvset")
    report = datasets.validate_set(info.path)
    assert report.counts == {"circle": 4, "square": 4}
    assert len(report.problems) == 2 and not report.ready
    assert any("gone.jpg" in p and "not found" in p for p in report.problems)
    assert any("broken.jpg" in p for p in report.problems) and report.bad_images == ["broken.jpg"]
    assert json.loads((info.path / "set.json").read_text())["ignored"] == ["test/t.jpg"]
    assert datasets.drop_problem_rows(info.path) == 2
    assert datasets.validate_set(info.path).ready


BAD_ZIPS = {
    "traversal": ({"../evil.jpg": b"x", "a/1.jpg": b"x"}, {}, "escapes the archive's folder"),
    "absolute": ({"/etc/evil.jpg": b"x"}, {}, "has an absolute path"),
    "drive letter": ({"C:/evil.jpg": b"x"}, {}, "has an absolute path"),
    "backslash": ({"a\\..\\..\\evil.jpg": b"x"}, {}, "uses backslashes"),
    "symlink": ({"a/1.jpg": b"x"}, {"b/2.jpg": "/etc/passwd"}, "is a symbolic link"),
    "not images": ({"a/1.jpg": b"x", "b/run.sh": b"echo", "b/2.jpg": b"x"}, {}, "neither images nor a CSV"),
    "one class": ({"a/1.jpg": b"x", "a/2.jpg": b"x"}, {}, "only one class folder"),
    "top level": ({"1.jpg": b"x", "2.jpg": b"x"}, {}, "is at the top level"),
    "nested": ({"a/b/1.jpg": b"x", "c/2.jpg": b"x"}, {}, "in a nested folder"),
    "case": ({"Cat/1.jpg": b"x", "cat/2.jpg": b"x"}, {}, "differ only in case"),
    "same file twice": ({"a/1.jpg": b"x", "A/1.JPG": b"x"}, {}, "name the same file"),
    "empty": ({}, {}, "the archive is empty"),
    "two csvs": ({"a.csv": b"Image,target\n", "b.csv": b"Image,target\n", "1.jpg": b"x"}, {}, "2 CSV files"),
}


@pytest.mark.parametrize("case", list(BAD_ZIPS))
def test_every_bad_zip_is_refused_with_one_sentence_and_nothing_written(user_data, case):
    entries, links, expected = BAD_ZIPS[case]
    with pytest.raises(DataError) as caught:
        datasets.import_zip(make_zip(entries, links), "bad", display="bad.zip")
    message = str(caught.value)
    assert message.startswith("bad.zip: ") and expected in message and "\n" not in message
    assert not user_data.exists() or list(user_data.iterdir()) == []


def test_zip_bomb_too_many_files_and_non_zip_are_refused(user_data, monkeypatch):
    bomb = make_zip({"a/1.jpg": b"\0" * 3_000_000, "b/2.jpg": b"x"})  # 3 MB of zeros compress ~1000:1
    with pytest.raises(DataError, match="compresses .*:1 \\(a zip bomb\\?\\)"):
        datasets.import_zip(bomb, "bomb")
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(DataError, match="would extract to .* over the"):
        datasets.import_zip(class_zip(), "big")
    monkeypatch.setattr(archive, "MAX_MEMBERS", 5)
    with pytest.raises(DataError, match="holds 12 files, over the limit of 5"):
        datasets.import_zip(class_zip(), "many")
    with pytest.raises(DataError, match="not a zip archive"):
        datasets.import_zip(b"PK\x03\x04 but not really", "junk", display="junk.zip")
    assert not user_data.exists() or list(user_data.iterdir()) == []


def test_a_failure_while_writing_leaves_no_half_set(user_data, monkeypatch):
    datasets.import_zip(class_zip(per_class=2), "kept")
    calls = []

    def failing_read(zf, info, name):
        calls.append(info.filename)
        if len(calls) == 3:
            raise DataError(f"{name}: member {info.filename!r} cannot be read (simulated).")
        return zf.read(info)

    monkeypatch.setattr(archive, "read_member", failing_read)
    with pytest.raises(DataError, match="simulated"):
        datasets.import_zip(class_zip(), "broken")
    calls.clear()
    with pytest.raises(DataError, match="simulated"):
        datasets.import_zip(class_zip(), "kept", replace=True)
    assert sorted(p.name for p in user_data.iterdir()) == ["kept"]  # no temp folder, the old set intact
    assert datasets.validate_set(user_data / "kept").counts == {"circle": 2, "stripes": 2}


def test_names_are_checked_and_never_overwritten_without_asking(user_data):
    datasets.import_zip(class_zip(per_class=2), "mine")
    with pytest.raises(DataError, match="already exists"):
        datasets.import_zip(class_zip(per_class=3), "mine")
    datasets.import_zip(class_zip(per_class=3), "mine", replace=True)
    assert datasets.validate_set(user_data / "mine").counts == {"circle": 3, "stripes": 3}
    for bad in ("../up", "dance", "", "a/b", "x.y"):
        with pytest.raises(DataError, match="Data set name"):
            datasets.check_name(bad)


def test_sets_from_class_uploads_and_webcam_shots(user_data):
    info = datasets.create_from_classes("tm", {
        " Red, top ": [("../../shot.jpg", jpeg("circle", 1)), ("image.jpg", jpeg("circle", 2))],
        "blue": [("image.jpg", jpeg("stripes", 3)), ("image.jpg", jpeg("stripes", 4))],
    }, source="webcam")
    report = datasets.validate_set(info.path)
    assert report.counts == {"blue": 2, "red, top": 2} and report.ready
    assert all(user_data.resolve() / "tm" / "train" in Path(p).resolve().parents for p in report.rows["path"])
    with pytest.raises(DataError, match="differ only in case"):
        datasets.create_from_classes("x", {"A": [("1.jpg", b"")], "a": [("2.jpg", b"")]})
    with pytest.raises(DataError, match="has no images yet"):
        datasets.create_from_classes("x", {"a": [("1.jpg", b"")], "b": []})
    with pytest.raises(DataError, match="not an image file name"):
        datasets.create_from_classes("x", {"a": [("1.exe", b"")], "b": [("2.jpg", b"")]})
    with pytest.raises(DataError, match="Class name"):
        datasets.create_from_classes("x", {"a/../b": [("1.jpg", b"")], "b": [("2.jpg", b"")]})
    assert [s.name for s in datasets.list_sets()] == ["tm"]


def test_file_names_stay_unique_across_classes_and_a_sidecar_finds_its_set(user_data):
    same_names = make_zip({f"{kind}/1.jpg": jpeg(kind, c) for c, kind in enumerate(("circle", "square", "stripes"))})
    info = datasets.import_zip(same_names, "clash")
    names = sorted(Path(p).name for p in datasets.validate_set(info.path).rows["path"])
    assert names == ["1-2.jpg", "1-3.jpg", "1.jpg"]  # hold-out lists in sidecars are by file name
    uploads = datasets.create_from_classes("up", {"a": [("x.jpg", jpeg("circle", 1))],
                                                  "b": [("x.jpg", jpeg("square", 2))]})
    rows = datasets.validate_set(uploads.path).rows
    assert sorted(Path(p).name for p in rows["path"]) == ["0000-x.jpg", "0001-x.jpg"]
    assert datasets.training_folder({"data": {"folder": "clash"}}) == info.path
    assert datasets.training_folder({"data": {"folder": "dance"}}) is None
    assert datasets.training_folder({"data": {"folder": "../etc"}}) is None and datasets.training_folder({}) is None


def test_near_duplicates_are_grouped(user_data):
    same = jpeg("circle", 5, size=64)
    info = datasets.create_from_classes("dups", {"a": [("1.jpg", same), ("2.jpg", same), ("3.jpg", jpeg("square", 6))],
                                                 "b": [("4.jpg", jpeg("stripes", 7)), ("5.jpg", jpeg("stripes", 8))]})
    groups = datasets.validate_set(info.path).duplicates
    assert [sorted(Path(p).name for p in g) for g in groups] == [["0000-1.jpg", "0001-2.jpg"]]


def test_blockers_name_what_stops_training(tmp_path):
    report = datasets.SetReport(tmp_path, None, [], {"a": 1, "b": 6})
    assert report.blockers == ["every class needs at least 2 images (a has fewer)"]
    assert recipes.holdout_fraction({"a": 4, "b": 9}) == 0.0 and recipes.holdout_fraction({"a": 5, "b": 9}) == 0.2
    assert recipes.recipe("quick", {"a": 5}).method == "probe" and recipes.recipe("full", {"a": 5}).method == "finetune"
    assert recipes.cv_folds({"a": 3, "b": 9}) == 3


# ---------------------------------------------------------------------------------------------- bundles


def test_bundle_round_trip_and_refusals(tiny_checkpoint, user_data, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_checkpoint.with_suffix(suffix), weights / f"mine{suffix}")
    (weights / "mine.onnx").write_bytes(b"pretend onnx")
    file_name, data = bundle.export_bundle("mine")
    assert file_name == "mine.zip"
    assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == ["mine.json", "mine.onnx", "mine.safetensors"]
    with pytest.raises(CheckpointError, match="already exists"):
        bundle.import_bundle(data, display="mine.zip")
    stem = bundle.import_bundle(data, name="theirs", display="mine.zip")
    loaded = checkpoint.load(stem)
    assert loaded.classes == checkpoint.load(weights / "mine").classes
    assert (weights / "theirs.safetensors").read_bytes() == (weights / "mine.safetensors").read_bytes()
    exported = (weights / "theirs.onnx").read_bytes()  # a graph from outside is never imported: made here
    assert exported != b"pretend onnx"
    assert checkpoint.read_sidecar(stem)["onnx"]["fp32"]["sha256"] == hashlib.sha256(exported).hexdigest()
    assert sorted(p.name for p in weights.iterdir()) == ["mine.json", "mine.onnx", "mine.safetensors",
                                                        "theirs.json", "theirs.onnx", "theirs.safetensors"]
    bundle.import_bundle(data, name="theirs", replace=True)
    with pytest.raises(CheckpointError, match="default"):
        bundle.import_bundle(data, name="default")


def test_bad_bundles_are_refused_with_their_reason(tiny_checkpoint, user_data, tmp_path):
    weights = tmp_path / "weights"
    good = {f"m{s}": tiny_checkpoint.with_suffix(s).read_bytes() for s in (".json", ".safetensors")}
    cases = {
        "pickle": ({**good, "m.pt": b"\x80\x04"}, "does not belong in a checkpoint bundle"),
        "folder": ({"x/m.json": good["m.json"], "x/m.safetensors": good["m.safetensors"]}, "does not belong"),
        "no weights": ({"m.json": good["m.json"]}, "needs both"),
        "two names": ({"a.json": good["m.json"], "b.safetensors": good["m.safetensors"]}, "different names"),
        "damaged": ({"m.json": good["m.json"], "m.safetensors": b"garbage" * 10}, "not a valid safetensors file"),
        "traversal": ({"../m.json": good["m.json"]}, "escapes"),
    }
    for case, (entries, expected) in cases.items():
        with pytest.raises((CheckpointError, DataError)) as caught:
            bundle.import_bundle(make_zip(entries), display="b.zip")
        assert str(caught.value).startswith("b.zip: ") and expected in str(caught.value), case
    assert not weights.exists() or list(weights.iterdir()) == []


# ---------------------------------------------------------------------------------------------- command line


def test_cli_data_import_list_and_bundle_round_trip(tiny_checkpoint, user_data, tmp_path, capsys):
    from dance.cli import main

    archive_file = tmp_path / "set.zip"
    archive_file.write_bytes(class_zip(per_class=3))
    assert main(["data", "import", str(archive_file), "--name", "myset"]) == 0
    out = capsys.readouterr().out
    assert f"as {user_data / 'myset'}: 6 images that pass (circle 3, stripes 3)" in out
    assert main(["data", "import", str(archive_file), "--name", "myset"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "list"]) == 0
    assert capsys.readouterr().out.startswith("myset\tcircle 3, stripes 3\tzip set.zip (folders)")
    out_zip = tmp_path / "tiny.zip"
    assert main(["bundle", "export", str(tiny_checkpoint), "--output", str(out_zip)]) == 0
    assert main(["bundle", "import", str(out_zip), "--name", "copy"]) == 0
    assert checkpoint.load(tmp_path / "weights" / "copy").classes == checkpoint.load(tiny_checkpoint).classes
    assert main(["bundle", "import", str(archive_file)]) == 2
    assert "does not belong in a checkpoint bundle" in capsys.readouterr().err
