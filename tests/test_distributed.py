"""`torchrun --nproc_per_node=2 -m dance train`: DDP on gloo matches single-process training within noise.

The comparison is sound because both runs use the same global batch (8 = 2 ranks x 4), hence the same
number of optimiser steps and the same learning-rate schedule, the same seed-initialised model and the
same grouped hold-out split; they differ only in which images share a batch (DistributedSampler shards vs
one shuffle) and in dropout masks. So the two models must both learn the task and agree on the hold-out,
not be bitwise equal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import make_dataset

from dance.config import AugmentConfig, TrainConfig
from dance.inference import serving
from dance.models import checkpoint
from dance.training.train import train

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 6
OPTIONS = {"model": "seed-cnn", "image-size": "64", "epochs": str(EPOCHS), "batch-size": "8", "lr": "0.003",
           "freeze-epochs": "0", "val-fraction": "0.25", "aug-preset": "none", "seed": "0"}


def test_two_process_ddp_matches_single_process(tmp_path):
    data = make_dataset(tmp_path / "data", per_class=16)
    args = [f"--{k}={v}" for k, v in OPTIONS.items()]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "dance", "train",
         "--data", str(data), "--output", str(tmp_path / "ddp"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]

    # rank 0 alone logs and writes: one summary line per epoch, one "saved", no leftovers from rank 1
    lines = run.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("epoch")] == [str(e) for e in range(1, EPOCHS + 1)]
    assert sum(line.startswith("saved ") for line in lines) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ddp")) == [
        "ddp.history.html", "ddp.history.json", "ddp.json", "ddp.onnx", "ddp.safetensors"]

    cfg = TrainConfig(model="seed-cnn", image_size=64, epochs=EPOCHS, batch_size=8, lr=3e-3, freeze_epochs=0,
                      val_fraction=0.25, augment=AugmentConfig(preset="none"))
    single = train(cfg, data, tmp_path / "single")

    ddp_meta = json.loads((tmp_path / "ddp.json").read_text())
    single_meta = json.loads((tmp_path / "single.json").read_text())
    assert ddp_meta["split"]["val_images"] == single_meta["split"]["val_images"]
    assert ddp_meta["config"]["batch_size"] == 8  # the global batch is recorded, not a rank's share
    assert len(ddp_meta["history"]) == len(single.history) == EPOCHS
    # the all-reduced training loss falls as the single-process one does
    assert ddp_meta["history"][-1]["train_loss"] < ddp_meta["history"][0]["train_loss"]

    ddp_model = serving.from_checkpoint(checkpoint.load(tmp_path / "ddp"))
    single_model = serving.from_checkpoint(checkpoint.load(single.checkpoint))
    images = [data / "train" / name for name in single_meta["split"]["val_images"]]
    ddp_probs = np.array([[p.probs[c] for c in ddp_model.classes] for p in ddp_model.predict(images)])
    single_probs = np.array([[p.probs[c] for c in single_model.classes] for p in single_model.predict(images)])
    truth = np.array([ddp_model.classes.index(single.holdout.classes[t]) for t in single.holdout.targets])
    assert (ddp_probs.argmax(1) == truth).mean() >= 0.9
    assert (single_probs.argmax(1) == truth).mean() >= 0.9
    assert np.abs(ddp_probs - single_probs).mean() < 0.15
    assert ddp_meta["metrics"]["holdout"]["accuracy"] >= 0.9
