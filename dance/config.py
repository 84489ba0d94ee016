"""Dataclasses holding every default and every option's allowed range: the one source for the CLI, the UI,
checkpoints and resumed runs (train and cv check settings through `problems()` alike)."""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

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


def _opt(default: Any, low: float | None = None, high: float | None = None, choices: tuple = (),
         what: str = "") -> Any:
    """A dataclass field with its allowed range (inclusive) or choices, and the words an error uses for it."""
    return field(default=default, metadata={"low": low, "high": high, "choices": choices, "what": what})


def _problems(config: Any, prefix: str = "") -> list[str]:
    """What is wrong with each field of a config dataclass: type, finiteness, range, choices."""
    found = []
    for f in fields(config):
        value, meta = getattr(config, f.name), f.metadata
        if not meta:
            continue
        what = meta["what"] or f"{prefix}{f.name.replace('_', ' ')}"
        default = f.default if f.default is not MISSING else None
        if isinstance(default, bool):
            if not isinstance(value, bool):
                found.append(f"{what} must be true or false")
        elif isinstance(default, (int, float)):
            integer = isinstance(default, int)
            if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) \
                    or not math.isfinite(value):
                found.append(f"{what} must be {'a whole number' if integer else 'a number'}, not {value!r}")
            elif not meta["low"] <= value <= meta["high"]:
                found.append(f"{what} must be between {meta['low']:g} and {meta['high']:g} (got {value:g})")
        elif isinstance(default, str):
            if not isinstance(value, str):
                found.append(f"{what} must be text, not {value!r}")
            elif meta["choices"] and value not in meta["choices"]:
                found.append(f"unknown {what} {value!r}; choose {' or '.join(meta['choices'])}")
    return found


VIDEO_FPS = 2.0  # video frames classified per second of video (CLI --fps, the app's slider)
VIDEO_MIN_SEGMENT = 5.0  # seconds a video's answer must hold to start a new segment


@dataclass
class AugmentConfig:
    """Strength of each training augmentation; 0 switches an operation off."""

    preset: str = _opt("strong", choices=("article", "strong", "none"), what="augmentation preset")
    # "article" (Keras-style affine + flip), "strong" (adds crops + TrivialAugment), "none"
    crop_scale: float = _opt(0.35, 0.01, 1.0, what="crop scale")  # RandomResizedCrop lower area bound ("strong")
    rotation: float = _opt(15.0, 0, 180, what="rotation")  # degrees
    shift: float = _opt(0.1, 0, 0.9, what="shift")  # fraction of the side
    zoom: float = _opt(0.2, 0, 0.9, what="zoom")  # +- fraction
    hflip: float = _opt(0.5, 0, 1, what="flip probability")  # probability
    color: float = _opt(0.2, 0, 1, what="colour jitter")  # brightness/contrast/saturation jitter
    trivial_augment: bool = _opt(True, what="TrivialAugment")  # TrivialAugmentWide ("strong" only)
    erasing: float = _opt(0.0, 0, 1, what="erasing probability")  # RandomErasing probability
    squash_first: bool = _opt(False, what="squash first")  # "strong": squash the whole photo to a square (as
    # evaluation does) before cropping, so crop scale 1 keeps the whole figure (a crop of the photo as decoded cuts
    # a portrait's top or bottom)

    def problems(self) -> list[str]:
        """Every out-of-range or ill-typed option, one phrase each (empty when all are fine)."""
        return _problems(self, "augmentation ")

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

    model: str = "effnet-lite0"  # checked against the registry by the trainer
    method: str = _opt("finetune", choices=("finetune", "probe"), what="method")
    # "finetune" (train the network) or "probe" (frozen backbone + logistic-regression head)
    probe_views: int = _opt(8, 1, 64)  # probe: augmented views per training image whose features train the head
    probe_c: float = _opt(0.5, 1e-6, 1e6, what="probe C")  # probe: inverse L2 strength of the logistic regression
    epochs: int = _opt(12, 1, 10_000)
    batch_size: int = _opt(32, 1, 4096, what="batch size")
    lr: float = _opt(2e-3, 1e-8, 10.0, what="the learning rate")
    weight_decay: float = _opt(1e-4, 0, 1.0, what="weight decay")
    optimizer: str = _opt("adamw", choices=("adamw", "adam"), what="optimizer")  # "adam" is the article's
    schedule: str = _opt("onecycle", choices=("onecycle", "cosine", "constant"), what="schedule")
    image_size: int = _opt(0, 0, 1024, what="image size")  # 0: the model's own input size (else 32..1024)
    label_smoothing: float = _opt(0.1, 0, 0.5, what="label smoothing")
    freeze_epochs: int = _opt(1, 0, 10_000, what="frozen-backbone epochs")  # head-only epochs before unfreezing
    backbone_lr_scale: float = _opt(0.3, 1e-3, 10.0, what="the backbone learning-rate scale")  # backbone gets lr * this
    mixup: float = _opt(0.0, 0, 10.0, what="mixup alpha")  # mixup alpha; 0 = off
    patience: int = _opt(0, 0, 10_000)  # early stopping on validation loss; 0 = off
    val_fraction: float = _opt(0.2, 0, 0.49, what="the hold-out fraction")  # hold-out share; 0 = all trains
    seed: int = _opt(0, 0, 2**32 - 1)
    device: str = "auto"  # "auto", "cpu" or "cuda" (checked against the machine by the trainer)
    limit: int = _opt(0, 0, 10**9)  # use only the first N rows (tests, quick checks); 0 = all
    workers: int = _opt(0, 0, 64)  # DataLoader processes that augment while the model trains; 0 = in-process
    teacher: str = _opt("")  # distillation: checkpoint whose predictions are also learnt ("{fold}" = each fold's)
    distill_weight: float = _opt(0.5, 0, 1.0, what="the distillation weight")  # share of the loss from the teacher
    distill_temperature: float = _opt(2.0, 0.05, 100.0, what="the distillation temperature")  # softens both
    unlabelled: str = _opt("")  # distillation: a folder of unlabelled images added with the teacher's soft targets only
    class_weights: str = _opt("none", choices=("none", "balanced"), what="class weights")
    # "balanced": loss (probe: logistic regression) weighted by inverse class frequency
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def problems(self) -> list[str]:
        """Every out-of-range or ill-typed option (augmentation included), one phrase each."""
        found = _problems(self)
        if isinstance(self.image_size, int) and 0 < self.image_size < 32:
            found.append("image size must be between 32 and 1024 pixels (or 0 for the model's own)")
        if not isinstance(self.augment, AugmentConfig):
            return [*found, "augment must be a set of augmentation options"]
        return found + self.augment.problems()

    def to_dict(self) -> dict:
        """Plain dict for JSON sidecars."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Build from a dict, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names and k != "augment"}
        return cls(augment=AugmentConfig.from_dict(data.get("augment", {})), **values)


@dataclass
class CVConfig:
    """Cross-validation's own options (the folds' training options are a TrainConfig)."""

    folds: int = _opt(CV_FOLDS, 2, 50, what="folds")
    repeats: int = _opt(CV_REPEATS, 1, 20, what="repeats")

    def problems(self) -> list[str]:
        """Every out-of-range or ill-typed option, one phrase each."""
        return _problems(self)


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
