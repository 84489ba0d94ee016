"""Data set page: class distribution, samples per class, image size statistics and every row or image that fails."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st
from PIL import Image

from dance.data.images import ALLOWED_FORMATS, load_image
from dance.data.labels import read_labels
from dance.errors import DanceError
from dance.plots import class_distribution_figure, image_size_figure
from dance.ui.widgets import data_dir_or_error, md_escape, page_errors, tiles

SAMPLES_PER_CLASS = 8


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


def header_info(path: str | Path) -> dict:
    """Width, height, mode and format from an image's header (no pixel decoding); error text when unreadable."""
    path = Path(path)
    try:
        with Image.open(path, formats=ALLOWED_FORMATS) as img:
            return {"width": img.width, "height": img.height, "mode": img.mode, "format": img.format,
                    "bytes": path.stat().st_size, "error": None}
    except Exception as exc:  # noqa: BLE001 - any header failure is reported as a row, never raised
        return {"width": None, "height": None, "mode": None, "format": None,
                "bytes": path.stat().st_size if path.exists() else 0, "error": f"{type(exc).__name__}: {exc}"[:160]}


@st.cache_data(show_spinner="Reading image headers…", max_entries=8)
def size_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per valid CSV row with its header info."""
    info = pd.DataFrame([header_info(p) for p in frame["path"]], index=frame.index)
    return pd.concat([frame[["image", "label", "path"]], info], axis=1)


@st.cache_data(show_spinner=False, max_entries=8)
def decode_failures(paths: tuple[str, ...], mtime: float) -> pd.DataFrame:
    """Images that dance.images.load_image refuses, with its reason (every image fully decoded once)."""
    rows = []
    for path in paths:
        try:
            load_image(path, name=Path(path).name)
        except DanceError as exc:
            rows.append({"image": Path(path).name, "reason": str(exc)})
    return pd.DataFrame(rows, columns=["image", "reason"])


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
    chosen = st.pills("Class", classes, default=classes[0], key="data_class", required=True)
    rows = frame[frame["label"] == (chosen or classes[0])].head(SAMPLES_PER_CLASS)
    tiles(rows["path"].tolist(), [f"{r.image} · {r.label}" for r in rows.itertuples()], columns=4)


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
        stats = ok[["width", "height"]].astype(float).describe().loc[["min", "25%", "50%", "75%", "max"]]
        st.dataframe(stats.rename(index={"50%": "median"}).round(0).astype(int), width="stretch")
        modes = ok.groupby(["mode", "format"]).size().rename("images").reset_index()
        st.dataframe(modes, hide_index=True, width="stretch")
    bad = sizes[sizes["error"].notna()]
    if not bad.empty:
        st.error(f"{len(bad)} image(s) have an unreadable header:")
        st.dataframe(bad[["image", "error"]], hide_index=True, width="stretch")


def _problems(frame: pd.DataFrame, problems: pd.DataFrame, folder: Path) -> None:
    """CSV rows that failed validation, and (on request) images that fail to decode."""
    st.subheader("Problems")
    if problems.empty:
        st.success("Every row of train.csv is valid (name safe, file present, label given, no duplicates).")
    else:
        st.error(f"{len(problems)} row(s) of train.csv fail validation and are left out of training:")
        st.dataframe(problems, hide_index=True, width="stretch")
    paths = tuple(frame["path"])
    key = ("data_decoded", str(folder), _csv_mtime(folder))
    if st.button("Decode every image now", key="data_decode_btn",
                 help="Fully decodes each image through the same safe loader as training (a few seconds)."):
        with st.spinner(f"Decoding {len(paths)} images…"):
            st.session_state["data_decode_key"] = key
            decode_failures(paths, _csv_mtime(folder))
    if st.session_state.get("data_decode_key") == key:
        failures = decode_failures(paths, _csv_mtime(folder))
        if failures.empty:
            st.success(f"All {len(paths)} images decode.")
        else:
            st.error(f"{len(failures)} image(s) fail to decode:")
            st.dataframe(failures, hide_index=True, width="stretch")


def render() -> None:
    """Draw the Data set page."""
    st.title("Data set")
    with page_errors():
        folder, problem = data_dir_or_error()
        if folder is None:
            st.error(problem)
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
