"""Hostile and sloppy labels CSVs beyond tests/test_data.py: every problem listed with its line, harmless
variations normalised (the rules are in dance/data.py's module docstring)."""

from __future__ import annotations

import pytest
from conftest import make_dataset, synthetic_image

from dance.cli import main
from dance.data.labels import load_labelled, load_unlabelled, read_labels
from dance.errors import DataError


@pytest.fixture()
def data(tmp_path):
    return make_dataset(tmp_path / "d", per_class=3, test=2)


def write(data, content, name="train.csv"):
    (data / name).write_bytes(content.encode("utf-8") if isinstance(content, str) else content)


def problems(data, content, **kw):
    write(data, content)
    return [str(p) for p in read_labels(data / "train.csv", data / "train", **kw).problems]


def refused(data, content, capsys, one_line: bool = True) -> str:
    """The DataError loading `content` raises, checked to reach the user as the CLI's own message and exit 2."""
    write(data, content)
    with pytest.raises(DataError) as err:
        load_labelled(data)
    message = str(err.value)
    capsys.readouterr()
    assert main(["check", "--data", str(data)]) == 2  # a user error: caught and reported, never raised
    assert capsys.readouterr().err == f"error: {message}\n"
    assert ("\n" not in message) == one_line, message
    return message


def test_wrong_field_count_is_named_not_misread(data):
    found = problems(data, "Image,target\ncircle0.jpg\ncircle1.jpg,circle,extra\nsquare0.jpg,square\n")
    assert found == ["line 2 (circle0.jpg): has 1 field, expected 2", "line 3 (circle1.jpg): has 3 fields, expected 2"]


def test_line_numbers_count_blank_lines_and_multiline_fields(data):
    found = problems(data, 'Image,target\n\ncircle0.jpg,circle\n\n"missing\n.jpg",circle\nnope.jpg,square\n')
    assert found == ["line 6 (missing\n.jpg): control character in image name", "line 7 (nope.jpg): image file not found"]


def test_cr_only_line_endings_and_quoted_commas(data):
    (data / "train" / "a,b.jpg").write_bytes((data / "train" / "circle0.jpg").read_bytes())
    write(data, 'Image,target\r"a,b.jpg",circle\rsquare0.jpg,square\r')
    ds = load_labelled(data)
    assert [p.name for p in ds.paths] == ["a,b.jpg", "square0.jpg"]


@pytest.mark.parametrize("name, reason", [
    ("C:\\photos\\a.jpg", "absolute path not allowed"),
    ("\\\\server\\share\\a.jpg", "absolute path not allowed"),
    ("sub/../../x.jpg", "name escapes the image folder ('..')"),
    ("..\\x.jpg", "name escapes the image folder ('..')"),
    (".", "not a file name"),
    ("a" * 300 + ".jpg", "path cannot be used (File name too long)"),
    ("circle0.jpg\tx", "control character in image name"),
])
def test_unsafe_names(data, name, reason):
    assert problems(data, f'Image,target\n"{name}",circle\n') == [f"line 2 ({name}): {reason}"]


def test_nul_byte_refuses_the_file(data, capsys):
    assert "contains NUL bytes" in refused(data, "Image,target\ncircle0.jpg\x00,circle\n", capsys)


def test_symlinked_subfolder_pointing_outside(data, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    synthetic_image("circle", 3).save(outside / "x.jpg")
    (data / "train" / "sub").symlink_to(outside, target_is_directory=True)
    (data / "train" / "inside.jpg").symlink_to(data / "train" / "circle0.jpg")  # a link within the folder is fine
    assert problems(data, "Image,target\nsub/x.jpg,circle\ninside.jpg,circle\n") == [
        "line 2 (sub/x.jpg): name resolves outside the image folder (symlink?)"]


def test_same_file_spelled_twice_is_a_duplicate(data):
    assert problems(data, "Image,target\ncircle0.jpg,circle\n./circle0.jpg,square\n") == [
        "line 3 (./circle0.jpg): duplicate of line 2"]


def test_control_character_in_label(data):
    assert problems(data, 'Image,target\ncircle0.jpg,"cir\ncle"\nsquare0.jpg,square\n') == [
        "line 3 (circle0.jpg): control character in label"]


@pytest.mark.parametrize("content, message", [
    ("Image;target\ncircle0.jpg;circle\n", "columns must be separated by commas"),
    ("Image\ttarget\ncircle0.jpg\tcircle\n", "columns must be separated by commas"),
    ("Image,target\ncircle0.jpg,circle\n".encode("utf-16"), "not UTF-8"),
    ('Image,target\n"circle0.jpg,circle\n', "not a readable CSV"),
    (",\n , \n", "no header row"),
    ("\n \n", "file is empty"),
    ("Image,target\n\n", "no rows"),
    ("\ufeffImage,target\ncircle0.jpg,circle\n", "needs at least 2 classes"),  # BOM accepted; then a real check
])
def test_whole_file_refusals(data, content, message, capsys):
    assert message in refused(data, content, capsys)


def test_every_problem_listed_once_in_line_order(data, capsys):
    content = ("Image,target\nmissing.jpg,circle\ncircle0.jpg,circle\n/etc/passwd,square\n"
               "circle0.jpg,circle\nsquare0.jpg,\nstripes0.jpg,stripes,x\n")
    message = refused(data, content, capsys, one_line=False)
    lines = message.splitlines()
    assert "5 invalid row(s)" in lines[0]
    assert [line.split(" (")[0].strip(" -") for line in lines[1:]] == ["line 2", "line 4", "line 5", "line 6", "line 7"]


def test_upper_case_and_whitespace_normalised_consistently(data):
    write(data, "  image ,  LABEL \n circle0.jpg , Circle \nsquare0.jpg,SQUARE\nstripes0.jpg,\tstripes\t\n")
    ds = load_labelled(data)
    assert ds.classes == ["circle", "square", "stripes"] and [p.name for p in ds.paths] == [
        "circle0.jpg", "square0.jpg", "stripes0.jpg"]


def test_unlabelled_csv_validated_like_training(data):
    write(data, "Image\nt0.png\n../train/circle0.jpg\nt0.png\n", name="test.csv")
    with pytest.raises(DataError) as err:
        load_unlabelled(data)
    assert "line 3 (../train/circle0.jpg): name escapes" in str(err.value)
    assert "line 4 (t0.png): duplicate of line 2" in str(err.value)


def test_names_with_a_colon_are_plain_names_not_absolute_paths(data):
    for name in ("img:1.jpg", "2024-01-01 10:30.jpg"):
        (data / "train" / name).write_bytes((data / "train" / "circle0.jpg").read_bytes())
    write(data, 'Image,target\nimg:1.jpg,circle\n"2024-01-01 10:30.jpg",circle\nsquare0.jpg,square\n')
    assert [p.name for p in load_labelled(data).paths] == ["img:1.jpg", "2024-01-01 10:30.jpg", "square0.jpg"]
    assert problems(data, "Image,target\nC:x.jpg,circle\n") == ["line 2 (C:x.jpg): absolute path not allowed"]
