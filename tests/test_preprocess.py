"""Inference preprocessing directly: the eval transform's resize and normalisation, and the test-time views."""

from __future__ import annotations

import torch

from dance.models.preprocess import build_eval_transform, tta_views


def test_eval_transform_squashes_to_the_size_and_normalises():
    image = torch.full((3, 30, 50), 255, dtype=torch.uint8)
    image[0] = 0
    out = build_eval_transform(16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))(image)
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    assert torch.allclose(out[0], torch.full((16, 16), -1.0)) and torch.allclose(out[1:], torch.ones(2, 16, 16))
    square = torch.randint(0, 256, (3, 30, 30), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    plain = build_eval_transform(30, (0, 0, 0), (1, 1, 1))(square)
    assert torch.equal(plain, square.float() / 255)  # already the right size: values only rescaled


def test_downscale_is_antialiased():
    stripes = torch.zeros((3, 64, 64), dtype=torch.uint8)
    stripes[:, :, ::2] = 255
    out = build_eval_transform(8, (0, 0, 0), (1, 1, 1))(stripes)
    assert torch.allclose(out, torch.full_like(out, 0.5), atol=8 / 255)  # averaged, not aliased to 0 or 1


def test_tta_views_are_the_image_its_mirror_and_a_zoomed_pair():
    batch = torch.rand(2, 3, 32, 32)
    views = tta_views(batch)
    assert len(views) == 4 and all(v.shape == batch.shape for v in views)
    assert torch.equal(views[0], batch) and torch.equal(views[1], batch.flip(-1))
    assert torch.equal(views[3], views[2].flip(-1)) and not torch.allclose(views[2], batch)
