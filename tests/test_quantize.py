"""int8 export: calibrated, checked against fp32 (stored in the sidecar), served by default, refused when off."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dance.cli import main
from dance.inference import quantize, serving
from dance.models import sidecar
from dance.models.onnx_session import onnx_path, sha256_bytes


def copy_checkpoint(stem: Path, folder: Path) -> Path:
    """Copy the checkpoint's safetensors, sidecar and fp32 ONNX into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".safetensors", ".json", ".onnx"):
        shutil.copy2(stem.with_suffix(suffix), folder / (stem.name + suffix))
    return folder / stem.name


@pytest.fixture(scope="module")
def quantized(tiny_checkpoint, synth_data, tmp_path_factory) -> Path:
    """The tiny checkpoint with an int8 model, made through the CLI."""
    stem = copy_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("int8"))
    assert main(["export", "--int8", "--weights", str(stem), "--data", str(synth_data), "--calibration", "8"]) == 0
    return stem


def test_int8_is_written_checked_and_recorded(quantized, capsys):
    entry = sidecar.read_sidecar(quantized)["onnx"]["int8"]
    data = onnx_path(quantized, "int8").read_bytes()
    assert entry["sha256"] == sha256_bytes(data) and entry["file"] == "tiny.int8.onnx"
    check = entry["check"]
    assert check["calibration_images"] == 8
    # 24 labelled images: 8 calibrate, the other 16 are checked, the hold-out (25 %) never calibrates
    assert check["images"] == 16 and check["holdout_int8"]["count"] == check["holdout_fp32"]["count"] >= 1
    assert check["top1_agreement"] >= quantize.MIN_AGREEMENT and 0 <= check["max_prob_diff"] < 1


def test_int8_is_served_by_default_and_fp32_on_request(quantized, synth_data):
    photos = sorted((synth_data / "test").glob("*.png"))
    int8 = serving.load(quantized)
    fp32 = serving.load(quantized, precision="fp32")
    assert (int8.backend, int8.precision, fp32.precision) == ("onnx", "int8", "fp32")
    check = sidecar.read_sidecar(quantized)["onnx"]["int8"]["check"]
    for a, b in zip(int8.predict(photos), fp32.predict(photos)):
        assert max(abs(a.probs[c] - b.probs[c]) for c in a.probs) <= max(check["max_prob_diff"], 0.05)


def test_missing_int8_file_falls_back_to_fp32_with_a_note(quantized, tmp_path):
    stem = copy_checkpoint(quantized, tmp_path / "w")  # the sidecar records int8, the file is not copied
    predictor = serving.load(stem)
    assert predictor.precision == "fp32" and "cannot read the int8 ONNX model" in predictor.notes[0]


def test_int8_below_the_agreement_bar_is_refused(tiny_checkpoint, synth_data, tmp_path, monkeypatch, capsys):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path / "w")
    monkeypatch.setattr(quantize, "MIN_AGREEMENT", 1.01)  # no model can agree on more than 100 %
    assert main(["export", "--int8", "--weights", str(stem), "--data", str(synth_data), "--calibration", "8"]) == 1
    assert "int8 refused: top-1 agreement with fp32" in capsys.readouterr().out
    assert not onnx_path(stem, "int8").exists()
    # the refusal is recorded in the sidecar, which still loads, and fp32 keeps serving
    assert "top-1 agreement" in serving.load(stem).ckpt.meta["onnx"]["int8_refused"]["refused"]
    assert serving.load(stem).precision == "fp32"
    block = sidecar.read_sidecar(stem)["onnx"]
    assert "int8" not in block and block["int8_refused"]["refused"].startswith("top-1 agreement")
    assert serving.load(stem).precision == "fp32"


def test_verdict_refuses_a_holdout_accuracy_drop():
    check = {"top1_agreement": 0.99, "holdout_fp32": {"accuracy": 0.80}, "holdout_int8": {"accuracy": 0.78}}
    assert "hold-out accuracy drops by 0.020" in quantize.verdict(check)
    check["holdout_int8"]["accuracy"] = 0.795
    assert quantize.verdict(check) is None
