"""PIL images <-> uint8 torch tensors (kept out of images.py so decoding needs no torch)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> uint8 tensor of shape (3, H, W)."""
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """uint8 or [0,1] float tensor (3, H, W) -> RGB PIL image."""
    if tensor.dtype != torch.uint8:
        tensor = (tensor.clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(tensor.permute(1, 2, 0).cpu().numpy())
