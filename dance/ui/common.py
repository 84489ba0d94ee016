"""Shared UI glue: where weights and data live, cached model / thumbnail loaders, galleries and error display.

Models live in `st.cache_resource` (keyed by path + file mtime, never mutated); derived tables,
predictions and thumbnails in `st.cache_data`.
"""

from __future__ import annotations

import base64
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
from dance.images import load_image
from dance.predict import Predictor

THUMB_SIDE = 224
TILE_BACKGROUND = (246, 236, 228)  # the theme's secondaryBackgroundColor, so letterboxing blends in
WEIGHTS_ENV = "DANCE_WEIGHTS_DIR"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def weights_dir() -> Path:
    """The checkpoint folder: $DANCE_WEIGHTS_DIR when set, else the project's weights/."""
    override = os.environ.get(WEIGHTS_ENV)
    return Path(override) if override else checkpoint.WEIGHTS_DIR


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
    """Load a checkpoint once per (path, mtime); the Predictor is shared by every session and never mutated."""
    return Predictor(checkpoint.load(stem))


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


def card_frame(card: dict) -> pd.DataFrame:
    """A checkpoint card as a two-column table with readable values."""
    rows = []
    for key, value in card.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = f"{value:.1%}" if "accuracy" in key or "F1" in key else f"{value:.3g}"
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


# ---------------------------------------------------------------------------------------------- galleries


def gallery_caption(row: pd.Series | dict) -> str:
    """Caption of one gallery image: name, true, predicted, confidence and loss."""
    return (f"{row['image']} · true {row['true']} · predicted {row['predicted']} · "
            f"{row['confidence']:.0%} · loss {row['loss']:.2f}")


def gallery(frame: pd.DataFrame, key: str, columns: int = 4, per_page: int = 12, empty: str = "No images.") -> None:
    """Grid of thumbnails with captions (frame has path, image, true, predicted, confidence, loss), paginated."""
    if frame.empty:
        st.info(empty)
        return
    pages = max(1, -(-len(frame) // per_page))
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"{key}_page"))
    chunk = frame.iloc[(page - 1) * per_page: page * per_page]
    tiles(chunk["path"].tolist(), [gallery_caption(row) for _, row in chunk.iterrows()], columns)


def tiles(paths: list[str], captions: list[str], columns: int = 4) -> None:
    """Square thumbnails in aligned rows, each with its caption; undecodable files get a warning tile."""
    for start in range(0, len(paths), columns):
        row = st.columns(columns)
        for i in range(start, min(len(paths), start + columns)):
            with row[i - start]:
                thumb = file_thumbnail(paths[i], square=True)
                if thumb is None:
                    st.warning(f"{md_escape(Path(paths[i]).name)}: cannot be decoded.")
                else:
                    st.image(thumb, caption=captions[i], width="stretch")
