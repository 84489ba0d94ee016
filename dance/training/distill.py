"""What a distilled student learns from: teacher ensembles and unlabelled photos (teacher soft targets only).

A teacher spec is one checkpoint stem or several joined by commas ("{fold}" = each CV fold's model); several
teachers' log-probabilities are averaged. Unlabelled images join the training set with label -1, so only the
distillation term sees them; an unlabelled photo that is a near-duplicate of a held-out image is left out, so
no copy of a validation image is ever trained on, with or without a label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dance.data.images import UPLOAD_TYPES
from dance.errors import DataError
from dance.models import checkpoint
from dance.models.spec import teacher_stems  # noqa: F401 - where distillation's callers look for it
from dance.training.engine import TeacherEnsemble

UNLABELLED = -1  # the label of an unlabelled image: the supervised loss skips it


def ensemble(teachers: Sequence[checkpoint.Checkpoint]) -> TeacherEnsemble:
    """One frozen module averaging the teachers' log-probabilities, each at its own input size."""
    return TeacherEnsemble([t.model for t in teachers], [t.image_size for t in teachers])


def unlabelled_images(folder: str | Path) -> list[Path]:
    """Image files directly in `folder`, sorted; one clear sentence when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: the unlabelled-image folder does not exist.")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower().lstrip(".") in UPLOAD_TYPES)
    if not found:
        raise DataError(f"{folder}: no images ({', '.join(UPLOAD_TYPES)}) to add to the distillation set.")
    return found


def training_set(tensors: Sequence[torch.Tensor], labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
                 unlabelled: Sequence[torch.Tensor] = (), joint_groups: np.ndarray | None = None):
    """(tensors, labels, index) of a training loader: the labelled rows at `train_idx` plus every unlabelled image
    whose near-duplicate group (`joint_groups`, over labelled + unlabelled) holds no image at `val_idx`.

    Returns also the positions (into `unlabelled`) of the unlabelled images used.
    """
    if not len(unlabelled):
        return tensors, labels, np.asarray(train_idx), np.array([], dtype=np.int64)
    n = len(tensors)
    held = set(joint_groups[np.asarray(val_idx, dtype=np.int64)].tolist())
    used = np.array([u for u in range(len(unlabelled)) if joint_groups[n + u] not in held], dtype=np.int64)
    all_labels = np.concatenate([labels, np.full(len(unlabelled), UNLABELLED, dtype=labels.dtype)])
    index = np.concatenate([np.asarray(train_idx, dtype=np.int64), n + used])
    return list(tensors) + list(unlabelled), all_labels, index, used
