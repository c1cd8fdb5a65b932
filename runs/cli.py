"""The ``apical`` command line: train, evaluate, floor, curves, analyze, bench, compare-forms, sweep,
report, equations, compare.

Each command lives in its own module of runs/, which declares its subcommand and flags in
``register(commands)`` and its handler (``handler(args) -> exit code``); this module collects them
and turns the errors a user can meet into one line (a traceback only with --debug).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from apical.circuits.traps import model_errors
from apical.runs.config import ConfigError
from apical.runs.datasets import DatasetError
from apical.runs.errors import Interrupted

#: The modules of runs/ that each register a command, in the order ``apical --help`` lists them.
COMMAND_MODULES = ("train", "evaluate", "analyze", "floor", "curves", "bench", "compare_forms", "sweep", "report",
                   "equations", "compare")


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(prog="apical", description="Bio-plausible learning in spiking networks (Brian2)")
    found.add_argument("--debug", action="store_true", help="show the traceback of an error instead of one line")
    commands = found.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"apical.runs.{name}").register(commands)
    return found


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        with model_errors():  # Brian2's errors about a network's code: a ModelError (a ConfigError) of one line
            return args.handler(args)
    except Interrupted as error:
        print(f"apical: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("apical: stopped at once by a second signal; --resume continues from the last checkpoint",
              file=sys.stderr)
        return 130
    except (ConfigError, DatasetError) as error:
        if args.debug:
            raise
        print(f"apical: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        if args.debug:
            raise
        print(f"apical: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
