"""Shared fixtures: a synthetic data set made in the test, a tiny trained checkpoint, the real data set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SYNTH_CLASSES = ["circle", "square", "stripes"]


def plain(markdown: str) -> str:
    """What escaped Markdown (dance.markup.md_escape) reads as on the page: escapes and word joiners removed."""
    import re

    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def synthetic_image(kind: str, seed: int, size: int = 72) -> Image.Image:
    """A small RGB image whose class is visible: a red square top-left, a green square bottom-right, or stripes."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    q = size // 3
    if kind == "circle":
        arr[4:4 + q, 4:4 + q] = (230, 40, 40)
    elif kind == "square":
        arr[-4 - q:-4, -4 - q:-4] = (40, 230, 40)
    else:
        arr[:, ::6] = (40, 40, 230)
    return Image.fromarray(arr)


def make_dataset(root: Path, per_class: int = 8, test: int = 4) -> Path:
    """Write train/, test/, train.csv and test.csv of synthetic images under `root`."""
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    rows = ["Image,target"]
    for c, kind in enumerate(SYNTH_CLASSES):
        for i in range(per_class):
            name = f"{kind}{i}.jpg"
            synthetic_image(kind, seed=100 * c + i).save(root / "train" / name, quality=92)
            rows.append(f"{name},{kind}")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    names = []
    for i in range(test):
        name = f"t{i}.png"
        synthetic_image(SYNTH_CLASSES[i % 3], seed=999 + i).save(root / "test" / name)
        names.append(name)
    (root / "test.csv").write_text("Image\n" + "\n".join(names) + "\n")
    return root


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """A tiny labelled data set (3 classes x 8 images) plus 4 test images."""
    return make_dataset(tmp_path_factory.mktemp("synth") / "data")


@pytest.fixture(scope="session")
def tiny_checkpoint(synth_data, tmp_path_factory) -> Path:
    """A seed-cnn checkpoint trained briefly on the synthetic set (64 px)."""
    from helpers import small_config

    from dance.training.train import train

    cfg = small_config(epochs=4, lr=3e-3, val_fraction=0.25)
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    stem = train(cfg, synth_data, out).checkpoint
    # An explicit threshold of 0 (always answer): the tests built on this model check labels, segments and tables;
    # without it, the default 1/N rule would read most of its low-confidence answers as 'not sure'.
    from dance.models.checkpoint import update_sidecar

    update_sidecar(stem, unsure_threshold=0.0)
    return stem


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real data set (../shared/data/dance or $DANCE_DATA)."""
    from dance.paths import find_data_dir

    return find_data_dir(os.environ.get("DANCE_DATA"))


def _fingerprint(folder: Path) -> dict[str, tuple]:
    """(size, mtime, sha1) of every file under `folder`: cheap enough for the ~520 files of the data set."""
    import hashlib

    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() or path.is_symlink():
            stat = path.lstat()
            digest = hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else os.readlink(path)
            found[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns, digest)
    return found


@pytest.fixture(scope="session", autouse=True)
def data_folder_never_written():
    """Fails the session loudly if any test (or the code it runs) changed the real data folder."""
    from dance.errors import DataError
    from dance.paths import find_data_dir

    try:
        folder = find_data_dir(os.environ.get("DANCE_DATA"))
    except DataError:
        yield  # no real data here: nothing to guard
        return
    before = _fingerprint(folder)
    yield
    after = _fingerprint(folder)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"the data folder {folder} was modified during the tests: {changed[:20]}"
