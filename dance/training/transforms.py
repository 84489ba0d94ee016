"""Training augmentation built in stages (torchvision transforms v2 on uint8 tensors; evaluation: dance.preprocess).

The augmentation preview calls `build_train_transform(..., normalize=False)`, so it shows
exactly what training sees, minus the final normalisation.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision.transforms import v2

from dance.config import AugmentConfig
from dance.data.loader import seeded_torch

PRESETS = ("none", "article", "strong")


def augmentation_stages(aug: AugmentConfig, size: int) -> list[tuple[str, v2.Transform]]:
    """Named augmentation stages on uint8 (3, H, W) tensors, ending at size x size."""
    if aug.preset not in PRESETS:
        raise ValueError(f"unknown augmentation preset {aug.preset!r}; choose one of {', '.join(PRESETS)}")
    stages: list[tuple[str, v2.Transform]] = []
    if aug.preset == "strong":
        if aug.squash_first:
            stages.append(("squash to square", v2.Resize((size, size), antialias=True)))
        stages.append(("random resized crop", v2.RandomResizedCrop(size, scale=(aug.crop_scale, 1.0), antialias=True)))
    else:
        stages.append(("resize", v2.Resize((size, size), antialias=True)))
    if aug.preset == "none":
        return stages
    if aug.hflip > 0:
        stages.append(("horizontal flip", v2.RandomHorizontalFlip(p=aug.hflip)))
    if aug.rotation > 0 or aug.shift > 0 or (aug.preset == "article" and aug.zoom > 0):
        # Keras ImageDataGenerator's rotation_range / width_shift / height_shift / zoom_range family.
        zoom = aug.zoom if aug.preset == "article" else 0.0
        stages.append((
            "affine",
            v2.RandomAffine(degrees=aug.rotation, translate=(aug.shift, aug.shift), scale=(1 - zoom, 1 + zoom)),
        ))
    if aug.preset == "strong" and aug.trivial_augment:
        stages.append(("TrivialAugment", v2.TrivialAugmentWide()))
    if aug.color > 0:
        # on floats: on uint8 each of the three adjustments round-trips through float (0.78 ms vs 0.24 ms per image)
        stages.append(("colour jitter", v2.Compose([
            v2.ToDtype(torch.float32, scale=True),
            v2.ColorJitter(brightness=aug.color, contrast=aug.color, saturation=aug.color),
        ])))
    return stages


def build_train_transform(
    aug: AugmentConfig, size: int, mean: Sequence[float], std: Sequence[float], normalize: bool = True
) -> v2.Compose:
    """Training pipeline: augmentation stages, then float conversion (if not done yet) and normalisation."""
    steps = [t for _, t in augmentation_stages(aug, size)]
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if aug.preset != "none" and aug.erasing > 0:
        steps.append(v2.RandomErasing(p=aug.erasing, value=0.5))
    if normalize:
        steps.append(v2.Normalize(mean=list(mean), std=list(std)))
    return v2.Compose(steps)


def augment_preview(
    image: torch.Tensor, aug: AugmentConfig, size: int, count: int, seed: int = 0
) -> list[torch.Tensor]:
    """`count` augmented variants of one uint8 image as [0,1] float tensors; variant i uses seed + i."""
    pipeline = build_train_transform(aug, size, mean=(0, 0, 0), std=(1, 1, 1), normalize=False)
    variants = []
    for i in range(count):
        with seeded_torch(seed + i):  # never between a training step's draws (see dance.data.loader.TORCH_RNG)
            variants.append(pipeline(image).clamp(0, 1))
    return variants
