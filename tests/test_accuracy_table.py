"""bench/accuracy_table.py: one row per CV report, with protocol, repeats, the confused pair and paired verdicts."""

from __future__ import annotations

import json

from bench import accuracy_table
from dance.config import TrainConfig, mild_config


def report(root, name, scores, config=None, protocol="grouped", method="finetune", sha="f", **extra):
    folds = [{"repeat": i // 5, "fold": i % 5, "macro_f1": s, "accuracy": s, "val_sha1": f"{sha}{i}",
              "class_f1": {"kuchipudi": s - 0.2, "bharatanatyam": s - 0.1}} for i, s in enumerate(scores)]
    mean = sum(scores) / len(scores)
    summary = {"name": name, "model": "effnet-lite2", "method": method, "image_size": 320, "k": 5, "repeats": 3,
               "protocol": protocol, "macro_f1": {"mean": mean, "std": 0.01}, "accuracy": {"mean": mean, "std": 0.01},
               "tta_metrics": None, "class_f1": {"kuchipudi": {"mean": mean - 0.2, "std": 0.05},
                                                 "bharatanatyam": {"mean": mean - 0.1, "std": 0.04}},
               "train_seconds_total": 250.0, "device": "NVIDIA H200", "command": f"python -m dance cv --name {name}",
               "config": (config or TrainConfig()).to_dict(), "folds": folds, **extra}
    (root / name).mkdir()
    (root / name / "report.json").write_text(json.dumps(summary))


def test_rows_show_protocol_repeats_pair_and_paired_verdicts(tmp_path, capsys):
    base = [0.75, 0.78, 0.72, 0.80, 0.76] * 3
    report(tmp_path, "strong", base)
    report(tmp_path, "mild", [s + 0.04 + 0.002 * (i % 3) for i, s in enumerate(base)], config=mild_config())
    report(tmp_path, "plain", [0.85] * 15, protocol="ungrouped", sha="g")
    report(tmp_path, "ens", base, method="ensemble", members=["strong", "mild"])
    accuracy_table.main([str(tmp_path), "--compare-to", "strong"])
    lines = capsys.readouterr().out.splitlines()
    assert "kuchipudi F1" in lines[0] and "vs strong (paired)" in lines[0]
    rows = {line.split("`python -m dance cv --name ")[1].rstrip("` |"): line for line in lines[2:]}
    assert "**ungrouped** (inflated)" in rows["plain"] and " — |" in rows["plain"]  # other folds: not paired
    assert "| 5×3 |" in rows["mild"] and "(p " in rows["mild"] and "real)" in rows["mild"]
    assert "crop 0.5" in rows["mild"] and "erase 0.25" in rows["mild"] and "wd 0.02" in rows["mild"]
    assert "body 0.0004" in rows["mild"] and "| 0.604 ± 0.050 | 0.704 ± 0.040 |" in rows["mild"]  # the pair's F1
    assert "ensemble of strong + mild" in rows["ens"] and "baseline" in rows["strong"]
    assert lines[2].startswith("| effnet-lite2 | finetune | 320 | **ungrouped**")  # best first
