"""ONNX export: numerically equal to torch on real images, chosen only for exactly the weights it came from."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from dance import paths
from dance.cli import main
from dance.errors import CheckpointError
from dance.inference.predict import Predictor
from dance.models import checkpoint, export

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Exports cached under tmp, never in the user's home."""
    monkeypatch.setenv("DANCE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


def copy_checkpoint(stem: Path, folder: Path) -> Path:
    """Copy a checkpoint's .safetensors and .json into `folder`; returns the new stem."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json"):
        shutil.copy2(stem.with_suffix(suffix), folder / (stem.name + suffix))
    return folder / stem.name


def real_images(real_data: Path, count: int) -> list[Path]:
    """A few real training photos of different sizes."""
    files = sorted((real_data / "train").glob("*.jpg"), key=lambda p: p.stat().st_size)
    step = max(1, len(files) // count)
    return files[::step][:count]


def max_difference(a, b) -> float:
    """Largest |p_a - p_b| over every image and class."""
    assert [p.image for p in a] == [p.image for p in b]
    return max(abs(x.probs[c] - y.probs[c]) for x, y in zip(a, b) for c in x.probs)


def checkpoints_to_check() -> list[str]:
    """The tiny test checkpoint always; the shipped one when it has been trained."""
    names = ["tiny"]
    if (paths.WEIGHTS_DIR / "default.safetensors").is_file():
        names.append("default")
    return names


@pytest.mark.parametrize("which", checkpoints_to_check())
def test_onnx_probabilities_match_torch_on_real_images(which, tiny_checkpoint, real_data, tmp_path, isolated_cache):
    source = tiny_checkpoint if which == "tiny" else paths.WEIGHTS_DIR / "default"
    stem = copy_checkpoint(source, tmp_path / "w")  # never write an .onnx beside a shared checkpoint
    assert main(["export", "--onnx", "--weights", str(stem)]) == 0
    assert stem.with_suffix(".onnx").is_file()
    torch_pred = Predictor.load(stem, backend="torch")
    onnx_pred = Predictor.load(stem, backend="auto")
    assert (torch_pred.backend, onnx_pred.backend) == ("torch", "onnx")
    images = real_images(real_data, 6)
    # one batch of 6 through a graph exported with batch 1: the batch axis is dynamic
    assert max_difference(torch_pred.predict(images), onnx_pred.predict(images)) <= 1e-4
    assert max_difference(torch_pred.predict(images[:2], tta=True), onnx_pred.predict(images[:2], tta=True)) <= 1e-4
    assert not isolated_cache.exists()  # the explicit export went beside the checkpoint, not into the cache


def test_stale_or_corrupt_onnx_is_never_used(tiny_checkpoint, real_data, tmp_path, isolated_cache):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path / "w")
    assert Predictor.load(stem).backend == "torch"  # outside weights/, auto does not export on its own
    export.export_onnx(checkpoint.load(stem))
    assert Predictor.load(stem).backend == "onnx"

    # retrain (here: perturb) the weights after the export: the .onnx no longer matches and is ignored
    weights = stem.with_suffix(".safetensors")
    state = load_file(weights)
    key = next(k for k in state if k.startswith("head.") and k.endswith("bias"))
    state[key] = state[key] + 1.0
    save_file(state, weights)
    stale = Predictor.load(stem)
    assert stale.backend == "torch"
    image = real_images(real_data, 1)
    assert max_difference(stale.predict(image), Predictor.load(stem, backend="torch").predict(image)) == 0.0

    stem.with_suffix(".onnx").write_bytes(b"not an onnx model")
    assert Predictor.load(stem).backend == "torch"
    with pytest.raises(CheckpointError, match="not a usable ONNX model"):
        export.OnnxSession(stem.with_suffix(".onnx"))
    # an explicit onnx backend re-exports into the cache instead of trusting the bad file
    forced = Predictor.load(stem, backend="onnx")
    assert forced.backend == "onnx"
    assert [p.name for p in isolated_cache.iterdir()] == [export.weights_digest(forced.ckpt) + ".onnx"]
    assert max_difference(forced.predict(image), stale.predict(image)) <= 1e-4


def test_checkpoints_in_weights_dir_are_exported_once_into_the_cache(tiny_checkpoint, tmp_path, isolated_cache,
                                                                     monkeypatch):
    weights_dir = tmp_path / "weights"
    stem = copy_checkpoint(tiny_checkpoint, weights_dir)
    monkeypatch.setattr(paths, "WEIGHTS_DIR", weights_dir)
    first = Predictor.load(stem)
    assert first.backend == "onnx"
    cached = list(isolated_cache.glob("*.onnx"))
    assert len(cached) == 1 and not stem.with_suffix(".onnx").exists()  # weights/ itself stays untouched
    mtime = cached[0].stat().st_mtime_ns
    assert Predictor.load(stem).backend == "onnx"
    assert cached[0].stat().st_mtime_ns == mtime  # the second load reuses the export


def test_background_export_answers_with_torch_then_switches_to_onnx(tiny_checkpoint, real_data, tmp_path,
                                                                    isolated_cache, monkeypatch):
    weights_dir = tmp_path / "weights"
    stem = copy_checkpoint(tiny_checkpoint, weights_dir)
    monkeypatch.setattr(paths, "WEIGHTS_DIR", weights_dir)
    release = __import__("threading").Event()
    real_export = export.export_onnx
    monkeypatch.setattr(export, "export_onnx", lambda *a, **k: (release.wait(30), real_export(*a, **k))[1])
    predictor = Predictor(checkpoint.load(stem), background_export=True)
    images = real_images(real_data, 3)
    before = predictor.predict(images)
    assert predictor.backend == "torch" and not list(isolated_cache.glob("*.onnx"))  # nothing blocked the caller
    release.set()
    predictor._export.join(60)
    after = predictor.predict(images)
    assert predictor.backend == "onnx" and len(list(isolated_cache.glob("*.onnx"))) == 1
    assert max_difference(before, after) <= export.TOLERANCE
    # a second predictor of the same weights finds the export at once
    assert Predictor(checkpoint.load(stem), background_export=True).backend == "onnx"


def test_background_exports_into_each_cache_folder_of_its_own(tiny_checkpoint, tmp_path, monkeypatch):
    # a finished export of the same weights for another cache folder must not stand in for this one
    ckpt = checkpoint.load(tiny_checkpoint)
    for name in ("first", "second"):
        monkeypatch.setenv("DANCE_CACHE", str(tmp_path / name))
        export.export_in_background(ckpt).join(120)
        assert len(list((tmp_path / name / "onnx").glob("*.onnx"))) == 1, name


def test_export_refuses_a_mismatching_graph(tiny_checkpoint, tmp_path, monkeypatch, isolated_cache):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path / "w")
    ckpt = checkpoint.load(stem)
    real_export = export._export_bytes

    def broken(model, size):
        """Export a model whose last layer is off by a lot, as a buggy exporter would."""
        twin = type(model)(model.body, torch.nn.Sequential(model.head, torch.nn.Hardtanh(-0.01, 0.01)))
        return real_export(twin, size)

    monkeypatch.setattr(export, "_export_bytes", broken)
    with pytest.raises(CheckpointError, match="differs from torch"):
        export.export_onnx(ckpt)
    assert not stem.with_suffix(".onnx").exists()


def test_export_command_needs_a_format(tiny_checkpoint, capsys):
    assert main(["export", "--weights", str(tiny_checkpoint)]) == 2
    assert "--onnx" in capsys.readouterr().err


def test_session_runs_any_batch_size(tiny_checkpoint, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path / "w")
    ckpt = checkpoint.load(stem)
    session = export.OnnxSession(export.export_onnx(ckpt))
    assert session.metadata["dance.weights"] == export.weights_digest(ckpt)
    batch = torch.rand(5, 3, ckpt.image_size, ckpt.image_size)
    with torch.inference_mode():
        expected = ckpt.model(batch).numpy()
    np.testing.assert_allclose(session.run(batch.numpy()), expected, atol=1e-4)
