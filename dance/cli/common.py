"""What several commands share: console progress, the training options (defaults from TrainConfig), common flags."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from dance.config import RECIPES, AugmentConfig, TrainConfig


class ConsoleProgress:
    """tqdm bar per epoch and a one-line summary after each."""

    def __init__(self, quiet: bool = False):
        self.bar = None
        self.quiet = quiet  # CV prints one line per fold instead of per epoch

    def on_batch_end(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        """Advance the epoch's progress bar."""
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=batches, desc=f"epoch {epoch + 1}", leave=False, file=sys.stderr)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.3f}")

    def on_epoch_end(self, record: dict) -> bool:
        """Close the bar and print the epoch's summary line."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.quiet:
            return True
        parts = [f"epoch {record['epoch']:>3}"]
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            if key in record:
                parts.append(f"{key} {record[key]:.4f}")
        parts.append(f"{record['seconds']:.1f}s")
        print("  ".join(parts), flush=True)
        return True


def _flag_value(text: str) -> bool:
    """An on/off option's value: 1, true, yes or on mean on."""
    return text.lower() in ("1", "true", "yes", "on")


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """Every TrainConfig / AugmentConfig field as an option, defaults from the dataclasses."""
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        if f.name != "augment":
            parser.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(defaults, f.name)), default=None,
                                help=f"default: {getattr(defaults, f.name)}")
    group = parser.add_argument_group("augmentation")
    for f in fields(AugmentConfig):
        value = getattr(defaults.augment, f.name)
        group.add_argument("--aug-" + f.name.replace("_", "-"), type=_flag_value if isinstance(value, bool) else
                           type(value), default=None, help=f"default: {value}")
    parser.add_argument("--recipe", choices=tuple(RECIPES), default="default",
                        help="start from the default transfer recipe, the seed article's, or the mild one (crop "
                             "scale 0.5, no affine, erasing 0.25, weight decay 0.02, body/head LR 4e-4/4e-3)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from a recipe plus every option the user set."""
    cfg = RECIPES[args.recipe]()
    for f in fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is not None and f.name != "augment":
            setattr(cfg, f.name, value)
    for f in fields(AugmentConfig):
        value = getattr(args, "aug_" + f.name, None)
        if value is not None:
            setattr(cfg.augment, f.name, value)
    return cfg


def add_data(parser: argparse.ArgumentParser) -> None:
    """--data: the labelled set's folder."""
    parser.add_argument("--data", help="data folder (else $DANCE_DATA, data/dance, ../shared/data/dance)")


def add_precision(parser: argparse.ArgumentParser) -> None:
    """--precision for the commands that serve a model."""
    parser.add_argument("--precision", choices=("int8", "fp32"), default=None,
                        help="ONNX model to run (default: int8 when the checkpoint ships one, else fp32)")


def add_weights(parser: argparse.ArgumentParser, what: str = "checkpoint") -> None:
    """--weights: a checkpoint name in the weights folder or a path; none means the shipped default."""
    parser.add_argument("--weights", help=f"{what}: a name in weights/ or a path (default: the shipped default)")
