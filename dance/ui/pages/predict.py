"""Predict page: drag-and-drop images, a webcam shot or sample images -> label, confidence and class probabilities."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from dance.data.images import ACCEPTED_TEXT, UPLOAD_TYPES
from dance.data.labels import load_unlabelled, read_labels
from dance.errors import DanceError
from dance.inference.predict import ImagePrediction, Predictor
from dance.inference.submission import submission_csv
from dance.models.sidecar import holdout_names
from dance.plots import probability_figure
from dance.ui.cache import (
    MODEL_REQUEST,
    SERVED_KEY,
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
from dance.ui.widgets import (
    card_frame,
    checkpoint_picker,
    data_dir_or_error,
    md_escape,
    model_card,
    page_errors,
    percent,
    upload_help,
    upload_limit_mb,
)

SAMPLE_COUNT = 4
DETAILS_PER_PAGE = 8
TABLE_THUMB = 96
TESTSET_KEY = "predict_testset"
UPLOAD_ROUND = "predict_upload_round"  # bumped by "Clear all": a fresh uploader key empties the uploader
CSV_COLUMNS = ["image", "label", "confidence", "unsure", "second_label", "error"]


@dataclass(frozen=True)
class Item:
    """One image to classify: its display name and either its bytes or its path."""

    name: str
    data: bytes | None = None
    path: str | None = None
    truth: str | None = None  # the true label of a labelled sample, shown after the answer

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
    return f"{pred.label} ({percent(pred.confidence)})"


def answer(pred: ImagePrediction) -> str:
    """The short answer of a table row: the label, or 'not sure: X or Y'."""
    return f"not sure: {pred.ranked[0][0]} or {pred.ranked[1][0]}" if pred.unsure else str(pred.label)


def results_frame(items: list[Item], preds: list[ImagePrediction], side: int = THUMB_SIDE) -> pd.DataFrame:
    """One row per classified image (answer first, so it stays visible at phone width): thumbnail, answer,
    confidence in percent, file name, and the true label for labelled samples. Unreadable files are listed apart."""
    rows = []
    for item, pred in zip(items, preds):
        if not pred.ok:
            continue
        rows.append({"thumbnail": data_uri(item.thumb(side)), "answer": answer(pred),
                     "confidence": round(100 * pred.confidence, 1), "image": item.name, "true label": item.truth})
    frame = pd.DataFrame(rows, columns=["thumbnail", "answer", "confidence", "image", "true label"])
    return frame if frame["true label"].notna().any() else frame.drop(columns="true label")


def table_config() -> dict:
    """st.dataframe settings for a results table: a small thumbnail and the confidence bar in the page's % format."""
    return {"column_config": {
        "thumbnail": st.column_config.ImageColumn("photo", width="small"),
        "answer": st.column_config.TextColumn("answer"),
        "confidence": st.column_config.ProgressColumn("confidence", format="%.1f%%", min_value=0, max_value=100),
        "image": st.column_config.TextColumn("file"),
    }}


def csv_frame(names: list[str], preds: list[ImagePrediction], classes: list[str]) -> pd.DataFrame:
    """One row per image: image, label, confidence, unsure, second_label, error, then p_<class> per class.

    `label` is always the most likely class (empty for an unreadable file); `unsure` says whether the app answered
    'not sure', so the status never hides inside the label.
    """
    rows = []
    for name, pred in zip(names, preds):
        row = {"image": name, "label": pred.label, "confidence": pred.confidence,
               "unsure": pred.unsure if pred.ok else None,
               "second_label": pred.ranked[1][0] if pred.ok and len(pred.ranked) > 1 else None, "error": pred.error}
        row.update({f"p_{c}": pred.probs.get(c) if pred.ok else None for c in classes})
        rows.append(row)
    return pd.DataFrame(rows, columns=CSV_COLUMNS + [f"p_{c}" for c in classes])


def csv_bytes(names: list[str], preds: list[ImagePrediction], classes: list[str]) -> bytes:
    """csv_frame as UTF-8 CSV bytes."""
    return csv_frame(names, preds, classes).to_csv(index=False).encode("utf-8")


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


def sample_items(folder: Path, count: int, seed: int, holdout: list[str] | None = None) -> list[Item]:
    """`count` labelled images of train.csv chosen by `seed` (from the checkpoint's hold-out when it has one), each
    with its true label."""
    frame = read_labels(folder / "train.csv", folder / "train").frame
    if holdout:
        kept = frame[frame["image"].isin(set(holdout))]
        frame = kept if not kept.empty else frame
    if frame.empty:
        raise DanceError(f"{folder / 'train.csv'} has no valid row to draw samples from.")
    rows = frame.sample(n=min(count, len(frame)), random_state=seed)
    return [Item(f"sample {r.image}", path=str(r.path), truth=str(r.label)) for r in rows.itertuples()]


def _show_card(predictor: Predictor) -> None:
    """The poor-accuracy warning (always visible) and the checkpoint card (with its calibration) in an expander."""
    if predictor.warning:
        st.warning(md_escape(predictor.warning), icon=":material/warning:")
    with st.expander(f"Model card: {md_escape(predictor.ckpt.name)}", expanded=False):
        st.dataframe(card_frame(model_card(predictor)), hide_index=True, width="stretch")


def _open_test_set() -> None:
    """Button callback: show the test-set section (it stays until closed)."""
    st.session_state[f"{TESTSET_KEY}_on"] = True


def _clear_uploads() -> None:
    """Button callback: a new uploader key empties the uploader in one click (Streamlit has no clear method)."""
    st.session_state[UPLOAD_ROUND] = st.session_state.get(UPLOAD_ROUND, 0) + 1


# Pasting an image (Ctrl+V / Cmd+V) anywhere on the page hands it to the uploader, in the browser: nothing is fetched
# from anywhere. Installed once per browser tab into the page itself (not an iframe), so it outlives reruns.
PASTE_SCRIPT = """<script>
(() => {
  if (window.__dancePaste) return;
  window.__dancePaste = true;
  document.addEventListener('paste', (event) => {
    const files = Array.from((event.clipboardData || {}).files || []).filter(f => f.type.startsWith('image/'));
    const input = document.querySelector('[data-testid=stFileUploader] input[type=file]');
    if (!files.length || !input) return;
    event.preventDefault();
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
    const dt = new DataTransfer();
    files.forEach((f, i) => {
      const ext = (f.type.split('/')[1] || 'png').replace('jpeg', 'jpg');
      const generic = !f.name || /^image\\.\\w+$/.test(f.name);
      dt.items.add(new File([f], generic ? `pasted-${stamp}-${i + 1}.${ext}` : f.name, {type: f.type}));
    });
    input.files = dt.files;
    input.dispatchEvent(new Event('change', {bubbles: true}));
  });
})();
</script>"""

def _uploader() -> list[Item]:
    """The uploader (every type the backend decodes) with its drop / paste hint always visible."""
    st.html(PASTE_SCRIPT, unsafe_allow_javascript=True)
    key = f"predict_upload_{st.session_state.get(UPLOAD_ROUND, 0)}"
    files = st.file_uploader("Drop dance photos here", type=list(UPLOAD_TYPES), accept_multiple_files=True, key=key,
                             help=upload_help())
    st.caption(f"Drag photos onto the box, paste one with Ctrl+V (⌘V), or browse. {ACCEPTED_TEXT}, "
               f"up to {upload_limit_mb()} MB each.")
    if files:  # the chips above cut long names in the middle ("akula__...12x612.jpg"), so several look alike
        st.caption(f"Uploaded ({len(files)}): " + " · ".join(md_escape(f.name) for f in files))
    return uploaded_items(files)


def _inputs(folder: Path | None, predictor: Predictor) -> list[Item]:
    """Uploader, 'Clear all', webcam toggle and sample buttons; returns every image to classify."""
    items = _uploader()
    with st.container(horizontal=True, vertical_alignment="center"):
        if items:
            st.button(f"Clear all ({len(items)})", key="predict_clear_all", icon=":material/delete_sweep:",
                      on_click=_clear_uploads, help="Remove every uploaded file at once.")
        camera_on = st.toggle("Use webcam", key="predict_camera_on",
                              help="The browser asks for camera access only when this is on.")
        if folder is not None:
            if st.button("Try sample images", key="predict_sample_btn", icon=":material/casino:",
                         help=f"Classify {SAMPLE_COUNT} random labelled images and show their true label after the "
                              "answer (from the model's hold-out when it has one)."):
                st.session_state["predict_sample_seed"] = random.randrange(1 << 30)
            st.button("Predict the whole test/ folder", key="predict_testset_btn", icon=":material/checklist:",
                      on_click=_open_test_set, help="Classify every image listed in test.csv (unlabelled) and download "
                                                    "the submission CSV (Image,target).")
            if st.session_state.get("predict_sample_seed") is not None and st.button(
                    "Clear samples", key="predict_sample_clear", type="tertiary"):
                st.session_state["predict_sample_seed"] = None
    if camera_on:
        shot = st.camera_input("Take a photo", key="predict_camera")
        if shot is not None:
            items.append(Item("webcam photo", shot.getvalue()))
    seed = st.session_state.get("predict_sample_seed")
    if folder is not None and seed is not None:
        holdout = holdout_names(predictor.ckpt.meta)
        try:
            items.extend(sample_items(folder, SAMPLE_COUNT, seed, holdout))
        except DanceError as exc:
            st.warning(f"Samples unavailable: {md_escape(exc)}")
        else:
            st.caption("Samples from the model's hold-out: it never trained on them." if holdout else
                       f"Samples from train.csv: {md_escape(predictor.ckpt.name)} trained on these images, so it is "
                       "right more often here than on new photos.")
    return items


def _cam(item: Item, pred: ImagePrediction, predictor: Predictor, ref: CheckpointRef) -> None:
    """Grad-CAM overlay for the predicted class or the one picked below it, captioned with the answer's own number."""
    key = f"predict_cam_class_{item.key()}"
    if st.session_state.get(key) not in predictor.classes:
        st.session_state[key] = pred.label
    class_name = st.session_state[key]
    found = item.cam(predictor, ref, class_name)
    if found is None:
        st.warning(f"{md_escape(item.name)}: no Grad-CAM (cannot be decoded).")
    else:
        # The probability is the prediction's (with TTA when on), not the heat map's own forward pass: one number.
        st.image(found[0], caption=f"Grad-CAM: where the model sees {md_escape(found[1])} "
                                   f"({percent(pred.probs[found[1]])})",
                 width="stretch")
    st.selectbox("Explain class", predictor.classes, key=key,
                 help="Grad-CAM: the regions that raise this class's score; red is strongest.")


def _verdict(item: Item, pred: ImagePrediction) -> str | None:
    """'True label: X — right' for a labelled sample (None otherwise); 'not sure' counts as no answer."""
    if item.truth is None:
        return None
    if pred.unsure:
        outcome = "one of the two" if item.truth in (pred.ranked[0][0], pred.ranked[1][0]) else "neither"
        return f"True label: **{md_escape(item.truth)}** ({outcome})"
    return f"True label: **{md_escape(item.truth)}** — " + ("right" if item.truth == pred.label else "wrong")


def threshold_note(predictor: Predictor) -> str:
    """How the model's 'not sure' threshold was set, for the caption of a 'not sure' answer."""
    if predictor.threshold_calibrated:
        return percent(predictor.threshold)
    chance = percent(1 / len(predictor.classes))
    return f"{percent(predictor.threshold)}: halfway from chance ({chance}) to certainty, as it has no calibrated one"


def _detail(item: Item, pred: ImagePrediction, key: str, note: str,
            cam: tuple[Predictor, CheckpointRef] | None = None) -> None:
    """One image's card: the answer first (so it leads at phone width), then the photo, Grad-CAM and the bars."""
    with st.container(border=True):
        if pred.unsure:
            st.markdown(f"### {md_escape(headline(pred))}")
            st.caption(f"Top probability {percent(pred.confidence)} is below this model's 'not sure' threshold "
                       f"({note}).")
        else:
            st.markdown(f"### {md_escape(pred.label)}")
            st.caption(f"confidence {percent(pred.confidence)}")
        verdict = _verdict(item, pred)
        if verdict:
            st.markdown(verdict)
        if cam is None:
            left, right = st.columns([2, 3], vertical_alignment="center")
        else:
            left, middle, right = st.columns([2, 2, 3], vertical_alignment="center")
            with middle:
                _cam(item, pred, *cam)
        with left:
            thumb = item.thumb()
            if thumb is not None:
                st.image(thumb, caption=md_escape(item.name), width="stretch")
        with right:
            st.plotly_chart(probability_figure(pred.probs, highlight=pred.label), key=key,
                            config={"displayModeBar": False})


def _errors(items: list[Item], preds: list[ImagePrediction]) -> None:
    """Every unreadable file in one box, each message in full (they name the file), above the answers."""
    bad = [p.error for p in preds if not p.ok]
    if bad:
        st.error(f"{len(bad)} of {len(items)} file(s) could not be read:\n\n" +
                 "\n".join(f"- {md_escape(message)}" for message in bad), icon=":material/error:")


def _test_set(folder: Path, predictor: Predictor, ref: CheckpointRef, tta: bool) -> None:
    """The whole test/ folder: progress bar, results table with thumbnails, submission and probability CSVs."""
    st.subheader("Test set")
    paths = load_unlabelled(folder)
    key = (ref.stem, ref.mtime, tta, str(folder))
    stored = st.session_state.get(TESTSET_KEY)
    if not stored or stored["key"] != key:
        bar = st.progress(0.0, text=f"Classifying {len(paths)} test images…")
        preds = predictor.predict([(p.name, str(p)) for p in paths], tta=tta, progress=lambda done, total: bar.progress(
            done / total, text=f"Classifying test images: {done} of {total}"))
        bar.empty()
        stored = {"key": key, "paths": paths, "preds": preds}
        st.session_state[TESTSET_KEY] = stored
    paths, preds = stored["paths"], stored["preds"]
    items = [Item(p.name, path=str(p)) for p in paths]
    unsure = sum(p.unsure for p in preds)
    failed = sum(not p.ok for p in preds)
    st.markdown(f"**{len(paths) - failed}** of {len(paths)} images in {md_escape(folder / 'test.csv')} classified"
                f" with {md_escape(ref.name)}" + (" (TTA)" if tta else "") +
                (f"; {unsure} 'not sure'" if unsure else "") + (f"; **{failed} failed**" if failed else "") + ".")
    _errors(items, preds)
    st.dataframe(results_frame(items, preds, side=TABLE_THUMB), hide_index=True, width="stretch", height=500,
                 row_height=64, key="predict_testset_table", **table_config())
    with st.container(horizontal=True):
        st.download_button("Download submission.csv (Image,target)", submission_csv(paths, preds), "submission.csv",
                           "text/csv", key="predict_submission", icon=":material/download:", type="primary",
                           help="One row per test.csv row, in its order: the HackerEarth submission format.")
        st.download_button("Download probabilities CSV", csv_bytes([p.name for p in paths], preds, predictor.classes),
                           "test_predictions.csv", "text/csv", key="predict_testset_csv", icon=":material/download:")
        if st.button("Close", key="predict_testset_close", type="tertiary", icon=":material/close:"):
            st.session_state[f"{TESTSET_KEY}_on"] = False
            st.session_state.pop(TESTSET_KEY, None)
            st.rerun()


def _controls() -> tuple[CheckpointRef | None, bool, bool]:
    """Model, TTA and Grad-CAM in the page itself (not only the sidebar, which is collapsed on a phone)."""
    requested = st.session_state.pop(MODEL_REQUEST, None)
    if requested:
        st.session_state["predict_model"] = requested
    with st.container(horizontal=True, vertical_alignment="bottom", gap="medium"):
        ref = checkpoint_picker("Model", key="predict_model", width=260)
        tta = st.toggle("Test-time augmentation", key="predict_tta",
                        help="Average the predictions over flipped and zoomed views (slower, often steadier).")
        show_cam = st.toggle("Show Grad-CAM", key="predict_cam",
                             help="Beside each photo, a heat map of where the model looked for a class.")
    return ref, tta, show_cam


def render() -> None:
    """Draw the Predict page."""
    st.title("Predict")
    st.caption("Which Indian classical dance form is in the photo? Drop one or many images.")
    with page_errors():
        folder, _ = data_dir_or_error()
        ref, tta, show_cam = _controls()
        if ref is None:
            return
        predictor, used, warning = load_with_fallback(ref, list_checkpoints())
        st.session_state[SERVED_KEY] = used.name  # Evaluate and Label issues open on this model's CV run
        if warning:
            st.warning(md_escape(warning))
        _show_card(predictor)
        items = _inputs(folder, predictor)
        render_video_section(predictor, used)  # dance/ui/video_section.py
        if folder is not None and st.session_state.get(f"{TESTSET_KEY}_on"):
            _test_set(folder, predictor, used, tta)
        if not items:
            if not st.session_state.get(f"{TESTSET_KEY}_on"):
                st.info("Upload images above" + (", press **Try sample images**, or predict the whole test/ folder."
                                                 if folder else "."))
            return
        preds = predict_items(predictor, used, items, tta)
        _errors(items, preds)
        good = [(item, pred) for item, pred in zip(items, preds) if pred.ok]
        if len(items) > 1:
            st.subheader(f"Results: {len(good)} of {len(items)} images classified")
            if good:
                st.dataframe(results_frame(items, preds), hide_index=True, width="stretch", key="predict_table",
                             **table_config())
            st.download_button("Download CSV", csv_bytes([i.name for i in items], preds, predictor.classes),
                               "predictions.csv", "text/csv", key="predict_csv", icon=":material/download:",
                               help="Columns: " + ", ".join(CSV_COLUMNS) + ", then one probability per class.")
        pages = max(1, -(-len(good) // DETAILS_PER_PAGE))
        page = 1
        if pages > 1:
            page = int(st.number_input(f"Details page (of {pages})", 1, pages, 1, key="predict_detail_page", width=200))
        start = (page - 1) * DETAILS_PER_PAGE
        for i in range(start, min(len(good), start + DETAILS_PER_PAGE)):
            item, pred = good[i]
            _detail(item, pred, f"predict_probs_{i}", threshold_note(predictor),
                    cam=(predictor, used) if show_cam else None)


if __name__ == "__main__":
    render()
