"""Checkpoint bundles: a zip of `<name>.safetensors` + `<name>.json` (+ `<name>.onnx` when exported) to share a model.

Importing checks the archive member by member (dance.data.archive), loads the weights through
dance.models.checkpoint in a temp folder (safetensors only, never unpickled) and only then renames them into
weights/. A bundled ONNX file is not imported: a fresh one is exported here from the checked weights (and verified
against them, its hash recorded in the sidecar, as training does), so no graph from outside is ever run.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path

from dance import paths
from dance.data.archive import ZipSource, open_zip, read_member, safe_members
from dance.errors import CheckpointError, DanceError
from dance.fileio import atomic_write_bytes
from dance.models import checkpoint, sidecar
from dance.models.onnx_session import onnx_path

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # no dots: checkpoint stems take suffixes
MAX_BUNDLE_BYTES = 600_000_000  # uncompressed: the largest shipped checkpoint is ~45 MB


def export_bundle(name_or_path: str | os.PathLike) -> tuple[str, bytes]:
    """(file name, zip bytes) of a checkpoint: weights, sidecar and its ONNX copy when there is one."""
    stem = checkpoint.resolve(name_or_path)
    checkpoint.read_sidecar(stem)  # a broken checkpoint is refused here, not by whoever imports it
    weights = sidecar.weights_file(stem)
    if not weights.is_file():
        raise CheckpointError(f"{weights}: weights file not found.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for suffix in (".safetensors", ".json", ".onnx"):
            path = stem.with_name(stem.name + suffix)
            if path.is_file():
                zf.write(path, arcname=f"{stem.name}{suffix}")
    return f"{stem.name}.zip", buffer.getvalue()


def _bundle_members(zf: zipfile.ZipFile, display: str) -> tuple[str, dict[str, zipfile.ZipInfo]]:
    """(stem, {suffix: member}) of a checked bundle; raises DataError / CheckpointError."""
    infos = safe_members(zf, display)
    total = sum(i.file_size for i in infos)
    if total > MAX_BUNDLE_BYTES:
        raise CheckpointError(f"{display}: would extract to {total / 1e6:.0f} MB, over the "
                              f"{MAX_BUNDLE_BYTES / 1e6:.0f} MB limit for a checkpoint bundle.")
    by_suffix: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        suffix = Path(info.filename).suffix.lower()
        if "/" in info.filename or suffix not in (".safetensors", ".json", ".onnx") or suffix in by_suffix:
            raise CheckpointError(f"{display}: member {info.filename!r} does not belong in a checkpoint bundle "
                                  "(expected one <name>.safetensors, one <name>.json and optionally <name>.onnx).")
        by_suffix[suffix] = info
    if ".safetensors" not in by_suffix or ".json" not in by_suffix:
        raise CheckpointError(f"{display}: a checkpoint bundle needs both <name>.safetensors and <name>.json.")
    stems = {Path(i.filename).stem for i in by_suffix.values()}
    if len(stems) != 1:
        raise CheckpointError(f"{display}: the bundle's files have different names ({', '.join(sorted(stems))}).")
    return stems.pop(), by_suffix


def import_bundle(source: ZipSource, name: str | None = None, replace: bool = False, display: str | None = None,
                  weights_dir: Path | None = None) -> Path:
    """Check a bundle, load its checkpoint in a temp folder, then move it to weights/<name>; returns the stem."""
    display = display or (str(source) if isinstance(source, (str, os.PathLike)) else "upload.zip")
    folder = weights_dir or paths.weights_root()
    with open_zip(source, display) as zf:
        stem_name, members = _bundle_members(zf, display)
        name = name or stem_name
        if not NAME_PATTERN.match(name):
            raise CheckpointError(f"Checkpoint name {name!r}: use 1-64 letters, digits, '-' or '_', starting "
                                  "with a letter or digit.")
        target = folder / name
        if checkpoint.is_default(target) and not replace:
            raise CheckpointError("Refusing to overwrite weights/default without an explicit confirmation.")
        if any((folder / f"{name}{s}").exists() for s in (".json", ".safetensors")) and not replace:
            raise CheckpointError(f"A checkpoint named {name!r} already exists in {folder}; choose another name "
                                  "or ask to replace it.")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=folder))
        try:
            for suffix in (".safetensors", ".json"):
                atomic_write_bytes(tmp / f"{name}{suffix}", read_member(zf, members[suffix], display))
            try:
                checkpoint.load(tmp / name)
                sidecar.update_sidecar(tmp / name, onnx={})  # the bundle's ONNX hashes describe files not imported
            except DanceError as exc:
                raise CheckpointError(f"{display}: {str(exc).replace(str(tmp) + os.sep, '')}") from None
            for stale in (onnx_path(target, "fp32"), onnx_path(target, "int8")):
                stale.unlink(missing_ok=True)  # exports of the weights being replaced
            for suffix in (".safetensors", ".json"):  # the sidecar last: a checkpoint is listed once it exists
                os.replace(tmp / f"{name}{suffix}", folder / f"{name}{suffix}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _serving_copy(target)
    return target


def _serving_copy(stem: Path) -> None:
    """Export `<stem>.onnx` from the imported weights (torch serves the checkpoint when this cannot be done)."""
    try:
        from dance.models.export import export_onnx

        export_onnx(checkpoint.load(stem))
    except (ImportError, CheckpointError) as exc:
        warnings.warn(f"{stem}: no ONNX copy written ({exc}); predict falls back to torch.", stacklevel=2)
