"""Shared UI glue: where weights and data live, cached model / thumbnail loaders, galleries and error display.

Models live in `st.cache_resource` (keyed by path + file mtime, never mutated); derived tables,
predictions and thumbnails in `st.cache_data`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd
import streamlit as st
from PIL import Image, ImageOps

from dance import checkpoint
from dance.data import find_data_dir
from dance.errors import CheckpointError, DanceError
from dance.explain import class_activation, overlay, upsample
from dance.images import load_image
from dance.predict import Predictor

THUMB_SIDE = 224
TILE_BACKGROUND = (246, 236, 228)  # the theme's secondaryBackgroundColor, so letterboxing blends in
WEIGHTS_ENV = "DANCE_WEIGHTS_DIR"
RUNS_ENV = "DANCE_RUNS_DIR"
PROJECT_RUNS = Path(__file__).resolve().parents[2] / "runs"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def weights_dir() -> Path:
    """The checkpoint folder: $DANCE_WEIGHTS_DIR when set, else the project's weights/."""
    override = os.environ.get(WEIGHTS_ENV)
    return Path(override) if override else checkpoint.WEIGHTS_DIR


def runs_dir() -> Path:
    """The runs folder (CV runs under cv/, label corrections): $DANCE_RUNS_DIR when set, else the project's runs/."""
    override = os.environ.get(RUNS_ENV)
    return Path(override) if override else PROJECT_RUNS


def _cv_module():
    """dance.cv when it is importable (it pulls in the training stack; the pages work without it)."""
    try:
        from dance import cv
    except ImportError:
        return None
    return cv


def oof_runs() -> list[Path]:
    """oof.csv of every cross-validation run: your runs under runs_dir()/cv (newest first), then the shipped
    ones under weights/cv (the CV of the shipped recipe), empty when there are none."""
    cv = _cv_module()
    if cv is None:
        return []
    return [Path(p) for root in (runs_dir() / "cv", weights_dir() / "cv") for p in cv.list_oof_runs(root)]


def load_oof(path: str | os.PathLike):
    """Out-of-fold Predictions of a CV run's oof.csv; raises DataError for a malformed file."""
    return _cv_module().load_oof(path)


def run_label(path: str | os.PathLike) -> str:
    """'<run name> (oof.csv)' for a run picker."""
    return f"{Path(path).parent.name} ({Path(path).name})"


def md_escape(text: str) -> str:
    """Escape Markdown so a user-controlled string (a file name) shows literally."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


@contextmanager
def page_errors() -> Iterator[None]:
    """Show a DanceError as st.error(message) instead of a traceback."""
    try:
        yield
    except DanceError as exc:
        st.error(str(exc))


# ---------------------------------------------------------------------------------------------- checkpoints


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
    times = [p.stat().st_mtime for p in (stem.with_suffix(".json"), stem.with_suffix(".safetensors")) if p.exists()]
    return max(times, default=0.0)


@st.cache_data(ttl=30, show_spinner=False)
def _checkpoint_stems(folder: str) -> list[str]:
    """Stems of the checkpoints in `folder`, default first (short TTL: files can appear from the CLI)."""
    return [str(s) for s in checkpoint.list_checkpoints(Path(folder))]


def list_checkpoints() -> list[CheckpointRef]:
    """Every checkpoint in the weights folder, default first, then newest first."""
    return [CheckpointRef(s, _mtime(Path(s))) for s in _checkpoint_stems(str(weights_dir()))]


def refresh_checkpoints() -> None:
    """Forget the cached checkpoint list (after a training run saved a new one)."""
    _checkpoint_stems.clear()


@st.cache_resource(show_spinner="Loading model…", max_entries=4)
def _load_predictor(stem: str, mtime: float) -> Predictor:
    """Load a checkpoint once per (path, mtime); shared by every session (it only swaps torch for ONNX, under a lock)."""
    return Predictor(checkpoint.load(stem), background_export=True)  # never export on the page's thread


def load_predictor(ref: CheckpointRef) -> Predictor:
    """The cached Predictor of a checkpoint; raises CheckpointError."""
    return _load_predictor(ref.stem, ref.mtime)


def load_with_fallback(ref: CheckpointRef, refs: list[CheckpointRef]) -> tuple[Predictor, CheckpointRef, str | None]:
    """Load `ref`; when it fails, fall back to the first (default) checkpoint and return a warning to show."""
    try:
        return load_predictor(ref), ref, None
    except CheckpointError as exc:
        fallback = refs[0] if refs and refs[0] != ref else None
        if fallback is None:
            raise
        predictor = load_predictor(fallback)
        return predictor, fallback, f"{exc} Using {fallback.name} instead."


def checkpoint_picker(label: str, key: str) -> CheckpointRef | None:
    """Selectbox over the checkpoints in weights/ (default first); None with a message when there are none."""
    refs = list_checkpoints()
    if not refs:
        st.error(f"No checkpoint found in {weights_dir()} (a checkpoint is a .safetensors file plus its .json). "
                 "Train one on the Train page or with `python -m dance train`.")
        return None
    names = [r.name for r in refs]
    if st.session_state.get(key) not in names:
        st.session_state.pop(key, None)
    chosen = st.selectbox(label, names, key=key,
                          format_func=lambda n: f"{n} (shipped)" if n == checkpoint.DEFAULT_NAME else n)
    return refs[names.index(chosen)]


def model_card(predictor: Predictor) -> dict:
    """Predictor.card() plus what the sidecar says about calibration: 'not sure' threshold and ECE before/after."""
    card = dict(predictor.card())
    meta = predictor.ckpt.meta
    calibration = meta.get("calibration") if isinstance(meta.get("calibration"), dict) else {}
    card["temperature"] = predictor.temperature if calibration else None
    card["'not sure' below"] = predictor.threshold if "unsure_threshold" in meta else None
    if calibration:
        card["ECE before → after"] = f"{calibration.get('ece_before', float('nan')):.3f} → " \
                                     f"{calibration.get('ece_after', float('nan')):.3f}"
        card["calibrated on"] = f"{calibration.get('source', 'unknown')} ({calibration.get('count', '?')} images)"
    else:
        card["calibration"] = "none (probabilities are the raw softmax; see `python -m dance calibrate`)"
    return card


def card_frame(card: dict) -> pd.DataFrame:
    """A checkpoint card as a two-column table with readable values (percent for accuracies, F1 and thresholds)."""
    rows = []
    for key, value in card.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = f"{value:.1%}" if any(w in key for w in ("accuracy", "F1", "sure")) else f"{value:.3g}"
        rows.append({"field": key, "value": str(value)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- data


def data_dir_or_error(explicit: str | None = None) -> tuple[Path | None, str | None]:
    """The data set folder, or None and the DataError text naming where it was looked for."""
    try:
        return find_data_dir(explicit or None), None
    except DanceError as exc:
        return None, str(exc)


# ---------------------------------------------------------------------------------------------- thumbnails


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
    """Grad-CAM overlay of `img` (shrunk to `side` first: the heat map is coarse anyway) as JPEG, class, probability.

    Same as dance.explain.explain, but handed the Predictor directly: explain() dispatches on isinstance, which
    fails for a cached Predictor once Streamlit has re-imported dance.predict after a source file changed.
    """
    small = thumbnail(img, side)
    cam, name, prob = class_activation(predictor, small, class_name)
    picture = overlay(small, upsample(cam, small.size))
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


def gallery_caption(row: pd.Series | dict) -> str:
    """Caption of one gallery image: name, true, predicted, confidence and loss."""
    return (f"{row['image']} · true {row['true']} · predicted {row['predicted']} · "
            f"{row['confidence']:.0%} · loss {row['loss']:.2f}")


def gallery(frame: pd.DataFrame, key: str, columns: int = 4, per_page: int = 12, empty: str = "No images.",
            cam: tuple[Predictor, CheckpointRef] | None = None) -> None:
    """Grid of thumbnails with captions (frame has path, image, true, predicted, confidence, loss), paginated.

    With `cam` = (predictor, checkpoint), each tile is the Grad-CAM overlay for the row's predicted class.
    """
    if frame.empty:
        st.info(empty)
        return
    pages = max(1, -(-len(frame) // per_page))
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"{key}_page", width=200))
    chunk = frame.iloc[(page - 1) * per_page: page * per_page]
    classes = chunk["predicted"].tolist() if cam is not None else None
    tiles(chunk["path"].tolist(), [gallery_caption(row) for _, row in chunk.iterrows()], columns, cam, classes)


def _tile_jpeg(path: str, cam: tuple[Predictor, CheckpointRef] | None, class_name: str | None) -> bytes | None:
    """A square tile of the file, or of its Grad-CAM overlay for `class_name` when `cam` is given and knows it."""
    if cam is not None and class_name in cam[0].classes:
        found = file_cam(cam[0], cam[1], path, class_name, square=True)
        return found[0] if found else None
    return file_thumbnail(path, square=True)


def tiles(paths: list[str], captions: list[str], columns: int = 4, cam: tuple[Predictor, CheckpointRef] | None = None,
          classes: list[str] | None = None) -> None:
    """Square thumbnails in aligned rows, each with its caption; undecodable files get a warning tile.

    With `cam` and `classes`, each tile is the Grad-CAM overlay for its class instead of the plain photo.
    """
    for start in range(0, len(paths), columns):
        row = st.columns(columns)
        for i in range(start, min(len(paths), start + columns)):
            with row[i - start]:
                thumb = _tile_jpeg(paths[i], cam, classes[i] if classes else None)
                if thumb is None:
                    st.warning(f"{md_escape(Path(paths[i]).name)}: cannot be decoded.")
                else:
                    st.image(thumb, caption=captions[i], width="stretch")
