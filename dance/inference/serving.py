"""Which engine answers for a checkpoint: the shipped ONNX model (int8 first) without torch, else torch.

`load` reads only the sidecar and the ONNX file it vouches for (SHA-256), so the CLI's `predict`/`submit`
and the app's Predict page never import torch when the ONNX model is there. Every fallback — no int8 file,
a file that fails its hash, no onnxruntime — adds one sentence to `Predictor.notes` and torch answers
(imported only then); without torch either, the sentence is raised as a CheckpointError.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from dance.config import BACKENDS
from dance.errors import CheckpointError
from dance.inference.predict import Predictor
from dance.models import sidecar
from dance.models.onnx_session import PRECISIONS, recorded, verified_session


def torch_available() -> bool:
    """Whether torch is installed (the slim serving install has none)."""
    return importlib.util.find_spec("torch") is not None


def load(name_or_path: str | os.PathLike | None = None, tta: bool = False, backend: str = "auto",
         precision: str | None = None, weights_dir: Path | None = None) -> Predictor:
    """A Predictor for a checkpoint name or path.

    `backend`: "onnx" (shipped ONNX only; errors raise), "torch", or "auto" (ONNX, else torch with a note).
    `precision`: "int8" or "fp32"; None means int8 when the checkpoint has one, else fp32.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in (None, *PRECISIONS):
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    info = sidecar.read_info(name_or_path, weights_dir)
    if backend == "torch":
        return _torch_predictor(info.path, tta, [])
    notes: list[str] = []
    # never exported (e.g. trained where onnx is missing): torch, silently, unless ONNX was asked for
    candidates = _precisions(info.meta, precision) or (["fp32"] if backend == "onnx" else [])
    for candidate in candidates:
        try:
            return Predictor(info, verified_session(info.path, info.meta, candidate), tta=tta, notes=notes)
        except ImportError:
            notes.append("onnxruntime is not installed, so the ONNX model cannot run.")
            break
        except CheckpointError as exc:
            notes.append(str(exc))
    if backend == "onnx" or not torch_available():
        reason = " ".join(notes) or f"{info.name}: no ONNX model is recorded in {info.name}.json."
        hint = "" if backend == "onnx" else " torch is not installed either, so nothing can answer."
        raise CheckpointError(reason + hint)
    if notes:
        notes.append("Using torch instead.")
    return _torch_predictor(info.path, tta, notes)


def _precisions(meta: dict, precision: str | None) -> list[str]:
    """ONNX exports to try, in order: the one asked for (int8 falls back to fp32), else those recorded."""
    if precision == "fp32":
        return ["fp32"]
    if precision == "int8":
        return ["int8", "fp32"]
    return [p for p in PRECISIONS if recorded(meta, p)]


def _torch_predictor(stem: Path, tta: bool, notes: list[str]) -> Predictor:
    """A Predictor on the torch model (imports torch)."""
    from dance.models import checkpoint

    return from_checkpoint(checkpoint.load(stem), tta=tta, notes=notes)


def from_checkpoint(ckpt, tta: bool = False, notes: list[str] | None = None) -> Predictor:
    """A torch Predictor over an already loaded `dance.models.checkpoint.Checkpoint`."""
    from dance.inference.torch_engine import TorchEngine

    return Predictor(ckpt, TorchEngine(ckpt.model), tta=tta, notes=notes or [])
