"""One resolved run spec (as timm's resolve_data_config): the facts a TrainConfig or a sidecar implies, computed once.

Training resolves it from its config, stores it in the checkpoint's sidecar (`"run_spec"`), and every reader —
train, cv, probe, the engine, prediction, the augmentation preview, the benchmarks — takes its sizes, its
normalisation and its crop margin from here instead of re-deriving them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dance.config import CROP_MARGIN, TrainConfig, cache_side
from dance.models import checkpoint
from dance.models.registry import ModelSpec, get_spec
from dance.models.sidecar import stored_crop_margin

__all__ = ["CROP_MARGIN", "RunSpec", "cache_side", "resolve_run_spec", "run_spec_from_sidecar", "teacher_stems"]


def teacher_stems(cfg: TrainConfig, fold: int = 0) -> list[str]:
    """The teacher checkpoints of `cfg`, comma-separated ("{fold}" in a name becomes the CV fold number)."""
    return [part.strip().replace("{fold}", str(fold)) for part in cfg.teacher.split(",") if part.strip()]


@dataclass(frozen=True)
class RunSpec:
    """What a run's images look like: model, input and augmentation sizes, cache side, normalisation, margin."""

    model: ModelSpec
    input_size: int  # the model's input side
    augment_size: int  # side of augmented training images (the largest of the model's and its teachers')
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_margin: float = CROP_MARGIN

    @property
    def cache_side(self) -> int:
        """Shorter side training images are cached at (room for the augmentation's random crops)."""
        return cache_side(self.augment_size, self.crop_margin)

    @property
    def eval_side(self) -> int:
        """Shorter side an image is resized to before prediction's squash to the input size."""
        return cache_side(self.input_size, self.crop_margin)

    def to_dict(self) -> dict[str, Any]:
        """The sidecar's `run_spec` block (plain JSON)."""
        return {"model": self.model.name, "input_size": self.input_size, "augment_size": self.augment_size,
                "cache_side": self.cache_side, "mean": list(self.mean), "std": list(self.std),
                "crop_margin": self.crop_margin}


def resolve_run_spec(cfg: TrainConfig, teacher_size: int | None = None) -> RunSpec:
    """The run spec of `cfg`; the teachers' largest input size is read from their sidecars unless given."""
    model = get_spec(cfg.model)
    size = cfg.image_size or model.input_size
    if cfg.teacher and teacher_size is None:
        teacher_size = max((int(checkpoint.read_sidecar(s)["image_size"]) for s in teacher_stems(cfg)), default=0)
    return RunSpec(model, size, max(size, teacher_size or 0), tuple(model.mean), tuple(model.std))


def run_spec_from_sidecar(meta: dict[str, Any]) -> RunSpec:
    """The run spec a checkpoint was trained with; sidecars written before it was stored get it derived."""
    model = get_spec(str(meta["arch"]))
    size = int(meta["image_size"])
    stored = meta.get("run_spec") if isinstance(meta.get("run_spec"), dict) else {}
    augment = stored.get("augment_size")
    return RunSpec(
        model, size,
        augment if _is_int(augment) and size <= augment <= 4096 else size,
        tuple(float(v) for v in meta["mean"]), tuple(float(v) for v in meta["std"]), stored_crop_margin(meta),
    )


def _is_int(value: Any) -> bool:
    """An int, JSON booleans excluded."""
    return isinstance(value, int) and not isinstance(value, bool)


