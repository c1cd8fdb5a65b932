"""``apical curves``: test accuracy per epoch of several results directories in one figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from apical.runs.results import read_metrics


def register(commands) -> None:
    """``apical curves``."""
    parser = commands.add_parser("curves", help="test accuracy per epoch of several results directories in one "
                                                "figure")
    parser.add_argument("runs", nargs="+", metavar="DIR[=LABEL]", help="results directories (label: the directory "
                                                                       "name)")
    parser.add_argument("--line", action="append", default=[], metavar="ACCURACY=LABEL",
                        help="a horizontal reference line in %%, e.g. --line '82=linear-readout floor' (repeatable)")
    parser.add_argument("--title", default="")
    parser.add_argument("--out", required=True, help="figure path without extension (.png and .pdf are written)")
    parser.set_defaults(handler=command)


def command(args) -> int:
    from apical.analysis.figures import accuracy_curves

    runs = []
    for entry in args.runs:
        directory, _, label = entry.partition("=")
        directory = Path(directory)
        if not (directory / "metrics.csv").is_file():
            print(f"apical: {directory} has no metrics.csv (not a results directory)", file=sys.stderr)
            return 1
        summary = directory / "summary.json"
        initial = json.loads(summary.read_text()).get("initial_test_accuracy") if summary.is_file() else None
        runs.append((label or directory.name, read_metrics(directory), initial))
    lines = []
    for entry in args.line:
        value, _, label = entry.partition("=")
        try:
            lines.append((float(value), label))
        except ValueError:
            print(f"apical: --line {entry!r}: give ACCURACY=LABEL with the accuracy in %", file=sys.stderr)
            return 1
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for written in accuracy_curves(runs, Path(args.out), args.title, lines):
        print(written)
    return 0
