"""Shared widgets: Markdown escaping, error display, checkpoint picker, model card, galleries."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import streamlit as st

from dance import paths
from dance.data.images import ACCEPTED_TEXT, MAX_BYTES
from dance.errors import DanceError
from dance.inference.predict import Predictor
from dance.markup import md_escape  # noqa: F401 - the pages import it from here
from dance.models import sidecar
from dance.paths import find_data_dir
from dance.ui.cache import CheckpointRef, file_cam, file_thumbnail, list_checkpoints


def upload_limit_mb() -> int:
    """The per-file upload limit in MB: Streamlit's server.maxUploadSize (.streamlit/config.toml), within the loader's."""
    return min(int(st.get_option("server.maxUploadSize")), MAX_BYTES // 2**20)


def upload_help() -> str:
    """Help text of an image uploader: the accepted formats and the size limit, from the backend's own constants."""
    return f"{ACCEPTED_TEXT}; up to {upload_limit_mb()} MB each."



def percent(value: float | None) -> str:
    """The app's one on-screen percentage format: one decimal ('61.0%'); an en dash when there is no value."""
    return "–" if value is None else f"{value:.1%}"


@contextmanager
def page_errors() -> Iterator[None]:
    """Show a DanceError as st.error(message) instead of a traceback."""
    try:
        yield
    except DanceError as exc:
        st.error(md_escape(exc))  # messages quote file names and CSV cells


# ---------------------------------------------------------------------------------------------- checkpoints


def checkpoint_picker(label: str, key: str, width: int | str = "stretch") -> CheckpointRef | None:
    """Selectbox over the checkpoints in weights/ (default first); None with a message when there are none."""
    refs = list_checkpoints()
    if not refs:
        st.error(f"No checkpoint found in {paths.weights_root()} (a checkpoint is a .safetensors file plus its .json). "
                 "Train one on the Train page or with `python -m dance train`.")
        return None
    names = [r.name for r in refs]
    if st.session_state.get(key) not in names:
        st.session_state.pop(key, None)
    chosen = st.selectbox(label, names, key=key, width=width,
                          format_func=lambda n: f"{n} (shipped)" if n == sidecar.DEFAULT_NAME else n)
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


def gallery_caption(row: pd.Series | dict) -> str:
    """Caption of one gallery image: name, true, predicted, confidence and loss."""
    return (f"{md_escape(row['image'])} · true {md_escape(row['true'])} · predicted {md_escape(row['predicted'])} · "
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
    jpegs = [None] * len(paths)
    if cam is not None:  # overlays cost a model pass each: compute them first, with a progress bar
        bar = st.progress(0.0, text=f"Grad-CAM for {len(paths)} images…")
        for i, path in enumerate(paths):
            jpegs[i] = _tile_jpeg(path, cam, classes[i] if classes else None)
            bar.progress((i + 1) / len(paths), text=f"Grad-CAM: {i + 1} of {len(paths)} images")
        bar.empty()
    for start in range(0, len(paths), columns):
        row = st.columns(columns)
        for i in range(start, min(len(paths), start + columns)):
            with row[i - start]:
                thumb = jpegs[i] if cam is not None else _tile_jpeg(paths[i], None, None)
                if thumb is None:
                    st.warning(f"{md_escape(Path(paths[i]).name)}: cannot be decoded.")
                else:
                    st.image(thumb, caption=captions[i], width="stretch")
