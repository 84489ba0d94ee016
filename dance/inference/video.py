"""Dance videos: every sampled frame classified by a `Predictor`, then the clip's answer and its segments.

The clip's answer (and each segment's) is the mean of the frames' calibrated log-probabilities,
renormalised: with per-frame probabilities softmax(z / T) this is softmax(mean(z) / T), the same
rule as test-time augmentation, so a long clip is no more confident than its frames are on average.
Segments come from a moving average of the log-probabilities, its argmax per frame, and runs
shorter than the minimum length merged into the neighbour that explains their frames best.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from dance.config import VIDEO_MIN_SEGMENT
from dance.data.video import DEFAULT_FPS, VideoLimits, VideoSource, clock, probe, sample_frames
from dance.errors import VideoError
from dance.inference.predict import ImagePrediction, Predictor

BATCH = 8  # frames classified together: a few frames in memory, most of the batching speed-up
SMOOTH_SECONDS = 3.0  # moving-average window of the segmenter
MIN_SEGMENT = VIDEO_MIN_SEGMENT  # seconds; a shorter change of answer is merged into a neighbour
BEST_PER_SEGMENT = 3
Progress = Callable[[int, "int | None"], None]  # (frames done, frames expected or None)


@dataclass
class Segment:
    """A stretch of the clip with one answer: [start, end) seconds, the frames in it, its class probabilities."""

    start: float
    end: float
    first: int  # index of its first frame
    last: int  # index of its last frame (inclusive)
    probs: dict[str, float]
    threshold: float = 0.0
    best: list[int] = field(default_factory=list)  # indices of its most confident frames, most confident first

    @property
    def label(self) -> str:
        """The segment's most likely class."""
        return max(self.probs, key=self.probs.get)

    @property
    def confidence(self) -> float:
        """Probability of that class."""
        return self.probs[self.label]

    @property
    def unsure(self) -> bool:
        """Below the checkpoint's 'not sure' threshold."""
        return self.confidence < self.threshold

    @property
    def answer(self) -> str:
        """The label, or 'not sure: X or Y'."""
        if self.unsure:
            first, second = sorted(self.probs, key=self.probs.get, reverse=True)[:2]
            return f"not sure: {first} or {second}"
        return self.label

    def text(self) -> str:
        """'0:00–1:40 bharatanatyam'."""
        return f"{clock(self.start)}–{clock(self.end)} {self.answer}"


@dataclass
class VideoPrediction:
    """The answer for one video: per-frame probabilities, the overall answer and segments, or an error."""

    video: str
    classes: list[str] = field(default_factory=list)
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (frames, classes), calibrated
    duration: float = 0.0
    fps: float = DEFAULT_FPS
    threshold: float = 0.0
    segments: list[Segment] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the video was classified."""
        return self.error is None

    @property
    def overall(self) -> dict[str, float]:
        """The clip's class probabilities (mean calibrated log-probability over frames, renormalised)."""
        return dict(zip(self.classes, map(float, pool(self.probs)))) if self.ok else {}

    @property
    def answer(self) -> ImagePrediction:
        """The clip's answer in the photos' form: label, confidence, ranked, unsure ('not sure' as for photos)."""
        return ImagePrediction(self.video, self.overall, self.error, self.threshold)

    def summary(self) -> str:
        """'0:00–1:40 bharatanatyam, 1:40–3:05 kuchipudi'."""
        return ", ".join(s.text() for s in self.segments)

    def frame_rows(self) -> list[dict]:
        """One dict per sampled frame: time, label, confidence, segment, probability per class."""
        owner = np.zeros(len(self.times), dtype=int)
        for number, seg in enumerate(self.segments):
            owner[seg.first:seg.last + 1] = number
        rows = []
        for i, t in enumerate(self.times):
            row = self.probs[i]
            top = int(row.argmax())
            rows.append({"frame": i, "time": round(float(t), 3), "clock": clock(float(t)), "label": self.classes[top],
                         "confidence": float(row[top]), "segment": int(owner[i]),
                         **{f"p_{c}": float(p) for c, p in zip(self.classes, row)}})
        return rows

    def segment_rows(self) -> list[dict]:
        """One dict per segment: start, end, answer, label, confidence, frames, its best frames' times."""
        return [{"segment": n, "start": round(s.start, 3), "end": round(s.end, 3), "start_clock": clock(s.start),
                 "end_clock": clock(s.end), "answer": s.answer, "label": s.label, "confidence": s.confidence,
                 "unsure": s.unsure, "frames": s.last - s.first + 1,
                 "best_times": [round(float(self.times[i]), 3) for i in s.best]}
                for n, s in enumerate(self.segments)]

    def to_dict(self, frames: bool = True) -> dict:
        """The JSON form (`dance predict clip.mp4 --json`): overall answer, segments and (optionally) frames."""
        if not self.ok:
            return {"video": self.video, "error": self.error}
        answer = self.answer
        out = {"video": self.video, "label": answer.label, "confidence": answer.confidence, "unsure": answer.unsure,
               "probs": answer.probs, "duration": round(self.duration, 3), "fps": self.fps,
               "summary": self.summary(), "segments": self.segment_rows()}
        if frames:
            out["frames"] = self.frame_rows()
        return out

    def to_json(self) -> str:
        """`to_dict` as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def frames_csv(self) -> str:
        """Per-frame results as CSV text."""
        return _csv(self.frame_rows())

    def segments_csv(self) -> str:
        """Per-segment results as CSV text (best frame times joined by spaces)."""
        rows = [{**r, "best_times": " ".join(map(str, r["best_times"]))} for r in self.segment_rows()]
        return _csv(rows)


def _csv(rows: list[dict]) -> str:
    """Rows of equal keys as CSV text (header only when there are none)."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def pool(probs: np.ndarray) -> np.ndarray:
    """Class probabilities of a set of frames: softmax of their mean log-probability."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)).mean(0)
    out = np.exp(logp - logp.max())
    return out / out.sum()


def smooth(logp: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of (frames, classes) log-probabilities over `window` frames (shrinking at the ends)."""
    if window <= 1 or len(logp) <= 1:
        return logp
    kernel = np.ones(window)
    half = window // 2
    padded = np.pad(logp, ((half, window - 1 - half), (0, 0)))
    sums = np.stack([np.convolve(padded[:, c], kernel, mode="valid") for c in range(logp.shape[1])], 1)
    counts = np.convolve(np.pad(np.ones(len(logp)), (half, window - 1 - half)), kernel, mode="valid")
    return sums / counts[:, None]


def runs(labels: Sequence[int]) -> list[list[int]]:
    """[label, first, last] for each run of equal labels."""
    out: list[list[int]] = []
    for i, lab in enumerate(labels):
        if out and out[-1][0] == lab:
            out[-1][2] = i
        else:
            out.append([int(lab), i, i])
    return out


def segment_labels(probs: np.ndarray, fps: float, smooth_seconds: float = SMOOTH_SECONDS,
                   min_segment: float = MIN_SEGMENT) -> list[list[int]]:
    """Runs [label, first, last] of the smoothed argmax; runs under `min_segment` seconds merged away."""
    if len(probs) == 0:
        return []
    logp = np.log(np.clip(probs, 1e-12, None))
    labels = smooth(logp, max(1, round(smooth_seconds * fps))).argmax(1)
    found = runs(labels)
    min_frames = max(1, math.ceil(min_segment * fps - 1e-9))
    while len(found) > 1:
        short = min(range(len(found)), key=lambda r: found[r][2] - found[r][1])
        first, last = found[short][1], found[short][2]
        if last - first + 1 >= min_frames:
            break
        neighbours = [found[r][0] for r in (short - 1, short + 1) if 0 <= r < len(found)]
        # the neighbour whose class explains the short run's frames best takes them over
        best = max(neighbours, key=lambda lab: logp[first:last + 1, lab].sum())
        found[short][0] = best
        found = runs([lab for lab, a, b in found for _ in range(a, b + 1)])
    return found


def build_segments(classes: list[str], times: np.ndarray, probs: np.ndarray, duration: float, fps: float,
                   threshold: float = 0.0, smooth_seconds: float = SMOOTH_SECONDS, min_segment: float = MIN_SEGMENT,
                   best: int = BEST_PER_SEGMENT) -> list[Segment]:
    """Segments of a clip from its per-frame probabilities, each with its pooled answer and most confident frames."""
    found = segment_labels(probs, fps, smooth_seconds, min_segment)
    segments = []
    for n, (_, first, last) in enumerate(found):
        start = 0.0 if n == 0 else float(times[first])
        end = float(times[found[n + 1][1]]) if n + 1 < len(found) else max(duration, float(times[last]))
        pooled = pool(probs[first:last + 1])
        top = int(pooled.argmax())
        order = first + np.argsort(-probs[first:last + 1, top], kind="stable")[:best]
        segments.append(Segment(start, end, first, last, dict(zip(classes, map(float, pooled))), threshold,
                                [int(i) for i in order]))
    return segments


def _classify(predictor: Predictor, frames: list, name: str) -> np.ndarray:
    """(len(frames), classes) calibrated probabilities from the predictor (the one call into its API)."""
    preds = predictor.predict_images([f.image for f in frames], [f"{name}@{f.time:.2f}s" for f in frames])
    return np.array([[p.probs[c] for c in predictor.classes] for p in preds], dtype=np.float64)


def _classify_batch(predictor: Predictor, batch: list, name: str, times: list[float], rows: list) -> None:
    """Classify a batch of frames, record their times and probabilities, and let the images go."""
    rows.append(_classify(predictor, batch, name))
    times.extend(f.time for f in batch)
    batch.clear()


def predict_video(predictor: Predictor, source: VideoSource, fps: float = DEFAULT_FPS, name: str | None = None,
                  limits: VideoLimits = VideoLimits(), progress: Progress | None = None,
                  smooth_seconds: float = SMOOTH_SECONDS, min_segment: float = MIN_SEGMENT) -> VideoPrediction:
    """Classify one video; a refused or damaged file gives a VideoPrediction with `error` (never raises)."""
    name = name or Path(source).name
    times: list[float] = []
    rows: list[np.ndarray] = []
    try:
        info = probe(source, name=name, limits=limits)
        frames = sample_frames(source, fps=fps, name=name, limits=limits)
        expected = max(1, math.ceil(info.duration * fps - 1e-9)) if info.duration else None
        batch: list = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == BATCH:
                _classify_batch(predictor, batch, name, times, rows)  # empties the batch: only a few frames held
                if progress:
                    progress(len(times), None if expected is None else max(expected, len(times)))
        if batch:
            _classify_batch(predictor, batch, name, times, rows)
        if progress:
            progress(len(times), len(times))
    except VideoError as exc:
        return VideoPrediction(name, error=str(exc))
    probs = np.concatenate(rows)
    t = np.asarray(times)
    duration = info.duration if info.duration else float(t[-1]) + 1.0 / fps
    segments = build_segments(predictor.classes, t, probs, duration, fps, predictor.threshold, smooth_seconds,
                              min_segment)
    return VideoPrediction(name, list(predictor.classes), t, probs, duration, fps, predictor.threshold, segments)


def predict_videos(predictor: Predictor, sources: Iterable[VideoSource], fps: float = DEFAULT_FPS,
                   progress: Callable[[str, int, "int | None"], None] | None = None,
                   **options) -> list[VideoPrediction]:
    """Classify several videos; a bad one gets its error entry and the others still run."""
    out = []
    for source in sources:
        report = (lambda done, total, name=str(source): progress(name, done, total)) if progress else None
        out.append(predict_video(predictor, source, fps=fps, name=str(source), progress=report, **options))
    return out
