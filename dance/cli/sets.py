"""Commands for what people bring or share: their own data sets (data import/list) and checkpoints as zips (bundle)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dance.errors import DanceError


def cmd_data_import(args: argparse.Namespace) -> int:
    """Check a data-set zip and store it as data/<name>; prints the `dance check` report (exit 1 with problems)."""
    from dance.data import datasets

    info = datasets.import_zip(args.zip, args.name, replace=args.replace)
    report = datasets.validate_set(info.path)
    counts = ", ".join(f"{label} {n}" for label, n in report.counts.items())
    print(f"imported {args.zip} as {info.path}: {len(report.rows)} images that pass ({counts})")
    for problem in report.problems:
        print(f"  problem: {problem}")
    for group in report.duplicates:
        print(f"  near-duplicates: {', '.join(Path(p).name for p in group)}")
    for blocker in report.blockers:
        print(f"not ready to train: {blocker}")
    print(f"train with: python -m dance train --data {info.path} --method probe --probe-views 2")
    return 1 if report.problems else 0


def cmd_data_list(args: argparse.Namespace) -> int:
    """One line per user data set: name, images per class, where it came from."""
    from dance import paths
    from dance.data import datasets
    from dance.data.labels import read_labels

    sets = datasets.list_sets()
    if not sets:
        print(f"no data sets in {paths.user_data_root()} (add one with `python -m dance data import set.zip`)")
    for info in sets:
        try:
            frame = read_labels(info.path / "train.csv", info.path / "train").frame
            counts = ", ".join(f"{k} {v}" for k, v in frame["label"].value_counts().sort_index().items())
        except DanceError as exc:
            counts = f"unreadable ({exc})"
        print(f"{info.name}\t{counts}\t{info.source}")
    return 0


def add_data(sub) -> None:
    """`dance data import` and `dance data list`."""
    p = sub.add_parser("data", help="your own data sets under data/: import a zip, list them")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    _add_import(data_sub, "check a zip (one folder per class, or images + an Image,target CSV)",
                "the new set's name (its folder under data/)", "a set", cmd_data_import, name_required=True)
    data_sub.add_parser("list", help="the data sets under data/").set_defaults(func=cmd_data_list)


def cmd_bundle_export(args: argparse.Namespace) -> int:
    """Write a checkpoint (weights, sidecar, ONNX when present) as one zip."""
    from dance.fileio import atomic_write_bytes
    from dance.models.bundle import export_bundle

    file_name, data = export_bundle(args.weights)
    target = Path(args.output or file_name)
    atomic_write_bytes(target, data)
    print(f"wrote {target} ({len(data) / 1e6:.1f} MB)")
    return 0


def cmd_bundle_import(args: argparse.Namespace) -> int:
    """Check a checkpoint zip and store it in weights/ (never over an existing name without --replace)."""
    from dance.models.bundle import import_bundle

    stem = import_bundle(args.zip, args.name, replace=args.replace)
    print(f"imported {args.zip} as {stem} (use it with --weights {stem.name})")
    return 0


def add_bundle(sub) -> None:
    """`dance bundle export` and `dance bundle import`."""
    p = sub.add_parser("bundle", help="a checkpoint as one zip: export to share it, import one")
    bundle_sub = p.add_subparsers(dest="bundle_command", required=True)
    q = bundle_sub.add_parser("export", help="write <name>.zip (safetensors + sidecar + ONNX when present)")
    q.add_argument("weights", help="checkpoint name in weights/ or path")
    q.add_argument("--output", help="zip to write (default: ./<name>.zip)")
    q.set_defaults(func=cmd_bundle_export)
    _add_import(bundle_sub, "check a checkpoint zip and add it to weights/",
                "checkpoint name (default: the one inside the zip)", "a checkpoint", cmd_bundle_import)


def _add_import(group, help_text: str, name_help: str, what: str, func, name_required: bool = False) -> None:
    """An `import ZIP [--name N] [--replace]` sub-command of `group`."""
    q = group.add_parser("import", help=help_text)
    q.add_argument("zip")
    q.add_argument("--name", required=name_required, help=name_help)
    q.add_argument("--replace", action="store_true", help=f"replace {what} with the same name")
    q.set_defaults(func=func)
