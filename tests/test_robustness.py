"""A corpus of hostile and unusual image files, generated here, through every path that decodes images.

Each file either decodes to the right RGB pixels or yields one ImageError naming the file and the
reason: in `load_image`, in `dance predict` (others still processed, exit 1), in `dance check`
(bad images listed before training) and in `Predictor.predict` on uploaded bytes (the app's backend).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import encode, run_cli
from PIL import Image

from dance.data.images import MAX_BYTES, load_image
from dance.errors import ImageError

ROOT = Path(__file__).resolve().parents[1]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int, height: int, with_pixels: bool = False) -> bytes:
    """A valid grayscale PNG declaring width x height; with_pixels adds a zlib stream of all-zero rows."""
    png = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    if with_pixels:
        packer = zlib.compressobj(9)
        row = b"\x00" * (width + 1)
        png += png_chunk(b"IDAT", b"".join(packer.compress(row) for _ in range(height)) + packer.flush())
    return png + png_chunk(b"IEND", b"")


def photo(width: int = 48, height: int = 32, seed: int = 0) -> Image.Image:
    """An asymmetric RGB picture (so rotations are visible)."""
    arr = np.random.default_rng(seed).integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    arr[: height // 3, : width // 4] = (250, 20, 20)
    return Image.fromarray(arr)


def with_orientation(img: Image.Image, fmt: str, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, fmt, exif=exif)


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("photo.jpg", b"not really")
    return buf.getvalue()


GOOD_JPEG = encode(photo(), "JPEG", quality=90)

# name -> (bytes, regex of the reason) for files that must be refused
BAD = {
    "zero.jpg": (b"", "file is empty"),
    "text.jpg": (b"just some notes\n", "not a supported image"),
    "page.jpg": (b"<!doctype html><html><body><script>alert(1)</script></body></html>", "not a supported image"),
    "archive.jpg": (zip_bytes(), "not a supported image"),
    "truncated.jpg": (GOOD_JPEG[: len(GOOD_JPEG) // 2], "truncated or corrupt"),
    "bad-header.jpg": (GOOD_JPEG[:2] + b"\x00" * 30 + GOOD_JPEG[32:], "not a supported image"),
    "bad-segment.jpg": (b"\xff\xd8\xff\xe0" + b"\x00" * 20 + GOOD_JPEG[24:], "truncated or corrupt"),
    "bomb-header.png": (bomb_png(30000, 30000), "decompression bomb|megapixel limit"),
    "drawing.svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><rect width="9" height="9"/></svg>',
                    "not a supported image"),
}


def _gif_animation() -> bytes:
    frames = [Image.new("P", (20, 10), i) for i in range(3)]
    for f, colour in zip(frames, [(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        f.putpalette(list(colour) + [0, 0, 0] * 255)
        f.paste(0, (0, 0, 20, 10))
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _palette_transparent() -> bytes:
    img = Image.new("P", (8, 8), 1)
    img.putpalette([0, 0, 0, 10, 200, 10] + [0, 0, 0] * 254)
    img.paste(0, (0, 0, 4, 8))  # left half: index 0, declared transparent
    return encode(img, "PNG", transparency=0)


def _png16() -> bytes:
    arr = np.zeros((4, 6), dtype=np.uint16)
    arr[:, :2], arr[:, 2:4], arr[:, 4:] = 0, 32896, 65535
    return encode(Image.fromarray(arr), "PNG")


def _rgba() -> bytes:
    arr = np.zeros((6, 6, 4), dtype=np.uint8)
    arr[:, :3, 3] = 0  # fully transparent black
    arr[:, 3:, 3] = 128  # half-transparent black
    return encode(Image.fromarray(arr, "RGBA"), "PNG")


# name -> (bytes, expected (width, height), {pixel: RGB or None for "any"})
GOOD = {
    "png-named.jpg": (encode(photo(), "PNG"), (48, 32), {(0, 0): (250, 20, 20)}),
    "webp-named.png": (encode(photo(), "WEBP", lossless=True), (48, 32), {(0, 0): (250, 20, 20)}),
    "bmp-named.jpg": (encode(photo(), "BMP"), (48, 32), {(0, 0): (250, 20, 20)}),
    "gif-named.jpg": (encode(Image.new("RGB", (5, 5), (255, 0, 0)).convert("P"), "GIF"), (5, 5),
                      {(2, 2): (255, 0, 0)}),
    "animated.gif": (_gif_animation(), (20, 10), {(5, 5): (200, 30, 30)}),  # the first frame
    "cmyk.jpg": (encode(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), "JPEG", quality=100), (8, 8), {}),
    "deep16.png": (_png16(), (6, 4), {(0, 0): (0, 0, 0), (3, 0): (128, 128, 128), (5, 0): (255, 255, 255)}),
    "alpha.png": (_rgba(), (6, 6), {(0, 0): (255, 255, 255), (5, 0): (127, 127, 127)}),
    "palette-alpha.png": (_palette_transparent(), (8, 8), {(0, 0): (255, 255, 255), (7, 0): (10, 200, 10)}),
    "gray.jpg": (encode(Image.new("L", (9, 7), 77), "JPEG", quality=100), (9, 7), {(4, 3): (77, 77, 77)}),
    "one-pixel.png": (encode(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"), (1, 1), {(0, 0): (1, 2, 3)}),
    "thin.png": (encode(Image.new("RGB", (4000, 2), (9, 8, 7)), "PNG"), (4000, 2), {(3999, 1): (9, 8, 7)}),
    "rotated-exif.jpg": (with_orientation(photo(), "JPEG", 6), (32, 48), {}),
}


def write_corpus(folder: Path) -> tuple[list[Path], list[Path]]:
    """Write every GOOD and BAD file, plus a sparse file over the size limit; returns (good, bad) paths."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, *_) in {**GOOD, **BAD}.items():
        (folder / name).write_bytes(data)
    huge = folder / "huge.jpg"
    with huge.open("wb") as handle:  # sparse: costs no disk, but stat() reports it over the limit
        handle.write(GOOD_JPEG)
        handle.truncate(MAX_BYTES + 1024)
    return [folder / n for n in GOOD], [folder / n for n in BAD] + [huge]


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_file_gives_one_error_naming_file_and_reason(name, tmp_path):
    data, reason = BAD[name]
    path = tmp_path / name
    path.write_bytes(data)
    for source in (path, data):  # a file on disk and an upload's bytes
        with pytest.raises(ImageError, match=reason) as err:
            load_image(source, name=name)
        message = str(err.value)
        assert message.startswith(f"{name}: ") and "\n" not in message  # one sentence naming the file


@pytest.mark.parametrize("name", sorted(GOOD))
def test_unusual_but_valid_file_decodes_correctly(name):
    data, size, pixels = GOOD[name]
    img = load_image(data, name=name)
    assert img.mode == "RGB" and img.size == size
    for xy, rgb in pixels.items():
        assert np.abs(np.subtract(img.getpixel(xy), rgb)).max() <= 2, (xy, img.getpixel(xy))


def test_cmyk_colour_is_converted_not_garbled():
    r, g, b = load_image(GOOD["cmyk.jpg"][0], name="cmyk.jpg").getpixel((4, 4))
    assert r < 40 and g > 215 and b > 215  # pure cyan ink -> cyan on screen


def test_zero_filled_bomb_refused_before_decoding():
    data = bomb_png(9000, 9000, with_pixels=True)  # ~80 KB on disk, 81 megapixels once decoded
    assert len(data) < 200_000
    with pytest.raises(ImageError, match=r"9000x9000 pixels, over the 64 megapixel limit"):
        load_image(data, name="zeros.png")


def test_over_size_limit_refused_without_reading(tmp_path):
    _, bad = write_corpus(tmp_path)
    huge = tmp_path / "huge.jpg"
    with pytest.raises(ImageError, match=r"huge.jpg: file is 52.4 MB, over the 52 MB limit"):
        load_image(huge, name="huge.jpg")
    with pytest.raises(ImageError, match="over the 1 MB limit"):
        load_image(b"\xff" * 1_500_000, name="up.jpg", max_bytes=1_000_000)


def test_unreadable_paths_are_image_errors(tmp_path):
    with pytest.raises(ImageError, match="missing.jpg: file not found"):
        load_image(tmp_path / "missing.jpg", name="missing.jpg")
    with pytest.raises(ImageError, match="folder: file not found"):
        load_image(tmp_path, name="folder")
    with pytest.raises(ImageError, match="nul: file not found"):
        load_image(str(tmp_path / "a\x00b.jpg"), name="nul")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_rotation_gives_the_upright_pixels(fmt):
    base = photo(seed=3)
    oriented = load_image(with_orientation(base, fmt, 6), name="o")
    stored = Image.open(io.BytesIO(with_orientation(base, fmt, 6))).convert("RGB")
    assert oriented.size == (32, 48)
    assert np.array_equal(np.asarray(oriented), np.asarray(stored.transpose(Image.Transpose.ROTATE_270)))
    if fmt == "PNG":  # lossless: identical to the physically rotated file
        upright = load_image(encode(base.transpose(Image.Transpose.ROTATE_270), "PNG"), name="u")
        assert np.array_equal(np.asarray(oriented), np.asarray(upright))


def test_exif_rotated_photo_predicted_like_physically_rotated(tiny_checkpoint):
    from dance.inference import serving

    predictor = serving.load(tiny_checkpoint)
    base = photo(64, 40, seed=5)
    exif_file = with_orientation(base, "PNG", 8)
    rotated = encode(base.transpose(Image.Transpose.ROTATE_90), "PNG")
    unrotated = encode(base, "PNG")
    a, b, c = predictor.predict([("exif.png", exif_file), ("rot.png", rotated), ("raw.png", unrotated)])
    assert a.probs == pytest.approx(b.probs, abs=1e-6)
    assert a.probs != pytest.approx(c.probs, abs=1e-6)  # the orientation really changes the input


def test_predictor_on_uploaded_bytes_reports_each_bad_one(tiny_checkpoint):
    """The app's backend: uploads arrive as (name, bytes); bad ones get an error entry, the rest are classified."""
    from dance.inference import serving

    predictor = serving.load(tiny_checkpoint)
    uploads = [(n, GOOD[n][0]) for n in ("png-named.jpg", "thin.png")] + [(n, BAD[n][0]) for n in sorted(BAD)]
    preds = predictor.predict(uploads)
    assert [p.image for p in preds] == [n for n, _ in uploads]
    assert all(p.ok and abs(sum(p.probs.values()) - 1) < 1e-6 for p in preds[:2])
    for pred in preds[2:]:
        assert not pred.ok and pred.error.startswith(pred.image + ": ") and pred.label is None


def test_cli_predict_over_whole_corpus(tiny_checkpoint, tmp_path):
    good, bad = write_corpus(tmp_path / "corpus")
    proc = run_cli("predict", *good, *bad, "--json", "--weights", tiny_checkpoint)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(p) for p in good + bad]
    for line in lines[: len(good)]:
        assert "error" not in line and abs(sum(line["probs"].values()) - 1) < 1e-6
    reasons = {**{n: r for n, (_, r) in BAD.items()}, "huge.jpg": "over the 52 MB limit"}
    for line, path in zip(lines[len(good):], bad):
        assert line["error"].startswith(f"{path}: ")
        assert __import__("re").search(reasons[path.name], line["error"]), line["error"]


def test_cli_check_lists_every_bad_image_before_training(synth_data, tmp_path):
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    rows = ["Image,target"]
    for kind in ("circle", "square"):
        for i in range(3):
            name = f"{kind}{i}.jpg"
            (data / "train" / name).write_bytes((synth_data / "train" / name).read_bytes())
            rows.append(f"{name},{kind}")
    for name in ("zero.jpg", "page.jpg", "truncated.jpg", "bomb-header.png"):
        (data / "train" / name).write_bytes(BAD[name][0])
        rows.append(f"{name},circle")
    (data / "train.csv").write_text("\n".join(rows) + "\n")
    proc = run_cli("check", "--data", data)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "4 image(s) cannot be read" in proc.stderr
    for name in ("zero.jpg", "page.jpg", "truncated.jpg", "bomb-header.png"):
        assert f"  - {name}: " in proc.stderr
