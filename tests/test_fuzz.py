"""Bounded fuzzing of the two readers of untrusted files: the image loader and the labels-CSV reader.

The only failure allowed is the documented error type (ImageError / DataError). `make test` runs a
small number of examples; set DANCE_FUZZ_EXAMPLES (e.g. 5000) for a longer run on demand.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
from conftest import synthetic_image
from helpers import encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dance.data.images import MAX_PIXELS, load_image
from dance.data.labels import read_labels
from dance.errors import DataError, ImageError

EXAMPLES = int(os.environ.get("DANCE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="DANCE_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _seeds() -> dict[str, bytes]:
    img = synthetic_image("circle", 7, size=24)
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [img.convert("P"), img.rotate(90).convert("P")]
    return {
        "jpeg": encode(img, "JPEG", quality=80),
        "jpeg-progressive-exif": encode(img, "JPEG", progressive=True, exif=exif),
        "png": encode(img, "PNG"),
        "png-rgba": encode(img.convert("RGBA"), "PNG"),
        "gif": encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "webp": encode(img, "WEBP"),
        "bmp": encode(img, "BMP"),
    }


SEEDS = _seeds()
mutation = st.tuples(st.sampled_from(["set", "delete", "insert", "int32"]), st.floats(0, 1), st.binary(min_size=1, max_size=8))


def mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, where, payload in edits:
        i = min(int(where * len(out)), len(out) - 1) if out else 0
        if kind == "set":
            out[i:i + len(payload)] = payload
        elif kind == "delete":
            del out[i:i + len(payload) * 4]
        elif kind == "insert":
            out[i:i] = payload
        else:  # overwrite with an extreme 32-bit value: sizes, lengths and offsets live in such fields
            out[i:i + 4] = (b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff", b"\x00\x01\x00\x00")[
                payload[0] % 4]
    return bytes(out)


@FUZZ
@given(seed=st.sampled_from(sorted(SEEDS)), edits=st.lists(mutation, min_size=1, max_size=6))
def test_mutated_images_decode_or_raise_image_error(seed, edits):
    data = mutate(SEEDS[seed], edits)
    try:
        img = load_image(data, name="fuzz.bin")
    except ImageError as exc:
        assert str(exc).startswith("fuzz.bin: ") and "\n" not in str(exc)
    else:
        assert img.mode == "RGB" and img.width >= 1 and img.height >= 1 and img.width * img.height <= MAX_PIXELS
        assert np.asarray(img).shape == (img.height, img.width, 3)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_never_escape_as_other_errors(data):
    try:
        load_image(data, name="junk")
    except ImageError as exc:
        assert str(exc).startswith("junk: ")


class _Folder:
    """One image folder shared by the CSV examples (hypothesis reruns the body many times)."""

    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        (self.root / "train").mkdir()
        for name in ("a.jpg", "b.jpg", "c d.jpg"):
            (self.root / "train" / name).write_bytes(b"x")
        (self.root / "outside.jpg").write_bytes(b"x")


FOLDER = _Folder()
cells = st.one_of(
    st.sampled_from(["a.jpg", "b.jpg", "c d.jpg", "../outside.jpg", "/etc/passwd", "x", "", " A.JPG ", "kathak",
                     "Kathak", "image", "target", "\ufeff", "\"", ",", "\r\n", "..", "./a.jpg"]),
    st.text(max_size=12),
)
rows = st.lists(st.lists(cells, min_size=0, max_size=4), max_size=8)


def _check_table(csv_text: bytes) -> None:
    path = FOLDER.root / "train.csv"
    path.write_bytes(csv_text)
    try:
        table = read_labels(path, FOLDER.root / "train")
    except DataError as exc:
        assert str(exc).startswith(str(path))  # one message that names the file it is about
        return
    root = (FOLDER.root / "train").resolve()
    for row in table.frame.itertuples():
        resolved = Path(row.path).resolve()
        assert root in resolved.parents and resolved.is_file()  # never a file outside the folder
        assert row.label and row.label == row.label.lower().strip()
    assert len(set(Path(p).resolve() for p in table.frame["path"])) == len(table.frame)
    lines = [p.line for p in table.problems]
    assert lines == sorted(lines) and all(n >= 2 for n in lines)


@FUZZ
@given(header=st.sampled_from(["Image,target", "image , TARGET", "\ufeffImage,target", "Image", "x,y", ""]),
       body=rows, newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_structured_csv_rows_are_valid_or_reported(header, body, newline):
    import csv

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(body)
    _check_table((header + newline + buffer.getvalue()).encode("utf-8"))


@FUZZ
@given(text=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_random_csv_text_raises_only_data_error(text):
    _check_table(text)


def _video_seeds() -> dict[str, bytes]:
    """Tiny clips in each container the app accepts (made with PyAV)."""
    from test_video import write_video

    with tempfile.TemporaryDirectory() as tmp:
        return {f"{ext}-{codec}": write_video(Path(tmp) / f"seed.{ext}", [("square", 1), ("stripes", 1)], side=32,
                                              codec=codec, rate=5).read_bytes()
                for ext, codec in (("mp4", "libx264"), ("mkv", "libx264"), ("webm", "libvpx"), ("mov", "mpeg4"))}


VIDEO_SEEDS = _video_seeds()
VIDEO_FUZZ = settings(max_examples=max(20, EXAMPLES // 4), deadline=None,
                      derandomize="DANCE_FUZZ_EXAMPLES" not in os.environ,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@VIDEO_FUZZ
@given(seed=st.sampled_from(sorted(VIDEO_SEEDS)), edits=st.lists(mutation, min_size=1, max_size=6))
def test_mutated_videos_decode_or_raise_video_error(seed, edits, tmp_path_factory):
    from dance.data.video import sample_frames
    from dance.errors import VideoError

    path = tmp_path_factory.mktemp("fuzz") / "fuzz.bin"
    path.write_bytes(mutate(VIDEO_SEEDS[seed], edits))
    try:
        frames = list(sample_frames(path, fps=2))
    except VideoError as exc:
        assert str(exc).startswith("fuzz.bin: ") and "\n" not in str(exc)
    else:
        assert frames and all(f.image.mode == "RGB" and f.image.width >= 1 for f in frames)
