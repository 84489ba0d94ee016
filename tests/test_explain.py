"""Grad-CAM: a small model trained on coloured squares must look at the square; maps and overlays are well-formed."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dance.errors import CheckpointError
from dance.inference import explain, serving
from dance.inference.predict import Predictor
from dance.models import checkpoint
from dance.models.checkpoint import Checkpoint
from dance.models.registry import REGISTRY, Classifier, get_spec

SIZE = 64
SIDE = 18
COLOURS = {"red": (235, 40, 40), "green": (40, 220, 40), "blue": (50, 80, 240)}


def square_image(colour: str, rng: np.random.Generator) -> tuple[Image.Image, tuple[int, int]]:
    """A noisy 64 px image with one coloured square at a random place; returns the image and the square's corner."""
    arr = rng.integers(0, 70, size=(SIZE, SIZE, 3), dtype=np.uint8)
    top, left = (int(v) for v in rng.integers(0, SIZE - SIDE, size=2))
    arr[top:top + SIDE, left:left + SIDE] = COLOURS[colour]
    return Image.fromarray(arr), (top, left)


def small_classifier(classes: int) -> Classifier:
    """A two-block CNN (16 x 16 feature map at 64 px) with a global-average-pooling head: trains in a second or two."""
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    body = nn.Sequential(*block(3, 16), *block(16, 32))
    return Classifier(body, nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, classes)))


@pytest.fixture(scope="module")
def square_predictor() -> Predictor:
    """The trained square-colour model, shared by this module's tests."""
    return train_square_predictor()


def train_square_predictor() -> Predictor:
    """A small Classifier trained for a few epochs on 48 images whose class is the colour of a randomly placed square."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    classes = list(COLOURS)
    model = small_classifier(len(classes))
    meta = {"arch": "seed-cnn-bn", "classes": classes, "image_size": SIZE, "mean": [0.0] * 3, "std": [1.0] * 3}
    predictor = serving.from_checkpoint(Checkpoint(Path("squares"), model, get_spec("seed-cnn-bn"), meta))
    images, labels = [], []
    for i in range(48):
        img, _ = square_image(classes[i % 3], rng)
        images.append(torch.from_numpy(predictor.preprocess(img)))
        labels.append(i % 3)
    x, y = torch.stack(images), torch.tensor(labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small runs fastest on one thread, and the CPU is shared
    try:
        model.train()
        for _ in range(12):
            for batch in torch.randperm(len(y)).split(16):
                loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    optimizer.zero_grad(set_to_none=True)  # so the test below sees only what Grad-CAM leaves behind
    model.eval()
    return predictor


def test_heatmap_peak_lies_inside_the_square(square_predictor):
    rng = np.random.default_rng(123)
    hits, right = 0, 0
    for i in range(9):
        colour = list(COLOURS)[i % 3]
        img, (top, left) = square_image(colour, rng)
        heat, name = explain.gradcam(square_predictor, img)
        assert heat.shape == (SIZE, SIZE) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
        right += name == colour
        row, col = np.unravel_index(heat.argmax(), heat.shape)
        hits += top - 2 <= row < top + SIDE + 2 and left - 2 <= col < left + SIDE + 2
    assert right >= 8  # the model learned the task
    assert hits >= 8  # and it looks at the square to do it


def test_explained_class_can_be_chosen_and_unknown_class_is_refused(square_predictor):
    img, _ = square_image("green", np.random.default_rng(5))
    _, name = explain.gradcam(square_predictor, img, class_name="blue")
    assert name == "blue"
    with pytest.raises(CheckpointError, match="unknown class 'purple'"):
        explain.gradcam(square_predictor, img, class_name="purple")


def test_no_hooks_or_gradients_left_on_the_model(square_predictor):
    model = square_predictor.model
    img, _ = square_image("red", np.random.default_rng(6))
    threads = [threading.Thread(target=explain.gradcam, args=(square_predictor, img)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    modules = list(model.modules())
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in modules)
    assert all(p.grad is None for p in model.parameters())
    assert not model.training


def test_overlay_keeps_size_and_colours_hot_region_red():
    photo = Image.new("RGB", (40, 30), (128, 128, 128))
    heat = np.zeros((30, 40), dtype=np.float32)
    heat[:10, :10] = 1.0
    out = np.asarray(explain.overlay(photo, heat))
    assert out.shape == (30, 40, 3)
    hot, cold = out[5, 5], out[25, 35]
    assert hot[0] > hot[1] + 40 and hot[0] > hot[2] + 40  # red where the map is 1
    assert cold[2] > cold[0]  # bluish where it is 0
    np.testing.assert_array_equal(explain.jet(np.array([0.0, 1.0])), [[0, 0, 128], [128, 0, 0]])


@pytest.mark.parametrize("arch", sorted(REGISTRY))
def test_every_registered_model_gives_a_map_at_image_size(arch):
    spec = get_spec(arch)
    size = 64  # every architecture accepts 64 px; keeps the big ones quick
    torch.manual_seed(0)
    model = spec.create(3, size, pretrained=False).eval()
    meta = {"arch": arch, "classes": ["a", "b", "c"], "image_size": size, "mean": list(spec.mean), "std": list(spec.std)}
    ckpt = Checkpoint(Path(arch), model, spec, meta)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    overlay_img, name, prob = explain.explain(ckpt, img)
    heat, _ = explain.gradcam(ckpt, img, class_name=name)
    assert heat.shape == (50, 70) and 0 <= heat.min() and heat.max() <= 1
    assert overlay_img.size == (70, 50) and name in ("a", "b", "c") and 0 < prob < 1


def test_cli_writes_overlay_png_in_current_directory(tiny_checkpoint, synth_data, tmp_path, monkeypatch, capsys):
    from dance.cli import main

    monkeypatch.chdir(tmp_path)
    image = synth_data / "train" / "circle0.jpg"
    assert main(["explain", str(image), "--weights", str(tiny_checkpoint), "--class", "square"]) == 0
    written = tmp_path / "circle0.cam.png"
    out = capsys.readouterr().out
    assert str(written) in out and "square" in out
    with Image.open(written) as png, Image.open(image) as original:
        assert png.format == "PNG" and png.size == original.size
    assert main(["explain", str(image), "--weights", str(tiny_checkpoint), "--class", "tutu"]) == 2
    assert "unknown class 'tutu'" in capsys.readouterr().err


def test_explain_accepts_a_predictor_of_a_reimported_module(tiny_checkpoint, monkeypatch):
    """Streamlit re-imports changed modules while cached Predictors stay instances of the old class object."""
    import importlib.util
    import sys

    import dance.inference.predict as current

    spec = importlib.util.spec_from_file_location("dance_predict_reloaded", current.__file__)
    reloaded = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, reloaded)  # a second copy of the module, as a reload leaves
    spec.loader.exec_module(reloaded)
    from dance.inference.torch_engine import TorchEngine

    ckpt = checkpoint.load(tiny_checkpoint)
    stale = reloaded.Predictor(ckpt, TorchEngine(ckpt.model))
    assert not isinstance(stale, Predictor)
    image = Image.new("RGB", (80, 60), (200, 40, 40))
    picture, name, prob = explain.explain(stale, image)
    expected = explain.explain(serving.from_checkpoint(ckpt), image)
    assert picture.size == image.size and (name, prob) == expected[1:]
    assert np.array_equal(np.asarray(picture), np.asarray(expected[0]))
