"""The torch engine of a Predictor: a loaded checkpoint's model (Grad-CAM needs it; the fallback when no ONNX)."""

from __future__ import annotations

import numpy as np
import torch

from dance.models.registry import Classifier


class TorchEngine:
    """Runs a torch model on NumPy batches; thread-safe (inference mode, the model is never changed)."""

    backend = "torch"
    precision = "fp32"

    def __init__(self, model: Classifier):
        self.model = model.eval()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a float32 batch."""
        with torch.inference_mode():
            return self.model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))).float().numpy()
