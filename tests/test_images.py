"""The safe image loader on generated inputs (more of the corpus lives in test_robustness.py)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import encode
from PIL import Image

from dance.data.images import load_image, resize_shorter
from dance.data.tensors import to_uint8_tensor
from dance.errors import ImageError


def test_rgb_jpeg_round_trip():
    img = load_image(encode(Image.new("RGB", (40, 30), (200, 10, 10)), "JPEG"), name="a.jpg")
    assert img.mode == "RGB" and img.size == (40, 30)


def test_transparent_png_on_white():
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    out = load_image(encode(img, "PNG"), name="t.png")
    assert out.getpixel((5, 5)) == (255, 255, 255)


def test_empty_file_named_in_error():
    with pytest.raises(ImageError, match="empty.jpg: file is empty"):
        load_image(b"", name="empty.jpg")


def test_resize_shorter_never_upscales():
    img = Image.new("RGB", (400, 200))
    assert resize_shorter(img, 100).size == (200, 100)
    assert resize_shorter(img, 300).size == (400, 200)


def test_tensor_layout():
    arr = np.zeros((5, 7, 3), dtype=np.uint8)
    arr[..., 1] = 9
    t = to_uint8_tensor(Image.fromarray(arr))
    assert t.shape == (3, 5, 7) and int(t[1, 0, 0]) == 9
