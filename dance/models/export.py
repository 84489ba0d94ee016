"""ONNX export of a checkpoint (torch side): written beside it, verified against torch, recorded in its sidecar.

`dance export --onnx` and training write `<stem>.onnx` and record its SHA-256 (plus the largest probability
difference from torch on the check batch) under "onnx" -> "fp32" in `<stem>.json`; serving
(`dance.models.onnx_session`) uses the file only if its bytes still hash to that value.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

from dance.errors import CheckpointError
from dance.fileio import atomic_write_bytes
from dance.models import sidecar
from dance.models.checkpoint import Checkpoint
from dance.models.onnx_session import INPUT, OUTPUT, OnnxSession, onnx_path, sha256_bytes
from dance.models.sidecar import weights_file

OPSET = 17
TOLERANCE = 1e-4  # max |p_onnx - p_torch| accepted when verifying an export
_LOCK = threading.Lock()  # one export at a time per process (the exporter keeps global state)


def weights_digest(ckpt: Checkpoint) -> str:
    """SHA-1 of the safetensors bytes (stored in the ONNX metadata: which weights a file came from)."""
    weights = weights_file(ckpt.path)
    try:
        return hashlib.sha1(weights.read_bytes()).hexdigest()
    except OSError as exc:
        raise CheckpointError(f"{weights}: cannot read the weights ({exc.strerror}).") from None


def _export_bytes(model: torch.nn.Module, size: int) -> bytes:
    """Serialise `model` to ONNX bytes with a dynamic batch axis (TorchScript-based exporter)."""
    example = torch.zeros(1, 3, size, size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # dynamo=False: the torch.export-based default needs the onnxscript package; the TorchScript
        # exporter is still shipped (deprecated) and handles these models exactly.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, opset_version=OPSET, input_names=[INPUT],
            output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            do_constant_folding=True,
        )
    return buffer.getvalue()


def _with_metadata(data: bytes, fields: dict[str, str]) -> bytes:
    """Add string metadata to a serialised ONNX model."""
    import onnx

    proto = onnx.load_from_string(data)
    for key, value in fields.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 1 in float64."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def max_prob_difference(session: OnnxSession, model: torch.nn.Module, batch: torch.Tensor) -> float:
    """Largest |p_onnx - p_torch| over a preprocessed batch."""
    with torch.inference_mode():
        reference = model.eval()(batch).float().numpy()
    return float(np.abs(softmax(session.run(batch.numpy())) - softmax(reference)).max())


def export_onnx(ckpt: Checkpoint, path: str | os.PathLike | None = None,
                check_batch: torch.Tensor | None = None) -> Path:
    """Export `ckpt` to ONNX (default `<stem>.onnx`, recorded in the sidecar), verified against torch.

    Verification runs a batch of 3 (`check_batch`, else random normalised images) through both and
    raises CheckpointError when any probability differs by more than TOLERANCE; nothing is written then.
    """
    beside = onnx_path(ckpt.path, "fp32")
    target = Path(path) if path else beside
    model = copy.deepcopy(ckpt.model).float().cpu().eval()  # never disturb a model that is serving requests
    with _LOCK:
        data = _export_bytes(model, ckpt.image_size)
    data = _with_metadata(data, {"dance.weights": weights_digest(ckpt), "dance.arch": str(ckpt.meta["arch"]),
                                 "dance.image_size": str(ckpt.image_size), "dance.classes": ",".join(ckpt.classes)})
    session = OnnxSession(data, name=str(target))
    if check_batch is None:
        check_batch = torch.randn(3, 3, ckpt.image_size, ckpt.image_size, generator=torch.Generator().manual_seed(0))
    diff = max_prob_difference(session, model, check_batch)
    if not diff <= TOLERANCE:
        raise CheckpointError(f"{target}: ONNX export differs from torch by {diff:.2e} in probability; not written.")
    atomic_write_bytes(target, data)
    if target.resolve() == beside.resolve():
        record_export(ckpt.path, "fp32", data, {"opset": OPSET, "max_prob_diff_vs_torch": diff})
    return target


def record_export(stem: str | os.PathLike, precision: str, data: bytes, extra: dict) -> None:
    """Store the SHA-256 (and `extra`) of the `precision` ONNX file beside `stem` in its sidecar."""
    meta = sidecar.read_sidecar(stem)
    block = dict(meta.get("onnx") or {})
    block[precision] = {"file": onnx_path(stem, precision).name, "sha256": sha256_bytes(data), **extra}
    sidecar.update_sidecar(stem, onnx=block)
