"""Decoded-image cache: each image decoded once, resized, kept as uint8 tensors (and on disk)."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from dance.data.images import load_image, resize_shorter
from dance.data.tensors import to_uint8_tensor
from dance.errors import DataError, ImageError
from dance.fileio import atomic_write_bytes

Progress = Callable[[int, int], None]


class ImageCache:
    """Decodes each image once into a uint8 (3, H, W) tensor with the shorter side at most `side`.

    Held in memory; with `disk_dir`, also stored as .npy keyed by the file's SHA-1 (never pickled).
    """

    def __init__(self, side: int, disk_dir: str | os.PathLike | None = None):
        self.side = side
        self.disk_dir = Path(disk_dir) if disk_dir else None
        self._memory: dict[str, torch.Tensor] = {}

    def get(self, path: str | os.PathLike) -> torch.Tensor:
        """Decoded tensor for `path`; raises ImageError for an unreadable file."""
        key = str(path)
        if key not in self._memory:
            self._memory[key] = self._decode(Path(path))
        return self._memory[key]

    def _decode(self, path: Path) -> torch.Tensor:
        """Decode from the disk cache when present, else from the image file."""
        disk_file = None
        if self.disk_dir is not None and path.is_file():
            digest = hashlib.sha1(path.read_bytes()).hexdigest()
            disk_file = self.disk_dir / f"{digest}-{self.side}.npy"
            if disk_file.is_file():
                try:
                    return torch.from_numpy(np.load(disk_file, allow_pickle=False))
                except (OSError, ValueError):
                    pass  # a damaged cache entry is simply rebuilt
        tensor = to_uint8_tensor(resize_shorter(load_image(path, name=path.name), self.side))
        if disk_file is not None:
            buffer = io.BytesIO()
            np.save(buffer, tensor.numpy(), allow_pickle=False)
            atomic_write_bytes(disk_file, buffer.getvalue())
        return tensor

    def load_all(self, paths: Sequence[Path], progress: Progress | None = None) -> list[torch.Tensor]:
        """Decode every path up front; raises one DataError listing every unreadable image."""
        tensors, errors = [], []
        for i, path in enumerate(paths):
            try:
                tensors.append(self.get(path))
            except ImageError as exc:
                errors.append(str(exc))
            if progress:
                progress(i + 1, len(paths))
        if errors:
            shown = "\n".join(f"  - {e}" for e in errors[:50])
            raise DataError(f"{len(errors)} image(s) cannot be read:\n{shown}")
        return tensors
