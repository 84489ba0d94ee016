"""The speed benchmark's plumbing: every pipeline measured, ratios against the naive one, the report's sections."""

from __future__ import annotations

import math

import pytest

from bench.speed import BenchOptions, run, training_section, training_throughput
from dance.errors import DanceError


def test_training_throughput_measures_every_pipeline(synth_data):
    t = training_throughput(synth_data, "seed-cnn", images=24, epochs=1, steps=2, workers=1, batch=8)
    assert [r["pipeline"] for r in t["rows"]] == ["ours, in-process", "ours, 1 workers", "naive, 1 workers"]
    assert t["images"] == 24 and t["device"].startswith("CPU")
    assert all(r["loader"] > 0 and r["train"] > 0 and math.isfinite(r["train"]) for r in t["rows"])
    with pytest.raises(DanceError, match="at least 32 images"):
        training_throughput(synth_data, "seed-cnn", images=24, epochs=1, steps=1)
    table = "\n".join(training_section(t))
    assert "| naive, 1 workers |" in table and table.count("1.00x") >= 2  # the naive row is the unit


def test_training_section_reports_ratios_to_the_naive_pipeline():
    t = {"images": 10, "batch": 32, "model": "m", "device": "CPU", "decode_once_s": 0.1, "epochs": 1, "steps": 2, "rows": [
        {"pipeline": "ours", "loader": 300.0, "train": 9.0}, {"pipeline": "naive", "loader": 100.0, "train": 3.0}]}
    lines = training_section(t)
    assert "| ours | 300 | 3.00x | 9.0 | 3.00x |" in lines


@pytest.mark.slow
def test_report_has_latency_and_end_to_end_sections(synth_data):
    report = run(BenchOptions(runs=2, batch_runs=1, models=["seed-cnn"], train=False, weights=["no-such"],
                              data=str(synth_data), command="test"), log=lambda m: None)
    assert "## Batch-1 latency" in report and "| seed-cnn | 224 | ONNX Runtime |" in report
    assert "untrained effnet-lite0 (no `no-such` checkpoint found)" in report
    assert "## Training input pipeline" not in report


def test_video_bench_reports_decoding_and_end_to_end_rows(tiny_checkpoint):
    from bench.video_speed import run as video_run

    report = video_run(1.0, [2.0, 0.5], str(tiny_checkpoint), "test", size=(320, 240))
    assert "Clip: synthetic 320x240 H.264, 30 fps, 1 s" in report
    assert "| decode every frame (baseline) | 30 |" in report
    assert "| `sample_frames` at 2 fps | 2 |" in report and "| `sample_frames` at 0.5 fps | 1 |" in report
    assert "## End to end" in report and "| 2 fps | 2 |" in report and "| 0.5 fps | 1 |" in report
