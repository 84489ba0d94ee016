"""Training and inference loops: fit / train_one_epoch / predict_logits. No prints, no file I/O, no streamlit."""

from __future__ import annotations

import copy
import itertools
import math
import platform
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from dance.config import TrainConfig
from dance.data.loader import TORCH_RNG, SeededSampler
from dance.models.preprocess import tta_views
from dance.models.registry import Classifier
from dance.training import distributed


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was requested but no GPU is available.")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """Human-readable name of the device a run used."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


class Callback(Protocol):
    """Receives progress; `on_epoch_end` returning False stops training."""

    def on_batch_end(self, epoch: int, batch: int, batches: int, loss: float) -> None: ...

    def on_epoch_end(self, record: dict) -> bool | None: ...


@dataclass
class FitState:
    """Mutable state of a run, exposed so a caller can checkpoint and resume it."""

    model: Classifier
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    history: list[dict] = field(default_factory=list)
    epoch: int = 0  # epochs completed
    best_loss: float = math.inf
    best_state: dict | None = None
    stale_epochs: int = 0
    wrapped: nn.Module | None = None  # the DistributedDataParallel wrapper under torchrun; trains in place of model
    teacher: nn.Module | None = None  # distillation: a frozen model whose softened predictions are also learnt
    input_size: int = 0  # the model's input side; loader images of another size are resized to it (distillation)
    teacher_size: int = 0  # the teacher's input side
    class_weight: torch.Tensor | None = None  # per-class loss weights ("balanced" class weights), else None
    pretrained: bool = False  # the model starts from ImageNet weights (only those get a frozen warm-up)


def place_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move `model` to `device`; on CUDA also to channels_last, the layout bf16 convolutions are fastest in."""
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(cfg: TrainConfig, model: Classifier, steps_per_epoch: int):
    """Optimizer with a lower LR for a pretrained backbone, and the configured schedule over all epochs."""
    backbone = set(map(id, model.backbone_parameters()))
    head_params = [p for p in model.parameters() if id(p) not in backbone]
    body_lr = cfg.lr * (cfg.backbone_lr_scale if cfg.freeze_epochs or cfg.backbone_lr_scale != 1 else 1)
    groups = [{"params": model.backbone_parameters(), "lr": body_lr}, {"params": head_params, "lr": cfg.lr}]
    if cfg.optimizer == "adam":
        optimizer = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose adam or adamw")
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=[g["lr"] for g in groups], total_steps=total, pct_start=0.2
        )
    elif cfg.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    elif cfg.schedule == "constant":
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    else:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose onecycle, cosine or constant")
    return optimizer, scheduler


def set_backbone_trainable(model: Classifier, trainable: bool) -> None:
    """Freeze or unfreeze the backbone; a frozen backbone also keeps its batch-norm statistics."""
    for p in model.backbone_parameters():
        p.requires_grad_(trainable)
    model.body.train(trainable and model.training)


def _mixup(images: torch.Tensor, targets: torch.Tensor, alpha: float, generator: torch.Generator):
    """Mix pairs of images; returns mixed images, both targets and the mixing weight."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(images.shape[0], generator=generator).to(images.device)
    return lam * images + (1 - lam) * images[perm], targets, targets[perm], lam


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence between softened teacher and student distributions, scaled by T^2 (Hinton et al.)."""
    t = temperature
    return F.kl_div((logits / t).log_softmax(1), (teacher_logits / t).log_softmax(1), log_target=True,
                    reduction="batchmean") * t * t


class TeacherEnsemble(nn.Module):
    """Frozen teachers returning their averaged log-probabilities, each fed the batch at its own input size."""

    def __init__(self, members: list[nn.Module], sizes: list[int]):
        super().__init__()
        self.members, self.sizes = nn.ModuleList(members), list(sizes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C) mean log-probabilities (valid logits: their softmax is the ensemble's geometric mean)."""
        return torch.stack([m(resize_batch(images, s)).float().log_softmax(1)
                            for m, s in zip(self.members, self.sizes)]).mean(0)


def labelled_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over the rows with a label (target >= 0); unlabelled images (-1) only learn from a teacher."""
    known = targets >= 0
    if not bool(known.any()):
        return logits.sum() * 0.0  # a batch of unlabelled images: no supervised term, still part of the graph
    return F.cross_entropy(logits[known], targets[known], weight=weight, label_smoothing=smoothing)


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """`images` at size x size (unchanged when already so); antialiased so a downscale does not alias."""
    if not size or images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _step(state: FitState, net: nn.Module, cfg: TrainConfig, images: torch.Tensor, targets: torch.Tensor,
          device: torch.device, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch (mixup and the teacher as configured); returns (loss, logits)."""
    images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        if cfg.mixup > 0:
            images, t1, t2, lam = _mixup(images, targets, cfg.mixup, generator)
        teacher_logits = None
        if state.teacher is not None:  # the teacher sees the very same augmented (and mixed) view
            with torch.no_grad():
                teacher_logits = state.teacher(resize_batch(images, state.teacher_size)).float()
        logits = net(resize_batch(images, state.input_size)).float()
        weight = None if state.class_weight is None else state.class_weight.to(device)
        if cfg.mixup > 0:
            loss = (lam * labelled_loss(logits, t1, cfg.label_smoothing, weight)
                    + (1 - lam) * labelled_loss(logits, t2, cfg.label_smoothing, weight))
        else:
            loss = labelled_loss(logits, targets, cfg.label_smoothing, weight)
        if teacher_logits is not None:
            w = cfg.distill_weight
            loss = (1 - w) * loss + w * distillation_loss(logits, teacher_logits, cfg.distill_temperature)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    state.scheduler.step()
    return loss.detach(), logits.detach()


def train_one_epoch(
    state: FitState, loader: DataLoader, cfg: TrainConfig, device: torch.device,
    callbacks: list[Callback] = (), stop: threading.Event | None = None,
) -> dict:
    """One pass over `loader`; returns {'train_loss', 'train_acc'}."""
    model = state.model
    model.train()
    frozen = state.epoch < cfg.freeze_epochs and state.pretrained
    set_backbone_trainable(model, not frozen)
    total_loss, correct, seen, labelled = 0.0, 0, 0, 0
    # Each epoch's randomness depends only on (seed, epoch), so a resumed run repeats an uninterrupted one.
    epoch_seed = cfg.seed * 1000 + state.epoch
    with TORCH_RNG:
        torch.manual_seed(epoch_seed)
    generator = torch.Generator().manual_seed(epoch_seed)
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, SeededSampler):  # make_loader's (also around a DistributedSampler under torchrun)
        sampler.set_epoch(state.epoch, epoch_seed)  # the order and every image's augmentation for this epoch
    net = state.wrapped if state.wrapped is not None else model
    batches = iter(loader)
    for batch in itertools.count():
        if stop is not None and stop.is_set():
            break
        # in-process augmentation, mixup and dropout draw from torch's global stream: no preview may reseed it
        with TORCH_RNG:
            item = next(batches, None)
            if item is None:
                break
            targets = item[1]
            loss, logits = _step(state, net, cfg, item[0], targets, device, generator)
        total_loss += float(loss) * len(targets)
        correct += int((logits.argmax(1).cpu() == targets).sum())
        seen += len(targets)
        labelled += int((targets >= 0).sum())
        for cb in callbacks:
            cb.on_batch_end(state.epoch, batch + 1, len(loader), float(loss))
    total_loss, correct, seen, labelled = distributed.sum_across([total_loss, correct, seen, labelled], device)
    # loss over every image (unlabelled ones add their distillation term), accuracy over the labelled ones
    return {"train_loss": total_loss / max(seen, 1), "train_acc": correct / max(labelled, 1)}


@torch.inference_mode()
def predict_logits(model: nn.Module, loader: DataLoader, device: torch.device, tta: bool = False):
    """Logits and targets for every batch of `loader`; with `tta`, logits averaged over flip/crop views."""
    model.eval()
    all_logits, all_targets = [], []
    for images, targets in loader:
        images = images.to(device)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if tta:
                logits = torch.stack([model(v).float().log_softmax(1) for v in tta_views(images)]).mean(0)
            else:
                logits = model(images).float()
        all_logits.append(logits.float().cpu())
        all_targets.append(torch.as_tensor(targets))
    return torch.cat(all_logits), torch.cat(all_targets)


def validation_metrics(model: nn.Module, loader: DataLoader, device: torch.device) -> dict:
    """Validation loss (plain cross-entropy, no label smoothing) and accuracy."""
    logits, targets = predict_logits(model, loader, device)
    loss = F.cross_entropy(logits, targets)
    return {"val_loss": float(loss), "val_acc": float((logits.argmax(1) == targets).float().mean())}


def fit(
    cfg: TrainConfig,
    state: FitState,
    train_loader: DataLoader,
    val_loader: DataLoader | None,
    device: torch.device,
    callbacks: list[Callback] = (),
    stop: threading.Event | None = None,
) -> FitState:
    """Train from `state.epoch` to `cfg.epochs`, with optional early stopping on validation loss.

    Each epoch appends a record (epoch, losses, accuracies, lr, seconds) to `state.history`
    and is announced to every callback; a callback returning False, or `stop` being set, ends the run.
    """
    place_model(state.model, device)
    if state.teacher is not None:
        place_model(state.teacher.eval(), device)
    while state.epoch < cfg.epochs:
        started = time.perf_counter()
        record = {"epoch": state.epoch + 1, **train_one_epoch(state, train_loader, cfg, device, callbacks, stop)}
        if stop is not None and stop.is_set():
            break
        if val_loader is not None:
            record.update(validation_metrics(state.model, val_loader, device))
        record["lr"] = state.optimizer.param_groups[-1]["lr"]
        record["seconds"] = round(time.perf_counter() - started, 3)
        state.epoch += 1
        state.history.append(record)
        keep_going = True
        if cfg.patience and val_loader is not None:
            if record["val_loss"] < state.best_loss - 1e-4:
                state.best_loss, state.stale_epochs = record["val_loss"], 0
                state.best_state = copy.deepcopy(state.model.state_dict())
            else:
                state.stale_epochs += 1
                keep_going = state.stale_epochs < cfg.patience
        for cb in callbacks:
            if cb.on_epoch_end(record) is False:
                keep_going = False
        keep_going = distributed.agree(keep_going)  # callbacks run on rank 0 only; every rank stops together
        if not keep_going:
            break
    if state.best_state is not None:
        state.model.load_state_dict(state.best_state)  # early stopping keeps the best epoch's weights
    return state


def softmax_np(logits: torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    """Softmax of logits / temperature as float64 numpy."""
    return torch.softmax(logits.double() / temperature, dim=1).numpy()
