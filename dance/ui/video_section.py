"""The Predict page's Video section: upload clips, a progress bar, the clip's answer, a timeline, segments, frames."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import pandas as pd
import streamlit as st

from dance.config import VIDEO_FPS, VIDEO_MIN_SEGMENT
from dance.data.video import UPLOAD_TYPES, VideoLimits, clock, frames_at
from dance.errors import VideoError
from dance.inference.predict import Predictor
from dance.inference.video import VideoPrediction, predict_video
from dance.plots import video_timeline_figure
from dance.ui.cache import CheckpointRef, bytes_cam, digest, jpeg_bytes
from dance.ui.widgets import md_escape

KEY = "predict_video"
RATES = (0.5, 1.0, 2.0, 4.0)
THUMB = 480  # shorter side of the stored best frames (shown small, and the input of Grad-CAM)


@dataclass
class Clip:
    """One uploaded video's result and the JPEG of each best frame (frame index -> bytes)."""

    result: VideoPrediction
    frames: dict[int, bytes] = field(default_factory=dict)


def upload_limit() -> VideoLimits:
    """Video limits with the app's upload size (server.maxUploadSize, in MB) as the size limit."""
    return VideoLimits(max_bytes=int(st.get_option("server.maxUploadSize")) * 1024 * 1024)


@contextmanager
def _as_file(data: bytes, name: str) -> Iterator[str]:
    """The upload in a private temp file (PyAV reads files; the name is never used as a path)."""
    handle, path = tempfile.mkstemp(prefix="dance-video-")  # the format is read from the bytes, not a suffix
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        yield path
    finally:
        os.unlink(path)


def analyse(predictor: Predictor, data: bytes, name: str, fps: float, min_segment: float,
            progress=None) -> Clip:
    """Classify an uploaded video and keep the JPEGs of each segment's most confident frames."""
    with _as_file(data, name) as path:
        result = predict_video(predictor, path, fps=fps, name=name, limits=upload_limit(), progress=progress,
                               min_segment=min_segment)
        clip = Clip(result)
        if result.ok:
            wanted = sorted({i for seg in result.segments for i in seg.best})
            try:
                for frame in frames_at(path, [float(result.times[i]) for i in wanted], name=name,
                                       limits=upload_limit(), side=THUMB):
                    clip.frames[wanted[frame.index]] = jpeg_bytes(frame.image)
            except VideoError:
                pass  # the answer stands; those frames are just not shown
    return clip


def _headline(result: VideoPrediction) -> str:
    """The clip's answer in words."""
    answer = result.answer
    if answer.unsure:
        return f"Not sure — top-2: {answer.ranked[0][0]} or {answer.ranked[1][0]}"
    return f"{answer.label} ({answer.confidence:.1%})"


def _frames(clip: Clip, predictor: Predictor, ref: CheckpointRef, cam: bool) -> None:
    """Each segment's most confident frames as thumbnails (Grad-CAM overlays for the segment's class when asked)."""
    result = clip.result
    for n, seg in enumerate(result.segments):
        shown = [i for i in seg.best if i in clip.frames]
        if not shown:
            continue
        st.caption(f"{clock(seg.start)}–{clock(seg.end)} {md_escape(seg.answer)}: most confident frames")
        columns = st.columns(len(seg.best))
        for column, i in zip(columns, shown):
            with column:
                picture, caption = clip.frames[i], f"{clock(float(result.times[i]))} · {seg.label} " \
                                                   f"{result.probs[i, result.classes.index(seg.label)]:.0%}"
                if cam:
                    found = bytes_cam(predictor, ref, picture, f"{result.video}@{i}", seg.label, side=THUMB)
                    if found is not None:
                        picture, caption = found[0], f"Grad-CAM {seg.label} · {clock(float(result.times[i]))}"
                st.image(picture, caption=caption, width="stretch")


def _show(clip: Clip, predictor: Predictor, ref: CheckpointRef, number: int) -> None:
    """One video's answer, timeline, segments, frames and downloads."""
    result = clip.result
    if not result.ok:
        st.error(md_escape(result.error))  # the message names the file: Markdown in it must not render
        return
    with st.container(border=True):
        st.markdown(f"### {md_escape(result.video)}: {md_escape(_headline(result))}")
        st.caption(f"{len(result.times)} frames at {result.fps:g} per second over {clock(result.duration)}; "
                   f"the clip's answer pools every frame's calibrated log-probabilities.")
        st.markdown("**Segments:** " + md_escape(result.summary()))
        spans = [(s.start, s.end, s.label) for s in result.segments]
        st.plotly_chart(video_timeline_figure(result.times, result.probs, result.classes, spans),
                        key=f"{KEY}_timeline_{number}", config={"displayModeBar": False})
        st.dataframe(pd.DataFrame(result.segment_rows()).drop(columns=["start", "end", "best_times"]),
                     hide_index=True, width="stretch", key=f"{KEY}_segments_{number}", column_config={
                         "start_clock": "from", "end_clock": "to",
                         "confidence": st.column_config.ProgressColumn("confidence", format="percent", min_value=0,
                                                                       max_value=1)})
        cam = st.toggle("Grad-CAM on these frames", key=f"{KEY}_cam_{number}",
                        help="Where the model looked for each segment's class; red is strongest.")
        _frames(clip, predictor, ref, cam)
        stem = os.path.splitext(os.path.basename(result.video))[0] or "video"
        with st.container(horizontal=True):
            st.download_button("Frames CSV", result.frames_csv(), f"{stem}.frames.csv", "text/csv",
                               key=f"{KEY}_frames_csv_{number}", icon=":material/download:")
            st.download_button("Segments CSV", result.segments_csv(), f"{stem}.segments.csv", "text/csv",
                               key=f"{KEY}_segments_csv_{number}", icon=":material/download:")
            st.download_button("JSON", result.to_json(), f"{stem}.json", "application/json",
                               key=f"{KEY}_json_{number}", icon=":material/download:")


def render_video_section(predictor: Predictor, ref: CheckpointRef) -> None:
    """The Video section: uploader and sampling settings, then each clip's results (computed once per setting)."""
    limit = int(st.get_option("server.maxUploadSize"))
    with st.expander("Video: which dance forms appear when", expanded=bool(st.session_state.get(f"{KEY}_upload"))):
        files = st.file_uploader("Drop dance videos here", type=list(UPLOAD_TYPES), accept_multiple_files=True,
                                 key=f"{KEY}_upload", help=f"MP4, WebM, MOV or MKV; up to {limit} MB each.")
        left, right = st.columns(2)
        with left:
            fps = st.select_slider("Frames classified per second", RATES, value=VIDEO_FPS, key=f"{KEY}_fps")
        with right:
            min_segment = st.number_input("Shortest segment (seconds)", 1.0, 600.0, VIDEO_MIN_SEGMENT, 1.0,
                                          key=f"{KEY}_min_segment",
                                          help="A change of answer shorter than this is merged into its neighbour.")
    store = st.session_state.setdefault(f"{KEY}_results", {})
    uploads = [(upload.name, upload.getvalue()) for upload in files or []]
    hashes = [digest(data) for _, data in uploads]
    for stale in [k for k in store if k[0] not in hashes]:
        del store[stale]  # forget clips no longer uploaded
    for number, ((name, data), sha1) in enumerate(zip(uploads, hashes)):
        key = (sha1, name, ref.stem, ref.mtime, fps, min_segment)
        if key not in store:
            bar = st.progress(0.0, text=f"Reading {md_escape(name)}…")

            def progress(done: int, total: int | None, label: str = md_escape(name)) -> None:
                bar.progress(min(1.0, done / total) if total else 0.0, text=f"{label}: {done} frames classified")

            store[key] = analyse(predictor, data, name, fps, min_segment, progress)
            bar.empty()
        _show(store[key], predictor, ref, number)
