"""Dataclasses holding every default: the one source for the CLI, the UI and checkpoints."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace

CROP_MARGIN = 1.15  # images are cached (and predicted) at a little more than the input side, for random crops


def cache_side(size: int, margin: float = CROP_MARGIN) -> int:
    """Shorter side an image is resized to before a `size` x `size` crop or squash."""
    return math.ceil(size * margin)


# Defaults of the commands around training, here (not in the modules that use them) so the CLI can offer them
# without importing the stacks they configure.
CV_FOLDS = 5  # cross-validation folds
CV_REPEATS = 1  # repeats of the k-fold split with another seed
CALIBRATION_BINS = 15  # confidence bins of the expected calibration error
TARGET_ACCURACY = 0.9  # images answered (not "not sure") must reach this accuracy
TOP_LABELS = 3  # labels `predict` prints per image
ISSUES_SHOWN = 20  # rows `label-issues` prints
BACKENDS = ("auto", "torch", "onnx")  # inference engines: auto = ONNX Runtime when a verified export exists
INT8_CALIBRATION_IMAGES = 96  # training images `dance export --int8` calibrates the quantized model on

VIDEO_FPS = 2.0  # video frames classified per second of video (CLI --fps, the app's slider)
VIDEO_MIN_SEGMENT = 5.0  # seconds a video's answer must hold to start a new segment


@dataclass
class AugmentConfig:
    """Strength of each training augmentation; 0 switches an operation off."""

    preset: str = "strong"  # "article" (Keras-style affine + flip), "strong" (adds crops + TrivialAugment), "none"
    crop_scale: float = 0.35  # RandomResizedCrop lower area bound ("strong" only)
    rotation: float = 15.0  # degrees
    shift: float = 0.1  # fraction of the side
    zoom: float = 0.2  # +- fraction
    hflip: float = 0.5  # probability
    color: float = 0.2  # brightness/contrast/saturation jitter
    trivial_augment: bool = True  # TrivialAugmentWide ("strong" only)
    erasing: float = 0.0  # RandomErasing probability
    squash_first: bool = False  # "strong": squash the whole photo to a square (as evaluation does) before cropping,
    # so crop scale 1 keeps the whole figure (a crop of the photo as decoded cuts a portrait's top or bottom)

    def scaled(self, strength: float) -> "AugmentConfig":
        """A copy with rotation / shift / zoom / colour and the crop range scaled by `strength` (1 = unchanged)."""
        return replace(
            self,
            rotation=round(self.rotation * strength, 3), shift=round(self.shift * strength, 3),
            zoom=round(self.zoom * strength, 3), color=round(self.color * strength, 3),
            crop_scale=round(min(1.0, max(0.05, 1 - (1 - self.crop_scale) * strength)), 3),
        )

    @classmethod
    def from_dict(cls, data: dict) -> "AugmentConfig":
        """Build from a dict, ignoring unknown keys (older or newer sidecars)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved into every checkpoint."""

    model: str = "effnet-lite0"
    method: str = "finetune"  # "finetune" (train the network) or "probe" (frozen backbone + logistic-regression head)
    probe_views: int = 8  # probe: augmented views per training image whose features train the head
    probe_c: float = 0.5  # probe: inverse L2 strength of the logistic regression
    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # "adamw" or "adam" (the article's)
    schedule: str = "onecycle"  # "onecycle", "cosine" or "constant"
    image_size: int = 0  # 0: the model's own input size
    label_smoothing: float = 0.1
    freeze_epochs: int = 1  # head-only epochs before unfreezing a pretrained backbone
    backbone_lr_scale: float = 0.3  # discriminative LR: backbone gets lr * this
    mixup: float = 0.0  # mixup alpha; 0 = off
    patience: int = 0  # early stopping on validation loss; 0 = off
    val_fraction: float = 0.2  # hold-out share; 0 = train on everything
    seed: int = 0
    device: str = "auto"  # "auto", "cpu" or "cuda"
    limit: int = 0  # use only the first N rows (tests, quick checks); 0 = all
    workers: int = 0  # DataLoader processes that augment while the model trains; 0 = augment in this process
    teacher: str = ""  # distillation: checkpoint whose predictions are also learnt ("{fold}" = each CV fold's model)
    distill_weight: float = 0.5  # share of the loss that matches the teacher (when a teacher is set)
    distill_temperature: float = 2.0  # softens both distributions before they are compared
    unlabelled: str = ""  # distillation: a folder of unlabelled images added with the teacher's soft targets only
    class_weights: str = "none"  # "balanced": loss (probe: logistic regression) weighted by inverse class frequency
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict:
        """Plain dict for JSON sidecars."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Build from a dict, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names and k != "augment"}
        return cls(augment=AugmentConfig.from_dict(data.get("augment", {})), **values)


def article_config() -> TrainConfig:
    """The seed article's recipe: seed CNN, Adam, batch 32, Keras-style augmentation."""
    return TrainConfig(
        model="seed-cnn",
        epochs=60,
        lr=1e-3,
        weight_decay=0.0,
        optimizer="adam",
        schedule="constant",
        label_smoothing=0.0,
        freeze_epochs=0,
        augment=AugmentConfig(preset="article", color=0.0, trivial_augment=False),
    )


def mild_config() -> TrainConfig:
    """Milder augmentation and a stronger regulariser: crop scale 0.5, no affine on top of the random resized crop,
    random erasing 0.25, weight decay 0.02, body LR 4e-4 / head LR 4e-3 (the recipe of issue #14)."""
    return TrainConfig(
        lr=4e-3,
        backbone_lr_scale=0.1,
        weight_decay=0.02,
        augment=AugmentConfig(crop_scale=0.5, rotation=0.0, shift=0.0, erasing=0.25),
    )


RECIPES = {"default": TrainConfig, "article": article_config, "mild": mild_config}
