"""Videos: decoding limits with one sentence per bad file, sampling, segments and the clip's answer, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import ROOT, synthetic_image

from dance.data.video import VideoLimits, clock, frames_at, probe, sample_frames
from dance.errors import VideoError
from dance.inference import serving
from dance.inference.predict import Predictor
from dance.inference.video import build_segments, pool, predict_video, predict_videos, segment_labels

RATE = 10  # frames per second of the test clips


def write_video(path: Path, parts: list[tuple[str, float]], side: int = 96, codec: str = "libx264",
                rate: int = RATE) -> Path:
    """A clip of synthetic class images in sequence: [(kind, seconds), ...], each frame with a little noise."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "g": "15"} if codec == "libx264" else {"deadline": "realtime", "cpu-used": "8"}
        n = 0
        for kind, seconds in parts:
            base = synthetic_image(kind, seed=7, size=side)
            for _ in range(round(seconds * rate)):
                arr = np.asarray(base, dtype=np.int16) + np.random.default_rng(n).integers(-4, 5, (side, side, 3))
                frame = av.VideoFrame.from_ndarray(np.clip(arr, 0, 255).astype(np.uint8), format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
                n += 1
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_raw(path: Path, size: tuple[int, int], pts: list[int], time_base: Fraction, rate: int = 1) -> Path:
    """A Matroska file of tiny raw gray frames with the given timestamps: crafted headers without big files."""
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("rawvideo", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "gray"
        stream.time_base = time_base
        for p in pts:
            frame = av.VideoFrame.from_ndarray(np.zeros((size[1], size[0]), np.uint8), format="gray")
            frame.pts, frame.time_base = p, time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_audio_only(path: Path) -> Path:
    """An MKV with one second of AAC audio and no video stream."""
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("aac", rate=16000)
        for i in range(16):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def two_part(tmp_path_factory) -> Path:
    """6 s of the 'square' class, then 6 s of 'stripes' (the two the tiny checkpoint tells apart best)."""
    return write_video(tmp_path_factory.mktemp("video") / "two.mp4", [("square", 6), ("stripes", 6)])


@pytest.fixture(scope="module")
def predictor(tiny_checkpoint) -> Predictor:
    """The tiny synthetic-class checkpoint (torch: no export in a test)."""
    return serving.load(tiny_checkpoint, backend="torch")


# ------------------------------------------------------------------------------------------------ decoding


def test_frames_are_sampled_at_the_chosen_rate_and_shrunk(tmp_path):
    clip = write_video(tmp_path / "c.webm", [("stripes", 4)], side=256, codec="libvpx")
    info = probe(clip)
    assert (info.width, info.height, info.duration) == (256, 256, pytest.approx(4.0, abs=0.11))
    frames = list(sample_frames(clip, fps=2, side=100))
    assert [round(f.time * 2) / 2 for f in frames] == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]
    assert all(f.image.size == (100, 100) for f in frames)
    sparse = list(sample_frames(clip, fps=0.5))  # seeks between samples 2 s apart
    assert [round(f.time) for f in sparse] == [0, 2]


def test_sampling_is_a_generator_that_holds_one_frame_at_a_time(tmp_path):
    clip = write_video(tmp_path / "g.mkv", [("circle", 3)])
    frames = sample_frames(clip, fps=2)
    first = next(frames)
    assert first.index == 0 and first.time == 0.0
    assert [f.index for f in frames] == [1, 2, 3, 4, 5]


def test_frames_at_seeks_to_each_time(two_part):
    found = list(frames_at(two_part, [9.0, 1.0]))
    assert [round(f.time, 1) for f in found] == [9.0, 1.0]
    green = [np.asarray(f.image)[-30:-10, -30:-10, 1].mean() for f in found]  # the square class: green, bottom-right
    assert green[1] > 150 and green[0] < 100


def bad_files(tmp: Path) -> dict[str, tuple[Path, VideoLimits, str]]:
    """Each bad input, the limits it is checked against and a phrase its one sentence must contain."""
    good = write_video(tmp / "good.mp4", [("circle", 4)])
    photo = tmp / "photo.mp4"
    synthetic_image("circle", 1).save(photo, format="JPEG")
    random = tmp / "noise.mkv"
    random.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    playlist = tmp / "list.mp4"  # an HLS playlist would make FFmpeg open the files it names: never parsed
    playlist.write_bytes(b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")
    wave = tmp / "sound.avi"  # RIFF, but WAVE audio rather than AVI
    wave.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(32))
    empty = tmp / "empty.webm"
    empty.write_bytes(b"")
    cut_mp4 = tmp / "cut.mp4"  # index (moov) at the end: half a file cannot be opened at all
    cut_mp4.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    long_mkv = write_video(tmp / "long.mkv", [("square", 8)])
    cut_mkv = tmp / "cut.mkv"  # header first: decodes until the cut, then stops short of its declared length
    cut_mkv.write_bytes(long_mkv.read_bytes()[: long_mkv.stat().st_size // 2])
    big = tmp / "big.mp4"
    with big.open("wb") as handle:  # sparse: 3 MB on paper, nothing on disk
        handle.truncate(3_000_000)
    no_frames = tmp / "noframes.mkv"  # a Matroska header for one video stream, and no frame
    with av.open(str(no_frames), "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width = stream.height = 16
        out.start_encoding()
    return {
        "not a video (a JPEG)": (photo, VideoLimits(), "not a video file"),
        "not a video (noise)": (random, VideoLimits(), "not a video file"),
        "not a video (a playlist)": (playlist, VideoLimits(), "not a video file"),
        "not a video (RIFF audio)": (wave, VideoLimits(), "not a video file"),
        "zero bytes": (empty, VideoLimits(), "empty (0 bytes)"),
        "truncated, index lost": (cut_mp4, VideoLimits(), "damaged or truncated"),
        "truncated, header kept": (cut_mkv, VideoLimits(), "truncated"),
        "no video stream": (write_audio_only(tmp / "audio.mkv"), VideoLimits(), "no video stream"),
        "zero length": (no_frames, VideoLimits(), "zero length"),
        "absurd dimensions": (write_raw(tmp / "wide.mkv", (9000, 2), [0], Fraction(1, 10)), VideoLimits(),
                              "9000x2 pixels"),
        "absurd frame rate": (write_raw(tmp / "fast.mkv", (8, 8), [0, 1, 2, 3], Fraction(1, 100_000), 100_000),
                              VideoLimits(), "frame rate"),
        "absurd frame count": (good, VideoLimits(max_frames=20), "40 frames is beyond the 20-frame limit"),
        "huge duration": (write_raw(tmp / "hours.mkv", (8, 8), [0, 5 * 3600], Fraction(1, 1)), VideoLimits(),
                          "over the 4:00:00 limit"),
        "over the upload size": (big, VideoLimits(max_bytes=2_000_000), "3.0 MB, over the 2 MB limit"),
    }


def test_every_bad_video_gets_one_sentence_naming_it(tmp_path):
    cases = bad_files(tmp_path)
    for case, (path, limits, phrase) in cases.items():
        with pytest.raises(VideoError) as caught:
            list(sample_frames(path, fps=2, limits=limits))
        message = str(caught.value)
        assert message.startswith(f"{path.name}: ") and phrase in message, (case, message)
        assert message.count(". ") == 0 and "\n" not in message, (case, message)


def test_one_bad_video_never_costs_the_others_their_answers(tmp_path, predictor):
    cases = bad_files(tmp_path)
    good = write_video(tmp_path / "fine.mp4", [("square", 3)])
    sources = [path for path, limits, _ in cases.values() if limits == VideoLimits()] + [good]
    results = predict_videos(predictor, sources, fps=2)
    assert [r.ok for r in results] == [False] * (len(sources) - 1) + [True]
    assert all(Path(r.video).name in r.error for r in results[:-1])
    assert results[-1].answer.label == "square"


def test_sampling_rate_out_of_range_is_refused(two_part):
    with pytest.raises(VideoError, match="between 0 and 60"):
        next(sample_frames(two_part, fps=0))


# ------------------------------------------------------------------------------------------------ answers


def test_clip_of_two_classes_reads_as_two_segments(two_part, predictor):
    seen = []
    result = predict_video(predictor, two_part, fps=2, min_segment=2, progress=lambda d, t: seen.append((d, t)))
    assert result.ok and len(result.times) == 24
    assert [s.label for s in result.segments] == ["square", "stripes"]
    first, second = result.segments
    assert first.start == 0 and abs(first.end - 6.0) <= 0.5 and second.start == first.end
    assert second.end == pytest.approx(12.0, abs=0.11)
    assert result.summary() == f"0:00–{clock(first.end)} square, {clock(first.end)}–0:12 stripes"
    assert all(first.first <= i <= first.last for i in first.best) and len(first.best) == 3
    assert seen[-1] == (24, 24) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def write_photo_video(path: Path, photos: list[tuple[Path, float]], rate: int = 5) -> Path:
    """A clip showing data-set photos in sequence ([(photo, seconds), ...]), letterboxed to 320x240."""
    from PIL import Image

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for photo, seconds in photos:
            img = Image.open(photo).convert("RGB")
            img.thumbnail((320, 240))
            canvas = Image.new("RGB", (320, 240))
            canvas.paste(img, ((320 - img.width) // 2, (240 - img.height) // 2))
            for _ in range(round(seconds * rate)):
                for packet in stream.encode(av.VideoFrame.from_image(canvas)):
                    out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_recital_of_two_dance_forms_reads_as_two_segments_with_the_shipped_model(real_data, tmp_path):
    import csv

    shipped = serving.load("default", backend="torch")
    with (real_data / "train.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    chosen = {}
    for form in ("bharatanatyam", "kathakali"):  # the first photo of each form the model is sure of
        for row in (r for r in rows if r["target"] == form):
            pred = shipped.predict([real_data / "train" / row["Image"]])[0]
            if pred.label == form and pred.confidence > 0.9:
                chosen[form] = real_data / "train" / row["Image"]
                break
    clip = write_photo_video(tmp_path / "recital.mp4", [(chosen["bharatanatyam"], 8), (chosen["kathakali"], 4)])
    result = predict_video(shipped, clip, fps=2, min_segment=2)
    assert [s.label for s in result.segments] == ["bharatanatyam", "kathakali"]
    assert abs(result.segments[0].end - 8.0) <= 0.5
    assert result.answer.label == "bharatanatyam" and not result.answer.unsure
    assert result.summary().startswith("0:00–0:0") and result.summary().endswith("–0:12 kathakali")


def test_overall_answer_is_the_mean_log_probability_and_follows_the_temperature(tmp_path, tiny_checkpoint):
    clip = write_video(tmp_path / "mostly.mkv", [("stripes", 8), ("square", 4)])
    plain = serving.load(tiny_checkpoint, backend="torch")
    result = predict_video(plain, clip, fps=2)
    assert result.answer.label == "stripes"
    expected = np.exp(np.log(result.probs).mean(0))
    assert np.allclose(list(result.overall.values()), expected / expected.sum())
    hot = serving.load(tiny_checkpoint, backend="torch")
    hot.ckpt.meta["calibration"] = {"temperature": 2.0}
    warm = predict_video(hot, clip, fps=2)
    softened = np.array(list(result.overall.values())) ** 0.5  # softmax(mean z / 2) from softmax(mean z)
    assert np.allclose(list(warm.overall.values()), softened / softened.sum(), atol=1e-6)
    assert warm.answer.confidence < result.answer.confidence


def test_not_sure_follows_the_checkpoint_threshold(two_part, tiny_checkpoint):
    strict = serving.load(tiny_checkpoint, backend="torch")
    strict.ckpt.meta["unsure_threshold"] = 0.999999
    result = predict_video(strict, two_part, fps=1)
    assert result.answer.unsure and all(s.unsure for s in result.segments)
    assert result.segments[0].answer.startswith("not sure: ")


def test_short_blips_merge_into_their_neighbours():
    probs = np.full((40, 2), 0.1)
    probs[:, 0] = 0.9
    probs[20:23] = [0.2, 0.8]  # 1.5 s of class 1 at 2 fps inside class 0
    probs[30:] = [0.05, 0.95]  # 5 s of class 1 at the end
    probs = probs / probs.sum(1, keepdims=True)
    assert [r[0] for r in segment_labels(probs, fps=2, smooth_seconds=0, min_segment=3)] == [0, 1]
    assert [r[0] for r in segment_labels(probs, fps=2, smooth_seconds=0, min_segment=1)] == [0, 1, 0, 1]
    times = np.arange(40) / 2
    segs = build_segments(["a", "b"], times, probs, 20.0, 2, min_segment=3, smooth_seconds=0)
    assert [(s.start, s.end, s.label) for s in segs] == [(0.0, 15.0, "a"), (15.0, 20.0, "b")]
    assert pool(probs[:2]) == pytest.approx([0.9, 0.1])


def test_csv_and_json_hold_every_frame_and_segment(two_part, predictor):
    result = predict_video(predictor, two_part, fps=1, min_segment=2)
    frames = result.frames_csv().splitlines()
    assert frames[0].split(",")[:6] == ["frame", "time", "clock", "label", "confidence", "segment"]
    assert len(frames) == 1 + 12 and frames[0].endswith("p_circle,p_square,p_stripes")
    segments = result.segments_csv().splitlines()
    assert len(segments) == 1 + 2 and segments[1].split(",")[6] == "square"
    data = json.loads(result.to_json())
    assert data["label"] == result.answer.label and len(data["frames"]) == 12
    assert [s["label"] for s in data["segments"]] == ["square", "stripes"]


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_predicts_a_mixed_list_of_photos_and_videos(two_part, tiny_checkpoint, synth_data, tmp_path):
    bad = tmp_path / "broken.mov"
    bad.write_bytes(b"\x00\x00\x00\x18ftypqt  " + b"\x00" * 100)
    photo = synth_data / "train" / "stripes0.jpg"
    cmd = [sys.executable, "-m", "dance", "predict", str(photo), str(two_part), str(bad), "--fps", "1", "--json",
           "--min-segment", "2", "--weights", str(tiny_checkpoint), "--backend", "torch", "--save", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line.get("image") or line.get("video") for line in lines] == [str(photo), str(two_part), str(bad)]
    assert lines[0]["label"] == "stripes"
    assert [s["label"] for s in lines[1]["segments"]] == ["square", "stripes"] and len(lines[1]["frames"]) == 12
    assert lines[2]["error"] == f"{bad}: the video file is damaged or truncated and cannot be opened."
    assert "Traceback" not in done.stderr
    assert (tmp_path / "two.frames.csv").read_text().count("\n") == 13
    assert json.loads((tmp_path / "two.json").read_text())["summary"] == lines[1]["summary"]
    text = subprocess.run(cmd[:cmd.index("--json")] + cmd[cmd.index("--json") + 1:cmd.index("--save")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert text.returncode == 1
    out = text.stdout.splitlines()
    assert out[0].startswith(f"{photo}: stripes ") and out[1].startswith(f"{two_part}: ")
    assert out[2].startswith("  0:00–0:0") and out[2].split()[1] == "square" and out[3].split()[1] == "stripes"
    assert out[4] == f"ERROR {bad}: the video file is damaged or truncated and cannot be opened."


def test_cli_refuses_a_sampling_rate_out_of_range_in_one_line(two_part):
    done = subprocess.run([sys.executable, "-m", "dance", "predict", str(two_part), "--fps", "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "error: --fps 0 is not between 0 and 60 frames per second.\n"
