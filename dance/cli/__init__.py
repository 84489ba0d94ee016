"""Command line: `python -m dance <command>`; one small parser function per command, each thin over the backend.

training.py: train, cv, cv-merge, cv-ensemble, cv-compare, attach-cv, check; answers.py: predict, submit,
explain, export; trust.py: evaluate, calibrate, label-issues; sets.py: data import/list, bundle export/import.
"""

from __future__ import annotations

import argparse
import sys

from dance.cli import answers, sets, training, trust
from dance.cli.common import config_from_args  # noqa: F401 - part of the package's interface
from dance.errors import DanceError

COMMANDS = (training.add_train, answers.add_predict, trust.add_evaluate, answers.add_submit, training.add_cv,
            training.add_cv_merge, training.add_cv_ensemble, training.add_cv_compare, training.add_attach_cv,
            answers.add_export, training.add_check, answers.add_explain, trust.add_calibrate, trust.add_label_issues,
            sets.add_data, sets.add_bundle)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command (reusable by other tools)."""
    parser = argparse.ArgumentParser(prog="dance", description="Classify photos of Indian classical dance forms.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; user errors print one line and exit 2, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
