"""Rule: a save is one atomic step as seen by readers, a second writer to the same target is refused with a clear
message, and an OS error while writing leaves the old files intact with one sentence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dance import fileio
from dance.config import AugmentConfig, TrainConfig
from dance.errors import CheckpointError, DanceError
from dance.models import checkpoint, sidecar
from dance.models.lock import lock_file, writer_lock
from dance.models.registry import get_spec
from dance.training.train import train

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
META = {"arch": "seed-cnn-bn", "classes": ["a", "b", "c"], "image_size": 32, "mean": [0, 0, 0], "std": [1, 1, 1]}

WRITER = textwrap.dedent("""
    import sys, torch
    from dance.models import checkpoint
    from dance.models.registry import get_spec
    meta = {"arch": "seed-cnn-bn", "classes": ["a", "b", "c"], "image_size": 32, "mean": [0, 0, 0], "std": [1, 1, 1]}
    models = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        models.append(get_spec("seed-cnn-bn").create(3, 32, pretrained=False))
    print("ready", flush=True)
    for i in range(int(sys.argv[2])):
        checkpoint.save(sys.argv[1], models[i % 2], {**meta, "classes": ["a", "b", "c"] if i % 2 else ["x", "y", "z"]})
""")

HOLDER = textwrap.dedent("""
    import sys, time
    from dance.models.lock import writer_lock
    with writer_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
""")


def _model(seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return get_spec("seed-cnn-bn").create(3, 32, pretrained=False)


def test_reader_never_sees_half_a_save_while_another_process_saves(tmp_path):
    stem = tmp_path / "shared"
    checkpoint.save(stem, _model(), META)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(stem), "150"], env=ENV, stdout=subprocess.PIPE,
                              text=True)
    assert writer.stdout.readline().strip() == "ready"
    loads, failures = 0, []
    while writer.poll() is None:
        try:
            ckpt = checkpoint.load(stem)
            # the classes (sidecar) and the weights (safetensors) come from the same save
            first = next(iter(ckpt.model.state_dict().values())).flatten()[0].item()
            loads += 1
            assert ckpt.classes in (["a", "b", "c"], ["x", "y", "z"], META["classes"]) and first == first
        except CheckpointError as exc:
            failures.append(str(exc))
    assert writer.wait() == 0
    assert loads >= 3 and not failures, f"{len(failures)} of {loads + len(failures)} loads failed: {failures[:2]}"


def test_kill_between_the_two_renames_is_one_sentence_not_a_silent_mix(tmp_path, monkeypatch):
    stem = tmp_path / "m"
    checkpoint.save(stem, _model(1), META)
    real_replace, calls = os.replace, []

    def die_before_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies after the weights' rename, before the sidecar's
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", die_before_second)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(stem, _model(2), {**META, "classes": ["x", "y", "z"]})
    monkeypatch.undo()
    monkeypatch.setattr(checkpoint, "RETRY_DELAY", 0.0)
    with pytest.raises(CheckpointError, match="not the ones its sidecar describes") as caught:
        checkpoint.load(stem)
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


# fsync: the sidecar's staging fails after the weights were staged; replace: the first rename fails
@pytest.mark.parametrize("fail, at", [("fsync", 2), ("replace", 1)])
def test_disk_full_while_saving_keeps_both_old_files(tmp_path, monkeypatch, fail, at):
    stem = tmp_path / "m"
    checkpoint.save(stem, _model(1), META)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real, calls = getattr(fileio.os, fail), []

    def full(*args):
        calls.append(args)
        if len(calls) == at:
            raise OSError(28, "No space left on device")
        return real(*args)

    monkeypatch.setattr(fileio.os, fail, full)
    with pytest.raises(DanceError, match=r"^Could not write .*m\.(json|safetensors): No space left on device; "
                                         r"the previous file is unchanged\.$"):
        checkpoint.save(stem, _model(2), {**META, "classes": ["x", "y", "z"]})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file either
    assert checkpoint.load(stem).classes == META["classes"]


def test_second_writer_in_another_process_is_refused_and_a_dead_ones_lock_is_taken(tmp_path, synth_data):
    stem = tmp_path / "target"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(stem)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        cfg = TrainConfig(model="seed-cnn", epochs=1, image_size=64, freeze_epochs=0, val_fraction=0,
                          augment=AugmentConfig(preset="none"))
        with pytest.raises(CheckpointError, match=rf"being written by another run \(pid {holder.pid} on .*"
                                                  "choose another name"):
            train(cfg, synth_data, stem)
        assert not checkpoint.exists(stem)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_file(stem).exists()  # left behind by the killed run: stale, not held
    with writer_lock(stem):
        assert f'"pid": {os.getpid()}' in lock_file(stem).read_text()
    assert not lock_file(stem).exists()


def test_two_sessions_in_one_process_exclude_each_other(tmp_path):
    stem = tmp_path / "new-name"
    with writer_lock(stem):
        with pytest.raises(CheckpointError, match=f"pid {os.getpid()}"):
            with writer_lock(sidecar.sidecar_file(stem)):  # the same target spelt another way
                pass
    with writer_lock(stem):  # released: free again
        time.sleep(0)
