"""Print the Markdown table of bench/accuracy.md from the cross-validation reports in runs/cv/*/report.json.

Usage: python -m bench.accuracy_table [runs/cv] [--pair kuchipudi bharatanatyam] [--compare-to RUN]

One row per run: protocol, folds x repeats, mean ± std over all folds (plain and TTA), the F1 of the two classes
most confused with each other, train time, device and the command that made it. `--compare-to RUN` adds the
paired difference of every run on the same folds against RUN (`python -m dance cv-compare`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAIR = ("kuchipudi", "bharatanatyam")  # the pair the models confuse most


def recipe(summary: dict) -> str:
    """A short description of the training recipe recorded in a CV report."""
    if summary.get("method") == "ensemble":
        return "ensemble of " + " + ".join(summary.get("members", [])) + " (mean log-probabilities, fold by fold)"
    cfg = summary["config"]
    aug_cfg = cfg["augment"]
    aug = aug_cfg["preset"]
    if aug == "strong":
        aug += f" aug (crop {aug_cfg['crop_scale']}"
        aug += ", squash first" if aug_cfg.get("squash_first") else ""
        if aug_cfg["rotation"] or aug_cfg["shift"]:
            aug += f", rot {aug_cfg['rotation']:g}, shift {aug_cfg['shift']:g}"
        aug += ", TA" if aug_cfg.get("trivial_augment") else ""
        aug += f", erase {aug_cfg['erasing']:g}" if aug_cfg.get("erasing") else ""
        aug += ")"
    else:
        aug += " aug"
    weights = ", balanced class weights" if cfg.get("class_weights") == "balanced" else ""
    if summary.get("method") == "probe":
        views = "plain + mirrored views" if cfg["probe_views"] <= 2 else f"{cfg['probe_views']} views ({aug})"
        return f"frozen backbone + logistic head, {views}, C={cfg['probe_c']}{weights}"
    freeze = f"freeze {cfg['freeze_epochs']}, " if summary["model"].startswith("effnet") else ""  # from-scratch: none
    body = cfg["lr"] * cfg.get("backbone_lr_scale", 1)
    text = (f"{cfg['epochs']} ep, {cfg['optimizer']} lr {cfg['lr']:g} (body {body:.2g}), wd {cfg['weight_decay']:g}, "
            f"{cfg['schedule']}, {freeze}ls {cfg['label_smoothing']}, {aug}, batch {cfg['batch_size']}{weights}")
    if cfg.get("mixup"):
        text += f", mixup {cfg['mixup']}"
    if cfg.get("teacher"):
        teachers = [Path(t.strip()).parent.parent.name or t.strip() for t in cfg["teacher"].split(",")]
        text += (f", distilled from each fold's {' + '.join(teachers)} model{'s' if len(teachers) > 1 else ''} "
                 f"(weight {cfg['distill_weight']}, T {cfg['distill_temperature']})")
    if cfg.get("unlabelled"):
        text += f", + unlabelled {Path(cfg['unlabelled']).name}/ (teacher targets only)"
    return text


def pm(block: dict | None) -> str:
    """mean ± std, or a dash."""
    return f"{block['mean']:.3f} ± {block['std']:.3f}" if block else "—"


def row(summary: dict, pair=PAIR, paired: str = "") -> str:
    """One table row."""
    tta = summary.get("tta_metrics")
    protocol = summary.get("protocol", "grouped")
    protocol = "grouped" if protocol == "grouped" else "**ungrouped** (inflated)"
    folds = f"{summary['k']}×{summary.get('repeats', 1)}"
    class_f1 = summary.get("class_f1", {})
    pair_cells = " | ".join(pm(class_f1.get(c)) for c in pair)
    return (f"| {summary['model']} | {summary.get('method', 'finetune')} | {summary['image_size']} | {protocol} | "
            f"{folds} | {recipe(summary)} | {pm(summary['macro_f1'])} | {pm(summary['accuracy'])} | "
            f"{pm(tta and tta['macro_f1'])} | "
            f"{pair_cells} |{paired} {summary['train_seconds_total']:.0f} s | {summary['device']} | "
            f"`{summary.get('command') or ''}` |")


def paired_cell(root: Path, baseline: str, name: str) -> str:
    """' +0.012 (p 0.03, real) |' against the baseline run, or ' — |' when the folds differ."""
    from dance.errors import DataError
    from dance.training.compare import compare_runs

    if name == baseline:
        return " baseline |"
    try:
        c = compare_runs(root / baseline, root / name)
    except DataError:
        return " — |"
    return f" {c.mean_diff:+.3f} (p {c.p_ttest:.2g}, {c.verdict}) |"


def main(argv: list[str] | None = None) -> None:
    """Print the header and one row per report, best macro-F1 first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="runs/cv")
    parser.add_argument("--pair", nargs=2, default=list(PAIR), help="the two classes whose F1 gets a column")
    parser.add_argument("--compare-to", help="a run name under root: add each run's paired difference against it")
    parser.add_argument("--only", nargs="*", help="run names (glob patterns) to include")
    parser.add_argument("--parts", action="store_true", help="also list `cv --only-repeat` parts (cv-merge joins them)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    paths = sorted(root.glob("*/report.json"))
    if args.only:
        paths = [p for p in paths if any(p.parent.match(pattern) for pattern in args.only)]
    reports = [json.loads(p.read_text()) for p in paths]
    reports = [r for r in reports if args.parts or r.get("only_repeat") is None]
    reports.sort(key=lambda s: s["macro_f1"]["mean"], reverse=True)
    extra = f" vs {args.compare_to} (paired) |" if args.compare_to else ""
    print(f"| model | method | size | protocol | folds × repeats | recipe | CV macro-F1 | CV accuracy | macro-F1 with "
          f"TTA | {args.pair[0]} F1 | {args.pair[1]} F1 |{extra} train time (all folds) | device | command |")
    print("|---" * (14 + bool(extra)) + "|")
    for summary in reports:
        paired = paired_cell(root, args.compare_to, summary["name"]) if args.compare_to else ""
        print(row(summary, args.pair, paired))


if __name__ == "__main__":
    main()
