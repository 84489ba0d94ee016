"""Cached UI resources: checkpoint lists, predictors, CV runs, thumbnails and Grad-CAM overlays.

Models live in `st.cache_resource` (keyed by path + file mtime, never mutated); derived tables,
predictions and thumbnails in `st.cache_data`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st
from PIL import Image, ImageOps

from dance import paths
from dance.data.images import load_image
from dance.errors import CheckpointError, DanceError
from dance.inference import serving
from dance.inference.predict import Predictor
from dance.models import sidecar

THUMB_SIDE = 224
TILE_BACKGROUND = (246, 236, 228)  # the theme's secondaryBackgroundColor, so letterboxing blends in



def _cv_module():
    """dance.cv when it is importable (it pulls in the training stack; the pages work without it)."""
    try:
        from dance.training import cv
    except ImportError:
        return None
    return cv


def oof_runs() -> list[Path]:
    """oof.csv of every cross-validation run: your runs under paths.runs_root()/cv (newest first), then the shipped
    ones under weights/cv (the CV of the shipped recipe), empty when there are none."""
    cv = _cv_module()
    if cv is None:
        return []
    return [Path(p) for root in (paths.cv_root(), paths.weights_root() / "cv") for p in cv.list_oof_runs(root)]


def load_oof(path: str | os.PathLike):
    """Out-of-fold Predictions of a CV run's oof.csv; raises DataError for a malformed file."""
    return _cv_module().load_oof(path)


def checkpoint_run(name: str) -> Path | None:
    """oof.csv of the cross-validation run attached to checkpoint `name` (weights/cv/<name>/, see attach-cv)."""
    path = paths.weights_root() / "cv" / name / "oof.csv"
    return path if path.is_file() else None


SERVED_KEY = "served_model"  # set by the Predict page (a plain key: widget state is dropped on other pages)
MODEL_REQUEST = "predict_model_request"  # another page (Train's "Open in Predict") asks Predict for a checkpoint


def served_name() -> str:
    """The checkpoint the app serves right now: the one last picked on Predict, else the shipped default."""
    return str(st.session_state.get(SERVED_KEY) or sidecar.DEFAULT_NAME)


def served_run_first(runs: list[Path], name: str | None = None) -> list[Path]:
    """`runs` with the served checkpoint's own CV run first (file times say nothing about which run matters)."""
    own = checkpoint_run(name or served_name())
    if own is None or own not in runs:
        return runs
    return [own, *(r for r in runs if r != own)]


def fold_models(run_oof: str | os.PathLike) -> dict[str, Path]:
    """Image name -> the saved fold model that predicted it out of fold (<run>/folds/fold-<n>, `cv --save-fold-models`);
    empty when the run kept no fold models."""
    run_oof = Path(run_oof)
    folds = run_oof.parent / "folds"
    if not folds.is_dir():
        return {}
    try:
        frame = pd.read_csv(run_oof, usecols=["image", "fold"], dtype={"image": str})
    except (OSError, ValueError):
        return {}
    stems = {int(f): folds / f"fold-{int(f)}" for f in frame["fold"].dropna().unique()}
    found = {f: s for f, s in stems.items()
             if all(f.is_file() for f in sidecar.files(s))}
    return {str(img): found[int(f)] for img, f in zip(frame["image"], frame["fold"]) if int(f) in found}


def run_label(path: str | os.PathLike) -> str:
    """'<run name> (oof.csv)' for a run picker."""
    return f"{Path(path).parent.name} ({Path(path).name})"


@dataclass(frozen=True)
class CheckpointRef:
    """A checkpoint on disk, identified by its stem and the mtime of its files (the cache key)."""

    stem: str
    mtime: float

    @property
    def name(self) -> str:
        """The file stem shown to users."""
        return Path(self.stem).name


def _mtime(stem: Path) -> float:
    """Newest modification time of a checkpoint's two files (0 when missing)."""
    times = [p.stat().st_mtime for p in sidecar.files(stem) if p.exists()]
    return max(times, default=0.0)


@st.cache_data(ttl=30, show_spinner=False)
def _checkpoint_stems(folder: str) -> list[str]:
    """Stems of the checkpoints in `folder`, default first (short TTL: files can appear from the CLI)."""
    return [str(s) for s in sidecar.list_checkpoints(Path(folder))]


def list_checkpoints() -> list[CheckpointRef]:
    """Every checkpoint in the weights folder, default first, then newest first."""
    return [CheckpointRef(s, _mtime(Path(s))) for s in _checkpoint_stems(str(paths.weights_root()))]


def refresh_checkpoints() -> None:
    """Forget the cached checkpoint list (after a training run saved a new one)."""
    _checkpoint_stems.clear()


@st.cache_resource(show_spinner="Loading model…", max_entries=4)
def _load_predictor(stem: str, mtime: float) -> Predictor:
    """Load a checkpoint once per (path, mtime); shared by every session (ONNX int8 when shipped: no torch import)."""
    return serving.load(stem)


def load_predictor(ref: CheckpointRef) -> Predictor:
    """The cached Predictor of a checkpoint; raises CheckpointError."""
    return _load_predictor(ref.stem, ref.mtime)


def load_with_fallback(ref: CheckpointRef, refs: list[CheckpointRef]) -> tuple[Predictor, CheckpointRef, str | None]:
    """Load `ref`; when it fails, fall back to the first (default) checkpoint and return a warning to show."""
    try:
        predictor = load_predictor(ref)
        return predictor, ref, " ".join(predictor.notes) or None  # e.g. a tampered ONNX file: torch answers
    except CheckpointError as exc:
        fallback = refs[0] if refs and refs[0] != ref else None
        if fallback is None:
            raise
        predictor = load_predictor(fallback)
        return predictor, fallback, f"{exc} Using {fallback.name} instead."


def thumbnail(img: Image.Image, side: int = THUMB_SIDE) -> Image.Image:
    """A copy of `img` fitting in side x side."""
    small = img.copy()
    small.thumbnail((side, side), Image.BICUBIC)
    return small


def tile(img: Image.Image, side: int = THUMB_SIDE) -> Image.Image:
    """`img` scaled to fit a side x side square and centred on the theme background (galleries line up)."""
    return ImageOps.pad(img, (side, side), Image.BICUBIC, color=TILE_BACKGROUND)


def jpeg_bytes(img: Image.Image, quality: int = 85) -> bytes:
    """Encode an RGB image as JPEG."""
    buffer = io.BytesIO()
    img.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@st.cache_data(show_spinner=False, max_entries=4000)
def _file_thumbnail(path: str, mtime: float, side: int, square: bool) -> bytes | None:
    """JPEG thumbnail of an image file (None when it cannot be decoded); keyed by path + mtime."""
    try:
        img = load_image(path, name=Path(path).name)
        return jpeg_bytes(tile(img, side) if square else thumbnail(img, side))
    except DanceError:
        return None


def file_thumbnail(path: str | os.PathLike, side: int = THUMB_SIDE, square: bool = False) -> bytes | None:
    """Cached JPEG thumbnail of an image file (square tile on request), decoded through dance.images.load_image."""
    path = Path(path)
    mtime = path.stat().st_mtime if path.exists() else 0.0
    return _file_thumbnail(str(path), mtime, side, square)


@st.cache_data(show_spinner=False, max_entries=500)
def bytes_thumbnail(data: bytes, name: str, side: int = THUMB_SIDE) -> bytes | None:
    """JPEG thumbnail of uploaded bytes (None when they cannot be decoded)."""
    try:
        return jpeg_bytes(thumbnail(load_image(data, name=name), side))
    except DanceError:
        return None


def data_uri(jpeg: bytes | None) -> str | None:
    """A JPEG as a data: URI (for st.column_config.ImageColumn)."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii") if jpeg else None


# ---------------------------------------------------------------------------------------------- Grad-CAM


def digest(data: bytes) -> str:
    """SHA-1 of image bytes: the cache key of anything derived from an upload."""
    return hashlib.sha1(data).hexdigest()


def _cam_jpeg(predictor: Predictor, img: Image.Image, class_name: str | None, side: int,
              square: bool) -> tuple[bytes, str, float]:
    """Grad-CAM overlay of `img` (shrunk to `side` first: the heat map is coarse anyway) as JPEG, class, probability."""
    from dance.inference.explain import explain  # torch: only when asked for

    picture, name, prob = explain(predictor, thumbnail(img, side), class_name)
    return jpeg_bytes(tile(picture, side) if square else picture), name, prob


@st.cache_data(show_spinner="Computing Grad-CAM…", max_entries=1000)
def _file_cam(_predictor: Predictor, stem: str, ckpt_mtime: float, path: str, mtime: float, class_name: str | None,
              side: int, square: bool) -> tuple[bytes, str, float] | None:
    """Grad-CAM overlay of an image file, keyed by (checkpoint path, mtime, image path, mtime, class)."""
    try:
        img = load_image(path, name=Path(path).name)
    except DanceError:
        return None
    return _cam_jpeg(_predictor, img, class_name, side, square)


@st.cache_data(show_spinner="Computing Grad-CAM…", max_entries=200)
def _bytes_cam(_predictor: Predictor, stem: str, ckpt_mtime: float, sha1: str, _data: bytes, name: str,
               class_name: str | None, side: int) -> tuple[bytes, str, float] | None:
    """Grad-CAM overlay of uploaded bytes, keyed by (checkpoint path, mtime, bytes hash, class)."""
    try:
        img = load_image(_data, name=name)
    except DanceError:
        return None
    return _cam_jpeg(_predictor, img, class_name, side, False)


def file_cam(predictor: Predictor, ref: CheckpointRef, path: str | os.PathLike, class_name: str | None = None,
             side: int = THUMB_SIDE, square: bool = False) -> tuple[bytes, str, float] | None:
    """Cached (overlay JPEG, explained class, its probability) of an image file; None when it cannot be decoded."""
    path = Path(path)
    mtime = path.stat().st_mtime if path.exists() else 0.0
    return _file_cam(predictor, ref.stem, ref.mtime, str(path), mtime, class_name, side, square)


def bytes_cam(predictor: Predictor, ref: CheckpointRef, data: bytes, name: str, class_name: str | None = None,
              side: int = 448) -> tuple[bytes, str, float] | None:
    """Cached (overlay JPEG, explained class, its probability) of uploaded bytes; None when they cannot be decoded."""
    return _bytes_cam(predictor, ref.stem, ref.mtime, digest(data), data, name, class_name, side)


# ---------------------------------------------------------------------------------------------- galleries
