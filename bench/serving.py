"""Serving benchmarks -> the "Serving" section of bench/speed.md: `python -m bench.serving`.

In one run, interleaved so the shared machine's load hits every variant alike: batch-1 model latency (torch fp32,
ONNX fp32, ONNX int8) of the shipped checkpoints; end to end from JPEG bytes over realistic photos (the data set's
own sizes in bands plus synthetic 12-megapixel camera JPEGs) as median/p95 per band; draft vs full JPEG decoding;
and the CLI's cold start for 1 and 41 photos against a bare `import onnxruntime, PIL.Image, numpy`.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from dance import paths

START, END = "<!-- serving:start -->", "<!-- serving:end -->"
BANDS = [("< 0.1 MP", 0, 0.1e6), ("0.1-0.5 MP", 0.1e6, 0.5e6), ("0.5-2 MP", 0.5e6, 2e6), ("> 2 MP", 2e6, 1e12)]
CAMERA = "12 MP camera (synthetic)"
ROOT = Path(__file__).resolve().parents[1]


def camera_jpeg(seed: int, width: int = 4000, height: int = 3000) -> bytes:
    """A synthetic 12 MP camera photo: smooth shapes plus sensor noise, quality 92, 4:2:0 (as phones write)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        fx, fy, phase = rng.uniform(1, 6, 2).tolist() + [rng.uniform(0, 6.28)]
        img[..., c] = 128 + 90 * np.sin(x / width * fx * 6.28 + phase) * np.cos(y / height * fy * 6.28)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=92, subsampling=2)
    return buffer.getvalue()


def photo_set(data_dir: Path, per_band: int, cameras: int) -> dict[str, list[tuple[str, bytes]]]:
    """(name, bytes) per size band: up to `per_band` data-set JPEGs spread over each band, plus camera JPEGs."""
    sizes = []
    for path in sorted((data_dir / "train").glob("*.jpg")):
        with Image.open(path) as img:
            sizes.append((img.size[0] * img.size[1], path))
    sets: dict[str, list[tuple[str, bytes]]] = {}
    for label, lo, hi in BANDS:
        band = sorted(p for p in sizes if lo <= p[0] < hi)
        picked = band[:: max(1, len(band) // per_band)][:per_band]
        sets[f"{label} (data set, {len(band)} of {len(sizes)})"] = [(p.name, p.read_bytes()) for _, p in picked]
    sets[CAMERA] = [(f"camera{i}.jpg", camera_jpeg(i)) for i in range(cameras)]
    return sets


def percentile_ms(times: list[float]) -> tuple[float, float]:
    """(median, p95) in milliseconds."""
    return statistics.median(times) * 1e3, float(np.percentile(times, 95)) * 1e3


def predictors(names: list[str]) -> dict[tuple[str, str], object]:
    """(checkpoint, variant) -> Predictor for torch fp32, ONNX fp32 and ONNX int8."""
    from dance.inference import serving

    out = {}
    for name in names:
        stem = paths.WEIGHTS_DIR / name
        out[(name, "torch fp32")] = serving.load(stem, backend="torch")
        out[(name, "ONNX fp32")] = serving.load(stem, backend="onnx", precision="fp32")
        out[(name, "ONNX int8")] = serving.load(stem, backend="onnx", precision="int8")
        assert out[(name, "ONNX int8")].precision == "int8", f"{name} ships no int8 model"
    return out


def model_latency(preds: dict, runs: int) -> dict:
    """Batch-1 model-only latency (random input at the model's size), variants interleaved call by call."""
    times = {key: [] for key in preds}
    inputs = {key: np.random.default_rng(0).standard_normal((1, 3, p.ckpt.image_size, p.ckpt.image_size))
              .astype(np.float32) for key, p in preds.items()}
    for i in range(runs + 5):
        for key, p in preds.items():
            start = time.perf_counter()
            p.engine.run(inputs[key])
            if i >= 5:  # the first calls warm up
                times[key].append(time.perf_counter() - start)
    return {key: percentile_ms(t) for key, t in times.items()}


def end_to_end(preds: dict, photos: dict, reps: int) -> dict:
    """Predictor.predict([(name, bytes)]) per photo (decode, resize, model, softmax): (band, key) -> (median, p95)."""
    times = {(band, key): [] for band in photos for key in preds}
    for p in preds.values():
        p.predict([photos[CAMERA][0]])  # warm up
    for _ in range(reps):
        for band, items in photos.items():
            for item in items:
                for key, p in preds.items():
                    start = time.perf_counter()
                    p.predict([item])
                    times[(band, key)].append(time.perf_counter() - start)
    return {k: percentile_ms(t) for k, t in times.items()}


def decoding(photos: dict, sides: list[int], reps: int) -> list[tuple[str, int, float, float]]:
    """(band, side, full decode ms, draft decode ms) medians: `load_image` with and without `min_side`."""
    from dance.data.images import load_image

    rows = []
    for band, items in photos.items():
        for side in sides:
            full, draft = [], []
            for _ in range(reps):
                for name, data in items:
                    for bucket, kwargs in ((full, {}), (draft, {"min_side": side})):
                        start = time.perf_counter()
                        load_image(data, name, **kwargs)
                        bucket.append(time.perf_counter() - start)
            rows.append((band, side, statistics.median(full) * 1e3, statistics.median(draft) * 1e3))
    return rows


def cold_starts(data_dir: Path, runs: int) -> list[tuple[str, float, float]]:
    """Wall seconds (median, min) of fresh processes: bare imports, torch import, `dance predict` on 1 and 41 photos."""
    photos = sorted((data_dir / "test").glob("*.jpg"))[:41]
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    commands = [
        ("`python -c 'import onnxruntime, PIL.Image, numpy'`", [py, "-c", "import onnxruntime, PIL.Image, numpy"]),
        ("`python -c 'import torch'` (for reference)", [py, "-c", "import torch"]),
        ("`python -m dance predict one.jpg`", [py, "-m", "dance", "predict", str(photos[0])]),
        (f"`python -m dance predict` {len(photos)} photos", [py, "-m", "dance", "predict", *map(str, photos)]),
        ("`python -m dance predict one.jpg --weights large`",
         [py, "-m", "dance", "predict", str(photos[0]), "--weights", "large"]),
    ]
    times: dict[str, list[float]] = {label: [] for label, _ in commands}
    for _ in range(runs):  # interleaved
        for label, cmd in commands:
            start = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
            times[label].append(time.perf_counter() - start)
    return [(label, statistics.median(t), min(t)) for label, t in times.items()]


def section(args, lat, e2e, dec, cold, photos, loads) -> str:
    """The Markdown section."""
    keys = list(lat)
    lines = [START, "## Serving: torch-free ONNX, int8, real photos", "",
             f"Command: `{args.command}`  ",
             f"Date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}; machine: {platform.machine()}, "
             f"{os.cpu_count()} cores, **shared with other jobs while this ran** (load average at start "
             f"{loads[0]}, at end {loads[1]}): variants are interleaved call by call so the load hits them alike"
             + (", but with the load average above the core count these figures measure contention, not the code "
                "(torch's spinning threads suffer most). Rerun the command above on a quiet machine."
                if float(loads[0].split()[0]) > (os.cpu_count() or 1) else "."), "",
             "### Model only, batch 1 (random input at the model's size)", "",
             "| checkpoint | input | variant | median ms | p95 ms |", "|---|---|---|---|---|"]
    size = {key[0]: p.ckpt.image_size for key, p in args.preds.items()}
    for key in keys:
        lines.append(f"| {key[0]} | {size[key[0]]} | {key[1]} | {lat[key][0]:.1f} | {lat[key][1]:.1f} |")
    lines += ["", "### End to end from JPEG bytes (`Predictor.predict([(name, bytes)])`: decode with draft mode, "
              "resize, model, softmax)", "",
              "Median / p95 ms per photo. Photos: the data set's training JPEGs spread over each size band "
              f"(up to {args.per_band} per band) and {args.cameras} synthetic 4000x3000 camera JPEGs "
              f"(quality 92, {len(photos[CAMERA][0][1]) / 1e6:.1f} MB each); {args.reps} passes.", "",
              "| photos | " + " | ".join(f"{k[0]} {k[1]}" for k in keys) + " |",
              "|---|" + "---|" * len(keys)]
    for band in photos:
        cells = " | ".join(f"{e2e[(band, k)][0]:.1f} / {e2e[(band, k)][1]:.1f}" for k in keys)
        lines.append(f"| {band} ({len(photos[band])} photos) | {cells} |")
    lines += ["", "### JPEG decoding: full vs draft mode (`load_image(data, min_side=side)`)", "",
              "| photos | side needed | full ms | draft ms |", "|---|---|---|---|"]
    lines += [f"| {band} | {side} | {full:.1f} | {draft:.1f} |" for band, side, full, draft in dec]
    lines += ["", f"### Cold start (fresh process, wall seconds, median and best of {args.cold_runs})", "",
              "| command | median s | best s |", "|---|---|---|"]
    lines += [f"| {label} | {med:.2f} | {best:.2f} |" for label, med, best in cold]
    lines += ["", "`dance predict` serves the int8 ONNX model by default and never imports torch "
              "(tests/test_torch_free.py).", END, ""]
    return "\n".join(lines)


def keep_section(old_report: str) -> str:
    """The serving section of an existing speed.md (so `python -m bench.speed` keeps it), or ''."""
    if START in old_report and END in old_report:
        return old_report[old_report.index(START):old_report.index(END) + len(END)] + "\n"
    return ""


def write_section(path: Path, text: str) -> None:
    """Replace (or append) the serving section of `path`."""
    from dance.fileio import atomic_write_text

    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if START in old and END in old:
        new = old[:old.index(START)] + text + old[old.index(END) + len(END):].lstrip("\n")
    else:
        new = old.rstrip("\n") + "\n\n" + text
    atomic_write_text(path, new)


def main(argv: list[str] | None = None) -> int:
    """Run the serving benchmarks and write their section of bench/speed.md (or print with --output -)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", nargs="+", default=["default", "large"])
    p.add_argument("--runs", type=int, default=100, help="model-only calls per variant")
    p.add_argument("--per-band", type=int, default=8, help="data-set photos per size band")
    p.add_argument("--cameras", type=int, default=4, help="synthetic 12 MP photos")
    p.add_argument("--reps", type=int, default=3, help="end-to-end passes over the photos")
    p.add_argument("--cold-runs", type=int, default=5)
    p.add_argument("--data", help="data folder (default: the usual search)")
    p.add_argument("--output", default="bench/speed.md", help="Markdown file whose section is replaced, or -")
    args = p.parse_args(argv)
    args.command = "python -m bench.serving " + " ".join(argv if argv is not None else sys.argv[1:])
    data_dir = paths.find_data_dir(args.data)
    loads = [" ".join(f"{v:.2f}" for v in os.getloadavg())]
    print("photos", flush=True)
    photos = photo_set(data_dir, args.per_band, args.cameras)
    args.preds = predictors(args.weights)
    print("model latency", flush=True)
    lat = model_latency(args.preds, args.runs)
    print("end to end", flush=True)
    e2e = end_to_end(args.preds, photos, args.reps)
    print("decoding", flush=True)
    sides = sorted({p.decode_side for p in args.preds.values()})
    dec = decoding({b: v for b, v in photos.items() if b.startswith(("> 2", "0.5", CAMERA))}, sides, args.reps)
    print("cold starts", flush=True)
    cold = cold_starts(data_dir, args.cold_runs)
    loads.append(" ".join(f"{v:.2f}" for v in os.getloadavg()))
    text = section(args, lat, e2e, dec, cold, photos, loads)
    print(text)
    if args.output != "-":
        write_section(Path(args.output), text)
        print(f"wrote the serving section of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
