"""Nothing the user cares about is lost: atomic writes, SIGKILL mid-training, resume, the shipped default, the data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import _fingerprint, make_dataset
from safetensors.torch import load as load_safetensors_bytes

from dance import fileio, paths
from dance.config import TrainConfig
from dance.errors import CheckpointError
from dance.models import checkpoint
from dance.training.train import state_paths, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("fail_at", ["fsync", "replace"])
def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch, fail_at):
    target = tmp_path / "report.json"
    fileio.atomic_write_json(target, {"version": 1})
    original = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, fail_at, boom)
    with pytest.raises(OSError, match="No space left"):
        fileio.atomic_write_json(target, {"version": 2, "big": "x" * 100_000})
    assert target.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # the temp file was removed


def test_interrupted_checkpoint_save_keeps_previous_checkpoint(tiny_checkpoint, tmp_path, monkeypatch):
    stem = tmp_path / "model"
    ckpt = checkpoint.load(tiny_checkpoint)
    checkpoint.save(stem, ckpt.model, {k: ckpt.meta[k] for k in ("arch", "classes", "image_size", "mean", "std")})
    before = {s: stem.with_suffix(s).read_bytes() for s in (".safetensors", ".json")}

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # like Ctrl+C in the middle of writing

    monkeypatch.setattr(fileio.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(stem, ckpt.model, {**ckpt.meta, "classes": ["x", "y", "z"]})
    assert {s: stem.with_suffix(s).read_bytes() for s in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    monkeypatch.undo()
    assert checkpoint.load(stem).classes == ckpt.classes


@pytest.mark.parametrize("spelling", ["default", "default.safetensors", "default.json", "../weights/default"])
def test_default_weights_never_overwritten_implicitly(synth_data, spelling):
    before = {p.name: p.read_bytes() for p in paths.WEIGHTS_DIR.glob("default.*")}
    output = paths.WEIGHTS_DIR / spelling
    with pytest.raises(CheckpointError, match="Refusing to overwrite weights/default"):
        train(TrainConfig(model="seed-cnn", epochs=1, image_size=64), synth_data, output)
    assert {p.name: p.read_bytes() for p in paths.WEIGHTS_DIR.glob("default.*")} == before


def _train_command(data: Path, stem: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dance", "train", "--data", str(data), "--output", str(stem), "--model", "seed-cnn",
            "--image-size", "64", "--batch-size", "4", "--epochs", "3", "--seed", "11", "--freeze-epochs", "0",
            "--val-fraction", "0.25", "--aug-preset", "article", *extra]


# one intra-op thread: on a shared 2-core machine, thread contention makes tiny epochs many times slower
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _run(cmd: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = ENV
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=400)


def test_sigkill_mid_epoch_loses_nothing_and_resume_matches(tmp_path):
    data = make_dataset(tmp_path / "data", per_class=10, test=1)
    data_before = _fingerprint(data)
    stem = tmp_path / "run"
    files = [stem.with_suffix(".safetensors"), stem.with_suffix(".json"), tmp_path / "run.history.json"]

    # 1. an uninterrupted seeded run: the checkpoint the user already has, and the reference result
    done = _run(_train_command(data, stem), tmp_path)
    assert done.returncode == 0, done.stderr
    previous = {f: f.read_bytes() for f in files}

    # 2. the same run again, SIGKILLed as soon as epoch 1 is reported (its state is saved; epoch 2 is running)
    env = ENV
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(_train_command(data, stem, "--overwrite"), stdout=subprocess.PIPE, stderr=err, text=True,
                                cwd=tmp_path, env=env)
        try:
            for line in proc.stdout:
                if line.startswith("epoch   1"):
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            proc.kill()
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    state_weights, state_json = state_paths(stem)
    epochs_done = json.loads(state_json.read_text())["epoch"]
    assert epochs_done in (1, 2)  # 1 unless the machine stalled past the whole second epoch
    assert {f: f.read_bytes() for f in files} == previous  # the previous checkpoint is untouched...
    assert checkpoint.load(stem).meta["history"][-1]["epoch"] == 3  # ...and loadable
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written temp files left behind

    # 3. --resume continues from the last completed epoch and reaches the uninterrupted result
    resumed = _run(_train_command(data, stem, "--resume", "--overwrite"), tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    reported = [int(line.split()[1]) for line in resumed.stdout.splitlines() if line.startswith("epoch")]
    assert reported == list(range(epochs_done + 1, 4))
    history = json.loads(stem.with_suffix(".json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    a = load_safetensors_bytes(previous[files[0]])
    b = load_safetensors_bytes(stem.with_suffix(".safetensors").read_bytes())
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-4) for k in a)
    assert not state_weights.exists() and not state_json.exists()
    assert _fingerprint(data) == data_before  # training never writes into the data folder


@pytest.mark.parametrize("changes, message", [
    ({"augment": {"preset": "light"}}, "unknown augmentation preset 'light'"),
    ({"optimizer": "sgd"}, "unknown optimizer 'sgd'"),
    ({"schedule": "step"}, "unknown schedule 'step'"),
    ({"batch_size": 0}, r"batch size must be between 1 and 4096 \(got 0\)"),
    ({"lr": float("nan")}, "learning rate must be a number, not nan"),
    ({"image_size": 8}, "image size must be between 32 and 1024"),
])
def test_impossible_settings_refused_before_anything_is_written(synth_data, tmp_path, changes, message):
    from dance.errors import DanceError

    cfg = TrainConfig.from_dict({"model": "seed-cnn", "epochs": 1, "image_size": 64, **changes})
    with pytest.raises(DanceError, match=message):
        train(cfg, synth_data, tmp_path / "never")
    assert list(tmp_path.iterdir()) == []


def non_atomic_writes(source: str, name: str) -> list[str]:
    """Calls that write a file in place (a crash mid-write would leave half a file)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if not isinstance(node, ast.Call):
            continue
        func = ast.unparse(node.func)
        mode = next((ast.unparse(a) for a in node.args[1:2]), None) or next(
            (ast.unparse(k.value) for k in node.keywords if k.arg == "mode"), "'r'")
        to_path = bool(node.args) and not (isinstance(node.args[0], ast.Constant) and node.args[0].value is None)
        if func.endswith((".write_text", ".write_bytes", "torch.save", "json.dump", "np.save", "numpy.save")) \
                and not (func.endswith("np.save") and ast.unparse(node.args[0]) == "buffer"):
            found.append(f"{name}:{node.lineno} {func}")
        elif func in ("open", "io.open") and any(c in mode for c in "wax+"):
            found.append(f"{name}:{node.lineno} open(..., {mode})")
        elif func.endswith((".to_csv", ".to_json", ".to_parquet", ".to_html", "write_html", "write_image")) and to_path:
            found.append(f"{name}:{node.lineno} {func} to a path")
    return found


def test_package_writes_files_only_atomically():
    sources = [p for p in (ROOT / "dance").rglob("*.py") if p.name != "fileio.py"]
    assert [f for p in sources for f in non_atomic_writes(p.read_text(), p.name)] == []


def test_non_atomic_write_checker_fires():
    bad = ("p.write_text('x')\nopen(p, 'w')\nframe.to_csv('a.csv')\ntorch.save(m, 'm.pt')\n"
           "frame.to_csv(index=False)\nopen(p)\nnp.save(buffer, a, allow_pickle=False)\n")
    assert [f.split(":")[1].split()[0] for f in non_atomic_writes(bad, "bad.py")] == ["1", "2", "3", "4"]
