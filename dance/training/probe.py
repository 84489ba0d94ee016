"""Linear-probe transfer learning: features of a frozen ImageNet backbone, a logistic-regression head.

The backbone's pooled features are computed once per image and view (the plain image, its mirror,
and augmented views from the training pipeline), so fitting the head — and cross-validating it —
takes seconds on a CPU. The fitted head is folded into the model's last Linear layer, so a probe
checkpoint is an ordinary `Classifier` checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from dance.config import TrainConfig
from dance.data.loader import seeded_torch
from dance.errors import DataError
from dance.fileio import atomic_write_bytes, atomic_write_json
from dance.models.preprocess import build_eval_transform
from dance.models.registry import Classifier
from dance.models.spec import RunSpec
from dance.training.engine import pick_device
from dance.training.transforms import build_train_transform

PLAIN, MIRROR = 0, 1  # view indices: views 2.. are augmented


def _pooled(model: Classifier) -> nn.Module:
    """Everything up to the final Linear layer: images -> (N, D) features."""
    if not isinstance(model.head, nn.Sequential) or not isinstance(model.head[-1], nn.Linear):
        raise DataError("the probe needs a model whose head ends in a Linear layer")
    return nn.Sequential(model.body, *list(model.head)[:-1]).eval()


@torch.inference_mode()
def extract_views(cfg: TrainConfig, run: RunSpec, model: Classifier, tensors, progress=None) -> np.ndarray:
    """(N, V, D) features: view 0 plain, view 1 mirrored, views 2..V-1 augmented as in training (seeded)."""
    device = pick_device(cfg.device)
    net = _pooled(model).to(device)
    eval_tf = build_eval_transform(run.input_size, run.mean, run.std)
    train_tf = build_train_transform(cfg.augment, run.input_size, run.mean, run.std)
    views = max(2, cfg.probe_views)
    out = []
    for v in range(views):
        with seeded_torch(cfg.seed * 7919 + v):
            if v < 2:
                batch_views = [eval_tf(t) for t in tensors]
                if v == MIRROR:
                    batch_views = [x.flip(-1) for x in batch_views]
            else:
                batch_views = [train_tf(t) for t in tensors]
        feats = [net(torch.stack(batch_views[i:i + 32]).to(device)).float().cpu()
                 for i in range(0, len(batch_views), 32)]
        out.append(torch.cat(feats).numpy())
        if progress:
            progress(v + 1, views)
    return np.stack(out, axis=1)


def cached_views(cfg: TrainConfig, run: RunSpec, model: Classifier, tensors, cache_dir: Path | None = None,
                 progress=None) -> tuple[np.ndarray, float, bool]:
    """`extract_views`, kept in `cache_dir` as .npy keyed by the recipe and the image bytes (probe runs that differ
    only in the head, the folds or the protocol then share one extraction); None: no cache.

    Returns (features, seconds the extraction took when it was made, whether they came from the cache).
    """
    started = time.perf_counter()
    if cache_dir is None:
        return extract_views(cfg, run, model, tensors, progress), round(time.perf_counter() - started, 1), False
    size = run.input_size
    recipe = {"model": cfg.model, "size": size, "views": max(2, cfg.probe_views), "seed": cfg.seed,
              "augment": asdict(cfg.augment)}
    digest = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode())
    for t in tensors:
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.contiguous().numpy().tobytes())
    name = f"{cfg.model}-{size}-{digest.hexdigest()[:20]}"
    path, seconds_file = Path(cache_dir) / f"{name}.npy", Path(cache_dir) / f"{name}.json"
    if path.is_file():
        try:
            features = np.load(path, allow_pickle=False)
            seconds = float(json.loads(seconds_file.read_text())["seconds"])
            if features.shape[:2] == (len(tensors), recipe["views"]):
                return features, seconds, True
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is simply recomputed
    features = extract_views(cfg, run, model, tensors, progress)
    seconds = round(time.perf_counter() - started, 1)
    buffer = io.BytesIO()
    np.save(buffer, features, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
    atomic_write_json(seconds_file, {"seconds": seconds, **recipe})
    return features, seconds, False


def fit_head(features: np.ndarray, labels: np.ndarray, c: float, classes: int,
             class_weights: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """Fit a multinomial logistic regression on (N, V, D) features of every view; returns Linear (weight, bias).

    Standardisation is folded into the returned weights, so they apply to raw features.
    """
    n, v, d = features.shape
    x = features.reshape(n * v, d)
    y = np.repeat(labels, v)
    scaler = StandardScaler().fit(x)
    balanced = "balanced" if class_weights == "balanced" else None
    clf = LogisticRegression(C=c, max_iter=3000, class_weight=balanced).fit(scaler.transform(x), y)
    weight = np.zeros((classes, d))
    bias = np.full(classes, -1e4)  # a class absent from training is never predicted
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    coef, intercept = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # scikit-learn returns one row for two classes: logit(second) - logit(first)
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    weight[clf.classes_] = coef / scale
    bias[clf.classes_] = intercept - (coef / scale) @ scaler.mean_
    return weight, bias


def head_logits(features: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """(N, D) features -> (N, C) logits."""
    return features @ weight.T + bias


def view_probs(features: np.ndarray, weight: np.ndarray, bias: np.ndarray, tta: bool = False) -> np.ndarray:
    """Probabilities from the plain view, or (TTA) from plain + mirror log-probabilities averaged."""
    def log_softmax(z):
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    views = [PLAIN, MIRROR] if tta else [PLAIN]
    logp = np.mean([log_softmax(head_logits(features[:, v], weight, bias)) for v in views], axis=0)
    probs = np.exp(logp)
    return probs / probs.sum(1, keepdims=True)


def set_head(model: Classifier, weight: np.ndarray, bias: np.ndarray) -> Classifier:
    """Copy fitted head weights into the model's final Linear layer."""
    linear = model.head[-1]
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(weight, dtype=linear.weight.dtype))
        linear.bias.copy_(torch.as_tensor(bias, dtype=linear.bias.dtype))
    return model


def _log_loss_and_accuracy(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy."""
    loss = float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1)).mean())
    return loss, float((probs.argmax(1) == labels).mean())


def probe_model(cfg: TrainConfig, run: RunSpec, classes: int) -> Classifier:
    """The probe's model: the pretrained backbone with a fresh head, built from the run's seed."""
    with seeded_torch(cfg.seed):
        return run.model.create(classes, run.input_size)


def fit_probe(cfg: TrainConfig, run: RunSpec, prepared, train_idx, val_idx, progress=None):
    """Extract features of every image once, fit the head on the training rows; returns (model, history, features)."""
    labels, classes = prepared.dataset.labels, len(prepared.dataset.classes)
    model = probe_model(cfg, run, classes)
    features = extract_views(cfg, run, model, prepared.tensors, progress)
    weight, bias = fit_head(features[train_idx], labels[train_idx], cfg.probe_c, classes, cfg.class_weights)
    set_head(model, weight, bias)
    record = {"epoch": 1}
    record["train_loss"], record["train_acc"] = _log_loss_and_accuracy(
        view_probs(features[train_idx], weight, bias), labels[train_idx])
    if len(val_idx):
        record["val_loss"], record["val_acc"] = _log_loss_and_accuracy(
            view_probs(features[val_idx], weight, bias), labels[val_idx])
    return model, [record], features
