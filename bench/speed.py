"""Benchmarks behind bench/speed.md: inference latency per backend, end-to-end predict, training throughput.

Every figure in speed.md is produced here (`python -m bench.speed`); tests never time anything.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from bench.browser import ROOT, SCRIPT_IDLE, free_port, launch_chromium, start_app, stop_process, wait_healthy
from dance import paths
from dance.config import TrainConfig
from dance.errors import DanceError
from dance.models import checkpoint
from dance.models.registry import REGISTRY
from dance.models.sidecar import suffixed
from dance.models.spec import RunSpec, resolve_run_spec

DEFAULT_MODEL = "effnet-lite0"
CLASSES = 8


@dataclass
class Timing:
    """Per-call wall times in seconds."""

    times: list[float]

    @property
    def median_ms(self) -> float:
        """Median in milliseconds."""
        return statistics.median(self.times) * 1e3

    @property
    def p95_ms(self) -> float:
        """95th percentile in milliseconds."""
        return float(np.percentile(self.times, 95)) * 1e3


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 10) -> Timing:
    """Call `fn` `warmup` times untimed, then `runs` times timed."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Timing(times)


def machine_info() -> dict[str, str]:
    """CPU model, cores, load and library versions: printed beside every figure."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime
    import PIL

    info = {
        "cpu": cpu, "cores": str(os.cpu_count()), "torch threads": str(torch.get_num_threads()),
        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "pillow": PIL.__version__,
        "python": platform.python_version(),
    }
    try:
        info["load average (1/5/15 min, at start)"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        pass
    return info


def _untrained_checkpoint(name: str, folder: Path) -> checkpoint.Checkpoint:
    """A checkpoint of `name` with untrained head (latency does not depend on the weights' values)."""
    run = resolve_run_spec(TrainConfig(model=name))
    torch.manual_seed(0)
    model = run.model.create(CLASSES, run.input_size, pretrained=False).eval()
    stem = checkpoint.save(folder / name, model, _untrained_meta(run))
    return checkpoint.load(stem)


def _untrained_meta(run: RunSpec) -> dict:
    """The sidecar of an untrained checkpoint of `run` with CLASSES made-up classes."""
    return {"arch": run.model.name, "classes": [f"c{i}" for i in range(CLASSES)], "image_size": run.input_size,
            "mean": list(run.mean), "std": list(run.std), "run_spec": run.to_dict()}


# --- inference latency -------------------------------------------------------------------------------------------

def model_latency(ckpt: checkpoint.Checkpoint, runs: int, batch_runs: int, batch: int = 32) -> list[dict]:
    """Batch-1 latency and batch-`batch` throughput for eager torch, inference_mode + channels_last and ORT."""
    from dance.models.export import export_onnx
    from dance.models.onnx_session import OnnxSession

    size = ckpt.image_size
    model = ckpt.model.eval()
    x1 = torch.randn(1, 3, size, size)
    xb = torch.randn(batch, 3, size, size)
    onnx_file = export_onnx(ckpt, suffixed(ckpt.path, ".onnx"))
    session = OnnxSession(onnx_file)
    cl_model = ckpt.model  # converted in place below, after the eager runs

    def eager(x):
        with torch.no_grad():
            return model(x)

    rows = []
    for label, make in (
        ("torch eager (no_grad)", lambda: eager),
        ("torch inference_mode + channels_last", lambda: _channels_last_runner(cl_model)),
        ("ONNX Runtime", lambda: lambda x: session.run(x.numpy())),
    ):
        fn = make()
        single = time_calls(lambda: fn(x1), runs)
        many = time_calls(lambda: fn(xb), batch_runs, warmup=2)
        rows.append({"model": ckpt.meta["arch"], "size": size, "backend": label, "median_ms": single.median_ms,
                     "p95_ms": single.p95_ms, "batch_images_s": batch / statistics.median(many.times)})
    cl_model.to(memory_format=torch.contiguous_format)
    return rows


def _channels_last_runner(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """`model` in channels_last under inference_mode."""
    model.to(memory_format=torch.channels_last)

    def run(x):
        with torch.inference_mode():
            return model(x.contiguous(memory_format=torch.channels_last))
    return run


# --- end to end --------------------------------------------------------------------------------------------------

def typical_photo(data_dir: Path | None) -> tuple[str, bytes]:
    """The data set's median-sized training JPEG (name, bytes), or a synthetic 275x183 photo-like JPEG."""
    if data_dir is not None:
        files = sorted((data_dir / "train").glob("*.jpg"), key=lambda p: (p.stat().st_size, p.name))
        if files:
            chosen = files[len(files) // 2]
            return chosen.name, chosen.read_bytes()
    from PIL import Image

    rng = np.random.default_rng(0)
    arr = (rng.random((183, 275, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="JPEG", quality=90)
    return "synthetic.jpg", buffer.getvalue()


def end_to_end(ckpt: checkpoint.Checkpoint, photo: tuple[str, bytes], runs: int) -> list[dict]:
    """Predictor.predict on JPEG bytes (decode + resize + model + softmax), per backend."""
    from dance.inference import serving
    from dance.models.export import export_onnx

    rows = []
    name, data = photo
    if backend_needs_export(ckpt):
        export_onnx(ckpt)
    for backend in ("torch", "onnx"):
        predictor = serving.from_checkpoint(ckpt) if backend == "torch" else serving.load(ckpt.path, backend="onnx")
        timing = time_calls(lambda: predictor.predict([(name, data)]), runs)
        rows.append({"backend": backend, "median_ms": timing.median_ms, "p95_ms": timing.p95_ms})
    return rows


def backend_needs_export(ckpt: checkpoint.Checkpoint) -> bool:
    """Whether the checkpoint ships no verified fp32 ONNX file yet (bench checkpoints are made on the fly)."""
    from dance.models.onnx_session import recorded

    return recorded(checkpoint.read_sidecar(ckpt.path), "fp32") is None


def decode_costs(photo: tuple[str, bytes], runs: int) -> dict:
    """Time of each preprocessing step for one photo: decode, resize to the cache side, tensor transform."""
    from dance.data.images import load_image, resize_shorter
    from dance.data.tensors import to_uint8_tensor
    from dance.models.preprocess import build_eval_transform

    name, data = photo
    run = resolve_run_spec(TrainConfig(model=DEFAULT_MODEL))
    side = run.eval_side
    transform = build_eval_transform(run.input_size, run.mean, run.std)
    img = load_image(data, name)
    small = resize_shorter(img, side)
    return {
        "decode": time_calls(lambda: load_image(data, name), runs).median_ms,
        "resize": time_calls(lambda: resize_shorter(img, side), runs).median_ms,
        "tensor + normalise": time_calls(lambda: transform(to_uint8_tensor(small)), runs).median_ms,
        "pixels": f"{img.size[0]}x{img.size[1]}",
    }


def draft_decode_gain(data_dir: Path | None, runs: int) -> dict | None:
    """Decode time of the data set's largest JPEG: full `load_image` vs Pillow draft mode at the cache side."""
    if data_dir is None:
        return None
    files = sorted((data_dir / "train").glob("*.jpg"), key=lambda p: (p.stat().st_size, p.name))
    if not files:
        return None
    from PIL import Image

    from dance.data.images import load_image

    data = files[-1].read_bytes()
    side = resolve_run_spec(TrainConfig(model=DEFAULT_MODEL)).cache_side

    def draft():
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (side, side))  # JPEG DCT scaling: decode at 1/2, 1/4 or 1/8 size directly
            img.load()
            return img.size

    full = load_image(data, files[-1].name)
    return {"name": files[-1].name, "kb": len(data) / 1e3, "pixels": f"{full.size[0]}x{full.size[1]}",
            "draft_pixels": "x".join(map(str, draft())),
            "full_ms": time_calls(lambda: load_image(data, files[-1].name), runs, warmup=2).median_ms,
            "draft_ms": time_calls(draft, runs, warmup=2).median_ms}


# --- training throughput -----------------------------------------------------------------------------------------

class _NaiveDataset(torch.utils.data.Dataset):
    """What most notebooks do: open and decode the JPEG with PIL on every access, torchvision PIL transforms."""

    def __init__(self, paths: Sequence[Path], labels: np.ndarray, transform):
        self.paths, self.labels, self.transform = list(paths), labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from PIL import Image

        with Image.open(self.paths[index]) as img:
            return self.transform(img.convert("RGB")), int(self.labels[index])


def _naive_transform(size: int, mean, std):
    """The same augmentation family as ours ('strong' preset), as classic torchvision PIL transforms."""
    from torchvision import transforms as T

    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.35, 1.0)), T.RandomHorizontalFlip(), T.RandomAffine(15, (0.1, 0.1)),
        T.TrivialAugmentWide(), T.ColorJitter(0.2, 0.2, 0.2), T.ToTensor(), T.Normalize(mean, std),
    ])


def training_throughput(data_dir: Path, model_name: str, images: int, epochs: int, steps: int,
                        workers: int = 2, device: str = "cpu", batch: int = 32) -> dict:
    """Images/s of our pipeline vs the naive one: data loading alone, and full training steps with the model.

    Ours: every image decoded once into a uint8 cache (its one-time cost reported separately), augmented on
    tensors, in-process and in `workers` DataLoader processes. Naive: `workers` processes re-decoding each JPEG
    with PIL. On CUDA the steps run as the engine runs them (bf16 autocast, channels_last).
    """
    from dance.data.labels import load_labelled
    from dance.training.engine import device_name, make_optimizer, pick_device, place_model

    run = resolve_run_spec(TrainConfig(model=model_name, freeze_epochs=0))
    dataset = load_labelled(data_dir, limit=images)
    if len(dataset.labels) < batch:  # the naive loader drops incomplete batches: it would yield nothing
        raise DanceError(f"The training benchmark needs at least {batch} images; {len(dataset.labels)} found.")
    loaders, decode_once_s = _pipelines(run, dataset, batch, workers)
    dev = pick_device(device)
    torch.manual_seed(0)
    model = place_model(run.model.create(len(dataset.classes), run.input_size, pretrained=False), dev)
    optimizer, _ = make_optimizer(TrainConfig(model=model_name, freeze_epochs=0), model, steps)
    rows = []
    if steps:
        _step_rate(model, optimizer, loaders["ours, in-process"], steps, dev)  # warm-up: allocations, CUDA kernels
    for name, loader in loaders.items():
        rows.append({"pipeline": name, "loader": _load_rate(loader, epochs),
                     "train": _step_rate(model, optimizer, loader, steps, dev) if steps else float("nan")})
    return {"images": len(dataset.labels), "decode_once_s": decode_once_s, "model": model_name, "workers": workers,
            "epochs": epochs, "steps": steps, "batch": batch, "device": device_name(dev), "rows": rows}


def _pipelines(run: RunSpec, dataset, batch: int, workers: int) -> tuple[dict, float]:
    """The loaders compared ({name: DataLoader}, the naive one last) and the seconds ours took to decode once."""
    from dance.config import AugmentConfig
    from dance.data.cache import ImageCache
    from dance.training.train import make_loader
    from dance.training.transforms import build_train_transform

    labels, index = dataset.labels, np.arange(len(dataset.labels))
    start = time.perf_counter()
    tensors = ImageCache(side=run.cache_side).load_all(dataset.paths)
    decode_once_s = time.perf_counter() - start
    augment = build_train_transform(AugmentConfig(), run.input_size, run.mean, run.std)
    loaders = {"ours, in-process": make_loader(tensors, labels, index, augment, batch, True, 0)}
    if workers:
        loaders[f"ours, {workers} workers"] = make_loader(tensors, labels, index, augment, batch, True, 0, workers)
    loaders[f"naive, {workers} workers"] = torch.utils.data.DataLoader(
        _NaiveDataset(dataset.paths, labels, _naive_transform(run.input_size, run.mean, run.std)), batch_size=batch,
        shuffle=True, num_workers=workers, drop_last=True, persistent_workers=False)
    return loaders, decode_once_s


def _load_rate(loader, epochs: int) -> float:
    """Images/s of iterating `loader` for `epochs` epochs (data loading alone)."""
    seen, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _ in loader:
            seen += len(images)
    return seen / (time.perf_counter() - start)


def _step_rate(model, optimizer, loader, steps: int, dev: torch.device) -> float:
    """Images/s of `steps` training steps (forward, backward, optimiser) on batches from `loader`."""
    model.train()
    seen, done, start = 0, 0, time.perf_counter()
    while done < steps:
        for images, targets in loader:
            images, targets = images.to(dev, non_blocking=True), targets.to(dev, non_blocking=True)
            if dev.type == "cuda":
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                loss = torch.nn.functional.cross_entropy(model(images).float(), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen, done = seen + len(images), done + 1
            if done >= steps:
                break
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


# --- the app -----------------------------------------------------------------------------------------------------

def app_timings(photo: tuple[str, bytes], timeout: float = 60.0, weights_dir: Path | None = None) -> dict:
    """Seconds from starting the app as `make run` does to the first rendered page, and from upload to the shown
    prediction. Uses headless Chromium (Debian's `chromium`) through Playwright; RuntimeError when unavailable."""
    if not (ROOT / "app.py").is_file():
        raise RuntimeError("app.py not found")
    from playwright.sync_api import sync_playwright

    env = {paths.WEIGHTS_ENV: str(weights_dir)} if weights_dir is not None else {}
    port = free_port()
    started = time.perf_counter()
    server = start_app(port, env)
    try:
        wait_healthy(server, port, timeout)
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(timeout * 1000)
            page.goto(f"http://127.0.0.1:{port}")
            page.locator("input[type='file']").first.wait_for(state="attached")
            page.wait_for_function(SCRIPT_IDLE)
            first_page_s = time.perf_counter() - started
            name, data = photo
            uploaded = time.perf_counter()
            page.locator("input[type='file']").first.set_input_files(
                files=[{"name": name, "mimeType": "image/jpeg", "buffer": data}])
            page.wait_for_function(
                "() => /(confidence|Top probability) \\d+(\\.\\d+)?%/.test(document.body.innerText)")
            upload_s = time.perf_counter() - uploaded
            browser.close()
    finally:
        stop_process(server)
    return {"first_page_s": first_page_s, "upload_to_prediction_s": upload_s}


# --- report ------------------------------------------------------------------------------------------------------

@dataclass
class BenchOptions:
    """What to run and how long."""

    runs: int = 200
    batch_runs: int = 10
    models: list[str] = field(default_factory=lambda: list(REGISTRY))
    threads: int = 0  # 0: all cores
    train_images: int = 128
    train_epochs: int = 2
    train_steps: int = 6
    workers: int = 2
    train_device: str = "cpu"
    latency: bool = True
    train: bool = True
    app: bool = False
    weights: list[str] = field(default_factory=lambda: ["default"])
    data: str | None = None
    command: str = ""


def training_section(t: dict) -> list[str]:
    """Markdown for a training_throughput() result: each pipeline's images/s and its ratio to the naive one."""
    naive = t["rows"][-1]
    lines = ["## Training input pipeline: ours vs the naive notebook pipeline", "",
             f"{t['images']} real training images, batch {t['batch']}, {t['model']} at its input size with the "
             f"default 'strong' augmentation, training on {t['device']}. *Ours*: each JPEG decoded once into a "
             f"uint8 tensor cache (one-time cost {t['decode_once_s']:.1f} s), augmentation on tensors, in the "
             "training process or in DataLoader workers (`--workers`). *Naive*: a DataLoader whose workers "
             "re-open and decode each JPEG with PIL and apply torchvision PIL transforms every epoch.", "",
             f"| pipeline | data loading only ({t['epochs']} epochs): images/s | vs naive | training steps "
             f"(forward + backward + AdamW, {t['steps']} steps): images/s | vs naive |", "|---|---|---|---|---|"]
    for row in t["rows"]:
        lines.append(f"| {row['pipeline']} | {row['loader']:.0f} | {row['loader'] / naive['loader']:.2f}x | "
                     f"{row['train']:.1f} | {row['train'] / naive['train']:.2f}x |")
    return lines + [""]


def run(opts: BenchOptions, log: Callable[[str], None] = print) -> str:
    """Run the benchmarks and return speed.md as Markdown."""
    from dance.paths import find_data_dir

    torch.set_num_threads(opts.threads or os.cpu_count() or 1)
    lines = _header(opts)
    try:
        data_dir = find_data_dir(opts.data)
    except DanceError:
        data_dir = None
    photo = typical_photo(data_dir)
    if opts.latency:
        with tempfile.TemporaryDirectory(prefix="dance-bench-") as tmp:
            lines += _latency_section(opts, Path(tmp), log)
            log("end to end")
            lines += _end_to_end_section(opts, photo, data_dir, Path(tmp) / "e2e")
    if opts.train and data_dir is not None:
        log("training throughput")
        lines += training_section(training_throughput(data_dir, DEFAULT_MODEL, opts.train_images, opts.train_epochs,
                                                      opts.train_steps, opts.workers, opts.train_device))
    if opts.app:
        log("app")
        lines += _app_section(photo)
    return "\n".join(lines + NOTES) + "\n"


NOTES = ["## Notes", "",
         "- Quick check in seconds: `python -m bench.speed --runs 20 --batch-runs 2 --models seed-cnn "
         "--no-train --output -`.",
         "- `dance.inference.serving.load` (the CLI's and the app's default) runs the ONNX file shipped beside "
         "the checkpoint (int8 first) when its SHA-256 matches the sidecar, without importing torch; else torch.",
         "- GPU figures (H200: training time, utilisation, the input pipelines on CUDA) are in `bench/speed-gpu.md`,"
         " from `bench/gpu_bench.sh` and `bench/gpu_speed.sh`.",
         "- Videos (frames per second end to end, decode + predict, on a synthetic 1080p clip) are in "
         "`bench/video.md`, from `python -m bench.video_speed`.", ""]


def _header(opts: BenchOptions) -> list[str]:
    """Title, command, date, the machine's table and, on a loaded machine, a warning about the figures."""
    date = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines = ["# Speed", "", f"Command: `{opts.command}`  ", f"Date: {date}", ""]
    lines += ["| machine | |", "|---|---|", *[f"| {k} | {v} |" for k, v in machine_info().items()], ""]
    loadavg = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if loadavg > 0.5:
        lines += [f"**Shared, loaded machine**: the 1-minute load average was {loadavg:.2f} on "
                  f"{os.cpu_count()} cores when the run started (other jobs were running), so absolute "
                  "figures are noisy and pessimistic; ratios within one run are the meaningful part.", ""]
    return lines


def _latency_section(opts: BenchOptions, folder: Path, log: Callable[[str], None]) -> list[str]:
    """Batch-1 latency and batch-32 throughput of every model and backend (untrained checkpoints in `folder`)."""
    lines = [f"## Batch-1 latency and batch-32 throughput (CPU, {torch.get_num_threads()} threads)", "",
             f"Median and p95 over {opts.runs} calls after 10 warm-up calls; batch 32: median of "
             f"{opts.batch_runs} calls. Random input at the model's own size; weights untrained (latency "
             "does not depend on their values).", "",
             "| model | input | backend | median ms | p95 ms | batch-32 images/s |", "|---|---|---|---|---|---|"]
    for name in opts.models:
        log(f"latency: {name}")
        for row in model_latency(_untrained_checkpoint(name, folder), opts.runs, opts.batch_runs):
            lines.append(f"| {row['model']} | {row['size']} | {row['backend']} | {row['median_ms']:.1f} | "
                         f"{row['p95_ms']:.1f} | {row['batch_images_s']:.0f} |")
    return lines + [""]


def _end_to_end_section(opts: BenchOptions, photo: tuple[str, bytes], data_dir: Path | None,
                        folder: Path) -> list[str]:
    """JPEG bytes to probabilities per checkpoint and backend, the cost of each step, and draft-mode decoding."""
    costs = decode_costs(photo, opts.runs)
    lines = ["## End to end: JPEG bytes -> probabilities (the app's path)", "",
             f"`Predictor.predict([(name, bytes)])` on `{photo[0]}` ({len(photo[1]) / 1e3:.1f} kB, "
             f"{costs['pixels']} px; the data set's median-sized photo). {opts.runs} calls after warm-up.", "",
             "| checkpoint | backend | median ms | p95 ms |", "|---|---|---|---|"]
    for name in opts.weights:
        try:
            ckpt = checkpoint.load(name)
            which = f"`{ckpt.name}` ({ckpt.meta['arch']}, {ckpt.image_size} px)"
        except DanceError:
            ckpt = _untrained_checkpoint(DEFAULT_MODEL, folder)
            which = f"untrained {DEFAULT_MODEL} (no `{name}` checkpoint found)"
        lines += [f"| {which} | {r['backend']} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} |"
                  for r in end_to_end(ckpt, photo, opts.runs)]
    lines += ["", f"Of which (median ms): decode {costs['decode']:.2f}, resize {costs['resize']:.2f}, "
              f"tensor + normalise {costs['tensor + normalise']:.2f}.", ""]
    big = draft_decode_gain(data_dir, min(opts.runs, 20))
    if big:
        lines += [f"Largest data-set JPEG (`{big['name']}`, {big['kb']:.0f} kB, {big['pixels']} px): full "
                  f"decode {big['full_ms']:.0f} ms; Pillow draft mode at the cache side decodes it to "
                  f"{big['draft_pixels']} px in {big['draft_ms']:.0f} ms (not yet used by `load_image`).", ""]
    return lines


def _app_section(photo: tuple[str, bytes]) -> list[str]:
    """Start-to-first-page and upload-to-answer seconds of the app, twice (cold and warm ONNX cache)."""
    with tempfile.TemporaryDirectory(prefix="dance-bench-app-") as tmp:
        weights_dir, which = None, "the shipped `weights/default`"
        if not (paths.weights_root() / "default.safetensors").is_file():
            weights_dir, which = Path(tmp), f"an untrained {DEFAULT_MODEL} as `default` (none shipped yet)"
            torch.manual_seed(0)
            run = resolve_run_spec(TrainConfig(model=DEFAULT_MODEL))
            checkpoint.save(weights_dir / "default", run.model.create(CLASSES, pretrained=False), _untrained_meta(run))
        lines = ["## App responsiveness (headless Chromium)", "",
                 f"Model: {which}. Start = `python -m dance.ui.serve` (what `make run` starts: `streamlit run "
                 "app.py` with the first page's imports warmed in a background thread) until the Predict page "
                 f"has rendered; upload = `{photo[0]}` set on the file input until its probability is shown.", "",
                 "| start | start to first page s | upload to shown prediction s |", "|---|---|---|"]
        for attempt in ("first", "second (file cache warm)"):
            try:
                a = app_timings(photo, weights_dir=weights_dir)
                lines.append(f"| {attempt} | {a['first_page_s']:.2f} | {a['upload_to_prediction_s']:.2f} |")
            except Exception as exc:  # a browser/app failure is reported, not fatal to the other figures
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
                lines.append(f"| {attempt} | not measured: {reason} | |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    """Run the speed benchmarks and write bench/speed.md (or print with --output -): `python -m bench.speed`."""
    p = argparse.ArgumentParser(prog="python -m bench.speed", description=__doc__.splitlines()[0])
    p.add_argument("--data", help="data set folder (default: the usual search path)")
    p.add_argument("--runs", type=int, default=200, help="timed batch-1 calls per measurement (after warm-up)")
    p.add_argument("--batch-runs", type=int, default=10, help="timed batch-32 calls per measurement")
    p.add_argument("--models", nargs="+", default=list(REGISTRY), choices=list(REGISTRY))
    p.add_argument("--threads", type=int, default=0, help="torch / ONNX Runtime threads (0: all cores)")
    p.add_argument("--weights", nargs="+", default=["default"], help="checkpoints for the end-to-end figures")
    p.add_argument("--train-images", type=int, default=128, help="images in the training-throughput run")
    p.add_argument("--train-steps", type=int, default=6, help="timed training steps per pipeline (0: skip)")
    p.add_argument("--no-train", action="store_true", help="skip the training-throughput part")
    p.add_argument("--no-latency", action="store_true", help="skip the latency and end-to-end parts")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of both training pipelines (default 2)")
    p.add_argument("--train-device", choices=("cpu", "cuda"), default="cpu", help="device of the training steps")
    p.add_argument("--app", action="store_true", help="also time the Streamlit app in headless Chromium")
    p.add_argument("--output", default="bench/speed.md", help="Markdown file to write, or - to only print")
    args = p.parse_args(argv)
    from dance.fileio import atomic_write_text

    opts = BenchOptions(runs=args.runs, batch_runs=args.batch_runs, models=args.models, threads=args.threads,
                        train_images=args.train_images, train_steps=args.train_steps, train=not args.no_train,
                        app=args.app, weights=args.weights, data=args.data, workers=args.workers,
                        train_device=args.train_device, latency=not args.no_latency,
                        command=" ".join(["python -m bench.speed", *(argv if argv is not None else sys.argv[1:])]))
    report = run(opts, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.output != "-" and Path(args.output).exists():  # keep the section `python -m bench.serving` writes
        from bench.serving import keep_section

        report = report.rstrip("\n") + "\n\n" + keep_section(Path(args.output).read_text(encoding="utf-8"))
    if args.output == "-":
        print(report)
    else:
        atomic_write_text(args.output, report)
        print(report)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
