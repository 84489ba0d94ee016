"""Rule: every option is range-checked in one place (the config dataclasses) for train and cv alike, a damaged
resumable state is one sentence, and an OS error while writing is one sentence with the old files intact."""

from __future__ import annotations

import json
import re
from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dance import fileio
from dance.cli import main
from dance.config import AugmentConfig, TrainConfig
from dance.errors import CheckpointError, DanceError
from dance.models.spec import resolve_run_spec
from dance.training.cv import cross_validate
from dance.training.train import build_state, check_settings, load_training_state, save_training_state, state_paths

FAST = ["--model", "seed-cnn", "--image-size", "64", "--freeze-epochs", "0", "--aug-preset", "none"]


@pytest.mark.parametrize("argv, message", [
    (["train", "--label-smoothing", "2"], r"label smoothing must be between 0 and 0\.5 \(got 2\)"),
    (["train", "--aug-crop-scale", "2"], r"crop scale must be between 0\.01 and 1 \(got 2\)"),
    (["train", "--aug-erasing", "3"], r"erasing probability must be between 0 and 1 \(got 3\)"),
    (["train", "--val-fraction", "0.7"], r"hold-out fraction must be between 0 and 0\.49"),
    (["train", "--lr", "nan"], "learning rate must be a number, not nan"),
    (["cv", "--batch-size", "0"], r"batch size must be between 1 and 4096 \(got 0\)"),
    (["cv", "--epochs", "0"], r"epochs must be between 1 and 10000 \(got 0\)"),
    (["cv", "--repeats", "0"], r"Invalid cross-validation settings: repeats must be between 1 and 20 \(got 0\)"),
    (["cv", "--folds", "1"], r"folds must be between 2 and 50 \(got 1\)"),
])
def test_out_of_range_options_are_one_line_before_any_work(argv, message, synth_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DANCE_RUNS_DIR", str(tmp_path / "runs"))
    out = ["--output", str(tmp_path / "m")] if argv[0] == "train" else ["--name", "x"]
    assert main([*argv, *FAST, "--data", str(synth_data), *out]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: Invalid ")
    assert re.search(message, err), err
    assert list(tmp_path.iterdir()) == []  # nothing written, no run folder


number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12), st.booleans(),
                   st.text(max_size=3), st.none())


@given(field=st.sampled_from([f.name for f in fields(TrainConfig) if f.name not in ("augment", "model")]
                             + [f"augment.{f.name}" for f in fields(AugmentConfig)]), value=number)
@settings(max_examples=300, deadline=None)
def test_any_value_of_any_option_is_accepted_in_range_or_one_sentence(field, value):
    cfg = TrainConfig(model="seed-cnn")
    target, name = (cfg.augment, field[8:]) if field.startswith("augment.") else (cfg, field)
    setattr(target, name, value)
    try:
        check_settings(cfg)
    except DanceError as exc:
        assert str(exc).startswith("Invalid training settings: ") and "\n" not in str(exc)
        return
    meta = next(f.metadata for f in fields(target) if f.name == name)
    if meta and isinstance(value, (int, float)) and not isinstance(value, bool):
        assert meta["low"] <= value <= meta["high"]


def test_cv_checks_settings_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr("dance.training.cv.prepare_data", lambda *a, **k: pytest.fail("decoded images"))
    with pytest.raises(DanceError, match="epochs must be between 1"):
        cross_validate(TrainConfig(model="seed-cnn", epochs=0), tmp_path, save=False)


@pytest.mark.parametrize("damage", [
    lambda s: s["param_groups"][0].update(lr="x"),
    lambda s: s["param_groups"][0].update(betas=[0.9]),
    lambda s: s["param_groups"][0].pop("weight_decay"),
    lambda s: s.update(epoch="3"),
    lambda s: s.update(stale_epochs=-1),
    lambda s: s.update(best_loss="low"),
    lambda s: s.update(history={"epoch": 1}),
    lambda s: s.update(param_groups=[]),
])
def test_damaged_resumable_state_values_are_one_sentence(tmp_path, damage):
    cfg = TrainConfig(model="seed-cnn", image_size=64, freeze_epochs=0)
    state = build_state(cfg, resolve_run_spec(cfg), 3, 4)
    state.epoch = 1
    stem = tmp_path / "run"
    save_training_state(stem, state)
    scalars = json.loads(state_paths(stem)[1].read_text())
    damage(scalars)
    state_paths(stem)[1].write_text(json.dumps(scalars))
    fresh = build_state(cfg, resolve_run_spec(cfg), 3, 4)
    with pytest.raises(CheckpointError, match="cannot resume from this training state") as caught:
        load_training_state(stem, fresh, 4)
    assert "\n" not in str(caught.value)


def test_disk_full_during_training_is_one_line_and_the_old_checkpoint_stays(synth_data, tmp_path, capsys,
                                                                            monkeypatch):
    stem = tmp_path / "m"
    argv = ["train", *FAST, "--epochs", "1", "--batch-size", "8", "--val-fraction", "0", "--data", str(synth_data),
            "--output", str(stem), "--overwrite"]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after tqdm's progress bar
    assert re.search(r"error: Could not write \S+: No space left on device; the previous file is unchanged\.$", err)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_too_few_images_for_the_hold_out_says_what_to_change(synth_data, tmp_path, capsys):
    assert main(["train", *FAST, "--epochs", "1", "--limit", "6", "--data", str(synth_data),
                 "--output", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "hold-out of 20% needs at least 5 images in every class; the smallest class has 2" in err
    assert "--limit" in err and "--val-fraction 0" in err
