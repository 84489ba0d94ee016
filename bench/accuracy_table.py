"""Print the Markdown table of bench/accuracy.md from the cross-validation reports in runs/cv/*/report.json.

Usage: python bench/accuracy_table.py [runs/cv]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def recipe(summary: dict) -> str:
    """A short description of the training recipe recorded in a CV report."""
    cfg = summary["config"]
    aug = cfg["augment"]["preset"]
    if summary.get("method") == "probe":
        return f"frozen backbone + logistic head, {cfg['probe_views']} views ({aug} aug), C={cfg['probe_c']}"
    freeze = f"freeze {cfg['freeze_epochs']}, " if summary["model"].startswith("effnet") else ""  # from-scratch: none
    text = (f"{cfg['epochs']} ep, {cfg['optimizer']} lr {cfg['lr']:g}, {cfg['schedule']}, {freeze}"
            f"ls {cfg['label_smoothing']}, {aug} aug, batch {cfg['batch_size']}")
    if cfg.get("mixup"):
        text += f", mixup {cfg['mixup']}"
    if cfg.get("teacher"):
        teacher = Path(cfg["teacher"]).parent.parent.name or cfg["teacher"]  # runs/cv/<run>/folds/fold-{fold}
        text += (f", distilled from each fold's {teacher} model (weight {cfg['distill_weight']}, "
                 f"T {cfg['distill_temperature']})")
    return text


def row(summary: dict) -> str:
    """One table row."""
    def pm(block):
        return f"{block['mean']:.3f} ± {block['std']:.3f}"

    tta = summary.get("tta_metrics")
    return (f"| {summary['model']} | {summary.get('method', 'finetune')} | {summary['image_size']} | {recipe(summary)} | "
            f"{pm(summary['macro_f1'])} | {pm(summary['accuracy'])} | {pm(tta['macro_f1']) if tta else '—'} | "
            f"{summary['train_seconds_total']:.0f} s | {summary['device']} | `{summary.get('command') or ''}` |")


def main(root: str = "runs/cv") -> None:
    """Print the header and one row per report, best macro-F1 first."""
    reports = [json.loads(p.read_text()) for p in sorted(Path(root).glob("*/report.json"))]
    reports.sort(key=lambda s: s["macro_f1"]["mean"], reverse=True)
    print("| model | method | size | recipe | CV macro-F1 | CV accuracy | macro-F1 with TTA | train time (all folds) "
          "| device | command |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for summary in reports:
        print(row(summary))


if __name__ == "__main__":
    main(*sys.argv[1:])
