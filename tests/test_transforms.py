"""Training augmentation directly: stage names, output shapes and ranges, reproducible previews, and previews in
another thread never changing a training run."""

from __future__ import annotations

import threading

import pytest
import torch

from dance.config import AugmentConfig, TrainConfig
from dance.training.train import train
from dance.training.transforms import augment_preview, augmentation_stages, build_train_transform

IMAGE = torch.randint(0, 256, (3, 80, 60), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("preset, first, has_trivial", [("none", "resize", False), ("article", "resize", False),
                                                         ("strong", "random resized crop", True)])
def test_stages_follow_the_preset(preset, first, has_trivial):
    names = [name for name, _ in augmentation_stages(AugmentConfig(preset=preset), 48)]
    assert names[0] == first and ("TrivialAugment" in names) == has_trivial
    assert (len(names) == 1) == (preset == "none")


def test_switched_off_operations_are_left_out():
    names = [n for n, _ in augmentation_stages(AugmentConfig(hflip=0, color=0, rotation=0, shift=0), 48)]
    assert names == ["random resized crop", "TrivialAugment"]
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        augmentation_stages(AugmentConfig(preset="wild"), 48)


def test_train_transform_gives_normalised_squares():
    out = build_train_transform(AugmentConfig(), 40, (0.5,) * 3, (0.5,) * 3)(IMAGE)
    assert out.shape == (3, 40, 40) and out.dtype == torch.float32
    assert -1.0 - 1e-6 <= float(out.min()) and float(out.max()) <= 1.0 + 1e-6


def test_preview_variants_are_reproducible_and_leave_the_callers_stream_alone():
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    first = augment_preview(IMAGE, AugmentConfig(), 32, 3, seed=10)
    assert torch.equal(torch.rand(3), expected_next)
    again = augment_preview(IMAGE, AugmentConfig(), 32, 2, seed=11)
    assert torch.equal(first[1], again[0]) and torch.equal(first[2], again[1])  # variant i uses seed + i
    assert not torch.equal(first[0], first[1])
    assert all(v.shape == (3, 32, 32) and 0 <= float(v.min()) and float(v.max()) <= 1 for v in first)


def test_previews_in_another_thread_do_not_change_a_training_run(synth_data, tmp_path):
    """The Train page trains in a thread while the augmentation page previews in others: the weights must not care."""
    cfg = TrainConfig(model="seed-cnn", epochs=2, image_size=32, batch_size=6, freeze_epochs=0, val_fraction=0.0,
                      seed=3, augment=AugmentConfig(preset="strong"))

    def weights(name: str) -> dict:
        from dance.models import checkpoint

        return checkpoint.load(train(cfg, synth_data, tmp_path / name).checkpoint).model.state_dict()

    alone = weights("alone")
    stop = threading.Event()
    previews = []

    def preview_loop():
        while not stop.is_set():
            previews.append(augment_preview(IMAGE, AugmentConfig(), 32, 2, seed=len(previews))[0])

    thread = threading.Thread(target=preview_loop, daemon=True)
    thread.start()
    try:
        beside = weights("beside-previews")
    finally:
        stop.set()
        thread.join()
    assert len(previews) > 10  # the previews really ran during training
    assert all(torch.equal(alone[k], beside[k]) for k in alone)
    assert torch.equal(previews[4], augment_preview(IMAGE, AugmentConfig(), 32, 1, seed=4)[0])
