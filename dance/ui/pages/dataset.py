"""Data set page: class distribution, samples per class, image size statistics and every row or image that fails."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dance.config import TrainConfig
from dance.data import summary
from dance.data.labels import read_labels
from dance.data.summary import Scan, header_table, scan_images
from dance.models.spec import resolve_run_spec
from dance.plots import class_distribution_figure, image_size_figure
from dance.ui.widgets import data_dir_or_error, md_escape, page_errors, tiles

SAMPLES_PER_CLASS = 8
SCAN_KEY = "data_scan"


def _csv_mtime(folder: Path) -> float:
    """Modification time of train.csv (cache key)."""
    path = folder / "train.csv"
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_data(show_spinner="Reading train.csv…", max_entries=8)
def label_table(folder: str, mtime: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(valid rows, problem rows) of train.csv; problem rows have line, image, reason."""
    table = read_labels(Path(folder) / "train.csv", Path(folder) / "train")
    problems = pd.DataFrame([{"line": p.line, "image": p.image, "reason": p.reason} for p in table.problems],
                            columns=["line", "image", "reason"])
    return table.frame, problems


@st.cache_data(show_spinner="Reading image headers…", max_entries=8)
def size_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per valid CSV row with its header info (cached)."""
    return header_table(frame)




def _overview(frame: pd.DataFrame, problems: pd.DataFrame, folder: Path) -> None:
    """Counts and the class distribution."""
    counts = frame["label"].value_counts().sort_index()
    cols = st.columns(4)
    cols[0].metric("Labelled images", len(frame))
    cols[1].metric("Classes", len(counts))
    cols[2].metric("Invalid CSV rows", len(problems))
    test_dir = folder / "test"
    cols[3].metric("Unlabelled test images", sum(1 for p in test_dir.iterdir() if p.is_file()) if test_dir.is_dir()
                   else 0)
    st.subheader("Class distribution (train)")
    st.plotly_chart(class_distribution_figure(counts), config={"displayModeBar": False})


def _samples(frame: pd.DataFrame) -> None:
    """A grid of sample thumbnails for one chosen class."""
    st.subheader("Samples per class")
    classes = sorted(frame["label"].unique())
    chosen = st.pills("Class", classes, default=classes[0], key="data_class", required=True, format_func=md_escape)
    rows = frame[frame["label"] == (chosen or classes[0])].head(SAMPLES_PER_CLASS)
    tiles(rows["path"].tolist(), [f"{md_escape(r.image)} · {md_escape(r.label)}" for r in rows.itertuples()], columns=4)


def _sizes(frame: pd.DataFrame) -> None:
    """Width/height distribution, modes and formats."""
    st.subheader("Image sizes and modes")
    sizes = size_table(frame)
    ok = sizes.dropna(subset=["width"])
    if ok.empty:
        st.info("No image header could be read.")
        return
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.plotly_chart(image_size_figure(ok), config={"displayModeBar": False})
    with right:
        stats, modes = summary.size_summary(sizes)
        st.dataframe(stats, width="stretch")
        st.dataframe(modes, hide_index=True, width="stretch")
    bad = sizes[sizes["error"].notna()]
    if not bad.empty:
        st.error(f"{len(bad)} image(s) have an unreadable header:")
        st.dataframe(bad[["image", "error"]], hide_index=True, width="stretch")


def _problems(frame: pd.DataFrame, problems: pd.DataFrame, folder: Path) -> None:
    """CSV rows that failed validation, and (on request) images that fail to decode and near-duplicate photos."""
    st.subheader("Problems")
    if problems.empty:
        st.success("Every row of train.csv is valid (name safe, file present, label given, no duplicate rows).")
    else:
        st.error(f"{len(problems)} row(s) of train.csv fail validation and are left out of training:")
        st.dataframe(problems, hide_index=True, width="stretch")
    paths = tuple(frame["path"])
    key = (str(folder), _csv_mtime(folder), paths)
    scan = st.session_state.get(SCAN_KEY)
    if scan is None or scan[0] != key:
        st.caption("Near-duplicate photos (the same picture resized or re-encoded) and undecodable images show up only "
                   "once every image is decoded.")
        if not st.button("Decode every image and find near-duplicates", key="data_decode_btn", type="primary",
                         help="Decodes each image through the training loader and hashes it as cross-validation does "
                              "(about a minute on a small CPU)."):
            return
        bar = st.progress(0.0, text=f"Decoding {len(paths)} images…")
        side = resolve_run_spec(TrainConfig()).cache_side  # as the default recipe caches them
        result = scan_images(paths, side, lambda done, total: bar.progress(done / total,
                                                                           text=f"Decoding images: {done} of {total}"))
        bar.empty()
        st.session_state[SCAN_KEY] = scan = (key, result)
    result: Scan = scan[1]
    if result.failures.empty:
        st.success(f"All {len(paths)} images decode.")
    else:
        st.error(f"{len(result.failures)} image(s) fail to decode:")
        st.dataframe(result.failures, hide_index=True, width="stretch")
    _duplicates(frame, result.duplicates)


def _duplicates(frame: pd.DataFrame, sets: list[list[str]]) -> None:
    """Each near-duplicate set as a row of thumbnails with name and label (a conflicting label is flagged)."""
    st.subheader("Near-duplicate photos")
    if not sets:
        st.success("No near-duplicate photos: every image is its own source photo.")
        return
    labels = dict(zip(frame["path"], frame["label"]))
    conflicting = sum(len({labels.get(p) for p in group}) > 1 for group in sets)
    st.warning(f"{len(sets)} photo(s) appear more than once ({sum(map(len, sets))} files)"
               + (f"; {conflicting} of them with different labels" if conflicting else "") +
               ". Cross-validation keeps each set on one side of every split, so a copy never tests its twin; for "
               "training they still count twice.")
    page_size = 10
    pages = max(1, -(-len(sets) // page_size))
    page = int(st.number_input(f"Sets page (of {pages})", 1, pages, 1, key="data_dup_page", width=200)) \
        if pages > 1 else 1
    for group in sets[(page - 1) * page_size: page * page_size]:
        clash = len({labels.get(p) for p in group}) > 1
        with st.container(border=True):
            if clash:
                st.caption("Labels differ: at most one of them is right.")
            tiles(list(group), [f"{Path(p).name} · {labels.get(p, '?')}" for p in group], columns=6)


def render() -> None:
    """Draw the Data set page."""
    st.title("Data set")
    with page_errors():
        folder, problem = data_dir_or_error()
        if folder is None:
            st.error(md_escape(problem))
            st.info("Put the data set in data/dance (train.csv + train/), or set DANCE_DATA to its folder.")
            return
        st.caption(f"Folder: {md_escape(str(folder))}")
        frame, problems = label_table(str(folder), _csv_mtime(folder))
        if frame.empty:
            st.warning("train.csv has no valid row.")
            _problems(frame, problems, folder)
            return
        _overview(frame, problems, folder)
        _samples(frame)
        _sizes(frame)
        _problems(frame, problems, folder)


if __name__ == "__main__":
    render()
