"""docs/config.md, the reference of every config key, written from the dataclasses that define them.

Each key's meaning is the comment on its field (``threshold: float = 0.3  # θ, firing threshold``,
continued on lines that start ``#   ``), read from the source with :mod:`tokenize`, so the
dataclass stays the one place a key is described; its kind, bounds and choices come from its
:class:`~apical.circuits.framework.ConfigSection`, its default from the dataclass. A field without
a comment is an error: every key is documented. tests/test_config.py fails when docs/config.md
differs from what this writes.

    python -m apical.runs.config_reference            # rewrite docs/config.md
    python -m apical.runs.config_reference --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import sys
import textwrap
import tokenize
from pathlib import Path

from apical.runs.config import format_value, key_schema, moved_keys, sections

PATH = Path(__file__).resolve().parents[1] / "docs" / "config.md"

_KINDS = {"int": "integer", "float": "number", "bool": "true/false", "str": "string", "time": 'time ("5*ms")',
          "int_list": "list of integers", "str_table": "table of strings"}


def field_comments(schema: type) -> dict[str, str]:
    """Each field's comment, from the source of the class that declares it (base classes too)."""
    comments: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if not dataclasses.is_dataclass(cls) or "__annotations__" not in cls.__dict__:
            continue
        lines, _ = inspect.getsourcelines(cls)
        source = textwrap.dedent("".join(lines))
        by_line: dict[int, str] = {}
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                by_line[token.start[0]] = token.string.lstrip("#").strip()
        source_lines = source.splitlines()
        for node in ast.parse(source).body[0].body:
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            line = node.end_lineno
            parts = [by_line[line]] if line in by_line else []
            # continuation lines: comment-only lines "#   ..." right below the field
            while line < len(source_lines) and source_lines[line].strip().startswith("#   "):
                line += 1
                parts.append(by_line[line])
            comments[node.target.id] = " ".join(parts)
    return comments


def _kind(key: str, kinds, bounds, choices) -> str:
    text = _KINDS[kinds[key]]
    if key in choices:
        text = "one of " + ", ".join(f'"{choice}"' for choice in choices[key])
    if key in bounds:
        text += ", " + " and ".join(f"{symbol} {bound:g}" for symbol, bound in bounds[key])
    return text


def _default(value, kind: str) -> str:
    if value is None:
        return "unset"
    if kind == "str_table":
        return "{" + ", ".join(f'"{part}" = "{code}"' for part, code in value) + "}"
    return format_value(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _built_in(section) -> bool:
    """Sections of Apical's own frameworks (an installed plugin's keys are in its own docs)."""
    return section.schema.__module__.startswith("apical.")


def reference() -> str:
    """The text of docs/config.md."""
    kinds, bounds, choices = key_schema()
    choices = {**choices, "model.framework": tuple(name for name, section in _framework_names())}
    rows = []
    for name, section in sections().items():
        if not _built_in(section):
            continue
        comments = field_comments(section.schema)
        defaults = section.schema()
        for spec in dataclasses.fields(section.schema):
            key = f"{name}.{spec.name}"
            if not comments.get(spec.name):
                raise ValueError(f"config key {key!r} has no comment on its field in {section.schema.__qualname__}")
            rows.append(f"| `[{name}]` | `{spec.name}` | {_cell(_kind(key, kinds, bounds, choices))} | "
                        f"{_cell(_default(getattr(defaults, spec.name), kinds[key]))} | {_cell(comments[spec.name])} |")
    moved = [f"| `{old}` | " + ", ".join(f"`{section}.{key}`" for section, key in places) + " |"
             for old, places in moved_keys().items()
             if any(_built_in(sections()[section]) for section, _ in places)]
    return "\n".join([
        "# Config keys",
        "",
        "Every key of a run's TOML config (README, \"Training\"): `[model]` holds what every framework reads,",
        "`[learning]`, `[data]`, `[run]` and `[seeds]` how it is trained, and each framework's own constants",
        "are in its section (`[biograd]`, `[bp]`, `[bioleaf]`, `[scmicro]`, `[eprop]`); a section of another",
        "framework than `model.framework` is not read. Times are strings with a Brian2 unit (`\"5*ms\"`). A",
        "results directory's `config.toml` lists every key, defaults filled in.",
        "",
        "Written from the dataclasses of runs/config.py and circuits/*/config.py by",
        "`python -m apical.runs.config_reference` (do not edit by hand; tests/test_config.py checks it).",
        "",
        "| section | key | kind | default | meaning |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "## Keys that moved",
        "",
        "These keys of `[model]` and `[learning]` moved into the sections of the frameworks that read them. A",
        "config that still names one is refused in one line naming its new place (in the section of its",
        "`model.framework` where that has the key, else the first listed). A results directory written",
        "before the move (its `config.toml`) is read with each key in its run's framework's section, so",
        "`apical train --resume`, `evaluate`, `analyze` and `compare` still take it.",
        "",
        "| old key | now |",
        "|---|---|",
        *moved,
        "",
    ])


def _framework_names():
    from apical.circuits import registry

    return [(name, spec) for name, spec in registry.frameworks().items()
            if spec.factory.__module__.startswith("apical.")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apical.runs.config_reference", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/config.md is out of date")
    args = parser.parse_args(argv)
    text = reference()
    if args.check:
        current = PATH.read_text() if PATH.exists() else ""
        if current != text:
            print(f"{PATH} is out of date: run python -m apical.runs.config_reference", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(text)
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
