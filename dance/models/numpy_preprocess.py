"""Inference preprocessing in NumPy, equal to `dance.models.preprocess` (torch) so serving needs no torch.

The resize is torch's antialiased bilinear `F.interpolate` (align_corners=False) as two matrix products: the
same triangle filter widened by the scale factor, weights normalised per output pixel. Results agree with
torch to float32 rounding (a few 1e-5 on the 0..255 scale), which is why neither side rounds to 8 bits.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np


@lru_cache(maxsize=64)
def _weights(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) float32 matrix of torch's antialiased bilinear filter along one axis (align_corners=False)."""
    scale = in_size / out_size
    support = scale if scale >= 1.0 else 1.0  # the triangle is widened by the scale when shrinking (antialiasing)
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    matrix = np.zeros((out_size, in_size), dtype=np.float64)
    for i in range(out_size):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        w = np.maximum(1.0 - np.abs((np.arange(lo, hi) - center + 0.5) * invscale), 0.0)
        if w.sum() > 0:
            matrix[i, lo:hi] = w / w.sum()
    return matrix.astype(np.float32)


def resize_bilinear(x: np.ndarray, size: int) -> np.ndarray:
    """float32 (..., H, W) -> (..., size, size), as torch's bilinear interpolate with antialias=True."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[-1] != size:
        x = x @ _weights(x.shape[-1], size).T
    if x.shape[-2] != size:
        x = _weights(x.shape[-2], size) @ x
    return x


class NumpyEvalTransform:
    """uint8 (H, W, 3) array -> float32 (3, size, size): squash-resize, scale to [0, 1], normalise."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]):
        self.size = size
        self.mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Same steps as `dance.models.preprocess.EvalTransform`."""
        x = resize_bilinear(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32), self.size)
        return ((x / np.float32(255.0) - self.mean) / self.std).astype(np.float32)


def tta_views(batch: np.ndarray) -> list[np.ndarray]:
    """The test-time views of `dance.models.preprocess.tta_views`: original, flip, zoomed centre crop, its flip."""
    size = batch.shape[-1]
    margin = size // 16
    zoomed = resize_bilinear(batch[..., margin:size - margin, margin:size - margin], size)
    return [batch, batch[..., ::-1], zoomed, zoomed[..., ::-1]]
