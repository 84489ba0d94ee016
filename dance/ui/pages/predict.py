"""Predict page: drag-and-drop images, a webcam shot or sample images -> label, confidence and class probabilities."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from dance.data.labels import load_unlabelled
from dance.errors import DanceError
from dance.inference.predict import ImagePrediction, Predictor
from dance.inference.submission import submission_csv
from dance.plots import probability_figure
from dance.ui.cache import (
    THUMB_SIDE,
    CheckpointRef,
    bytes_cam,
    bytes_thumbnail,
    data_uri,
    digest,
    file_cam,
    file_thumbnail,
    list_checkpoints,
    load_with_fallback,
)
from dance.ui.video_section import render_video_section
from dance.ui.widgets import card_frame, checkpoint_picker, data_dir_or_error, md_escape, model_card, page_errors

ACCEPTED = ("jpg", "jpeg", "png", "webp", "bmp")
SAMPLE_COUNT = 4
DETAILS_PER_PAGE = 8
TEST_CHUNK = 16
TABLE_THUMB = 96
TESTSET_KEY = "predict_testset"


@dataclass(frozen=True)
class Item:
    """One image to classify: its display name and either its bytes or its path."""

    name: str
    data: bytes | None = None
    path: str | None = None

    def source(self):
        """What Predictor.predict accepts: (name, bytes) or (name, path)."""
        return (self.name, self.data if self.data is not None else self.path)

    def thumb(self, side: int = THUMB_SIDE) -> bytes | None:
        """Cached JPEG thumbnail (None when the image cannot be decoded)."""
        return bytes_thumbnail(self.data, self.name, side) if self.data is not None else file_thumbnail(self.path, side)

    def key(self) -> str:
        """A short stable id of the image (hash of its bytes, or its path) for widget keys."""
        return digest(self.data)[:12] if self.data is not None else digest(str(self.path).encode())[:12]

    def cam(self, predictor: Predictor, ref: CheckpointRef, class_name: str) -> tuple[bytes, str, float] | None:
        """Cached Grad-CAM overlay (JPEG, class, probability) for `class_name`."""
        if self.data is not None:
            return bytes_cam(predictor, ref, self.data, self.name, class_name)
        return file_cam(predictor, ref, self.path, class_name, side=448)


def headline(pred: ImagePrediction) -> str:
    """The answer in words: the label with its confidence, or 'Not sure — top-2: X or Y'."""
    if not pred.ok:
        return "error"
    if pred.unsure:
        first, second = pred.ranked[0][0], pred.ranked[1][0]
        return f"Not sure — top-2: {first} or {second}"
    return f"{pred.label} ({pred.confidence:.1%})"


def results_frame(items: list[Item], preds: list[ImagePrediction], side: int = THUMB_SIDE) -> pd.DataFrame:
    """One row per image: thumbnail data URI, name, label (or 'not sure'), confidence, or the error."""
    rows = []
    for item, pred in zip(items, preds):
        rows.append({
            "thumbnail": data_uri(item.thumb(side)) if pred.ok else None,
            "image": item.name,
            "label": (f"not sure ({pred.ranked[0][0]} or {pred.ranked[1][0]})" if pred.unsure else pred.label)
            if pred.ok else None,
            "confidence": pred.confidence,
            "error": pred.error,
        })
    return pd.DataFrame(rows, columns=["thumbnail", "image", "label", "confidence", "error"])


def table_config(frame: pd.DataFrame) -> dict:
    """st.dataframe settings for a results table: thumbnail column, confidence bar, the error column only if used."""
    columns = [c for c in frame.columns if c != "error" or frame["error"].notna().any()]
    return {"column_order": columns, "column_config": {
        "thumbnail": st.column_config.ImageColumn("image", width="small"),
        "image": st.column_config.TextColumn("file"),
        "confidence": st.column_config.ProgressColumn("confidence", format="percent", min_value=0, max_value=1),
    }}


def csv_bytes(frame: pd.DataFrame, classes: list[str], preds: list[ImagePrediction]) -> bytes:
    """The results table as CSV (without thumbnails), one probability column per class."""
    out = frame.drop(columns="thumbnail").copy()
    for cls in classes:
        out[f"p_{cls}"] = [p.probs.get(cls) if p.ok else None for p in preds]
    return out.to_csv(index=False).encode("utf-8")


@st.cache_data(show_spinner="Classifying…", max_entries=64)
def _predict_cached(_predictor: Predictor, stem: str, mtime: float, sources: tuple[tuple[str, object], ...],
                    tta: bool) -> list[ImagePrediction]:
    """Predictions for (name, bytes | path) sources, computed once per (checkpoint, images, TTA)."""
    return _predictor.predict(list(sources), tta=tta)


def predict_items(predictor: Predictor, ref: CheckpointRef, items: list[Item], tta: bool) -> list[ImagePrediction]:
    """Cached predictions; a bad image yields an entry with `error` and the others still run."""
    return _predict_cached(predictor, ref.stem, ref.mtime, tuple(item.source() for item in items), tta)


def uploaded_items(files) -> list[Item]:
    """UploadedFile objects -> Items (names kept as given; they are only ever shown escaped)."""
    return [Item(f.name, f.getvalue()) for f in files or []]


def sample_items(folder: Path, count: int, seed: int) -> list[Item]:
    """`count` images from the data set's test/ folder, chosen by `seed`."""
    paths = load_unlabelled(folder)
    chosen = random.Random(seed).sample(paths, min(count, len(paths)))
    return [Item(f"sample {p.name}", path=str(p)) for p in chosen]


def _show_card(predictor: Predictor) -> None:
    """The checkpoint card (with its calibration) in an expander."""
    with st.expander(f"Model card: {predictor.ckpt.name}", expanded=False):
        st.dataframe(card_frame(model_card(predictor)), hide_index=True, width="stretch")


def _open_test_set() -> None:
    """Button callback: show the test-set section (it stays until closed)."""
    st.session_state[f"{TESTSET_KEY}_on"] = True


def _inputs(folder: Path | None) -> list[Item]:
    """Uploader, webcam toggle and sample button; returns every image to classify."""
    files = st.file_uploader("Drop dance photos here", type=list(ACCEPTED), accept_multiple_files=True,
                             key="predict_upload", help="JPEG, PNG, WebP or BMP; up to 20 MB each.")
    items = uploaded_items(files)
    left, right = st.columns(2)
    with left:
        camera_on = st.toggle("Use webcam", key="predict_camera_on",
                              help="The browser asks for camera access only when this is on.")
    with right:
        if folder is not None:
            with st.container(horizontal=True):
                if st.button("Try sample images", key="predict_sample_btn", icon=":material/casino:",
                             help=f"Classify {SAMPLE_COUNT} random images from the data set's test/ folder."):
                    st.session_state["predict_sample_seed"] = random.randrange(1 << 30)
                st.button("Predict the whole test/ folder", key="predict_testset_btn", icon=":material/checklist:",
                          on_click=_open_test_set, help="Classify every image listed in test.csv and download the "
                                                        "submission CSV (Image,target).")
                if st.session_state.get("predict_sample_seed") is not None and st.button(
                        "Clear samples", key="predict_sample_clear", type="tertiary"):
                    st.session_state["predict_sample_seed"] = None
    if camera_on:
        shot = st.camera_input("Take a photo", key="predict_camera")
        if shot is not None:
            items.append(Item("webcam photo", shot.getvalue()))
    seed = st.session_state.get("predict_sample_seed")
    if folder is not None and seed is not None:
        try:
            items.extend(sample_items(folder, SAMPLE_COUNT, seed))
        except DanceError as exc:
            st.warning(f"Samples unavailable: {exc}")
    return items


def _cam(item: Item, pred: ImagePrediction, predictor: Predictor, ref: CheckpointRef) -> None:
    """Grad-CAM overlay beside the photo, for the predicted class or the one picked below it."""
    key = f"predict_cam_class_{item.key()}"
    if st.session_state.get(key) not in predictor.classes:
        st.session_state[key] = pred.label
    class_name = st.session_state[key]
    found = item.cam(predictor, ref, class_name)
    if found is None:
        st.warning(f"{md_escape(item.name)}: no Grad-CAM (cannot be decoded).")
    else:
        picture, name, prob = found
        st.image(picture, caption=f"Grad-CAM: where the model sees {name} ({prob:.1%})", width="stretch")
    st.selectbox("Explain class", predictor.classes, key=key,
                 help="Grad-CAM: the regions that raise this class's score; red is strongest.")


def _detail(item: Item, pred: ImagePrediction, key: str, cam: tuple[Predictor, CheckpointRef] | None = None) -> None:
    """One image's answer: the image (and its Grad-CAM when asked), the headline and the probability bars."""
    if not pred.ok:
        st.error(pred.error)  # the message names the file; st.error renders no HTML
        return
    with st.container(border=True):
        if cam is None:
            left, right = st.columns([2, 3], vertical_alignment="center")
        else:
            left, middle, right = st.columns([2, 2, 3], vertical_alignment="center")
            with middle:
                _cam(item, pred, *cam)
        with left:
            thumb = item.thumb()
            if thumb is not None:
                st.image(thumb, caption=item.name, width="stretch")
        with right:
            if pred.unsure:
                st.markdown(f"### {headline(pred)}")
                st.caption(f"Top probability {pred.confidence:.1%} is below this model's 'not sure' threshold "
                           f"({pred.threshold:.0%}).")
            else:
                st.markdown(f"### {pred.label}")
                st.caption(f"confidence {pred.confidence:.1%}")
            st.plotly_chart(probability_figure(pred.probs, highlight=pred.label), key=key,
                            config={"displayModeBar": False})


def predict_test_set(predictor: Predictor, paths: list[Path], tta: bool, progress=None) -> list[ImagePrediction]:
    """Predictions for every test image in chunks, calling progress(done, total) after each chunk."""
    preds: list[ImagePrediction] = []
    for start in range(0, len(paths), TEST_CHUNK):
        chunk = paths[start:start + TEST_CHUNK]
        preds.extend(predictor.predict([(p.name, str(p)) for p in chunk], tta=tta))
        if progress:
            progress(len(preds), len(paths))
    return preds


def _test_set(folder: Path, predictor: Predictor, ref: CheckpointRef, tta: bool) -> None:
    """The whole test/ folder: progress bar, results table with thumbnails, submission and probability CSVs."""
    st.subheader("Test set")
    paths = load_unlabelled(folder)
    key = (ref.stem, ref.mtime, tta, str(folder))
    stored = st.session_state.get(TESTSET_KEY)
    if not stored or stored["key"] != key:
        bar = st.progress(0.0, text=f"Classifying {len(paths)} test images…")
        preds = predict_test_set(predictor, paths, tta, lambda done, total: bar.progress(
            done / total, text=f"Classifying test images: {done} of {total}"))
        bar.empty()
        stored = {"key": key, "paths": paths, "preds": preds}
        st.session_state[TESTSET_KEY] = stored
    paths, preds = stored["paths"], stored["preds"]
    items = [Item(p.name, path=str(p)) for p in paths]
    frame = results_frame(items, preds, side=TABLE_THUMB)
    unsure = sum(p.unsure for p in preds)
    failed = int(frame["error"].notna().sum())
    st.markdown(f"**{len(paths) - failed}** of {len(paths)} images in {md_escape(folder / 'test.csv')} classified"
                f" with {md_escape(ref.name)}" + (" (TTA)" if tta else "") +
                (f"; {unsure} 'not sure'" if unsure else "") + (f"; **{failed} failed**" if failed else "") + ".")
    st.dataframe(frame, hide_index=True, width="stretch", height=500, row_height=64, key="predict_testset_table",
                 **table_config(frame))
    with st.container(horizontal=True):
        st.download_button("Download submission.csv (Image,target)", submission_csv(paths, preds), "submission.csv",
                           "text/csv", key="predict_submission", icon=":material/download:", type="primary",
                           help="One row per test.csv row, in its order: the HackerEarth submission format.")
        st.download_button("Download probabilities CSV", csv_bytes(frame, predictor.classes, preds),
                           "test_predictions.csv", "text/csv", key="predict_testset_csv", icon=":material/download:")
        if st.button("Close", key="predict_testset_close", type="tertiary", icon=":material/close:"):
            st.session_state[f"{TESTSET_KEY}_on"] = False
            st.session_state.pop(TESTSET_KEY, None)
            st.rerun()


def render() -> None:
    """Draw the Predict page."""
    st.title("Predict")
    st.caption("Which Indian classical dance form is in the photo? Drop one or many images.")
    with page_errors():
        folder, _ = data_dir_or_error()
        with st.sidebar:
            ref = checkpoint_picker("Model", key="predict_model")
            tta = st.toggle("Test-time augmentation", key="predict_tta",
                            help="Average the predictions over flipped and zoomed views (slower, often steadier).")
            show_cam = st.toggle("Show Grad-CAM", key="predict_cam",
                                 help="Beside each photo, a heat map of where the model looked for a class.")
        if ref is None:
            return
        predictor, used, warning = load_with_fallback(ref, list_checkpoints())
        if warning:
            st.warning(warning)
        _show_card(predictor)
        items = _inputs(folder)
        render_video_section(predictor, used)  # dance/ui/video_section.py
        if folder is not None and st.session_state.get(f"{TESTSET_KEY}_on"):
            _test_set(folder, predictor, used, tta)
        if not items:
            if not st.session_state.get(f"{TESTSET_KEY}_on"):
                st.info("Upload images above" + (", press **Try sample images**, or predict the whole test/ folder."
                                                 if folder else "."))
            return
        preds = predict_items(predictor, used, items, tta)
        if len(items) > 1:
            frame = results_frame(items, preds)
            ok = int(frame["error"].isna().sum())
            st.subheader(f"Results: {ok} of {len(items)} images classified")
            st.dataframe(frame, hide_index=True, width="stretch", key="predict_table", **table_config(frame))
            st.download_button("Download CSV", csv_bytes(frame, predictor.classes, preds), "predictions.csv",
                               "text/csv", key="predict_csv", icon=":material/download:")
        pages = max(1, -(-len(items) // DETAILS_PER_PAGE))
        page = 1
        if pages > 1:
            page = int(st.number_input(f"Details page (of {pages})", 1, pages, 1, key="predict_detail_page", width=200))
        start = (page - 1) * DETAILS_PER_PAGE
        for i in range(start, min(len(items), start + DETAILS_PER_PAGE)):
            _detail(items[i], preds[i], key=f"predict_probs_{i}", cam=(predictor, used) if show_cam else None)
        if any(not p.ok for p in preds):
            bad = ", ".join(md_escape(i.name) for i, p in zip(items, preds) if not p.ok)
            st.caption(f"Not classified: {bad}")


if __name__ == "__main__":
    render()
