"""The NumPy serving preprocessing equals the torch evaluation transform (resize, normalise, TTA views)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from dance.data.images import load_image, resize_shorter
from dance.data.tensors import to_uint8_tensor
from dance.models import numpy_preprocess
from dance.models.preprocess import build_eval_transform, tta_views

NORMS = {"lite": ((0.5,) * 3, (0.5,) * 3), "unit": ((0.0,) * 3, (1.0,) * 3)}


def photos(real_data, count=8):
    """Real photos of several sizes and aspect ratios."""
    files = sorted((real_data / "train").glob("*.jpg"), key=lambda p: p.stat().st_size)
    return [load_image(p) for p in files[:: max(1, len(files) // count)][:count]]


@pytest.mark.parametrize("size,norm", [(224, "lite"), (320, "lite"), (64, "unit")])
def test_eval_transform_matches_torch_on_real_photos(real_data, size, norm):
    mean, std = NORMS[norm]
    torch_tf = build_eval_transform(size, mean, std)
    numpy_tf = numpy_preprocess.NumpyEvalTransform(size, mean, std)
    for img in photos(real_data):
        small = resize_shorter(img, math.ceil(size * 1.15))
        expected = torch_tf(to_uint8_tensor(small)).numpy()
        got = numpy_tf(np.asarray(small))
        assert got.shape == expected.shape == (3, size, size) and got.dtype == np.float32
        assert np.abs(got - expected).max() < 1e-4


def test_upscaling_a_small_image_matches_torch():
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(37, 51, 3), dtype=np.uint8)
    expected = build_eval_transform(64, *NORMS["lite"])(to_uint8_tensor(Image.fromarray(arr))).numpy()
    got = numpy_preprocess.NumpyEvalTransform(64, *NORMS["lite"])(arr)
    assert np.abs(got - expected).max() < 1e-4


def test_image_already_at_size_is_only_normalised():
    arr = np.full((32, 32, 3), 255, dtype=np.uint8)
    got = numpy_preprocess.NumpyEvalTransform(32, *NORMS["lite"])(arr)
    assert np.array_equal(got, np.ones((3, 32, 32), dtype=np.float32))


def test_tta_views_match_torch():
    batch = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    expected = [v.numpy() for v in tta_views(torch.from_numpy(batch))]
    got = numpy_preprocess.tta_views(batch)
    assert len(got) == len(expected) == 4
    for a, b in zip(got, expected):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4
