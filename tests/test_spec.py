"""The resolved run spec: derived once from a config or a sidecar, stored in the sidecar, read back by prediction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from dance.config import TrainConfig
from dance.errors import CheckpointError
from dance.inference import serving
from dance.models import checkpoint
from dance.models.spec import CROP_MARGIN, cache_side, resolve_run_spec, run_spec_from_sidecar


def test_a_config_resolves_to_its_models_facts():
    run = resolve_run_spec(TrainConfig(model="effnet-lite1"))
    assert (run.model.name, run.input_size, run.augment_size) == ("effnet-lite1", 240, 240)
    assert run.mean == run.std == (0.5, 0.5, 0.5)
    assert run.cache_side == run.eval_side == math.ceil(240 * CROP_MARGIN) == cache_side(240)
    assert resolve_run_spec(TrainConfig(model="seed-cnn", image_size=96)).input_size == 96


def test_a_teacher_widens_the_augmentation_and_the_cache_but_not_the_input(tmp_path):
    stem = tmp_path / "teacher"
    stem.with_suffix(".json").write_text(json.dumps(
        {"arch": "effnet-lite2", "classes": ["a", "b"], "image_size": 320, "mean": [0.5] * 3, "std": [0.5] * 3}))
    run = resolve_run_spec(TrainConfig(model="effnet-lite0", teacher=str(stem)))
    assert (run.input_size, run.augment_size, run.cache_side, run.eval_side) == (224, 320, 368, 258)
    assert resolve_run_spec(TrainConfig(model="effnet-lite0", teacher="nowhere"), teacher_size=260).augment_size == 260
    with pytest.raises(CheckpointError, match="sidecar not found"):
        resolve_run_spec(TrainConfig(model="effnet-lite0", teacher=str(tmp_path / "missing")))


def test_an_old_sidecar_gets_its_spec_derived_and_a_new_one_is_read_back():
    old = {"arch": "seed-cnn", "classes": ["a", "b"], "image_size": 64, "mean": [0, 0, 0], "std": [1, 1, 1]}
    derived = run_spec_from_sidecar(old)
    assert (derived.model.name, derived.input_size, derived.augment_size, derived.crop_margin) == \
        ("seed-cnn", 64, 64, CROP_MARGIN)
    stored = run_spec_from_sidecar({**old, "run_spec": {"augment_size": 96, "crop_margin": 1.0}})
    assert (stored.augment_size, stored.cache_side, stored.eval_side) == (96, 96, 64)
    # a damaged block never breaks loading: the derivable facts are used instead
    damaged = run_spec_from_sidecar({**old, "run_spec": {"augment_size": "big", "crop_margin": True}})
    assert damaged == derived
    assert run_spec_from_sidecar({**old, "run_spec": [1, 2]}) == derived


def test_training_stores_the_spec_and_prediction_uses_its_margin(tiny_checkpoint, tmp_path):
    meta = checkpoint.read_sidecar(tiny_checkpoint)
    assert meta["run_spec"] == resolve_run_spec(TrainConfig.from_dict(meta["config"])).to_dict()
    assert meta["run_spec"]["cache_side"] == math.ceil(64 * CROP_MARGIN)
    image = Image.new("RGB", (200, 100), (200, 30, 30))
    image.paste((10, 10, 240), (0, 0, 13, 100))  # an edge the intermediate resize blurs differently
    ckpt = checkpoint.load(tiny_checkpoint)
    default = serving.from_checkpoint(ckpt).preprocess(image)
    assert ckpt.eval_side == math.ceil(64 * CROP_MARGIN)
    ckpt.meta = {**ckpt.meta, "run_spec": {**ckpt.meta["run_spec"], "crop_margin": 1.0}}
    predictor = serving.from_checkpoint(ckpt)
    assert ckpt.eval_side == 64 and run_spec_from_sidecar(ckpt.meta).eval_side == 64
    assert predictor.preprocess(image).shape == default.shape == (3, 64, 64)
    assert not np.array_equal(predictor.preprocess(image), default)
