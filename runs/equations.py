"""The equations a run was built with, written into its results directory, and the check that they
are the equations a framework's references implement (circuits/provenance.py).

Every run writes ``model.md`` (readable: every group's and synapse's equations, thresholds, resets,
event code, summed variables and code runners, with their schedule and constants), ``model.json``
(the same, with the digest of each piece of code) and, when the source tree differs from its
commit, ``source.diff``. ``apical equations CONFIG`` prints what a config would build;
``apical equations --update-references`` rewrites the reference digests of the built-in
frameworks after a change of model and references together.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from apical.circuits import registry
from apical.circuits.framework import ConfigError
from apical.circuits.provenance import EquationRecord, ReferenceVerdict, check_against_reference, write_reference
from apical.models.surrogate import FAMILIES

REFERENCE_INPUTS, REFERENCE_OUTPUTS = 6, 3  # sizes of the tiny networks the references are read from


def surrogate_of(spec, config) -> str:
    """The pseudo-derivative family the framework's own section sets (``[name].surrogate``), "none"
    for a framework whose section has no such key."""
    section = config.sections.get(spec.section.name) if spec.section is not None else None
    return getattr(section, "surrogate", "none")


def record_for(spec, config, framework) -> EquationRecord:
    """The record of the Brian2 networks ``framework`` runs (or, on the numpy device, of those its
    numpy form is tested equal to)."""
    note = ""
    if config.run.device == "numpy":
        note = (f"This run trained {spec.title}'s numpy form (run.device = \"numpy\"), which is tested equal "
                "to the Brian2 networks below; they are recorded as built by the same source and settings.")
        if config.learning.optimizer != "sgd":
            note += (f" With learning.optimizer = \"{config.learning.optimizer}\" the numpy form steps each weight by "
                     "that optimizer on the update below instead of by the minibatch step below (w += weight_change "
                     "/ batch_size).")
    networks = framework.compiled_networks()
    if not networks:
        note = note or f"{spec.title} has no Brian2 network; nothing below was built by Brian2."
    return EquationRecord.of(spec.name, surrogate_of(spec, config), networks, note)


def reference_records(spec, family: str) -> list[EquationRecord]:
    """Records of the tiny networks of ``spec.reference_configs`` with the surrogate ``family``,
    built on the runtime device by the current source."""
    from apical.runs.config import config_from_dict

    records = []
    for overrides in spec.reference_configs:
        tree = {section: dict(values) for section, values in overrides.items()}
        tree.setdefault("model", {})["framework"] = spec.name
        tree.setdefault(spec.section.name, {})["surrogate"] = family  # the references are per family
        tree.setdefault("run", {}).update(device="runtime", precision="float64")
        config = config_from_dict(tree)
        framework = spec.factory(config, REFERENCE_INPUTS, REFERENCE_OUTPUTS, 1, None)
        records.append(EquationRecord.of(spec.name, family, framework.compiled_networks()))
    return records


def update_references(names=None) -> list[Path]:
    """Rewrite the reference digests of the named (default: every) framework that declares them."""
    written = []
    for name, spec in registry.frameworks().items():
        if (names and name not in names) or not spec.reference_file:
            continue
        written.append(write_reference(spec, {family: reference_records(spec, family) for family in FAMILIES}))
    return written


def verdict_for(config, record: EquationRecord) -> ReferenceVerdict:
    return check_against_reference(registry.get(config.model.framework), record)


def refuse_unless_referenced(config, record: EquationRecord, what: str) -> None:
    """One line, and no run, when ``what`` (the numpy form, compare-forms) would compute equations
    other than the record's."""
    verdict = verdict_for(config, record)
    if verdict.checked and not verdict.matches:
        raise ConfigError(f"{what} implements {registry.get(config.model.framework).title}'s reference equations, but "
                          f"this source and config build {verdict.reason()}; run the Brian2 network "
                          "(run.device = \"cpp\" or \"runtime\"), or edit the references too and run "
                          "`apical equations --update-references`")


def source_diff(root: Path | None = None) -> str:
    """``git diff HEAD`` of the source tree (``root``: the checkout this package runs from), with
    every untracked, not ignored file written as a new file; "" when the tree is clean or not a
    git checkout."""
    root = Path(__file__).resolve().parents[1] if root is None else Path(root)

    def git(*arguments, check=True):
        return subprocess.run(["git", *arguments], cwd=root, capture_output=True, text=True, check=check).stdout

    try:
        diff = git("diff", "HEAD", "--", ".")
        untracked = git("ls-files", "--others", "--exclude-standard", "-z", "--", ".").split("\0")
        # `git diff --no-index` exits 1 when the files differ, which they always do here
        diff += "".join(git("diff", "--no-index", "--", "/dev/null", name, check=False) for name in untracked if name)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return diff


def read_record(directory: Path) -> EquationRecord | None:
    """The record a run wrote (None for runs older than records)."""
    path = Path(directory) / "model.json"
    if not path.exists():
        return None
    return EquationRecord.from_dict(json.loads(path.read_text()))


def write_record(directory: Path, record: EquationRecord, title: str, write_text) -> None:
    """model.md, model.json and (for a tree that differs from its commit) source.diff."""
    write_text(directory / "model.md", record.markdown(title))
    write_text(directory / "model.json", json.dumps(record.as_dict(), indent=1) + "\n")
    diff = source_diff()
    if diff:
        write_text(directory / "source.diff", diff)


def register(commands) -> None:
    """``apical equations``."""
    parser = commands.add_parser("equations", help="the Brian2 equations a config builds (as a run's model.md), "
                                 "and whether the framework's references implement them")
    parser.add_argument("config", nargs="?", help="a TOML config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--update-references", action="store_true",
                        help="rewrite the built-in frameworks' reference digests from the current source "
                             "(after changing a model and its references together)")
    parser.set_defaults(handler=main)


def main(args) -> int:
    """``apical equations`` (arguments parsed by apical.runs.cli)."""
    from apical.runs.config import load_config

    if args.update_references:
        for path in update_references():
            print(f"wrote {path}")
        return 0
    if not args.config:
        raise ConfigError("apical equations: give a config, or --update-references")
    given = load_config(args.config, args.set)
    config = given
    if given.run.device == "numpy":
        # The numpy form's Brian2 networks are built on the runtime device, with plain steps (their only
        # kind); the record's note says what the given config changes (record_for reads the given config).
        config = load_config(args.config, [*args.set, 'run.device="runtime"', 'learning.optimizer="sgd"'])
    spec = registry.get(config.model.framework)
    # Input and output sizes do not enter the code: a tiny input and output keep the build instant.
    framework = spec.factory(config, REFERENCE_INPUTS, REFERENCE_OUTPUTS, 1, None)
    record = record_for(spec, given, framework)
    sys.stdout.write(record.markdown(spec.run_title(config)))
    verdict = verdict_for(config, record)
    print("the references implement these equations" if verdict.matches else f"note: {verdict.reason()}",
          file=sys.stderr)
    return 0
