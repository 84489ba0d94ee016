"""ONNX Runtime sessions over the ONNX files shipped beside a checkpoint, verified by SHA-256; no torch here.

A sidecar lists its exports under "onnx": {"fp32": {"file", "sha256", ...}, "int8": {...}}. A file is used
only when its bytes hash to the recorded SHA-256, so a tampered, truncated or stale file is refused with one
sentence (the caller decides what answers instead).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from dance.errors import CheckpointError
from dance.models.sidecar import stem_of

INPUT, OUTPUT = "images", "logits"
PRECISIONS = ("int8", "fp32")


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def onnx_path(stem: str | os.PathLike, precision: str) -> Path:
    """`<stem>.onnx` (fp32) or `<stem>.int8.onnx`."""
    stem = stem_of(stem)
    return stem.with_name(stem.name + (".int8.onnx" if precision == "int8" else ".onnx"))


def default_threads() -> int:
    """CPU cores this process may use (ONNX Runtime's intra-op threads)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxSession:
    """An ONNX Runtime CPU session over one model: `run((N,3,S,S) float32) -> (N,C) logits`; thread-safe."""

    def __init__(self, source: str | os.PathLike | bytes, name: str | None = None, threads: int | None = None,
                 precision: str = "fp32"):
        import onnxruntime as ort

        self.name = name or str(source)
        self.precision = precision
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise here
        try:
            payload = source if isinstance(source, bytes) else Path(source).read_bytes()
            self.session = ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own unexported exception classes
            raise CheckpointError(f"{self.name}: not a usable ONNX model ({str(exc).splitlines()[0][:120]}).") \
                from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != INPUT:
            raise CheckpointError(f"{self.name}: expected one input named {INPUT!r}; not exported by dance.")

    backend = "onnx"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a float32 batch."""
        return self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(batch, dtype=np.float32)})[0]


def recorded(meta: dict[str, Any], precision: str) -> dict[str, Any] | None:
    """The sidecar's record of the `precision` export, or None."""
    block = meta.get("onnx")
    entry = block.get(precision) if isinstance(block, dict) else None
    return entry if isinstance(entry, dict) and isinstance(entry.get("sha256"), str) else None


def verified_session(stem: str | os.PathLike, meta: dict[str, Any], precision: str = "fp32",
                     threads: int | None = None) -> OnnxSession:
    """The session of the shipped `precision` export, after checking its SHA-256; raises CheckpointError."""
    stem = stem_of(stem)
    entry = recorded(meta, precision)
    if entry is None:
        raise CheckpointError(f"{stem.name}: no {precision} ONNX model is recorded in {stem.name}.json.")
    path = onnx_path(stem, precision)  # by convention, so a renamed copy of the three files still works
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the {precision} ONNX model ({exc.strerror or exc}).") from None
    if sha256_bytes(data) != entry["sha256"]:
        raise CheckpointError(f"{path}: its SHA-256 does not match the one in {stem.name}.json "
                              "(changed after export), so it is refused.")
    return OnnxSession(data, name=str(path), threads=threads, precision=precision)
