"""Training runs end to end: data -> cached tensors -> split -> fit -> hold-out evaluation -> checkpoint.

`train()` is the one function the CLI, the app's Train page and `torchrun` all call.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from dance import paths
from dance.config import TrainConfig
from dance.data.cache import ImageCache
from dance.data.labels import LabelledSet, load_labelled
from dance.data.loader import SeededSampler, TensorImageDataset, seeded_torch
from dance.data.splits import GROUP_SIDE, holdout_split, source_groups
from dance.errors import CheckpointError, DanceError, DataError
from dance.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from dance.models import checkpoint
from dance.models.lock import writer_lock
from dance.models.preprocess import build_eval_transform
from dance.models.registry import get_spec
from dance.models.spec import RunSpec, resolve_run_spec, teacher_stems
from dance.paths import find_data_dir
from dance.training import distributed
from dance.training.distill import ensemble, training_set, unlabelled_images
from dance.training.engine import (
    Callback,
    FitState,
    fit,
    make_optimizer,
    pick_device,
    place_model,
    predict_logits,
    softmax_np,
)
from dance.training.transforms import augmentation_stages, build_train_transform
from dance.trust.interpret import Predictions

VAL_BATCH = 64  # evaluation loaders' batch size (validation, CV folds): no gradients, so larger than training's


@dataclass
class PreparedData:
    """A validated labelled set, decoded once, with its source-image groups."""

    dataset: LabelledSet
    tensors: list[torch.Tensor]
    groups: np.ndarray
    data_dir: Path
    unlabelled: list[torch.Tensor] = field(default_factory=list)  # --unlabelled images (distillation only)
    unlabelled_names: list[str] = field(default_factory=list)
    joint_groups: np.ndarray | None = None  # near-duplicate groups over labelled + unlabelled images

    def fingerprint(self) -> str:
        """SHA-1 over (name, label) pairs: identifies the training data in a sidecar."""
        digest = hashlib.sha1()
        for name, label in zip(self.dataset.names, self.dataset.labels):
            digest.update(f"{name}\t{self.dataset.classes[label]}\n".encode())
        return digest.hexdigest()


def check_settings(cfg: TrainConfig) -> None:
    """Refuse impossible settings with one message (they come from the CLI, the app or a sidecar); train and cv
    alike. The ranges live with the defaults in dance.config; this adds what depends on the model or machine."""
    problems = cfg.problems()
    try:
        spec = get_spec(str(cfg.model))
    except DanceError as exc:
        problems.append(str(exc).rstrip("."))
        spec = None
    if spec is not None and cfg.method == "probe" and not spec.pretrained:
        problems.append(f"the probe needs a pretrained backbone; {cfg.model} has none")
    if cfg.teacher and cfg.method != "finetune":
        problems.append("distillation from a teacher needs method finetune")
    if cfg.unlabelled and not cfg.teacher:
        problems.append("unlabelled images need a teacher (they are learnt from its soft targets only)")
    try:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(cfg.device)):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {cfg.device!r}")
        pick_device(str(cfg.device))
    except (ValueError, RuntimeError) as exc:
        problems.append(str(exc).rstrip("."))
    if not problems:  # the pipeline and optimizer builders check what the ranges cannot
        try:
            augmentation_stages(cfg.augment, 64)
            make_optimizer(cfg, get_spec("seed-cnn").create(2, 64, pretrained=False), 1)
        except (ValueError, RuntimeError) as exc:
            problems.append(str(exc).rstrip("."))
    if problems:
        raise DanceError(f"Invalid training settings: {'; '.join(problems)}.")


def load_teachers(cfg: TrainConfig, fold: int, prepared: "PreparedData", run: RunSpec, held_out: Sequence[str],
                  where: str) -> list[checkpoint.Checkpoint]:
    """Every teacher of `cfg` for `fold`, each checked by `load_teacher` (none may have trained on `held_out`)."""
    return [load_teacher(stem, prepared, run, held_out, where) for stem in teacher_stems(cfg, fold)]


def load_teacher(stem: str, prepared: "PreparedData", run: RunSpec, held_out: Sequence[str],
                 where: str) -> checkpoint.Checkpoint:
    """Load a distillation teacher; refuse one with other classes or normalisation, or one that trained on any
    of the `held_out` image names (`where` names them in the message) — it would pass on their answers."""
    teacher = checkpoint.load(stem)
    if teacher.classes != prepared.dataset.classes:
        raise DanceError(f"Teacher {stem} predicts {teacher.classes}, but the data set's classes are "
                         f"{prepared.dataset.classes}.")
    if tuple(teacher.mean) != tuple(run.mean) or tuple(teacher.std) != tuple(run.std):
        raise DanceError(f"Teacher {stem} normalises images differently from {run.model.name}; "
                         "distil between models with the same mean and std.")
    teacher_held_out = set(teacher.meta.get("split", {}).get("val_images", []))
    seen = [name for name in held_out if name not in teacher_held_out]
    if seen:
        raise DataError(f"Teacher {stem} trained on {len(seen)} of the {len(held_out)} images of {where}, so the "
                        "score would be inflated; use a teacher that held out the same images (in cv, the fold "
                        "models of a run with the same --folds, --repeats and --seed; in train, or --val-fraction 0).")
    teacher.model.requires_grad_(False)
    return teacher


def prepare_data(
    cfg: TrainConfig, data_dir: str | os.PathLike | None = None, cache: ImageCache | None = None,
    progress: Callable[[int, int], None] | None = None, run: RunSpec | None = None,
) -> PreparedData:
    """Locate, validate and decode the labelled set (every bad row or image reported before training)."""
    folder = find_data_dir(data_dir)
    dataset = load_labelled(folder, limit=cfg.limit)
    cache = cache or ImageCache(side=(run or resolve_run_spec(cfg)).cache_side)
    tensors = cache.load_all(dataset.paths, progress)
    thumbnails = ImageCache(side=GROUP_SIDE)
    prepared = PreparedData(dataset, tensors, source_groups(thumbnails.load_all(dataset.paths)), folder)
    if cfg.unlabelled:  # grouped with the labelled images so that copies of held-out photos can be left out
        found = unlabelled_images(cfg.unlabelled)
        prepared.unlabelled, prepared.unlabelled_names = cache.load_all(found), [p.name for p in found]
        prepared.joint_groups = source_groups(thumbnails.load_all(dataset.paths) + thumbnails.load_all(found))
    return prepared


def make_loader(
    tensors: Sequence[torch.Tensor], labels: np.ndarray, index: Sequence[int], transform, batch_size: int,
    shuffle: bool, seed: int = 0, workers: int = 0,
) -> DataLoader:
    """A DataLoader over cached tensors at `index`; decoding is already done, `workers` processes augment.

    A shuffling loader draws through a `SeededSampler` (the engine calls `set_epoch` each epoch), so the
    result is the same with any number of workers, which persist across epochs.
    """
    dataset = TensorImageDataset([tensors[i] for i in index], labels[list(index)], transform)
    if not shuffle:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
                          persistent_workers=workers > 0, generator=torch.Generator())
    drop = len(dataset) > batch_size
    if distributed.active():
        # torchrun: each rank trains on its own shard with its share of the global batch, so N processes take
        # the same optimiser steps on the same effective batch size as one (evaluation loaders stay whole).
        world = torch.distributed.get_world_size()
        inner = DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=drop)
        batch_size = distributed.per_rank_batch(batch_size, world)
    else:
        inner = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    sampler = SeededSampler(inner)
    sampler.set_epoch(0, seed)
    # its own generator: the loader's per-iterator seed draw must not consume the training process's stream
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, drop_last=drop,
                      persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed))


def build_state(
    cfg: TrainConfig, run: RunSpec, num_classes: int, steps_per_epoch: int,
    teacher: checkpoint.Checkpoint | Sequence[checkpoint.Checkpoint] | None = None,
    train_labels: np.ndarray | None = None,
) -> FitState:
    """A fresh model (from ImageNet weights where the architecture has them), optimizer, schedule and teacher(s).

    `train_labels` (the labels trained on) set the loss weights of `cfg.class_weights == "balanced"`.
    """
    with seeded_torch(cfg.seed):  # the initial weights depend on the seed alone (see TORCH_RNG)
        model = run.model.create(num_classes, run.input_size)
    optimizer, scheduler = make_optimizer(cfg, model, steps_per_epoch)
    weight = None
    if cfg.class_weights == "balanced" and train_labels is not None:
        weight = torch.as_tensor(balanced_class_weights(train_labels, num_classes), dtype=torch.float32)
    state = FitState(model, optimizer, scheduler, input_size=run.input_size, pretrained=run.model.pretrained,
                     class_weight=weight)
    if teacher:  # one teacher or several, as one ensemble that resizes the batch for each member
        state.teacher = ensemble([teacher] if isinstance(teacher, checkpoint.Checkpoint) else list(teacher))
    return state


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """n / (classes x count) per class, as scikit-learn's "balanced" (0 for a class absent from `labels`)."""
    labels = np.asarray(labels)
    labels = labels[labels >= 0]  # unlabelled images (-1) carry no class
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    present = counts > 0
    weight = np.zeros(num_classes)
    weight[present] = len(labels) / (present.sum() * counts[present])
    return weight


def eval_loader(prepared: PreparedData, index: Sequence[int], run: RunSpec) -> DataLoader:
    """The evaluation loader over `index` (validation, CV folds): the eval transform at the run's input size."""
    transform = build_eval_transform(run.input_size, run.mean, run.std)
    return make_loader(prepared.tensors, prepared.dataset.labels, index, transform, VAL_BATCH, False)


def sidecar_meta(cfg: TrainConfig, run: RunSpec, prepared: PreparedData, **extra) -> dict:
    """The descriptive part of a checkpoint sidecar (the run spec included, so readers need not re-derive it)."""
    return {
        "arch": run.model.name, "classes": prepared.dataset.classes, "image_size": run.input_size,
        "mean": list(run.mean), "std": list(run.std), "run_spec": run.to_dict(), "config": cfg.to_dict(),
        "data": {"fingerprint": prepared.fingerprint(), "images": len(prepared.dataset),
                 "folder": prepared.data_dir.name},
        **extra,
    }


class _StateSaver:
    """Writes the resumable training state after every completed epoch (atomically)."""

    def __init__(self, stem: Path, state: FitState):
        self.stem, self.state = stem, state

    def on_batch_end(self, *args) -> None:
        """Nothing per batch."""

    def on_epoch_end(self, record: dict) -> bool:
        """Persist model + optimizer + history so `--resume` continues from here."""
        save_training_state(self.stem, self.state)
        return True


def state_paths(stem: Path) -> tuple[Path, Path]:
    """Files holding the resumable state of a run writing to `stem`."""
    return stem.with_name(stem.name + ".state.safetensors"), stem.with_name(stem.name + ".state.json")


def save_training_state(stem: Path, state: FitState) -> None:
    """Model, optimizer tensors and run scalars as safetensors + JSON (no pickle)."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()}
    optim = state.optimizer.state_dict()
    for idx, slots in optim["state"].items():
        for key, value in slots.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    weights_file, json_file = state_paths(stem)
    # the epoch in both files lets a resume detect a kill between the two writes
    atomic_write_bytes(weights_file, save_safetensors_bytes(tensors, metadata={"epoch": str(state.epoch)}))
    atomic_write_json(json_file, {
        "epoch": state.epoch, "history": state.history, "param_groups": optim["param_groups"],
        "best_loss": state.best_loss if math.isfinite(state.best_loss) else None, "stale_epochs": state.stale_epochs,
    })


def load_training_state(stem: Path, state: FitState, steps_per_epoch: int) -> None:
    """Restore a state written by `save_training_state` into a freshly built `state`."""
    weights_file, json_file = state_paths(stem)
    try:
        raw = weights_file.read_bytes()
        tensors = load_safetensors_bytes(raw)
        saved_epoch = _safetensors_metadata(raw).get("epoch")
        scalars = json.loads(json_file.read_text())
        _check_state(scalars, state)
        if saved_epoch is not None and saved_epoch != str(scalars["epoch"]):
            raise ValueError(f"weights are from epoch {saved_epoch}, {json_file.name} from epoch {scalars['epoch']}")
        state.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        slots: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                slots.setdefault(int(idx), {})[name] = value
        state.optimizer.load_state_dict({"state": slots, "param_groups": scalars["param_groups"]})
        state.epoch = int(scalars["epoch"])
        state.history = list(scalars["history"])
        state.best_loss = scalars["best_loss"] if scalars["best_loss"] is not None else math.inf
        state.stale_epochs = int(scalars["stale_epochs"])
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, SafetensorError) as exc:
        # a damaged state, or one written with another --model / settings, must not become a traceback
        raise CheckpointError(f"{weights_file}: cannot resume from this training state "
                              f"({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); "
                              "rerun without --resume or with the original settings.") from None
    state.scheduler.last_epoch = state.epoch * steps_per_epoch  # schedules are functions of the step count


def _same_shape(saved, fresh) -> bool:
    """Whether a saved optimizer value has the kind of the freshly built one (finite numbers where it has them)."""
    if isinstance(fresh, bool) or fresh is None or isinstance(fresh, str):
        return type(saved) is type(fresh)
    if isinstance(fresh, (int, float)):
        return isinstance(saved, (int, float)) and not isinstance(saved, bool) and math.isfinite(saved)
    if isinstance(fresh, (list, tuple)):
        return isinstance(saved, list) and len(saved) == len(fresh) and all(map(_same_shape, saved, fresh))
    return True


def _check_state(scalars, state: FitState) -> None:
    """Raise ValueError naming the first damaged value of a resumable state's JSON (never trust its types)."""
    if not isinstance(scalars, dict):
        raise ValueError("the state is not a JSON object")
    epoch = scalars.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch {epoch!r} is not a whole number of epochs")
    history = scalars.get("history")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ValueError("history is not a list of epoch records")
    best, stale = scalars.get("best_loss"), scalars.get("stale_epochs")
    if best is not None and not (isinstance(best, (int, float)) and not isinstance(best, bool) and math.isfinite(best)):
        raise ValueError(f"best_loss {best!r} is not a number")
    if isinstance(stale, bool) or not isinstance(stale, int) or stale < 0:
        raise ValueError(f"stale_epochs {stale!r} is not a whole number")
    fresh_groups, saved_groups = state.optimizer.state_dict()["param_groups"], scalars.get("param_groups")
    if not isinstance(saved_groups, list) or len(saved_groups) != len(fresh_groups):
        raise ValueError("param_groups do not match this optimizer")
    for saved, fresh in zip(saved_groups, fresh_groups):
        if not isinstance(saved, dict) or set(saved) != set(fresh):
            raise ValueError("param_groups do not match this optimizer")
        for key, value in fresh.items():
            if key != "params" and not _same_shape(saved[key], value):
                raise ValueError(f"param_groups {key} {saved[key]!r} is not a valid value")


def _safetensors_metadata(raw: bytes) -> dict:
    """The `__metadata__` of a safetensors byte string (its JSON header; already validated by the loader)."""
    size = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + size]).get("__metadata__") or {}


@dataclass
class TrainResult:
    """What a run produced: the checkpoint stem, its history and its hold-out predictions (if any)."""

    checkpoint: Path
    history: list[dict]
    holdout: Predictions | None
    stopped: bool = False


def default_output(cfg: TrainConfig) -> Path:
    """weights/<model>-<timestamp>: a new name, so no run overwrites another."""
    from datetime import datetime

    return paths.weights_root() / f"{cfg.model}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def train(
    cfg: TrainConfig,
    data_dir: str | os.PathLike | None = None,
    output: str | os.PathLike | None = None,
    callbacks: list[Callback] = (),
    stop: threading.Event | None = None,
    resume: bool = False,
    overwrite: bool = False,
    prepared: PreparedData | None = None,
) -> TrainResult:
    """Train `cfg` on the labelled set, evaluate the hold-out and save a checkpoint; returns what was made.

    An existing checkpoint at `output` (the shipped default included) is replaced only with `overwrite`, the
    user's explicit request for exactly that target; a second run writing the same target is refused.
    """
    check_settings(cfg)
    stem = checkpoint.stem_of(output) if output else default_output(cfg)
    check_target(stem, overwrite)
    run, device = resolve_run_spec(cfg), pick_device(cfg.device)
    ctx, device = distributed.setup(device)  # under torchrun: join the group; rank 0 alone logs and writes
    with writer_lock(stem) if ctx.is_main else contextlib.nullcontext():
        check_target(stem, overwrite)  # again under the lock: another run may have just finished into it
        return _train_into(cfg, stem, run, ctx, device, data_dir, callbacks, stop, resume, prepared)


def check_target(stem: Path, overwrite: bool) -> None:
    """Refuse to replace an existing checkpoint (or ever the shipped default) unless it was asked for exactly."""
    if overwrite:
        return
    if checkpoint.is_default(stem):
        raise CheckpointError(f"Refusing to overwrite weights/default (the shipped model, the files {stem}.*) "
                              "without an explicit confirmation: --overwrite, or the Train page's box.")
    if checkpoint.exists(stem):
        raise CheckpointError(f"Refusing to overwrite the existing checkpoint {stem}: choose another name, "
                              "or pass --overwrite to replace it.")


def _train_into(cfg, stem, run, ctx, device, data_dir, callbacks, stop, resume, prepared) -> TrainResult:
    """The body of `train` once the target is checked and locked."""
    prepared = prepared or prepare_data(cfg, data_dir, run=run)
    labels = prepared.dataset.labels
    if cfg.val_fraction > 0:
        train_idx, val_idx = holdout_split(labels, prepared.groups, cfg.val_fraction, cfg.seed)
    else:
        train_idx, val_idx = np.arange(len(labels)), np.array([], dtype=np.int64)
    teacher = None
    if cfg.teacher:
        teacher = load_teachers(cfg, 0, prepared, run, [prepared.dataset.paths[i].name for i in val_idx],
                                "this run's hold-out")
    train_tf = build_train_transform(cfg.augment, run.augment_size, run.mean, run.std)
    tensors, all_labels, index, used = training_set(prepared.tensors, labels, train_idx, val_idx,
                                                    prepared.unlabelled, prepared.joint_groups)
    train_loader = make_loader(tensors, all_labels, index, train_tf, cfg.batch_size, True, cfg.seed, cfg.workers)
    val_loader = eval_loader(prepared, val_idx, run) if len(val_idx) else None
    if cfg.method == "probe":
        from dance.training.probe import fit_probe

        model, history, _ = fit_probe(cfg, run, prepared, train_idx, val_idx)
    else:
        state = build_state(cfg, run, len(prepared.dataset.classes), len(train_loader), teacher, labels[train_idx])
        if resume:
            if not state_paths(stem)[0].is_file():
                raise CheckpointError(f"Nothing to resume: no training state for {stem}.")
            load_training_state(stem, state, len(train_loader))
        place_model(state.model, device)
        unused = cfg.freeze_epochs > 0 and run.model.pretrained  # a frozen backbone's parameters get no gradient
        state.wrapped = distributed.wrap(state.model, device, find_unused=unused)
        callbacks = [_StateSaver(stem, state), *callbacks] if ctx.is_main else []
        fit(cfg, state, train_loader, val_loader, device, callbacks, stop)
        model, history = state.model, state.history
    stopped = bool(stop is not None and stop.is_set())
    holdout = None
    extra: dict = {"history": history, "split": {"val_fraction": cfg.val_fraction, "seed": cfg.seed,
                                                       "val_images": [prepared.dataset.names[i] for i in val_idx]}}
    if cfg.unlabelled:
        extra["unlabelled"] = {"folder": str(cfg.unlabelled), "images": len(prepared.unlabelled),
                               "used": [prepared.unlabelled_names[u] for u in used]}
    if not ctx.is_main:
        distributed.barrier()  # returns once rank 0 has written the checkpoint
        return TrainResult(stem, history, None, stopped)
    if val_loader is not None:
        logits, targets = predict_logits(model.to(device), val_loader, device)
        holdout = Predictions(softmax_np(logits), targets.numpy(), [str(prepared.dataset.paths[i]) for i in val_idx],
                              prepared.dataset.classes)
        extra["metrics"] = {"holdout": holdout.metrics()}
    model.cpu()
    checkpoint.save(stem, model, sidecar_meta(cfg, run, prepared, **extra))
    export_serving_copy(stem)
    save_history(stem, history)
    for path in state_paths(stem):
        path.unlink(missing_ok=True)  # the run is complete: nothing left to resume
    distributed.barrier()
    return TrainResult(stem, history, holdout, stopped)


def export_serving_copy(stem: Path) -> None:
    """Write `<stem>.onnx` (verified against torch, hash in the sidecar) so predicting needs no torch."""
    try:
        from dance.models.export import export_onnx

        export_onnx(checkpoint.load(stem))
    except (ImportError, CheckpointError) as exc:  # e.g. a GPU box without onnx: torch still serves it
        warnings.warn(f"{stem}: no ONNX copy written ({exc}); predict falls back to torch.", stacklevel=2)


def history_paths(stem: Path) -> tuple[Path, Path]:
    """The learning curves a run writes beside its checkpoint: `<stem>.history.json` and `<stem>.history.html`."""
    return stem.with_name(stem.name + ".history.json"), stem.with_name(stem.name + ".history.html")


def save_history(stem: Path, history: list[dict]) -> None:
    """Write the run's per-epoch records as JSON and, where plotly is installed, as an HTML plot (atomically)."""
    json_file, html_file = history_paths(stem)
    atomic_write_json(json_file, history)
    try:
        from dance.plots import history_figure
    except ImportError:  # a bare GPU box may train without plotly; the curves stay in .history.json
        return
    atomic_write_text(html_file, history_figure(history).to_html(include_plotlyjs=True, full_html=True))


def check_data(data_dir: str | os.PathLike | None = None) -> PreparedData:
    """Validate a data set fully (rows and image decoding) without training; raises DataError."""
    return prepare_data(TrainConfig(model="seed-cnn"), data_dir)


__all__ = ["train", "prepare_data", "PreparedData", "TrainResult", "check_data", "DataError"]
