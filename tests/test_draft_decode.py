"""Fast JPEG decoding (Pillow draft mode) for prediction: same answers as a full decode, orientation kept."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dance import paths
from dance.data.images import load_image
from dance.inference import serving


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    """A smooth photo-like JPEG, optionally with an EXIF orientation tag."""
    y, x = np.mgrid[0:height, 0:width]
    arr = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1).astype(np.uint8)
    img = Image.fromarray(arr)
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    img.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def test_draft_decodes_at_the_smallest_scale_still_large_enough():
    data = jpeg(4000, 3000)
    assert load_image(data).size == (4000, 3000)
    assert load_image(data, min_side=258).size == (500, 375)  # 1/8 scale: 375 >= 258
    assert load_image(data, min_side=400).size == (1000, 750)  # 1/4: 1/8 would give 375 < 400
    assert load_image(jpeg(300, 200), min_side=258).size == (300, 200)  # too small to reduce


def test_draft_keeps_exif_orientation():
    img = load_image(jpeg(4000, 3000, orientation=6), min_side=258)  # 6: rotate 90 degrees when shown
    assert img.size == (375, 500)


def test_png_is_never_drafted():
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 1600), (10, 20, 30)).save(buffer, format="PNG")
    assert load_image(buffer.getvalue(), min_side=258).size == (2000, 1600)


@pytest.mark.parametrize("name", ["default", "large"])
def test_answers_equal_full_decoding_on_the_largest_photos(real_data, name):
    predictor = serving.load(paths.WEIGHTS_DIR / name, precision="fp32")
    files = sorted((real_data / "train").glob("*.jpg"), key=lambda p: p.stat().st_size)[-12:]
    drafted = predictor.predict(files)  # decodes with min_side=predictor.decode_side
    full = predictor.predict_images([load_image(p) for p in files], [str(p) for p in files])
    assert any(min(load_image(p, min_side=predictor.decode_side).size) < min(load_image(p).size) for p in files)
    for a, b in zip(drafted, full):
        assert max(abs(a.probs[c] - b.probs[c]) for c in a.probs) < 0.01, a.image
