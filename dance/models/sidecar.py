"""Checkpoint sidecars without torch: names and paths, the validated `<stem>.json`, listing and updating.

Serving (ONNX Runtime) needs only this: the sidecar says what the model is, how to preprocess for it and
which ONNX files were exported from it (with their SHA-256). `dance.models.checkpoint` adds the torch side.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dance import paths
from dance.config import CROP_MARGIN, cache_side
from dance.errors import CheckpointError
from dance.fileio import atomic_write_json

DEFAULT_NAME = "default"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar")

def stem_of(path: str | os.PathLike) -> Path:
    """`weights/x`, `weights/x.json` or `weights/x.safetensors` -> `weights/x`."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".json", ".safetensors") else path


def is_default(path: str | os.PathLike, weights_dir: Path | None = None) -> bool:
    """Whether `path` names the shipped default checkpoint."""
    # the shipped one is always protected
    roots = [weights_dir] if weights_dir else [paths.weights_root(), paths.WEIGHTS_DIR]
    return any(stem_of(path).resolve() == (root / DEFAULT_NAME).resolve() for root in roots)


def resolve(name_or_path: str | os.PathLike | None, weights_dir: Path | None = None) -> Path:
    """A checkpoint name (`default`, `my-run`) or path -> its stem; refuses pickle-based files."""
    text = str(name_or_path or DEFAULT_NAME)
    path = Path(text)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{text}: pickle-based weights files are refused (they can run code); use a .safetensors checkpoint."
        )
    if path.suffix in ("", ".json", ".safetensors") and not path.parent.parts and not path.exists() \
            and not Path(text + ".safetensors").exists():
        path = (weights_dir or paths.weights_root()) / text  # a bare name means a checkpoint in weights/
    return stem_of(path)


def read_sidecar(stem: str | os.PathLike) -> dict[str, Any]:
    """Parse and validate `<stem>.json`; raises CheckpointError."""
    stem = stem_of(stem)
    sidecar = stem.with_suffix(".json")
    if not sidecar.is_file():
        raise CheckpointError(f"{sidecar}: sidecar not found (a checkpoint is a .safetensors file plus its .json).")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{sidecar}: not valid JSON ({exc}).") from None
    except OSError as exc:
        raise CheckpointError(f"{sidecar}: cannot be read ({exc.strerror or exc}).") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{sidecar}: expected a JSON object.")
    for key in ("arch", "classes", "image_size", "mean", "std"):
        if key not in meta:
            raise CheckpointError(f"{sidecar}: missing field {key!r}.")
    classes = meta["classes"]
    if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes):
        raise CheckpointError(f"{sidecar}: 'classes' must be a list of at least 2 names.")
    if len(set(classes)) != len(classes):
        raise CheckpointError(f"{sidecar}: 'classes' lists a name twice.")
    if not isinstance(meta["image_size"], int) or not 32 <= meta["image_size"] <= 1024:
        raise CheckpointError(f"{sidecar}: 'image_size' must be an integer between 32 and 1024.")
    for key in ("mean", "std"):
        values = meta[key]
        if not (isinstance(values, list) and len(values) == 3 and all(isinstance(v, (int, float)) for v in values)):
            raise CheckpointError(f"{sidecar}: {key!r} must be a list of 3 numbers.")
    if any(v <= 0 for v in meta["std"]):
        raise CheckpointError(f"{sidecar}: 'std' values must be positive.")
    calibration = meta.get("calibration", {})
    temperature = calibration.get("temperature", 1.0) if isinstance(calibration, dict) else None
    if not _is_number(temperature) or not 0 < temperature < 1e3:
        raise CheckpointError(f"{sidecar}: 'calibration' must hold a positive 'temperature'.")
    threshold = meta.get("unsure_threshold", 0.0)
    if not _is_number(threshold) or not 0 <= threshold <= 1:
        raise CheckpointError(f"{sidecar}: 'unsure_threshold' must be a number between 0 and 1.")
    return meta


def stored_crop_margin(meta: dict[str, Any]) -> float:
    """The crop margin the sidecar's run spec records (`dance.models.spec`), or CROP_MARGIN for older sidecars."""
    stored = meta.get("run_spec")
    margin = stored.get("crop_margin") if isinstance(stored, dict) else None
    return float(margin) if _is_number(margin) and 1.0 <= margin <= 2.0 else CROP_MARGIN


def _is_number(value: Any) -> bool:
    """A finite int or float (JSON booleans excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)




class SidecarView:
    """What a sidecar says, for anything with `path` (the stem) and `meta` (the parsed sidecar)."""

    path: Path
    meta: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        """Class names, in output order."""
        return list(self.meta["classes"])

    @property
    def image_size(self) -> int:
        """Input side length in pixels."""
        return int(self.meta["image_size"])

    @property
    def mean(self) -> tuple[float, ...]:
        """Normalisation mean."""
        return tuple(self.meta["mean"])

    @property
    def std(self) -> tuple[float, ...]:
        """Normalisation std."""
        return tuple(self.meta["std"])

    @property
    def temperature(self) -> float:
        """Calibration temperature (1.0 when uncalibrated)."""
        return float(self.meta.get("calibration", {}).get("temperature", 1.0))

    @property
    def name(self) -> str:
        """The checkpoint's file stem."""
        return self.path.name

    @property
    def eval_side(self) -> int:
        """Shorter side an image is resized to before the squash to the input size (the run spec's margin)."""
        return cache_side(self.image_size, stored_crop_margin(self.meta))

    def uncalibrated(self):
        """The same checkpoint without its calibration: raw softmax probabilities and no "not sure" threshold."""
        meta = {k: v for k, v in self.meta.items() if k not in ("calibration", "unsure_threshold")}
        return dataclasses.replace(self, meta=meta)


@dataclass
class CheckpointInfo(SidecarView):
    """A checkpoint known by its sidecar alone (no weights loaded): what the ONNX serving path needs."""

    path: Path
    meta: dict[str, Any]


def read_info(name_or_path: str | os.PathLike | None = None, weights_dir: Path | None = None) -> CheckpointInfo:
    """Resolve a checkpoint name or path and read its sidecar; raises CheckpointError."""
    stem = resolve(name_or_path, weights_dir)
    return CheckpointInfo(stem, read_sidecar(stem))


def list_checkpoints(weights_dir: Path | None = None) -> list[Path]:
    """Stems of every checkpoint (sidecar + weights) in `weights_dir`, default first, then newest first."""
    weights_dir = weights_dir or paths.weights_root()
    if not weights_dir.is_dir():
        return []
    found = []
    for p in weights_dir.glob("*.json"):
        stem = p.with_suffix("")
        if stem.suffix == ".state" or not p.with_suffix(".safetensors").is_file():
            continue  # <name>.state.* is a running job's resumable state, not a checkpoint
        try:
            found.append((stem.name != DEFAULT_NAME, -p.stat().st_mtime, stem))
        except FileNotFoundError:
            continue  # removed since the listing (a finished job deletes its state files)
    return [stem for *_, stem in sorted(found)]


def update_sidecar(stem: str | os.PathLike, **fields: Any) -> dict[str, Any]:
    """Merge `fields` into an existing sidecar, atomically."""
    stem = stem_of(stem)
    meta = read_sidecar(stem)
    meta.update(fields)
    atomic_write_json(stem.with_suffix(".json"), meta)
    return meta


def holdout_names(meta: dict) -> list[str]:
    """Image names the checkpoint held out during training (empty when it trained on everything)."""
    return list(meta.get("split", {}).get("val_images", []))
