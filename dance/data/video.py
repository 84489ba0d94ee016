"""Safe video decoding: a video file (untrusted) -> frames sampled at a fixed rate, a few at a time.

PyAV (whose wheels carry FFmpeg) demuxes and decodes. The file is checked before any frame is
decoded (size, container, video stream, dimensions, frame rate and count, duration), and every
failure is one `VideoError` sentence naming the file. Frames are sampled at `fps` per second of
video: when the index shows a keyframe between the last decoded frame and the next sample, the
decoder seeks to the sample by time; otherwise it decodes forward (cheaper than jumping back to the
same keyframe); without an index it seeks when the sample lies beyond the keyframe spacing seen so far.
Each sampled frame is scaled down by FFmpeg while converting to RGB, and `sample_frames` is a
generator, so a long 1080p clip never holds more than the frame being decoded and the one returned.
"""

from __future__ import annotations

import bisect
import contextlib
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Union

import av
from PIL import Image

from dance.config import VIDEO_FPS
from dance.errors import VideoError

VideoSource = Union[str, Path]
VIDEO_SUFFIXES = ("mp4", "m4v", "mov", "webm", "mkv", "avi")
UPLOAD_TYPES = ("mp4", "webm", "mov", "mkv")
DEFAULT_FPS = VIDEO_FPS
FRAME_SIDE = 480  # shorter side of returned frames: enough for every model's input (<= 368 px), thumbnails, Grad-CAM
MIN_SEEK_GAP = 1.0  # seconds; without an index, a sample nearer than this is reached by decoding forward
MAX_INDEX = 2_000_000  # index entries read to find keyframes (a bigger index: the heuristic instead)

# container signatures -> the FFmpeg demuxer that alone may read the file (the bytes, not the suffix, say what
# a file is; forcing the demuxer means no other of FFmpeg's dozens, such as playlists that open further files,
# ever parses an upload). A file with a signature that cannot be opened is damaged; one without is no video.
_SIGNATURES = ((4, b"ftyp", "mov"), (4, b"moov", "mov"), (4, b"mdat", "mov"), (4, b"wide", "mov"),
               (4, b"free", "mov"), (0, b"\x1aE\xdf\xa3", "matroska"), (0, b"RIFF", "avi"))


@dataclass(frozen=True)
class VideoLimits:
    """What a video may declare before anything is decoded; beyond these it is refused."""

    max_bytes: int = 2 * 1024 ** 3  # the app passes its upload limit instead
    max_side: int = 8192  # pixels (8K is 7680 wide)
    max_pixels: int = 40_000_000
    max_fps: float = 1000.0  # declared frame rate
    max_frames: int = 10_000_000  # declared frame count (about 46 hours at 60 fps)
    max_duration: float = 4 * 3600.0  # seconds; also bounds the number of samples (28,800 at 2 fps)
    max_samples: int = 50_000


@dataclass(frozen=True)
class VideoInfo:
    """What a video file declares about its first video stream."""

    name: str
    duration: float | None  # seconds; None when the container does not say
    width: int
    height: int
    fps: float | None
    frames: int | None  # declared frame count, when known
    codec: str


@dataclass
class Frame:
    """One sampled frame: its index among the samples, its time in seconds, the RGB image (shrunk)."""

    index: int
    time: float
    image: Image.Image


def is_video_path(path: str | Path) -> bool:
    """Whether a path names a video by its suffix (the CLI's routing; the decoder still checks the bytes)."""
    return Path(path).suffix.lower().lstrip(".") in VIDEO_SUFFIXES


def clock(seconds: float) -> str:
    """0:05, 1:40, 1:02:03: a time as people read it on a video player."""
    total = int(math.floor(seconds + 1e-6))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _check_file(path: Path, name: str, limits: VideoLimits) -> bytes:
    """The first bytes of a file, refusing a missing, empty or oversized one."""
    try:
        if not path.is_file():
            raise VideoError(f"{name}: file not found.")
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise VideoError(f"{name}: file cannot be read ({exc.strerror or exc}).") from None
    if size == 0:
        raise VideoError(f"{name}: file is empty (0 bytes).")
    if size > limits.max_bytes:
        raise VideoError(f"{name}: file is {size / 1e6:.1f} MB, over the {limits.max_bytes / 1e6:.0f} MB limit.")
    return head


def _demuxer(head: bytes, name: str) -> str:
    """The FFmpeg demuxer for a file's first bytes (MP4/MOV, Matroska/WebM, AVI); anything else is refused."""
    for at, signature, demuxer in _SIGNATURES:
        if head[at:at + len(signature)] == signature and (demuxer != "avi" or head[8:12] == b"AVI "):
            return demuxer
    raise VideoError(f"{name}: not a video file (no MP4, MOV, WebM, MKV or AVI container found).")


def _open(path: Path, name: str, head: bytes):
    """av.open with the demuxer the signature names; a failure means the file is damaged or truncated."""
    demuxer = _demuxer(head, name)
    try:
        return av.open(str(path), mode="r", format=demuxer, metadata_errors="ignore")
    except av.error.EOFError:  # FFmpeg reached the end looking for the first frame: a header and nothing else
        raise VideoError(f"{name}: the video has zero length (the file ends before its first frame).") from None
    except (av.FFmpegError, ValueError, OSError, UnicodeDecodeError):
        raise VideoError(f"{name}: the video file is damaged or truncated and cannot be opened.") from None


def _stream_info(container, name: str):
    """(first video stream, VideoInfo); refuses a file without one."""
    streams = [s for s in container.streams if s.type == "video"]
    if not streams:
        raise VideoError(f"{name}: the file has no video stream (audio or data only).")
    stream = streams[0]
    ctx = stream.codec_context
    if ctx is None:  # FFmpeg has no decoder for the stream's codec (or the header names none)
        raise VideoError(f"{name}: the video stream's codec cannot be decoded (unknown or unsupported).")
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else None
    info = VideoInfo(name, duration, int(ctx.width or 0), int(ctx.height or 0), fps, int(stream.frames) or None,
                     ctx.name or "unknown")
    return stream, info


def _check_info(info: VideoInfo, limits: VideoLimits) -> None:
    """Refuse zero-length, absurdly sized, absurdly fast, absurdly many-framed or over-long videos."""
    name = info.name
    if info.width <= 0 or info.height <= 0:
        raise VideoError(f"{name}: the video stream declares no picture size ({info.width}x{info.height}).")
    if max(info.width, info.height) > limits.max_side or info.width * info.height > limits.max_pixels:
        raise VideoError(f"{name}: {info.width}x{info.height} pixels is beyond the {limits.max_side}-pixel, "
                         f"{limits.max_pixels / 1e6:.0f}-megapixel limit for videos.")
    if info.fps is not None and info.fps > limits.max_fps:
        raise VideoError(f"{name}: a frame rate of {info.fps:,.0f} per second is beyond the "
                         f"{limits.max_fps:,.0f} limit.")
    if info.frames is not None and info.frames > limits.max_frames:
        raise VideoError(f"{name}: {info.frames:,} frames is beyond the {limits.max_frames:,}-frame limit.")
    if info.duration is not None:
        if info.duration <= 0:
            raise VideoError(f"{name}: the video has zero length.")
        if info.duration > limits.max_duration:
            raise VideoError(f"{name}: the video is {clock(info.duration)} long, over the "
                             f"{clock(limits.max_duration)} limit.")


@contextlib.contextmanager
def _opened(source: VideoSource, name: str | None, limits: VideoLimits):
    """(container, first video stream, VideoInfo) of a file that passed every check; closed on exit."""
    path = Path(source)
    name = name or path.name
    head = _check_file(path, name, limits)
    with _open(path, name, head) as container:
        stream, info = _stream_info(container, name)
        _check_info(info, limits)
        yield container, stream, info


def probe(source: VideoSource, name: str | None = None, limits: VideoLimits = VideoLimits()) -> VideoInfo:
    """Check a video file without decoding frames; raises VideoError with one sentence."""
    with _opened(source, name, limits) as (_, _, info):
        return info


def _scaled(width: int, height: int, side: int) -> tuple[int, int]:
    """Frame size with the shorter side at most `side`, aspect kept, even numbers (what swscale likes)."""
    scale = min(1.0, side / min(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def sample_frames(source: VideoSource, fps: float = DEFAULT_FPS, name: str | None = None,
                  limits: VideoLimits = VideoLimits(), side: int = FRAME_SIDE) -> Iterator[Frame]:
    """Frames at 0, 1/fps, 2/fps, ... seconds (the nearest decoded frame at or after each time).

    Raises VideoError (one sentence naming the file) before the first frame for a file that is refused, and
    during iteration when the stream turns out damaged or truncated or yields no frame at all.
    """
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= 60):
        raise VideoError(f"sampling rate {fps!r} frames per second is not between 0 and 60.")
    with _opened(source, name, limits) as (container, stream, info):
        stream.thread_type = "AUTO"  # frame threads: decoding is most of the cost
        yield from _sample(container, stream, info, fps, _scaled(info.width, info.height, side), limits)


def _timing(stream, info: VideoInfo) -> tuple[Fraction, float, float]:
    """(stream time base, start time in seconds, frame interval in seconds) for seeking and frame times."""
    base = stream.time_base or Fraction(1, av.time_base)
    start = float(stream.start_time * base) if stream.start_time is not None else 0.0
    return base, start, 1.0 / (info.fps or 1000.0)


def _keyframes(stream, base: Fraction, start: float) -> list[float]:
    """Sorted keyframe times (seconds) from the container's index: full for MP4/MOV, Matroska's cues once read."""
    try:
        entries = stream.index_entries
        if len(entries) > MAX_INDEX:
            return []
        return sorted(float(e.timestamp * base) - start for e in entries if e.is_keyframe)
    except (AttributeError, av.FFmpegError, OverflowError):
        return []


def _frame_time(frame, stream, start: float) -> float | None:
    """Seconds from the stream's start, or None when the frame carries no timestamp."""
    if frame.pts is None:
        return None
    return float(frame.pts * (frame.time_base or stream.time_base)) - start


def _sample(container, stream, info: VideoInfo, fps: float, size: tuple[int, int],
            limits: VideoLimits) -> Iterator[Frame]:
    """The sampling loop of `sample_frames` (the container is open and checked)."""
    name = info.name
    base, start, step = _timing(stream, info)
    frames = iter(())
    last = -math.inf  # time of the last decoded frame
    seek_gap = MIN_SEEK_GAP  # grows to the keyframe spacing once a seek lands no further than we already were
    keys = _keyframes(stream, base, start)
    count, slot = 0, 0  # samples returned; the next sample is due at slot / fps seconds
    while True:
        target = slot / fps
        if info.duration is not None and target > info.duration:
            return
        if target > limits.max_duration or count >= limits.max_samples:
            raise VideoError(f"{name}: the video runs past the {clock(limits.max_duration)} limit.")
        if len(keys) > 1:  # the index says where keyframes are: jump when one lies beyond the last decoded frame
            seeking = keys[max(0, bisect.bisect_right(keys, target + 1e-6) - 1)] > last + step
        else:  # no index (yet): jump when the sample is further than the keyframe spacing seen so far
            seeking = target - last > seek_gap
        if seeking:
            try:
                container.seek(int((target + start) / base), stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
            except (av.FFmpegError, OverflowError, ValueError):
                seeking = False  # not seekable (a WebM without cues): decoding forward still works
        found = None
        try:
            for frame in frames:
                t = _frame_time(frame, stream, start)
                if t is None:
                    continue
                if seeking:  # the first frame after a seek is the keyframe at or before the target
                    seeking = False
                    if t <= last:  # it went back to where we had been: seeking that near is wasted work
                        seek_gap = max(seek_gap, target - t + 1e-3)
                    keys = keys if len(keys) > 1 else _keyframes(stream, base, start)  # Matroska reads cues now
                last = max(last, t)
                if t + step / 2 >= target:
                    found = (t, frame.to_image(width=size[0], height=size[1]))
                    break
        except (av.FFmpegError, MemoryError) as exc:
            raise VideoError(f"{name}: the video stream is damaged or truncated near {clock(max(last, 0.0))} "
                             f"({type(exc).__name__}).") from None
        if found is None:
            break
        time, image = found
        yield Frame(count, max(time, 0.0), image)
        count += 1
        slot = max(slot + 1, math.floor(max(time, 0.0) * fps + 1e-6) + 1)  # a gap in the stream skips its slots
    if count == 0:
        raise VideoError(f"{name}: the video has no decodable frames.")
    if info.duration is not None and last < info.duration - max(1.0, 2.0 / fps):
        raise VideoError(f"{name}: the video is truncated: frames stop at {clock(last)} of a declared "
                         f"{clock(info.duration)}.")


def frames_at(source: VideoSource, times: list[float], name: str | None = None,
              limits: VideoLimits = VideoLimits(), side: int = FRAME_SIDE) -> Iterator[Frame]:
    """The frames nearest at or after each of `times` (seconds), each reached by a seek: thumbnails of a result."""
    with _opened(source, name, limits) as (container, stream, info):
        base, start, step = _timing(stream, info)
        size = _scaled(info.width, info.height, side)
        for index, target in enumerate(times):
            try:
                container.seek(int((target + start) / base), stream=stream, backward=True, any_frame=False)
                for frame in container.decode(stream):
                    t = _frame_time(frame, stream, start)
                    if t is not None and t + step / 2 >= target:
                        yield Frame(index, max(t, 0.0), frame.to_image(width=size[0], height=size[1]))
                        break
            except (av.FFmpegError, OverflowError, ValueError, MemoryError):
                raise VideoError(f"{info.name}: the frame at {clock(target)} cannot be decoded.") from None
