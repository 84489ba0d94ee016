"""Checkpoints: weights in safetensors plus a JSON sidecar that describes them; nothing is ever unpickled.

`<stem>.safetensors` holds the state dict; `<stem>.json` holds the architecture name, classes,
preprocessing, training config, metrics, data fingerprint and library versions, so loading
rebuilds the model from the sidecar alone. The torch-free half (names, sidecar validation, listing) is
`dance.models.sidecar`; its names are re-exported here for the torch-side callers.

A save is one step as seen by readers: both files are staged first, the weights are renamed into
place, the sidecar last, and the sidecar records the weights' SHA-256; a reader that finds weights
whose digest is not the sidecar's (a save in between its two renames) reads again once before it
reports the checkpoint as damaged.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from dance.errors import CheckpointError
from dance.fileio import atomic_write_many, json_bytes
from dance.models import sidecar
from dance.models.registry import Classifier, ModelSpec, get_spec
from dance.models.sidecar import (  # noqa: F401 - re-exported for torch-side callers
    DEFAULT_NAME,
    PICKLE_SUFFIXES,
    SidecarView,
    exists,
    is_default,
    is_number,
    list_checkpoints,
    resolve,
    sidecar_file,
    stem_of,
    update_sidecar,
    weights_file,
)

FORMAT_VERSION = 1
RETRY_DELAY = 0.05  # seconds before a reader that saw a save in progress reads again
READ_ATTEMPTS = 8  # a writer saving in a loop can catch one retry between its renames again; 8 reads span 0.35 s


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a checkpoint."""
    import numpy
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def save(stem: str | os.PathLike, model: Classifier, meta: dict[str, Any]) -> Path:
    """Stage `<stem>.safetensors` and `<stem>.json`, then rename the weights and the sidecar last; returns the stem.

    A write error (disk full) leaves both old files; the sidecar records the weights' SHA-256 so a reader
    can tell new weights beside an old sidecar from a finished checkpoint.
    """
    stem = stem_of(stem)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = save_safetensors_bytes(state)
    record = {"format": FORMAT_VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "versions": library_versions(), **meta, "weights_sha256": hashlib.sha256(weights).hexdigest()}
    atomic_write_many({weights_file(stem): weights, sidecar_file(stem): json_bytes(record)})
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


def _read_matching(stem: Path) -> tuple[dict[str, Any], bytes, bool]:
    """The sidecar, the weights bytes and whether they match (by digest), read again once if a save was between."""
    weights = weights_file(stem)
    for attempt in range(READ_ATTEMPTS):
        meta = read_sidecar(stem)
        if not weights.is_file():
            raise CheckpointError(f"{weights}: weights file not found.")
        try:
            data = weights.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"{weights}: cannot be read ({exc.strerror or exc}).") from None
        expected = meta.get("weights_sha256")
        if expected is None or hashlib.sha256(data).hexdigest() == expected:  # older sidecars have no digest
            return meta, data, True
        if attempt < READ_ATTEMPTS - 1:
            time.sleep(RETRY_DELAY)  # another process may be between its two renames
    return meta, data, False


def load(name_or_path: str | os.PathLike | None = None, weights_dir: Path | None = None) -> Checkpoint:
    """Rebuild the model described by the sidecar and load its safetensors weights; raises CheckpointError."""
    stem = resolve(name_or_path, weights_dir)
    meta, data, matching = _read_matching(stem)
    weights = weights_file(stem)
    try:
        state = load_safetensors_bytes(data)
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
    if not matching:  # well-formed, but not the file this sidecar was written with
        raise CheckpointError(f"{weights}: the weights are not the ones its sidecar describes (an interrupted or "
                              "concurrent save, or a replaced file); save the checkpoint again or restore both files.")
    model.load_state_dict(state)
    model.eval()
    return Checkpoint(stem, model, spec, meta)
