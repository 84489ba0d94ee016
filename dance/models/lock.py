"""One writer per checkpoint: `<stem>.lock` holds the owner's pid while a run trains into that stem.

A second writer (another `dance train`, another app session) is refused with a message naming the owner;
a lock left by a killed run is stale and taken over (the kernel released its flock).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dance.errors import CheckpointError
from dance.models.sidecar import stem_of, suffixed


def lock_file(stem: str | os.PathLike) -> Path:
    """The lock file of a checkpoint stem."""
    return suffixed(stem_of(stem), ".lock")


def _owner(path: Path) -> str:
    """Who holds the lock, as the message says it ("pid N on HOST"), from the file's content."""
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {int(owner['pid'])} on {owner['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _take(path: Path) -> int | None:
    """Open and flock the lock file; the fd, or None when a live process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file the previous owner unlinked between our open and our flock
            return fd
        os.close(fd)


@contextmanager
def writer_lock(stem: str | os.PathLike) -> Iterator[Path]:
    """Hold `<stem>.lock` for the duration; raises CheckpointError when another live writer holds it.

    flock, not the file's existence, is the lock: the kernel drops it when its owner dies, so a killed
    run never leaves a stale lock behind, and two sessions in one app process exclude each other too.
    """
    path = lock_file(stem)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _take(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot create the lock file ({exc.strerror or exc}).") from None
    if fd is None:
        raise CheckpointError(
            f"{stem_of(stem)} is being written by another run ({_owner(path)}, lock file {path.name}); "
            "wait for it to finish or choose another name.")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        yield path
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)
