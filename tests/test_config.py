"""TrainConfig / AugmentConfig: the one source of defaults, round trips through sidecars, scaled augmentation."""

from __future__ import annotations

from dance.config import AugmentConfig, TrainConfig, article_config


def test_scaled_augmentation_multiplies_strengths_and_widens_the_crop_range():
    base = AugmentConfig()
    assert base.scaled(1.0) == base
    off = base.scaled(0.0)
    assert (off.rotation, off.shift, off.zoom, off.color, off.crop_scale) == (0.0, 0.0, 0.0, 0.0, 1.0)
    double = base.scaled(2.0)
    assert double.rotation == 2 * base.rotation and double.color == 2 * base.color
    assert double.crop_scale == 0.05  # 1 - 2 * (1 - 0.35) is below the floor
    assert base.scaled(0.5).crop_scale == round(1 - 0.5 * (1 - base.crop_scale), 3)
    assert double.preset == base.preset and double.hflip == base.hflip and base.rotation == 15.0  # a copy


def test_configs_round_trip_through_dicts_and_ignore_unknown_keys():
    cfg = article_config()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig.from_dict({**cfg.to_dict(), "future_option": 1, "augment": {"rotation": 3, "x": 0}}).augment \
        == AugmentConfig(rotation=3)
