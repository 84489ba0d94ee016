"""Atomic file writes: a crash leaves the old file or the new one, never half of either.

Any OS error while writing (disk full, read-only folder, permissions) becomes a `WriteError`: one sentence
naming the file, with the old file left as it was and no temp file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from dance.errors import DanceError


class WriteError(DanceError, OSError):
    """A file that could not be written; the previous version is unchanged (still an OSError for callers)."""

    def __str__(self) -> str:
        return str(self.strerror)


def _stage(path: Path, data: bytes) -> str:
    """Write `data` to a fsynced temp file beside `path`; returns the temp file's name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def _sync_dir(folder: Path) -> None:
    """Make the renames in `folder` durable (best effort: some file systems refuse a directory fsync)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_write_many(items: Mapping[str | os.PathLike, bytes]) -> list[Path]:
    """Write several files: all are staged (written and fsynced) first, then renamed in the given order.

    A disk-full or permission error therefore leaves every old file intact; only a kill between the
    renames can leave some files new and some old (a checkpoint's sidecar names its weights' digest for that).
    """
    staged: list[tuple[Path, str]] = []
    current = None
    try:
        for path, data in items.items():
            current = Path(path)
            staged.append((current, _stage(current, data)))
        for current, tmp in staged:
            os.replace(tmp, current)
    except OSError as exc:
        raise WriteError(exc.errno, f"Could not write {current}: {exc.strerror or exc}; "
                                    "the previous file is unchanged.") from None
    finally:
        for _, tmp in staged:
            Path(tmp).unlink(missing_ok=True)  # already renamed: a no-op
    for folder in dict.fromkeys(path.parent for path, _ in staged):
        _sync_dir(folder)
    return [path for path, _ in staged]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to a temp file beside `path`, fsync it, then rename it over `path`."""
    return atomic_write_many({path: data})[0]


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_bytes(data: Any) -> bytes:
    """Indented JSON as UTF-8 bytes, the format of every JSON file the project writes."""
    return (json.dumps(data, indent=2, sort_keys=False, default=str) + "\n").encode("utf-8")


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Atomically write indented JSON."""
    return atomic_write_bytes(path, json_bytes(data))
