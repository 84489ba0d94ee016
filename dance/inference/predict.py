"""Prediction for the CLI and the app: a `Predictor` answers per image; NumPy and Pillow only, no torch.

The model runs in an engine with `run(float32 (N,3,S,S)) -> (N,C) logits` and a `backend` name: ONNX Runtime
(`dance.models.onnx_session`) or torch (`dance.inference.torch_engine`); `dance.inference.serving` picks it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence, Union

import numpy as np

from dance.data.images import UPLOAD_TYPES, ImageSource, load_image, resize_shorter
from dance.errors import ImageError
from dance.models.numpy_preprocess import NumpyEvalTransform, tta_views
from dance.models.sidecar import SidecarView
from dance.trust.honesty import accuracy_warning, unsure_rule


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


class Engine(Protocol):
    """What runs a model: logits for a float32 batch."""

    backend: str

    def run(self, batch: np.ndarray) -> np.ndarray: ...


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over axis 1 in float64."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-softmax over axis 1 in float64."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class Predictor:
    """Preprocessing + engine of one checkpoint; thread-safe for concurrent `predict` calls (engines are)."""

    def __init__(self, ckpt: SidecarView, engine: Engine, tta: bool = False, notes: Sequence[str] = ()):
        """`ckpt`: the checkpoint (sidecar alone, or loaded with torch); `notes`: fallbacks taken while loading."""
        self.ckpt = ckpt
        self.engine = engine
        self.tta = tta
        self.notes = list(notes)
        self.transform = NumpyEvalTransform(ckpt.image_size, ckpt.mean, ckpt.std)

    @property
    def backend(self) -> str:
        """Which engine runs the model: 'onnx' (ONNX Runtime) or 'torch'."""
        return self.engine.backend

    @property
    def model(self):
        """The torch model when torch answers (Grad-CAM uses it), else None."""
        return getattr(self.engine, "model", None)

    @property
    def precision(self) -> str:
        """'int8' or 'fp32'."""
        return getattr(self.engine, "precision", "fp32")

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
        """Top probability below which an answer is 'not sure': the calibrated one, else halfway from chance (1/N)."""
        return unsure_rule(self.ckpt.meta, len(self.classes))[0]

    @property
    def threshold_calibrated(self) -> bool:
        """Whether the 'not sure' threshold was calibrated for this checkpoint (else it is the 1/N default rule)."""
        return unsure_rule(self.ckpt.meta, len(self.classes))[1]

    @property
    def warning(self) -> str | None:
        """A sentence to show with every answer when this checkpoint's tested accuracy is poor or unknown."""
        return accuracy_warning(self.ckpt.meta, len(self.classes), self.ckpt.name)

    @property
    def decode_side(self) -> int:
        """Shorter side images are brought to before the square resize (the run spec's crop margin, as training's)."""
        return self.ckpt.eval_side

    def preprocess(self, image) -> np.ndarray:
        """RGB PIL image -> normalised float32 (3, S, S), exactly as evaluation in training."""
        return self.transform(np.asarray(resize_shorter(image, self.decode_side), dtype=np.uint8))

    def logits(self, batch: np.ndarray, tta: bool | None = None) -> np.ndarray:
        """(N, 3, S, S) -> (N, C) logits (TTA averages log-probabilities over flip/crop views)."""
        if tta if tta is not None else self.tta:
            return np.mean([log_softmax(self.engine.run(v)) for v in tta_views(batch)], axis=0)
        return self.engine.run(batch)

    def probs(self, batch: np.ndarray, tta: bool | None = None) -> np.ndarray:
        """Calibrated class probabilities for a preprocessed batch."""
        return softmax(self.logits(batch, tta).astype(np.float64) / self.temperature)

    def predict_images(self, images: Sequence, names: Sequence[str], tta: bool | None = None) -> list[ImagePrediction]:
        """Predictions for already-decoded RGB PIL images."""
        if not images:
            return []
        return self._predict_arrays([self.preprocess(img) for img in images], names, tta)

    def _predict_arrays(self, arrays: Sequence[np.ndarray], names: Sequence[str],
                        tta: bool | None = None) -> list[ImagePrediction]:
        """Predictions for preprocessed (3, S, S) arrays."""
        probs = self.probs(np.stack(list(arrays)), tta)
        return [ImagePrediction(name, dict(zip(self.classes, map(float, row))), threshold=self.threshold)
                for name, row in zip(names, probs)]

    def predict(self, sources: Iterable[Named], tta: bool | None = None, batch_size: int = 16,
                progress: Callable[[int, int], None] | None = None) -> list[ImagePrediction]:
        """Predict files or bytes; an unreadable one gets an error entry and the others still run.

        `progress(done, total)` is called after each batch and at the end (unreadable files count as done).
        """
        sources = list(sources)
        results: list[ImagePrediction | None] = []
        pending: list[tuple[int, str, object]] = []

        def flush():
            preds = self._predict_arrays([x for _, _, x in pending], [n for _, n, _ in pending], tta)
            for (slot, _, _), pred in zip(pending, preds):
                results[slot] = pred
            pending.clear()
            if progress and len(results) < len(sources):
                progress(len(results), len(sources))

        for source in sources:
            name, data = source if isinstance(source, tuple) else (str(source), source)
            results.append(None)
            try:
                # preprocessed at once: a batch holds small arrays, never up to 16 decoded full-size images;
                # JPEGs decode straight at the smallest DCT scale still >= decode_side (draft mode)
                pending.append((len(results) - 1, name,
                                self.preprocess(load_image(data, name=name, min_side=self.decode_side))))
            except ImageError as exc:
                results[-1] = ImagePrediction(name, error=str(exc))
            except (MemoryError, RuntimeError) as exc:  # this file alone is lost, not the batch
                results[-1] = ImagePrediction(name, error=f"{name}: image cannot be prepared ({type(exc).__name__}).")
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
        if progress:
            progress(len(results), len(sources))
        return results  # type: ignore[return-value]

    def card(self) -> dict:
        """Summary of the checkpoint for display: architecture, classes, accuracy, date, engine."""
        meta = self.ckpt.meta
        metrics = meta.get("metrics", {})
        cv = metrics.get("cv", {})
        holdout = metrics.get("holdout", {})
        return {
            "name": self.ckpt.name, "architecture": meta["arch"], "input size": meta["image_size"],
            "classes": ", ".join(self.classes), "trained": meta.get("created", "unknown"),
            "cv macro-F1": cv.get("macro_f1_mean"), "hold-out accuracy": holdout.get("accuracy"),
            "temperature": self.temperature, "engine": f"{self.backend} {self.precision}",
        }


def image_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand folders into the image files they hold (sorted); files are kept as given."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.suffix.lower().lstrip(".") in UPLOAD_TYPES))
        else:
            out.append(p)
    return out
