"""End to end: train on real and synthetic images, save, reload, predict the same; resume; default protection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dance import paths
from dance.config import AugmentConfig, TrainConfig
from dance.data.images import load_image
from dance.errors import CheckpointError
from dance.inference import serving
from dance.models import checkpoint
from dance.training.train import train


@pytest.mark.slow
@pytest.mark.parametrize("model", ["seed-cnn", "effnet-lite0"])
def test_one_short_epoch_on_real_subset_then_reload_predicts_identically(model, real_data, tmp_path):
    cfg = TrainConfig(model=model, epochs=1, limit=40, batch_size=16, freeze_epochs=0, val_fraction=0.2)
    result = train(cfg, real_data, tmp_path / "run")
    assert len(result.history) == 1 and {"train_loss", "val_loss", "val_acc"} <= set(result.history[0])
    assert result.holdout is not None and result.holdout.metrics()["count"] == len(result.holdout.paths)
    reloaded = serving.from_checkpoint(checkpoint.load(result.checkpoint))
    assert reloaded.classes == sorted(reloaded.classes) and len(reloaded.classes) == 8
    # the reloaded model reproduces the hold-out probabilities computed in training (from fully decoded images:
    # predict() decodes JPEGs in draft mode, within 0.01 of this, see test_draft_decode)
    images = [load_image(p, name=Path(p).name) for p in result.holdout.paths]
    preds = reloaded.predict_images(images, [Path(p).name for p in result.holdout.paths], False)
    probs = np.array([[p.probs[c] for c in reloaded.classes] for p in preds])
    assert np.allclose(probs, result.holdout.probs, atol=1e-5)
    meta = reloaded.ckpt.meta
    assert meta["config"]["model"] == model and meta["data"]["images"] == 40
    assert set(meta["split"]["val_images"]) == {p.split("/")[-1] for p in result.holdout.paths}


def test_synthetic_training_learns(synth_data, tmp_path):
    cfg = TrainConfig(model="seed-cnn", epochs=6, image_size=64, batch_size=8, lr=3e-3, freeze_epochs=0,
                      val_fraction=0.0, label_smoothing=0.0, augment=AugmentConfig(preset="none"))
    result = train(cfg, synth_data, tmp_path / "s")
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    predictor = serving.load(result.checkpoint)
    preds = predictor.predict(sorted((synth_data / "train").glob("*.jpg")))
    accuracy = np.mean([p.label in p.image for p in preds])
    assert accuracy > 0.8


def test_training_refuses_to_overwrite_default(synth_data):
    cfg = TrainConfig(model="seed-cnn-bn", epochs=1, image_size=64)
    with pytest.raises(CheckpointError, match="default"):
        train(cfg, synth_data, paths.WEIGHTS_DIR / "default")


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_matches_uninterrupted_run(synth_data, tmp_path, workers):
    base = dict(model="seed-cnn", image_size=64, batch_size=8, freeze_epochs=0, val_fraction=0.25, seed=5,
                workers=workers, augment=AugmentConfig(preset="article"))
    full = train(TrainConfig(epochs=3, **base), synth_data, tmp_path / "full")

    class Crash(Exception):
        pass

    class CrashAfterTwo:
        def on_batch_end(self, *a):
            pass

        def on_epoch_end(self, record):
            if record["epoch"] == 2:
                raise Crash

    stem = tmp_path / "part"
    with pytest.raises(Crash):
        train(TrainConfig(epochs=3, **base), synth_data, stem, callbacks=[CrashAfterTwo()])
    assert stem.with_name("part.state.safetensors").exists() and not stem.with_suffix(".safetensors").exists()
    result = train(TrainConfig(epochs=3, **base), synth_data, stem, resume=True)
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert not stem.with_name("part.state.safetensors").exists()
    a = checkpoint.load(full.checkpoint).model.state_dict()
    b = checkpoint.load(result.checkpoint).model.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-4) for k in a)


def test_train_writes_the_learning_curves_beside_the_checkpoint(tiny_checkpoint):
    import json

    from dance.training.train import history_paths

    json_file, html_file = history_paths(tiny_checkpoint)
    history = json.loads(json_file.read_text())
    assert history == checkpoint.read_sidecar(tiny_checkpoint)["history"] and len(history) == 4
    assert "plotly" in html_file.read_text()[:100000].lower()
