"""Checkpoint save/load: self-describing sidecars, refusal of pickles and damaged files."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import copy_checkpoint

from dance import paths
from dance.errors import CheckpointError
from dance.models import checkpoint
from dance.models.registry import get_spec


def test_round_trip_rebuilds_from_sidecar(tmp_path):
    model = get_spec("seed-cnn-bn").create(3, 64)
    meta = {"arch": "seed-cnn-bn", "classes": ["a", "b", "c"], "image_size": 64, "mean": [0, 0, 0], "std": [1, 1, 1]}
    stem = checkpoint.save(tmp_path / "m", model, meta)
    loaded = checkpoint.load(stem)
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    assert torch.allclose(loaded.model(x), model(x))
    assert loaded.classes == ["a", "b", "c"] and loaded.meta["versions"]["torch"] == torch.__version__
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "weights.ckpt", "x.pkl"])
def test_pickle_files_refused(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(CheckpointError, match="pickle"):
        checkpoint.load(tmp_path / name)


def test_missing_sidecar(tiny_checkpoint, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "c")
    stem.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="sidecar not found"):
        checkpoint.load(stem)


def test_truncated_safetensors(tiny_checkpoint, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "c")
    data = stem.with_suffix(".safetensors").read_bytes()
    stem.with_suffix(".safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        checkpoint.load(stem)


def test_garbage_safetensors(tiny_checkpoint, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "c")
    stem.with_suffix(".safetensors").write_bytes(b"\xff" * 100)
    with pytest.raises(CheckpointError):
        checkpoint.load(stem)


def test_classes_not_matching_head(tiny_checkpoint, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "c")
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta["classes"] = meta["classes"] + ["extra"]
    stem.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="lists 4 classes but the weights' head has 3"):
        checkpoint.load(stem)


def test_unknown_architecture(tiny_checkpoint, tmp_path):
    stem = copy_checkpoint(tiny_checkpoint, tmp_path, "c")
    meta = json.loads(stem.with_suffix(".json").read_text())
    meta["arch"] = "resnet-9000"
    stem.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="Unknown architecture"):
        checkpoint.load(stem)


def test_list_checkpoints_default_first(tiny_checkpoint, tmp_path):
    copy_checkpoint(tiny_checkpoint, tmp_path, "zeta")
    copy_checkpoint(tiny_checkpoint, tmp_path, "default")
    (tmp_path / "orphan.json").write_text("{}")
    copy_checkpoint(tiny_checkpoint, tmp_path, "zeta.state")  # a running job's resumable state is not a checkpoint
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["default", "zeta"]


def test_resolve_bare_name_to_weights_dir(tmp_path):
    assert checkpoint.resolve("default", tmp_path) == tmp_path / "default"
    assert checkpoint.resolve(tmp_path / "x.json") == tmp_path / "x"


def test_shipped_default_checkpoint_loads():
    ckpt = checkpoint.load("default")
    assert len(ckpt.classes) == 8 and ckpt.meta["arch"] in ("effnet-lite0", "effnet-lite1", "effnet-lite2", "seed-cnn")
    size = (paths.WEIGHTS_DIR / "default.safetensors").stat().st_size
    assert size <= 25 * 1024 * 1024
