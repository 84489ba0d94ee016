"""Near-duplicate groups (dHash) and the grouped k-fold / hold-out splits built on them."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from dance.errors import DataError

GROUP_SIDE = 160  # near-duplicate groups are hashed from images of this side, whatever the model's input size, so
# runs at different sizes get the same folds (and can be paired, ensembled or distilled from one another)


def _dhash(tensor: torch.Tensor) -> int:
    """64-bit difference hash of an image: robust to resizing and recompression."""
    gray = tensor.float().mean(0, keepdim=True)[None]
    small = torch.nn.functional.interpolate(gray, size=(8, 9), mode="area")[0, 0]
    bits = (small[:, 1:] > small[:, :-1]).flatten().tolist()
    return sum(1 << i for i, b in enumerate(bits) if b)


def source_groups(tensors: Sequence[torch.Tensor], max_distance: int = 4) -> np.ndarray:
    """Group ids such that near-duplicate images (same source photo) share a group.

    Splits keep each group on one side, so a resized or re-encoded copy of a validation
    image never sits in training.
    """
    hashes = np.array([_dhash(t) for t in tensors], dtype=np.uint64)
    parent = list(range(len(hashes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(hashes)):
        distance = np.array([bin(int(x)).count("1") for x in (hashes[i + 1:] ^ hashes[i])], dtype=np.int64)
        for j in np.nonzero(distance <= max_distance)[0]:
            parent[find(i + 1 + int(j))] = find(i)
    roots = [find(i) for i in range(len(hashes))]
    _, groups = np.unique(roots, return_inverse=True)
    return groups.astype(np.int64)


def kfold_splits(
    labels: np.ndarray, groups: np.ndarray, k: int = 5, seed: int = 0, repeats: int = 1, grouped: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, grouped k-fold splits (repeated with seeds seed, seed+1, ...): list of (train, val) indices.

    `grouped=False` is the plain stratified split public notebooks use: near-duplicates may straddle folds, so
    its scores are inflated and only for comparison with published numbers.
    """
    if k < 2:
        raise DataError("k-fold needs k >= 2.")
    smallest = int(np.bincount(labels).min())
    if smallest < k:
        raise DataError(f"k={k} folds need at least {k} images in every class; the smallest class has {smallest}: "
                        "use fewer folds (--folds) or more images (a larger --limit, or 0 for all).")
    # imported here: sklearn costs ~1 s at app start
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    splits = []
    dummy = np.zeros(len(labels))
    for r in range(repeats):
        if grouped:
            folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed + r).split(dummy, labels, groups)
        else:
            folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed + r).split(dummy, labels)
        splits.extend((np.sort(tr), np.sort(va)) for tr, va in folds)
    return splits


def holdout_split(labels: np.ndarray, groups: np.ndarray, val_fraction: float = 0.2, seed: int = 0):
    """Stratified, grouped hold-out split (80/20 by default): (train indices, validation indices)."""
    if not 0 < val_fraction < 0.5:
        raise DataError("val_fraction must be between 0 and 0.5.")
    k = max(2, round(1 / val_fraction))
    smallest = int(np.bincount(labels).min())
    if smallest < k:
        raise DataError(f"A hold-out of {val_fraction:.0%} needs at least {k} images in every class; the smallest "
                        f"class has {smallest}: use more images (a larger --limit, or 0 for all), a larger "
                        "--val-fraction, or --val-fraction 0 to train on everything without a hold-out.")
    return kfold_splits(labels, groups, k=k, seed=seed)[0]


def duplicate_sets(groups: np.ndarray) -> list[list[int]]:
    """Indices of each group with more than one image (near-duplicates of one source photo), largest first."""
    ids, counts = np.unique(groups, return_counts=True)
    sets = [np.nonzero(groups == gid)[0].tolist() for gid in ids[counts > 1]]
    return sorted(sets, key=lambda s: (-len(s), s[0]))
