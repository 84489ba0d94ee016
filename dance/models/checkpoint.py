"""Checkpoints: weights in safetensors plus a JSON sidecar that describes them; nothing is ever unpickled.

`<stem>.safetensors` holds the state dict; `<stem>.json` holds the architecture name, classes,
preprocessing, training config, metrics, data fingerprint and library versions, so loading
rebuilds the model from the sidecar alone. The torch-free half (names, sidecar validation, listing) is
`dance.models.sidecar`; its names are re-exported here for the torch-side callers.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from dance.errors import CheckpointError
from dance.fileio import atomic_write_bytes, atomic_write_json
from dance.models import sidecar
from dance.models.registry import Classifier, ModelSpec, get_spec
from dance.models.sidecar import (  # noqa: F401 - re-exported for torch-side callers
    DEFAULT_NAME,
    PICKLE_SUFFIXES,
    SidecarView,
    is_default,
    list_checkpoints,
    resolve,
    stem_of,
    update_sidecar,
)

FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a checkpoint."""
    import numpy
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def save(stem: str | os.PathLike, model: Classifier, meta: dict[str, Any]) -> Path:
    """Write `<stem>.safetensors` then `<stem>.json`, each atomically; returns the stem."""
    stem = stem_of(stem)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(stem.with_suffix(".safetensors"), save_safetensors_bytes(state))
    sidecar = {"format": FORMAT_VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "versions": library_versions(), **meta}
    atomic_write_json(stem.with_suffix(".json"), sidecar)
    return stem


@dataclass
class Checkpoint(SidecarView):
    """A loaded checkpoint: the model in eval mode, its spec and its sidecar."""

    path: Path
    model: Classifier
    spec: ModelSpec
    meta: dict[str, Any]


def read_sidecar(stem: str | os.PathLike) -> dict[str, Any]:
    """`sidecar.read_sidecar` plus a check that the architecture is one this install can build."""
    meta = sidecar.read_sidecar(stem)
    get_spec(str(meta["arch"]))  # unknown architecture -> CheckpointError
    return meta



def load(name_or_path: str | os.PathLike | None = None, weights_dir: Path | None = None) -> Checkpoint:
    """Rebuild the model described by the sidecar and load its safetensors weights; raises CheckpointError."""
    stem = resolve(name_or_path, weights_dir)
    meta = read_sidecar(stem)
    weights = stem.with_suffix(".safetensors")
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file not found.")
    try:
        state = load_safetensors_bytes(weights.read_bytes())
    except (SafetensorError, ValueError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"{weights}: not a valid safetensors file ({str(exc)[:120]}).") from None
    spec = get_spec(meta["arch"])
    model = spec.create(len(meta["classes"]), meta["image_size"], pretrained=False)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: weights do not match architecture {meta['arch']!r} "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors)."
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            if key.startswith("head.") and tensor.shape[0] != expected[key].shape[0] and tensor.dim() <= 2:
                raise CheckpointError(
                    f"{weights}: the sidecar lists {len(meta['classes'])} classes but the weights' head "
                    f"has {tensor.shape[0]} outputs."
                )
            raise CheckpointError(f"{weights}: tensor {key} has shape {tuple(tensor.shape)}, "
                                  f"expected {tuple(expected[key].shape)}.")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{weights}: tensor {key} contains NaN or infinite values (damaged weights).")
    model.load_state_dict(state)
    model.eval()
    return Checkpoint(stem, model, spec, meta)


