"""ONNX export of a checkpoint and an ONNX Runtime session to run it (the fast CPU inference backend).

An exported file records the SHA-1 of the weights it came from (ONNX metadata `dance.weights`), so a
stale `.onnx` — the checkpoint was retrained or replaced after export — is never used. Files live beside
the checkpoint (`<stem>.onnx`, written by `dance export --onnx`) or in a per-user cache keyed by that
SHA-1 (`$DANCE_CACHE` or ~/.cache/dance/onnx/), filled on first use of a checkpoint in weights/ so the
shipped model runs on ONNX Runtime without committing a generated file.
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
from dance.models.checkpoint import Checkpoint, stem_of

OPSET = 17
EXPORT_VERSION = 1  # bump when the export recipe changes, so cached files are rebuilt
TOLERANCE = 1e-4  # max |p_onnx - p_torch| accepted when verifying an export
INPUT, OUTPUT = "images", "logits"
_LOCK = threading.Lock()  # one export at a time per process (the exporter keeps global state)


def weights_digest(ckpt: Checkpoint) -> str:
    """SHA-1 over the weights bytes and what shapes the graph (architecture, input size, export recipe)."""
    weights = stem_of(ckpt.path).with_suffix(".safetensors")
    try:
        data = weights.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{weights}: cannot read the weights ({exc.strerror}).") from None
    digest = hashlib.sha1(data)
    digest.update(f"|{ckpt.meta['arch']}|{ckpt.image_size}|{len(ckpt.classes)}|v{EXPORT_VERSION}".encode())
    return digest.hexdigest()


def beside_path(ckpt: Checkpoint) -> Path:
    """`<stem>.onnx` next to the checkpoint."""
    return stem_of(ckpt.path).with_suffix(".onnx")


def cache_dir() -> Path:
    """Folder of cached exports: $DANCE_CACHE/onnx or ~/.cache/dance/onnx."""
    base = os.environ.get("DANCE_CACHE") or Path.home() / ".cache" / "dance"
    return Path(base) / "onnx"


def cache_path(digest: str) -> Path:
    """Cached export of the weights with this digest."""
    return cache_dir() / f"{digest}.onnx"


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


def _probs(logits: np.ndarray) -> np.ndarray:
    """Softmax in float64."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def max_prob_difference(session: "OnnxSession", model: torch.nn.Module, batch: torch.Tensor) -> float:
    """Largest |p_onnx - p_torch| over a preprocessed batch."""
    with torch.inference_mode():
        reference = model.eval()(batch).float().numpy()
    return float(np.abs(_probs(session.run(batch.numpy())) - _probs(reference)).max())


def export_onnx(ckpt: Checkpoint, path: str | os.PathLike | None = None,
                check_batch: torch.Tensor | None = None) -> Path:
    """Export `ckpt` to ONNX (default `<stem>.onnx`), verify it against torch, then write it atomically.

    Verification runs a batch of 3 (`check_batch`, else random normalised images) through both and
    raises CheckpointError when any probability differs by more than TOLERANCE.
    """
    target = Path(path) if path else beside_path(ckpt)
    digest = weights_digest(ckpt)
    model = copy.deepcopy(ckpt.model).float().cpu().eval()  # never disturb a model that is serving requests
    with _LOCK:
        data = _export_bytes(model, ckpt.image_size)
    data = _with_metadata(data, {"dance.weights": digest, "dance.arch": str(ckpt.meta["arch"]),
                                 "dance.image_size": str(ckpt.image_size), "dance.classes": ",".join(ckpt.classes)})
    session = OnnxSession(data, name=str(target))
    if check_batch is None:
        check_batch = torch.randn(3, 3, ckpt.image_size, ckpt.image_size, generator=torch.Generator().manual_seed(0))
    diff = max_prob_difference(session, model, check_batch)
    if not diff <= TOLERANCE:
        raise CheckpointError(f"{target}: ONNX export differs from torch by {diff:.2e} in probability; not written.")
    atomic_write_bytes(target, data)
    return target


_RUNNING: dict[Path, threading.Thread] = {}  # target file -> the thread exporting into it, while it runs
_RUNNING_LOCK = threading.Lock()


def export_in_background(ckpt: Checkpoint) -> threading.Thread:
    """Start a daemon thread exporting `ckpt` into the cache (or join the one already writing that file).

    Keeps the first load of a newly trained or shipped checkpoint off the app's start-up path; a failure just
    leaves no export. Only running exports are remembered, keyed by their target file, so a later load (or a
    different cache folder) never inherits a finished thread's outcome.
    """
    target = cache_path(weights_digest(ckpt))
    with _RUNNING_LOCK:
        for path in [p for p, t in _RUNNING.items() if not t.is_alive()]:
            del _RUNNING[path]
        thread = _RUNNING.get(target)
        if thread is None:
            thread = threading.Thread(target=_export_quietly, args=(ckpt, target), daemon=True,
                                      name=f"onnx-export-{target.stem[:8]}")
            _RUNNING[target] = thread
            thread.start()
    return thread


def _export_quietly(ckpt: Checkpoint, target: Path) -> None:
    """Export into the cache; errors are swallowed because torch keeps answering."""
    try:
        export_onnx(ckpt, target)
    except (CheckpointError, ImportError, RuntimeError, OSError, ValueError):
        pass


class OnnxSession:
    """An ONNX Runtime CPU session over one model: `run((N,3,S,S) float32) -> (N,C) logits`; thread-safe."""

    def __init__(self, source: str | os.PathLike | bytes, name: str | None = None, threads: int | None = None):
        import onnxruntime as ort

        self.name = name or str(source)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
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

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a float32 batch."""
        return self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(batch, dtype=np.float32)})[0]


def find_session(ckpt: Checkpoint, threads: int | None = None) -> OnnxSession | None:
    """An ONNX session for exactly these weights (beside the checkpoint, else in the cache), or None.

    A corrupt or stale file is skipped, never trusted.
    """
    digest = weights_digest(ckpt)
    for path in (beside_path(ckpt), cache_path(digest)):
        if not path.is_file():
            continue
        try:
            session = OnnxSession(path, threads=threads)
        except CheckpointError:
            continue
        if session.metadata.get("dance.weights") == digest:
            return session
    return None


def cached_session(ckpt: Checkpoint, threads: int | None = None) -> OnnxSession:
    """The session for `ckpt`, exporting it into the cache first when no valid export exists."""
    session = find_session(ckpt, threads)
    if session is None:
        session = OnnxSession(export_onnx(ckpt, cache_path(weights_digest(ckpt))), threads=threads)
    return session
