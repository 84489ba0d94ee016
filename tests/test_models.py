"""Model registry: shapes, preprocessing metadata, the seed CNN's faithful structure, ImageNet weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dance.errors import CheckpointError
from dance.models.registry import REGISTRY, get_spec


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_model_outputs_logits_and_a_feature_map(name):
    spec = get_spec(name)
    model = spec.create(5, pretrained=False).eval()
    x = torch.rand(2, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        fmap = model.body(x)
        out = model(x)
    assert out.shape == (2, 5) and fmap.dim() == 4
    assert len(spec.mean) == 3 and len(spec.std) == 3


def test_seed_cnn_is_the_articles_network():
    model = get_spec("seed-cnn").create(8)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [c.out_channels for c in convs] == [128, 64, 128]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 3
    assert [d.out_features for d in dense] == [64, 8]
    assert dense[0].in_features == 128 * 26 * 26  # 224 -> 222 -> 111 -> 109 -> 54 -> 52 -> 26


def test_effnet_loads_imagenet_weights():
    a = get_spec("effnet-lite0").create(8)
    b = get_spec("effnet-lite0").create(8, pretrained=False)
    stem_a = a.body.net._conv_stem.weight
    stem_b = b.body.net._conv_stem.weight
    assert not torch.allclose(stem_a, stem_b)
    # ImageNet weights are deterministic: two loads agree exactly.
    assert torch.equal(stem_a, get_spec("effnet-lite0").create(3).body.net._conv_stem.weight)


def test_unknown_model():
    with pytest.raises(CheckpointError, match="Unknown architecture"):
        get_spec("nope")
