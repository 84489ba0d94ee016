"""`dance predict`, `dance submit` and the Predict page never import torch when the ONNX model is shipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUARD = ROOT / "tests" / "torch_guard.py"


def guarded(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run tests/torch_guard.py with `args` from the repository root."""
    return subprocess.run([sys.executable, str(GUARD), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def test_the_guard_catches_a_torch_import():
    result = guarded("-m", "dance", "train", "--help")  # the train command's parser is torch-free, ...
    assert result.returncode == 0, result.stderr
    result = guarded("-m", "dance", "explain", str(ROOT / "tests" / "missing.jpg"))  # ... Grad-CAM is not
    assert result.returncode == 99 and "import of a full-install package attempted" in result.stderr


def test_predict_without_torch_or_a_valid_onnx_file_is_one_sentence(tiny_checkpoint, tmp_path):
    import shutil

    for suffix in (".safetensors", ".json", ".onnx"):
        shutil.copy(tiny_checkpoint.with_suffix(suffix), tmp_path / f"tiny{suffix}")
    (tmp_path / "tiny.onnx").write_bytes(b"tampered")
    result = guarded("-m", "dance", "predict", str(tmp_path / "tiny.onnx"), "--weights", str(tmp_path / "tiny"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (f"error: {tmp_path / 'tiny.onnx'}: its SHA-256 does not match the one in "
                                     "tiny.json (changed after export), so it is refused. torch is not installed "
                                     "either, so nothing can answer.")


def test_predict_runs_without_torch(real_data):
    photo = sorted((real_data / "test").glob("*.jpg"))[0]
    result = guarded("-m", "dance", "predict", str(photo), "--json")
    assert result.returncode == 0, result.stderr
    assert f'"image": "{photo}"' in result.stdout and '"label": ' in result.stdout
    assert result.stderr == ""  # no fallback note: the shipped ONNX model answered


def test_video_predict_runs_without_torch(tmp_path):
    from test_video import write_video

    clip = write_video(tmp_path / "clip.mp4", [("square", 2)])
    result = guarded("-m", "dance", "predict", str(clip), "--json", "--fps", "1")
    assert result.returncode == 0, result.stderr
    assert f'"video": "{clip}"' in result.stdout and '"segments": ' in result.stdout
    assert "torch import attempted" not in result.stderr


def test_submit_runs_without_torch(tiny_checkpoint, synth_data, tmp_path):
    out = tmp_path / "submission.csv"
    result = guarded("-m", "dance", "submit", "--data", str(synth_data), "--weights", str(tiny_checkpoint),
                     "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines()[0] == "Image,target" and len(out.read_text().splitlines()) == 5


def test_predict_page_serves_without_torch_and_other_pages_say_why_not(real_data):
    photo = sorted((real_data / "test").glob("*.jpg"))[0]
    result = guarded("--app", str(photo))
    assert result.returncode == 0, result.stderr[-3000:]
    shown = ("HEADINGS", "WARNINGS", "EVALUATE")
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.startswith(shown))
    assert lines["HEADINGS"].startswith("['### ") and lines["WARNINGS"] == "[]"
    assert lines["EVALUATE"] == ("['Evaluate needs the full install (`pip install -r requirements.txt`); this slim "
                                 "install serves Predict and Data set only.']")
