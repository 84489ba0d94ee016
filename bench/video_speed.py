"""Video benchmark behind bench/video.md: frames per second end to end (decode + predict) on a synthetic 1080p clip.

`python -m bench.video_speed` encodes the clip with PyAV (moving shapes over noise, H.264, a keyframe every
2.5 s, so no sampling rate lands on keyframes only), then times, on the CPU: sampling alone (our
seek-or-decode-forward policy, and decoding every frame as the baseline), and `predict_video` with the
served checkpoint (decode + classify).
The peak resident memory of the process is recorded after each step: a long clip must not pile up frames.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import av
import numpy as np

from bench.speed import machine_info
from dance.data.video import sample_frames
from dance.fileio import atomic_write_text

OUTPUT = Path(__file__).with_name("video.md")


def synthetic_clip(path: Path, seconds: float, width: int = 1920, height: int = 1080, rate: int = 30) -> Path:
    """A 1080p H.264 clip of moving coloured blocks over a noisy background (not trivially compressible)."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "g": str(round(2.5 * rate)), "crf": "23"}
        for i in range(round(seconds * rate)):
            arr = background.copy()
            x = (i * 17) % (width - 400)
            arr[200:600, x:x + 400] = (220, 60 + i % 150, 40)
            arr[height - 400:height - 100, width - x - 300:width - x] = (40, 200, 60)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def every_frame(path: Path) -> tuple[int, float]:
    """(frames decoded, seconds): the baseline that decodes and converts every frame."""
    start = time.perf_counter()
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frame.to_image(width=round(frame.width * 480 / frame.height / 2) * 2, height=480)
            count += 1
    return count, time.perf_counter() - start


def run(seconds: float, fps_list: list[float], weights: str, command: str, size: tuple[int, int] = (1920, 1080)) -> str:
    """Run every measurement and return video.md as Markdown."""
    from dance.inference import serving
    from dance.inference.video import predict_video

    info = machine_info()
    lines = ["# Video speed", "", f"Command: `{command}`  ",
             f"Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}", "",
             "| machine | |", "|---|---|", *[f"| {k} | {v} |" for k, v in info.items()],
             f"| PyAV / FFmpeg | {av.__version__} / {av.ffmpeg_version_info} |", ""]
    load = os.getloadavg()[0]
    if load > 0.5:
        lines += [f"**Shared, loaded machine**: the 1-minute load average was {load:.2f} on {os.cpu_count()} cores "
                  "when the run started (other helpers' jobs were running), so the figures are pessimistic and "
                  "noisy; ratios within this run are the meaningful part.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        clip = synthetic_clip(Path(tmp) / "clip.mp4", seconds, *size)
        size_mb = clip.stat().st_size / 1e6
        base_rss = peak_rss_mb()
        lines += [f"Clip: synthetic {size[0]}x{size[1]} H.264, 30 fps, {seconds:g} s, keyframe every 2.5 s, "
                  f"{size_mb:.1f} MB (made by the script). Frames are shrunk to 480 px (shorter side) by FFmpeg "
                  "while converting.", "",
                  "## Decoding alone", "",
                  "| how | sampled frames | seconds | sampled frames/s | video seconds per second | peak RSS MB |",
                  "|---|---|---|---|---|---|"]
        count, took = every_frame(clip)
        lines.append(f"| decode every frame (baseline) | {count} | {took:.2f} | {count / took:.1f} | "
                     f"{seconds / took:.2f} | {peak_rss_mb():.0f} |")
        for fps in fps_list:
            start = time.perf_counter()
            n = sum(1 for _ in sample_frames(clip, fps=fps))
            took = time.perf_counter() - start
            lines.append(f"| `sample_frames` at {fps:g} fps | {n} | {took:.2f} | {n / took:.1f} | "
                         f"{seconds / took:.2f} | {peak_rss_mb():.0f} |")
        predictor = serving.load(weights)
        lines += ["", f"## End to end: decode + predict (`predict_video`, checkpoint `{weights}`, "
                  f"backend {predictor.backend})", "",
                  "| sampling | frames | seconds | frames/s end to end | video seconds per second | peak RSS MB |",
                  "|---|---|---|---|---|---|"]
        for fps in fps_list:
            start = time.perf_counter()
            result = predict_video(predictor, clip, fps=fps)
            took = time.perf_counter() - start
            if not result.ok:
                raise SystemExit(result.error)
            n = len(result.times)
            lines.append(f"| {fps:g} fps | {n} | {took:.2f} | {n / took:.1f} | {seconds / took:.2f} | "
                         f"{peak_rss_mb():.0f} |")
        lines += ["", f"Peak RSS before any decoding: {base_rss:.0f} MB (Python, torch, the libraries). A whole "
                  f"{seconds:g}-second clip held in memory would take {seconds * 30 * size[0] * size[1] * 3 / 1e9:.1f}"
                  " GB as RGB frames; the sampler holds the frame being decoded and the one returned, and "
                  "`predict_video` a batch of 8 shrunk frames.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, write bench/video.md (or print with --output -)."""
    parser = argparse.ArgumentParser(prog="python -m bench.video_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the synthetic 1080p clip")
    parser.add_argument("--fps", type=float, nargs="+", default=[2.0, 0.5], help="sampling rates measured")
    parser.add_argument("--weights", default="default", help="checkpoint classifying the frames")
    parser.add_argument("--output", default=str(OUTPUT), help="Markdown file to write ('-' prints)")
    args = parser.parse_args(argv)
    command = "python -m bench.video_speed " + " ".join(argv if argv is not None else sys.argv[1:])
    report = run(args.seconds, args.fps, args.weights, command.strip())
    if args.output == "-":
        print(report)
    else:
        atomic_write_text(args.output, report)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
