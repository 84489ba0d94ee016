"""Prediction for the CLI and the app: a `Predictor` wraps a loaded checkpoint and answers per image."""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence, Union

import numpy as np
import torch

from dance import paths
from dance.data.images import ImageSource, load_image, resize_shorter, to_uint8_tensor
from dance.errors import CheckpointError, ImageError
from dance.models import checkpoint
from dance.models.checkpoint import Checkpoint
from dance.models.preprocess import build_eval_transform, tta_views

BACKENDS = ("auto", "torch", "onnx")
DEFAULT_UNSURE = 0.0  # used when a checkpoint records no "not sure" threshold


@dataclass
class ImagePrediction:
    """The answer for one image: probabilities per class, or an error message."""

    image: str
    probs: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    threshold: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the image was classified."""
        return self.error is None

    @property
    def ranked(self) -> list[tuple[str, float]]:
        """(class, probability) pairs, most likely first."""
        return sorted(self.probs.items(), key=lambda kv: kv[1], reverse=True)

    @property
    def label(self) -> str | None:
        """Most likely class."""
        return self.ranked[0][0] if self.ok else None

    @property
    def confidence(self) -> float | None:
        """Probability of the most likely class."""
        return self.ranked[0][1] if self.ok else None

    @property
    def unsure(self) -> bool:
        """True when the top probability is below the checkpoint's 'not sure' threshold."""
        return self.ok and self.confidence < self.threshold

    def to_dict(self) -> dict:
        """The JSON-lines form printed by `dance predict --json`."""
        if not self.ok:
            return {"image": self.image, "error": self.error}
        return {"image": self.image, "label": self.label, "confidence": self.confidence, "unsure": self.unsure,
                "probs": self.probs}


Named = Union[ImageSource, tuple[str, ImageSource]]


class Predictor:
    """Preprocessing + model of one checkpoint; thread-safe for concurrent `predict` calls."""

    def __init__(self, ckpt: Checkpoint, tta: bool = False, backend: str = "auto", background_export: bool = False):
        """`backend`: "torch", "onnx" (export if needed; errors raise) or "auto" (see `choose_session`).

        With `background_export` (the app), "auto" never exports on the caller's thread: torch answers
        until a background export of a served checkpoint is ready, then ONNX Runtime takes over.
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.ckpt = ckpt
        self.tta = tta
        self.transform = build_eval_transform(ckpt.image_size, ckpt.mean, ckpt.std)
        self.model = ckpt.model.eval()  # kept for Grad-CAM and as the fallback
        self._swap = threading.Lock()
        self.session, self._export = choose_session(ckpt, backend, background=background_export)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike | None = None, tta: bool = False,
             backend: str = "auto") -> "Predictor":
        """Load a checkpoint by name or path (default: weights/default)."""
        return cls(checkpoint.load(name_or_path), tta=tta, backend=backend)

    @property
    def backend(self) -> str:
        """Which engine runs the model: 'onnx' (ONNX Runtime) or 'torch'."""
        return "onnx" if self.session is not None else "torch"

    @property
    def classes(self) -> list[str]:
        """Class names in output order."""
        return self.ckpt.classes

    @property
    def temperature(self) -> float:
        """Calibration temperature applied to logits."""
        return self.ckpt.temperature

    @property
    def threshold(self) -> float:
        """Calibrated top probability below which an answer is 'not sure'."""
        return float(self.ckpt.meta.get("unsure_threshold", DEFAULT_UNSURE))

    def preprocess(self, image) -> torch.Tensor:
        """RGB PIL image -> normalised (3, S, S) tensor, exactly as evaluation in training."""
        side = math.ceil(self.ckpt.image_size * 1.15)
        return self.transform(to_uint8_tensor(resize_shorter(image, side)))

    @torch.inference_mode()
    def logits(self, batch: torch.Tensor, tta: bool | None = None) -> torch.Tensor:
        """(N, 3, S, S) -> (N, C) logits (TTA averages log-probabilities over flip/crop views)."""
        if tta if tta is not None else self.tta:
            return torch.stack([self._forward(v).log_softmax(1) for v in tta_views(batch)]).mean(0)
        return self._forward(batch)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Raw logits from ONNX Runtime when available, else from the torch model."""
        if self.session is None and self._export is not None and not self._export.is_alive():
            self._adopt_export()
        if self.session is not None:
            return torch.from_numpy(self.session.run(batch.numpy()))
        return self.model(batch)

    def _adopt_export(self) -> None:
        """Switch to the ONNX session a finished background export left in the cache (torch if it failed)."""
        with self._swap:
            if self._export is None:
                return
            self._export = None
            try:
                from dance.models import export

                self.session = export.find_session(self.ckpt)
            except (CheckpointError, ImportError, RuntimeError, OSError):
                self.session = None

    def probs(self, batch: torch.Tensor, tta: bool | None = None) -> np.ndarray:
        """Calibrated class probabilities for a preprocessed batch."""
        logits = self.logits(batch, tta).double() / self.temperature
        return torch.softmax(logits, dim=1).numpy()

    def predict_images(self, images: Sequence, names: Sequence[str], tta: bool | None = None) -> list[ImagePrediction]:
        """Predictions for already-decoded RGB PIL images."""
        if not images:
            return []
        batch = torch.stack([self.preprocess(img) for img in images])
        probs = self.probs(batch, tta)
        return [ImagePrediction(name, dict(zip(self.classes, map(float, row))), threshold=self.threshold)
                for name, row in zip(names, probs)]

    def predict(self, sources: Iterable[Named], tta: bool | None = None, batch_size: int = 16) -> list[ImagePrediction]:
        """Predict files or bytes; an unreadable one gets an error entry and the others still run."""
        results: list[ImagePrediction | None] = []
        pending: list[tuple[int, str, object]] = []

        def flush():
            preds = self.predict_images([img for _, _, img in pending], [n for _, n, _ in pending], tta)
            for (slot, _, _), pred in zip(pending, preds):
                results[slot] = pred
            pending.clear()

        for source in sources:
            name, data = source if isinstance(source, tuple) else (str(source), source)
            results.append(None)
            try:
                pending.append((len(results) - 1, name, load_image(data, name=name)))
            except ImageError as exc:
                results[-1] = ImagePrediction(name, error=str(exc))
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
        return results  # type: ignore[return-value]

    def card(self) -> dict:
        """Summary of the checkpoint for display: architecture, classes, accuracy, date."""
        meta = self.ckpt.meta
        metrics = meta.get("metrics", {})
        cv = metrics.get("cv", {})
        holdout = metrics.get("holdout", {})
        return {
            "name": self.ckpt.name, "architecture": meta["arch"], "input size": meta["image_size"],
            "classes": ", ".join(self.classes), "trained": meta.get("created", "unknown"),
            "cv macro-F1": cv.get("macro_f1_mean"), "hold-out accuracy": holdout.get("accuracy"),
            "temperature": self.temperature,
        }


def choose_session(ckpt: Checkpoint, backend: str = "auto", background: bool = False):
    """(the ONNX Runtime session a Predictor should use or None for torch, a background export thread or None).

    "auto" uses ONNX (effnet-lite0 batch 1, 1 thread: 10 ms vs 22-26 ms for torch; bench/speed.md) when a verified export of
    exactly these weights exists beside the checkpoint or in the cache; for a checkpoint in weights/ (the
    ones the app serves) it exports into the cache once — on this thread, or with `background` on a daemon
    thread while torch answers. Anything else, or any failure, means torch.
    """
    if backend == "torch":
        return None, None
    from dance.models import export

    if backend == "onnx":
        return export.cached_session(ckpt), None
    try:
        session = export.find_session(ckpt)
        if session is None and _served(ckpt):
            if background:
                return None, export.export_in_background(ckpt)
            session = export.cached_session(ckpt)
        return session, None
    except (CheckpointError, ImportError, RuntimeError, OSError):
        return None, None  # onnxruntime missing or export impossible: torch still answers


def _served(ckpt: Checkpoint) -> bool:
    """Whether the checkpoint lives in weights/ (or $DANCE_WEIGHTS_DIR): the ones the app and CLI serve by name."""
    roots = {paths.WEIGHTS_DIR.resolve(), paths.weights_root().resolve()}
    return ckpt.path.resolve().parent in roots


def image_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand folders into the image files they hold (sorted); files are kept as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower().lstrip(".") in
                              ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")))
        else:
            out.append(p)
    return out
