"""Rule: a checkpoint's files are named by one function that never loses part of the name, and an existing
checkpoint (the shipped default above all) is replaced only when that exact one was asked for."""

from __future__ import annotations

import ast
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dance import paths
from dance.config import AugmentConfig, TrainConfig
from dance.errors import CheckpointError
from dance.models import checkpoint, sidecar
from dance.models.registry import get_spec
from dance.training.train import train

ROOT = Path(__file__).resolve().parents[1]
META = {"arch": "seed-cnn-bn", "classes": ["a", "b"], "image_size": 32, "mean": [0, 0, 0], "std": [1, 1, 1]}

# one path component: dots, Unicode, spaces; no separator or NUL (a slash makes it a path: see below)
component = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
                    min_size=1, max_size=24).filter(lambda s: s not in (".", "..") and len(s.encode()) < 200)


@given(parts=st.lists(component, min_size=1, max_size=3))
@settings(max_examples=200, deadline=None)
def test_files_keep_the_whole_name(parts):
    stem = Path("/w", *parts)
    weights, side = sidecar.files(stem)
    assert weights == stem.parent / (stem.name + ".safetensors") and side == stem.parent / (stem.name + ".json")
    assert sidecar.stem_of(weights) == stem and sidecar.stem_of(side) == stem and sidecar.stem_of(stem) == stem


@given(name=component)
@settings(max_examples=25, deadline=None)
def test_saving_any_name_writes_exactly_that_name_and_leaves_default(name):
    model = get_spec("seed-cnn-bn").create(2, 32, pretrained=False)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        checkpoint.save(folder / "default", model, META)
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        if checkpoint.is_default(folder / name, folder):
            assert name in ("default", "default.json", "default.safetensors")
            return
        checkpoint.save(folder / name, model, {**META, "classes": ["x", "y"]})
        stem = sidecar.stem_of(folder / name)
        assert {p.name: p.read_bytes() for p in folder.iterdir() if p.name in before} == before
        assert sorted(p.name for p in folder.iterdir()) == sorted([*before, stem.name + ".json",
                                                                   stem.name + ".safetensors"])
        assert checkpoint.load(folder / name).classes == ["x", "y"]


@pytest.mark.parametrize("spelling, protected", [
    ("default", True), ("default.json", True), ("default.safetensors", True), ("./default", True),
    ("../weights/default", True), ("default.v2", False), ("default.v2.json", False), ("default-v2", False),
])
def test_is_default_compares_the_files_written(spelling, protected):
    assert checkpoint.is_default(paths.WEIGHTS_DIR / spelling) is protected


def test_dotted_name_trains_into_its_own_files(synth_data, tmp_path):
    model = get_spec("seed-cnn").create(3, 64, pretrained=False)
    checkpoint.save(tmp_path / "default", model, {**META, "arch": "seed-cnn", "classes": ["p", "q", "r"],
                                                  "image_size": 64})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    cfg = TrainConfig(model="seed-cnn", epochs=1, image_size=64, batch_size=8, freeze_epochs=0, val_fraction=0,
                      augment=AugmentConfig(preset="none"))
    result = train(cfg, synth_data, tmp_path / "default.v2")
    assert result.checkpoint == tmp_path / "default.v2"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name in before} == before
    assert {"default.v2.json", "default.v2.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    assert not list(tmp_path.glob("*.lock"))


def test_existing_checkpoint_replaced_only_when_asked(tiny_checkpoint, tmp_path, synth_data):
    for suffix in (".json", ".safetensors"):
        (tmp_path / f"mine{suffix}").write_bytes(sidecar.suffixed(tiny_checkpoint, suffix).read_bytes())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    cfg = TrainConfig(model="seed-cnn", epochs=1, image_size=64, batch_size=8, freeze_epochs=0, val_fraction=0,
                      augment=AugmentConfig(preset="none"))
    with pytest.raises(CheckpointError, match="Refusing to overwrite the existing checkpoint .*--overwrite"):
        train(cfg, synth_data, tmp_path / "mine.json")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    train(cfg, synth_data, tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine.safetensors").read_bytes() != before["mine.safetensors"]


def test_no_path_with_suffix_on_stems():
    """Path.with_suffix drops a dotted part of a name (`a.v2` -> `a.json`): the package names files via sidecar."""
    found = []
    for path in sorted([*(ROOT / "dance").rglob("*.py"), *(ROOT / "bench").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Attribute) and node.attr == "with_suffix":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, found
