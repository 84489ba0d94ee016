"""Recipe levers: the mild recipe, whole-photo crops, balanced class weights, unlabelled rows in the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from dance import cli
from dance.config import AugmentConfig, TrainConfig, mild_config
from dance.errors import DanceError
from dance.models.spec import resolve_run_spec
from dance.training.engine import labelled_loss
from dance.training.probe import cached_views, fit_head
from dance.training.train import balanced_class_weights, build_state, check_settings
from dance.training.transforms import augmentation_stages, build_train_transform


def test_mild_recipe_has_the_issue_values_and_is_reachable_from_the_command_line():
    cfg = mild_config()
    assert (cfg.augment.crop_scale, cfg.augment.erasing, cfg.weight_decay) == (0.5, 0.25, 0.02)
    assert cfg.lr == pytest.approx(4e-3) and cfg.lr * cfg.backbone_lr_scale == pytest.approx(4e-4)
    names = [name for name, _ in augmentation_stages(cfg.augment, 64)]
    assert "affine" not in names and names[0] == "random resized crop"
    assert any(isinstance(t, v2.RandomErasing) and t.p == 0.25 for t in build_train_transform(
        cfg.augment, 64, (0.5,) * 3, (0.5,) * 3).transforms)
    args = cli.build_parser().parse_args(["cv", "--recipe", "mild", "--epochs", "3"])
    parsed = cli.config_from_args(args)
    assert parsed.epochs == 3 and parsed.weight_decay == 0.02 and parsed.augment.rotation == 0
    check_settings(parsed)


def test_squash_first_crops_keep_the_whole_photo():
    portrait = torch.zeros(3, 96, 48, dtype=torch.uint8)
    portrait[:, :8] = 255  # a bright band at the very top (a head, a fan of the sari at the hem...)
    whole = AugmentConfig(squash_first=True, crop_scale=1.0, hflip=0, rotation=0, shift=0, color=0,
                          trivial_augment=False)
    cropped = AugmentConfig(**{**whole.__dict__, "squash_first": False})
    squashed = v2.Resize((32, 32), antialias=True)(portrait)
    for seed in range(5):
        torch.manual_seed(seed)
        out = build_train_transform(whole, 32, (0,) * 3, (1,) * 3, normalize=False)(portrait)
        assert torch.allclose(out, squashed.float() / 255, atol=1 / 255)
    torch.manual_seed(0)
    out = build_train_transform(cropped, 32, (0,) * 3, (1,) * 3, normalize=False)(portrait)
    assert out[:, 0].mean() < 0.5  # the plain crop of a portrait cuts its top band away


def test_balanced_class_weights_invert_the_class_frequency():
    weights = balanced_class_weights(np.array([0, 0, 0, 1, -1, -1]), 3)
    assert weights.tolist() == pytest.approx([4 / 6, 2.0, 0.0])  # 4 labelled rows; class 2 absent: never weighted
    cfg = TrainConfig(model="seed-cnn", image_size=32, freeze_epochs=0, class_weights="balanced")
    state = build_state(cfg, resolve_run_spec(cfg), 3, 1, train_labels=np.array([0, 0, 0, 1]))
    assert state.class_weight.tolist() == pytest.approx([4 / 6, 2.0, 0.0])
    plain = TrainConfig(model="seed-cnn", image_size=32)
    assert build_state(plain, resolve_run_spec(plain), 3, 1, train_labels=np.zeros(4, int)).class_weight is None


def test_unlabelled_rows_add_no_supervised_loss():
    torch.manual_seed(0)
    logits = torch.randn(5, 3, requires_grad=True)
    targets = torch.tensor([0, -1, 2, -1, 1])
    expected = F.cross_entropy(logits[[0, 2, 4]], targets[[0, 2, 4]], label_smoothing=0.1)
    assert labelled_loss(logits, targets, 0.1).item() == pytest.approx(float(expected))
    weight = torch.tensor([1.0, 2.0, 0.5])
    assert labelled_loss(logits, targets, 0.0, weight).item() == pytest.approx(
        float(F.cross_entropy(logits[[0, 2, 4]], targets[[0, 2, 4]], weight=weight)))
    none = labelled_loss(logits, torch.full((5,), -1), 0.1)
    none.backward()
    assert float(none) == 0 and torch.count_nonzero(logits.grad) == 0


@pytest.mark.parametrize("change, message", [
    (dict(class_weights="inverse"), "class weights"),
    (dict(weight_decay=-0.1), "weight decay"),
    (dict(backbone_lr_scale=0.0), "backbone learning-rate"),
    (dict(augment=AugmentConfig(crop_scale=0.0)), "crop scale"),
    (dict(augment=AugmentConfig(erasing=1.5)), "erasing"),
    (dict(augment=AugmentConfig(shift=2.0)), "shift"),
])
def test_bad_recipe_settings_are_refused(change, message):
    with pytest.raises(DanceError, match=message):
        check_settings(TrainConfig(model="seed-cnn", **change))


def test_balanced_probe_head_favours_the_rare_class():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 40 + [1] * 8)
    features = (rng.normal(0, 1, (48, 1, 4)) + labels[:, None, None] * 0.8)  # overlapping classes
    rare = []
    for weights in ("none", "balanced"):
        weight, bias = fit_head(features, labels, 1.0, 2, weights)
        rare.append(int(((features[:, 0] @ weight.T + bias).argmax(1) == 1).sum()))
    assert rare[1] > rare[0]


def test_probe_features_are_reused_from_the_cache(synth_data, tmp_path, monkeypatch):
    from dance.models.registry import get_spec
    from dance.training import probe

    calls = []
    real = probe.extract_views
    monkeypatch.setattr(probe, "extract_views", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = TrainConfig(model="seed-cnn-bn", image_size=32, probe_views=2, augment=AugmentConfig(preset="none"))
    run = resolve_run_spec(cfg)
    tensors = [torch.randint(0, 255, (3, 40, 40), dtype=torch.uint8) for _ in range(3)]
    model = get_spec("seed-cnn-bn").create(2, 32, pretrained=False)
    first, seconds, hit = cached_views(cfg, run, model, tensors, tmp_path)
    again, seconds_again, hit_again = cached_views(cfg, run, model, tensors, tmp_path)
    assert (hit, hit_again, len(calls)) == (False, True, 1) and seconds_again == seconds
    assert np.array_equal(first, again) and first.shape[:2] == (3, 2)
    tensors[0] = tensors[0].flip(-1)  # other image bytes: another entry
    assert cached_views(cfg, run, model, tensors, tmp_path)[2] is False and len(calls) == 2
