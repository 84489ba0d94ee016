"""Grad-CAM: where in the photo the model looked for a class, as a heat map and a coloured overlay.

The gradient of the class logit with respect to the body's feature map is taken with
`torch.autograd.grad` through the head only (the body runs once without a graph), so no hooks are
ever attached to the (shared, cached) model and concurrent calls from several app sessions do not interfere.
"""

from __future__ import annotations

import functools
import os
from typing import Union

import numpy as np
import torch
from PIL import Image

from dance.errors import CheckpointError
from dance.inference import serving
from dance.inference.predict import Predictor
from dance.models import checkpoint, sidecar
from dance.models.checkpoint import Checkpoint

Explainable = Union[Predictor, Checkpoint, str, os.PathLike, None]


def _predictor(source: Explainable) -> Predictor:
    """A Predictor from a Predictor, a loaded Checkpoint, or a checkpoint name / path.

    Recognised by what they offer, not by isinstance: after Streamlit re-imports a changed module, a cached
    Predictor is an instance of the old class object, and isinstance against the new one fails.
    """
    if hasattr(source, "preprocess") and hasattr(source, "engine") and hasattr(source, "classes"):
        return source  # a Predictor
    # Grad-CAM needs the torch model's gradients, so never spend time on an ONNX session here.
    if hasattr(source, "meta") and getattr(source, "model", None) is not None:
        return serving.from_checkpoint(source)  # a loaded Checkpoint
    return serving.load(source, backend="torch")


def torch_model(predictor: Predictor):
    """The predictor's torch model: its engine's, or loaded from its checkpoint (an ONNX-served predictor)."""
    for owner in (predictor, predictor.ckpt):
        if getattr(owner, "model", None) is not None:
            return owner.model
    return _load_model(str(predictor.ckpt.path), _mtime(predictor.ckpt.path))


def _mtime(stem) -> float:
    """Modification time of the checkpoint's weights (the model cache key)."""
    try:
        return sidecar.weights_file(stem).stat().st_mtime
    except OSError:
        return 0.0


@functools.lru_cache(maxsize=2)
def _load_model(stem: str, mtime: float):
    """A checkpoint's torch model, loaded once per (path, mtime) for Grad-CAM of ONNX-served predictors."""
    return checkpoint.load(stem).model


def class_activation(predictor: Predictor, image: Image.Image, class_name: str | None = None
                     ) -> tuple[np.ndarray, str, float]:
    """Grad-CAM at feature-map resolution: (h, w) map in [0, 1], the explained class, and its calibrated probability."""
    classes = predictor.classes
    if class_name is not None and class_name not in classes:
        raise CheckpointError(f"{predictor.ckpt.name}: unknown class {class_name!r}; known: {', '.join(classes)}.")
    model = torch_model(predictor)
    x = torch.from_numpy(predictor.preprocess(image.convert("RGB")))[None]
    with torch.no_grad():
        features = model.body(x)  # (1, K, h, w): the costly part, run without recording a graph
    with torch.inference_mode(False), torch.enable_grad():
        # Grad-CAM needs d logit / d features only, which runs through the head alone: a graph over the body
        # (millions of weights) would make this several times slower than the prediction itself.
        features = features.clone().requires_grad_(True)
        logits = model.head(features)  # (1, C)
        index = classes.index(class_name) if class_name is not None else int(logits.argmax(1))
        (grads,) = torch.autograd.grad(logits[0, index], features)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (1, K, 1, 1): each channel's importance for the class
    cam = torch.relu((weights * features.detach()).sum(1))[0]  # (h, w)
    top = float(cam.max())
    cam = cam / top if top > 0 else torch.zeros_like(cam)
    prob = float(torch.softmax(logits.detach().double()[0] / predictor.temperature, 0)[index])
    return cam.numpy().astype(np.float32), classes[index], prob


def gradcam(source: Explainable, image: Image.Image, class_name: str | None = None) -> tuple[np.ndarray, str]:
    """Grad-CAM heat map for `class_name` (default: the predicted class) at the image's size: (H x W in [0, 1], class)."""
    cam, name, _ = class_activation(_predictor(source), image, class_name)
    heat = upsample(cam, image.size)
    top = float(heat.max())
    return (heat / top if top > 0 else heat), name


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize an (h, w) map to PIL `size` (W, H), clipped to [0, 1]; the model sees the whole image squashed."""
    tensor = torch.as_tensor(cam, dtype=torch.float32)[None, None]
    width, height = size
    resized = torch.nn.functional.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)
    return resized[0, 0].clamp(0, 1).numpy()


def jet(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB along a jet-like blue -> cyan -> yellow -> red ramp."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0, 1)[..., None]
    centres = np.array([0.75, 0.5, 0.25], dtype=np.float32)  # where red, green and blue peak
    rgb = np.clip(1.5 - np.abs(4 * (v - centres)), 0, 1)
    return (rgb * 255).round().astype(np.uint8)


def overlay(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """Blend a jet-coloured heat map over the photo; stronger where the map is high."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    if heatmap.shape != base.shape[:2]:
        heatmap = upsample(heatmap, image.size)
    colour = jet(heatmap).astype(np.float32)
    # Weight by the map itself so cold regions keep the photo visible rather than turning blue.
    weight = alpha * (0.35 + 0.65 * heatmap[..., None])
    blended = base * (1 - weight) + colour * weight
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8))


def explain(source: Explainable, image: Image.Image, class_name: str | None = None, alpha: float = 0.45
            ) -> tuple[Image.Image, str, float]:
    """One call for front ends: (overlay image, explained class, its calibrated probability)."""
    cam, name, prob = class_activation(_predictor(source), image, class_name)
    return overlay(image, upsample(cam, image.size), alpha), name, prob
