"""Inference preprocessing in plain torch: the eval resize + normalisation and the test-time views (NumPy twin:
numpy_preprocess.py, used for serving).

Kept apart from `dance.transforms` (training augmentation, torchvision) because importing torchvision
costs over a second, and the prediction path — the app's first page — needs none of it.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


class EvalTransform:
    """uint8 (3, H, W) -> float (3, size, size): squash-resize (as the article does), scale to [0, 1], normalise."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float]):
        self.size = size
        self.mean = torch.tensor(list(mean), dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Resize with antialiasing (not rounded back to 8 bits, so NumPy serving can match it), then normalise."""
        x = image.float()
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x[None], size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=True)[0]
        return (x / 255.0 - self.mean) / self.std

    def __repr__(self) -> str:
        return f"EvalTransform(size={self.size})"


def build_eval_transform(size: int, mean: Sequence[float], std: Sequence[float]) -> EvalTransform:
    """Evaluation pipeline shared by validation, CV, prediction and ONNX checks."""
    return EvalTransform(size, mean, std)


def tta_views(batch: torch.Tensor) -> list[torch.Tensor]:
    """Test-time views of a normalised batch (N, 3, S, S): original, flip, and a zoomed centre crop of each."""
    size = batch.shape[-1]
    margin = size // 16
    crop = batch[..., margin:size - margin, margin:size - margin]
    zoomed = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return [batch, batch.flip(-1), zoomed, zoomed.flip(-1)]
