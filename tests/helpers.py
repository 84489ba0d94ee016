"""Helpers shared by the test modules: a shrunken training config, checkpoint copies, image bytes, the CLI."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from dance.config import AugmentConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
# one intra-op thread: on a shared 2-core machine, thread contention makes tiny epochs many times slower
CLI_ENV = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def small_config(**changes) -> TrainConfig:
    """A training run small enough for a test: seed-cnn, 1 epoch at 64 px, batch 8, no warm-up, no augmentation."""
    values = dict(model="seed-cnn", epochs=1, image_size=64, batch_size=8, freeze_epochs=0,
                  augment=AugmentConfig(preset="none"))
    values.update(changes)
    return TrainConfig(**values)


CHECKPOINT_FILES = (".safetensors", ".json", ".onnx")  # weights, sidecar, the serving copy training writes


def copy_checkpoint(stem: Path, folder: Path, name: str | None = None, suffixes=CHECKPOINT_FILES) -> Path:
    """Copy a checkpoint's files into `folder` (as `name`, default its own); returns the new stem."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or stem.name)
    for suffix in suffixes:
        shutil.copy2(stem.with_suffix(suffix), target.with_name(target.name + suffix))
    return target


def encode(img: Image.Image, fmt: str = "PNG", **options) -> bytes:
    """An image encoded in `fmt` (Pillow's save options passed through)."""
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def run_cli(*args, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 600
            ) -> subprocess.CompletedProcess:
    """`python -m dance ARGS` in a subprocess, as a user runs it; text stdout/stderr captured."""
    return subprocess.run([sys.executable, "-m", "dance", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **CLI_ENV, **(env or {})}, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """A user error as the CLI must report it: exit 2, one `error: ...` line on stderr naming `fragments`."""
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert all(f in lines[0] for f in fragments), proc.stderr
