"""ONNX export and serving: equal to torch on real images, shipped beside the checkpoint, refused when tampered."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import copy_checkpoint

from dance import paths
from dance.cli import main
from dance.errors import CheckpointError
from dance.inference import serving
from dance.models import checkpoint, export, onnx_session


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
    """The tiny test checkpoint always; the shipped ones when their ONNX files are there."""
    return ["tiny"] + [n for n in ("default", "large") if (paths.WEIGHTS_DIR / f"{n}.onnx").is_file()]


@pytest.mark.parametrize("which", checkpoints_to_check())
def test_shipped_onnx_matches_torch_on_real_images(which, tiny_checkpoint, real_data):
    stem = tiny_checkpoint if which == "tiny" else paths.WEIGHTS_DIR / which
    images = real_images(real_data, 6)
    onnx_pred = serving.load(stem, backend="onnx", precision="fp32")
    torch_pred = serving.load(stem, backend="torch")
    assert (onnx_pred.backend, onnx_pred.precision, torch_pred.backend) == ("onnx", "fp32", "torch")
    for tta in (False, True):
        assert max_difference(onnx_pred.predict(images, tta=tta), torch_pred.predict(images, tta=tta)) < 1e-4


def test_training_ships_a_verified_onnx_copy(tiny_checkpoint):
    record = checkpoint.read_sidecar(tiny_checkpoint)["onnx"]["fp32"]
    data = tiny_checkpoint.with_suffix(".onnx").read_bytes()
    assert record["sha256"] == onnx_session.sha256_bytes(data)
    assert record["max_prob_diff_vs_torch"] <= export.TOLERANCE
    assert serving.load(tiny_checkpoint).backend == "onnx"


def test_tampered_onnx_is_refused_and_torch_answers(tiny_checkpoint, real_data, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path / "w")
    data = bytearray(stem.with_suffix(".onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    stem.with_suffix(".onnx").write_bytes(bytes(data))
    predictor = serving.load(stem)
    assert predictor.backend == "torch"
    assert len(predictor.notes) == 2 and "SHA-256 does not match" in predictor.notes[0]
    assert predictor.notes[1] == "Using torch instead."
    with pytest.raises(CheckpointError, match=r"tiny\.onnx: its SHA-256 does not match the one in tiny\.json"):
        serving.load(stem, backend="onnx")


def test_tampered_onnx_without_torch_is_one_clear_error(tiny_checkpoint, tmp_path, monkeypatch):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path / "w")
    stem.with_suffix(".onnx").write_bytes(b"not the exported model")
    monkeypatch.setattr(serving, "torch_available", lambda: False)
    with pytest.raises(CheckpointError, match="refused. torch is not installed either"):
        serving.load(stem)


def test_missing_onnxruntime_falls_back_to_torch_with_a_note(tiny_checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    predictor = serving.load(tiny_checkpoint)
    assert predictor.backend == "torch"
    assert predictor.notes[0] == "onnxruntime is not installed, so the ONNX model cannot run."


def test_missing_onnx_file_and_unrecorded_export(tiny_checkpoint, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path / "w", suffixes=(".safetensors", ".json"))
    predictor = serving.load(stem)
    assert predictor.backend == "torch" and "cannot read the fp32 ONNX model" in predictor.notes[0]
    meta = json.loads(stem.with_suffix(".json").read_text())
    del meta["onnx"]
    stem.with_suffix(".json").write_text(json.dumps(meta))
    assert serving.load(stem).notes == []  # a checkpoint never exported is simply served by torch
    with pytest.raises(CheckpointError, match="no fp32 ONNX model is recorded"):
        serving.load(stem, backend="onnx")


def test_retraining_drops_the_old_onnx_record(tiny_checkpoint, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path / "w")
    ckpt = checkpoint.load(stem)
    meta = {k: v for k, v in ckpt.meta.items() if k not in ("format", "created", "versions", "onnx")}
    checkpoint.save(stem, ckpt.model, meta)  # new weights file + fresh sidecar, old .onnx left behind
    assert serving.load(stem).backend == "torch"


def test_export_refuses_a_mismatching_graph(tiny_checkpoint, tmp_path, monkeypatch):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path / "w", suffixes=(".safetensors", ".json"))
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


def test_session_runs_any_batch_size(tiny_checkpoint):
    ckpt = checkpoint.load(tiny_checkpoint)
    session = onnx_session.verified_session(tiny_checkpoint, ckpt.meta)
    assert session.metadata["dance.weights"] == export.weights_digest(ckpt)
    batch = torch.rand(5, 3, ckpt.image_size, ckpt.image_size)
    with torch.inference_mode():
        expected = ckpt.model(batch).numpy()
    np.testing.assert_allclose(session.run(batch.numpy()), expected, atol=1e-4)
