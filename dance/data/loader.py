"""Torch dataset over cached tensors and a seeded sampler for reproducible epochs."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

# torch's default CPU generator is one per process, and torchvision's transforms, dropout and weight initialisation
# draw from it without taking a generator of their own. Whoever needs a reproducible stream from it — a training
# run, an augmentation preview — holds this lock while it seeds and draws, so the app's previews (other threads)
# can never reseed it in the middle of a training step. Re-entrant: a training step holds it while the loader
# seeds each image inside.
TORCH_RNG = threading.RLock()


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Draw from torch's CPU generator seeded with `seed`, alone (under TORCH_RNG), and restore it afterwards."""
    with TORCH_RNG, torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed % 2**62)  # CPU only: CUDA streams stay the run's own
        yield


class TensorImageDataset(Dataset):
    """Cached uint8 tensors + labels, with a transform applied on each access.

    A key may be an index or a `(seed, index)` pair from `SeededSampler`: the transform's randomness is
    then seeded by that pair alone, so an image's augmentation depends on (run seed, epoch, image) and not
    on which process or worker draws it, nor on what was drawn before.
    """

    def __init__(self, tensors: Sequence[torch.Tensor], labels: np.ndarray, transform: Callable):
        self.tensors, self.labels, self.transform = tensors, labels, transform

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            seed, index = key
            with seeded_torch(seed * 1_000_003 + index):  # leaves the caller's random stream untouched
                return self.transform(self.tensors[index]), int(self.labels[index])
        return self.transform(self.tensors[key]), int(self.labels[key])


class SeededSampler(Sampler):
    """Wraps a shuffling sampler and yields `(epoch seed, index)`; `set_epoch` reshuffles for a new epoch.

    The order depends only on the epoch seed (or, for a DistributedSampler, on its seed and the epoch), and
    each image's augmentation on the pair, so persistent DataLoader workers and `--resume` stay exact.
    """

    def __init__(self, inner: Sampler):
        self.inner, self.epoch_seed = inner, 0

    def set_epoch(self, epoch: int, epoch_seed: int) -> None:
        """Prepare epoch `epoch`, whose randomness derives from `epoch_seed`."""
        self.epoch_seed = epoch_seed
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)  # DistributedSampler: shard shuffle from its seed + epoch
        elif getattr(self.inner, "generator", None) is not None:
            self.inner.generator.manual_seed(epoch_seed)

    def __iter__(self):
        seed = self.epoch_seed
        return ((seed, int(i)) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)
