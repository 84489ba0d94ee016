"""int8 ONNX models: static QDQ quantization calibrated on training images, checked against fp32 before shipping.

The check runs both models on every labelled image that was not used for calibration: top-1 agreement and the
largest probability difference, plus accuracy / macro-F1 of both on the checkpoint's hold-out when it has one.
The int8 file is written (and recorded with its check in the sidecar) only when agreement is at least
MIN_AGREEMENT and hold-out accuracy drops by at most MAX_ACCURACY_DROP; otherwise fp32 stays the served model.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from dance.data.images import load_image
from dance.data.labels import load_labelled
from dance.errors import CheckpointError
from dance.fileio import atomic_write_bytes
from dance.inference.predict import Predictor, softmax
from dance.models import sidecar
from dance.models.onnx_session import OnnxSession, onnx_path, recorded, sha256_bytes, verified_session
from dance.paths import find_data_dir
from dance.trust.interpret import Predictions

MIN_AGREEMENT = 0.95
MAX_ACCURACY_DROP = 0.01
CALIBRATION_IMAGES = 96
BATCH = 16


@dataclass
class QuantizeResult:
    """What `quantize_checkpoint` decided, with the check's figures."""

    accepted: bool
    check: dict[str, Any]
    path: Path | None


def _preprocess(predictor: Predictor, paths: Sequence[Path]) -> np.ndarray:
    """Decoded, served-size batch of images (the same preprocessing as prediction)."""
    return np.stack([predictor.preprocess(load_image(p, name=p.name)) for p in paths])


class _Calibration:
    """onnxruntime CalibrationDataReader over preprocessed calibration images, BATCH at a time."""

    def __init__(self, predictor: Predictor, paths: Sequence[Path]):
        self.predictor, self.paths, self.start = predictor, list(paths), 0

    def get_next(self):
        """The next {input: batch} or None when done."""
        if self.start >= len(self.paths):
            return None
        chunk = self.paths[self.start:self.start + BATCH]
        self.start += BATCH
        return {"images": _preprocess(self.predictor, chunk)}

    def rewind(self) -> None:
        """Start again (the calibrator may read twice)."""
        self.start = 0


def quantize_bytes(fp32: bytes, reader) -> bytes:
    """Static QDQ int8 quantization (per-channel weights, int8 activations, min-max calibration) of an ONNX model."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def get_next(self):
            return reader.get_next()

        def rewind(self):
            reader.rewind()

    with tempfile.TemporaryDirectory(prefix="dance-int8-") as tmp:
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        atomic_write_bytes(src, fp32)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)  # shape inference + graph optimisation
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        return out.read_bytes()


def _probs(session: OnnxSession, batches: Sequence[np.ndarray], temperature: float) -> np.ndarray:
    """Calibrated probabilities over preprocessed batches."""
    return np.concatenate([softmax(session.run(b).astype(np.float64) / temperature) for b in batches])


def check_int8(predictor: Predictor, fp32: OnnxSession, int8: OnnxSession, paths: Sequence[Path],
               targets: np.ndarray, holdout: np.ndarray) -> dict[str, Any]:
    """Agreement and largest probability difference on `paths`; hold-out accuracy / macro-F1 of both when any."""
    batches = [_preprocess(predictor, paths[i:i + BATCH]) for i in range(0, len(paths), BATCH)]
    p32, p8 = (_probs(s, batches, predictor.temperature) for s in (fp32, int8))
    check: dict[str, Any] = {
        "images": len(paths), "top1_agreement": float((p32.argmax(1) == p8.argmax(1)).mean()),
        "max_prob_diff": float(np.abs(p32 - p8).max()),
    }
    names = [str(p) for p in paths]
    for label, probs in (("fp32", p32), ("int8", p8)):
        check[f"{label}_accuracy_seen"] = Predictions(probs, targets, names, predictor.classes).metrics()["accuracy"]
        if holdout.any():
            m = Predictions(probs[holdout], targets[holdout], [n for n, h in zip(names, holdout) if h],
                            predictor.classes).metrics()
            check[f"holdout_{label}"] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "count": m["count"]}
    return check


def verdict(check: dict[str, Any]) -> str | None:
    """Why the int8 model is refused, or None when it may ship."""
    if check["top1_agreement"] < MIN_AGREEMENT:
        return f"top-1 agreement with fp32 is {check['top1_agreement']:.1%}, under {MIN_AGREEMENT:.0%}"
    if "holdout_int8" in check:
        drop = check["holdout_fp32"]["accuracy"] - check["holdout_int8"]["accuracy"]
        if drop > MAX_ACCURACY_DROP:
            return f"hold-out accuracy drops by {drop:.3f}, more than {MAX_ACCURACY_DROP}"
    return None


def quantize_checkpoint(stem: str | os.PathLike, data_dir: str | os.PathLike | None = None,
                        calibration: int = CALIBRATION_IMAGES, seed: int = 0,
                        log: Callable[[str], None] = lambda _: None) -> QuantizeResult:
    """Quantize the checkpoint's verified fp32 ONNX model to `<stem>.int8.onnx` if it passes the check."""
    info = sidecar.read_info(stem)
    if recorded(info.meta, "fp32") is None:
        raise CheckpointError(f"{info.name}: export the fp32 ONNX model first (`dance export --onnx`).")
    fp32 = verified_session(info.path, info.meta, "fp32")
    predictor = Predictor(info, fp32)
    dataset = load_labelled(find_data_dir(data_dir), classes=info.classes)
    held = set(info.meta.get("split", {}).get("val_images", []))
    is_held = np.array([name in held for name in dataset.names])
    train_index = np.flatnonzero(~is_held)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(train_index, size=min(calibration, len(train_index) - 1), replace=False))
    log(f"calibrating on {len(chosen)} training images")
    data = quantize_bytes(onnx_path(info.path, "fp32").read_bytes(),
                          _Calibration(predictor, [dataset.paths[i] for i in chosen]))
    int8 = OnnxSession(data, name=str(onnx_path(info.path, "int8")), precision="int8")
    rest = np.setdiff1d(np.arange(len(dataset.paths)), chosen)
    log(f"checking int8 against fp32 on {len(rest)} labelled images not used for calibration")
    check = check_int8(predictor, fp32, int8, [dataset.paths[i] for i in rest], np.asarray(dataset.labels)[rest],
                       is_held[rest])
    check.update(calibration_images=int(len(chosen)), seed=seed, min_agreement=MIN_AGREEMENT,
                 max_accuracy_drop=MAX_ACCURACY_DROP, size_mb=round(len(data) / 1e6, 2))
    reason = verdict(check)
    block = dict(info.meta.get("onnx") or {})
    if reason is not None:
        check["refused"] = reason
        block["int8_refused"] = check
        sidecar.update_sidecar(info.path, onnx=block)
        return QuantizeResult(False, check, None)
    target = onnx_path(info.path, "int8")
    atomic_write_bytes(target, data)
    block.pop("int8_refused", None)
    block["int8"] = {"file": target.name, "sha256": sha256_bytes(data), "check": check}
    sidecar.update_sidecar(info.path, onnx=block)
    return QuantizeResult(True, check, target)
