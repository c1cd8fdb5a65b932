"""What a network ran, read from its built Brian2 objects: the record of a run's equations, and the
check that they are the equations a framework's references (oracle, numpy form, BPTT) implement.

A *block* is one piece of model code of one object: a group's or synapse's equations, an event
condition (the threshold is the ``spike`` event), a reset, a synaptic pathway's code, a summed
variable, a code runner's statements. Blocks are read from the objects themselves, so a record
shows what was built, whichever way the code got there: a config key, settings passed from a
notebook, or an edit of the source. The schedule (``when``/``order``, clock) and the constants of
each namespace are recorded beside the blocks but take no part in the comparison: they are
parameters or depend on the number of layers, and the references take them from the same config.

The references implement a known set of blocks per pseudo-derivative family. A framework package
ships that set as ``reference_equations.json`` (SHA-256 digests of the blocks of the networks built
from its ``reference_configs``); ``apical equations --update-references`` writes it after a change
of model and references together, and a test fails whenever the source builds a block that the
file does not hold, so an edited equation can never be scored against an unedited reference.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

# 2: a group's run_regularly code is read too (version 1 read only a network's own list of objects)
RECORD_VERSION = 2


@dataclass(frozen=True)
class Block:
    """One piece of model code: the object it belongs to, its kind and role, and its text."""

    network: str  # the role of the network in the framework ("wake", "sleep", ...)
    owner: str  # the Brian2 object's name
    kind: str  # NeuronGroup, Synapses, CodeRunner
    role: str  # "equations", "event spike", "reset spike", "pathway active", "summed partition_post", "code"
    text: str

    @property
    def digest(self) -> str:
        """SHA-256 of kind, role and text: what the comparison with the references uses (the
        object's and network's names are left out, so one digest covers every layer)."""
        return hashlib.sha256(f"{self.kind}\n{self.role}\n{self.text}".encode()).hexdigest()

    def as_dict(self) -> dict:
        return {"network": self.network, "owner": self.owner, "kind": self.kind, "role": self.role,
                "text": self.text, "digest": self.digest}


def normalise(code: str) -> str:
    """Code without blank lines or surrounding spaces on each line (how it was indented in Python
    does not change what it does)."""
    return "\n".join(line.strip() for line in str(code).strip().splitlines() if line.strip())


def _value(value) -> str:
    """A namespace entry as model.md shows it: a constant (a 0-d Quantity too, e.g. "5. ms") as its
    value, an array by its shape, a TimedArray or Function by its name."""
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return f"array of shape {value.shape}"
    if hasattr(value, "name") and not isinstance(value, (int, float, str)):
        return f"{type(value).__name__} {value.name}"  # a TimedArray, a Function
    text = str(value)
    return text if len(text) < 80 else type(value).__name__


def every_object(network) -> list:
    """The objects of a Brian2 network and the ``run_regularly`` code its groups contain (that code
    belongs to a group, not to the network's own list); a group's thresholds, resets and pathways
    are read from the group itself."""
    from brian2.groups.group import CodeRunner

    top = list(network.objects)
    listed = {id(obj) for obj in top}
    contained = [runner for obj in top for runner in getattr(obj, "contained_objects", [])
                 if type(runner) is CodeRunner and id(runner) not in listed]
    return top + contained


def read_blocks(network_role: str, objects: Iterable) -> tuple[list[Block], list[dict]]:
    """The blocks and the schedule of ``objects`` (a Brian2 ``Network``'s ``objects``)."""
    blocks, schedule = [], []
    for obj in sorted(objects, key=lambda o: o.name):
        kind = type(obj).__name__
        entry = {"network": network_role, "owner": obj.name, "kind": kind, "when": obj.when, "order": obj.order,
                 "dt": str(obj.clock.dt), "namespace": {k: _value(v) for k, v in
                                                         sorted(getattr(obj, "namespace", {}).items())}}
        schedule.append(entry)

        def add(role: str, text: str):
            if normalise(text):
                blocks.append(Block(network_role, obj.name, kind, role, normalise(text)))

        if kind in ("NeuronGroup", "Synapses"):
            add("equations", str(obj.equations))
        if kind == "NeuronGroup":
            for event, condition in sorted(obj.events.items()):
                add(f"event {event}", condition)
            for event, code in sorted(obj.event_codes.items()):
                add(f"reset {event}", code)
            entry["events"] = {event: [obj.thresholder[event].when, obj.thresholder[event].order]
                               for event in sorted(obj.thresholder)}
        elif kind == "Synapses":
            for pathway in sorted(obj._pathways, key=lambda p: p.objname):
                add(f"pathway {pathway.event}", pathway.code)
            entry["pathways"] = {p.objname: [p.event, p.when, p.order] for p in obj._pathways}
            for variable, updater in sorted(obj.summed_updaters.items()):
                add(f"summed {variable}", updater.abstract_code)
        elif kind == "CodeRunner":
            add("code", obj.abstract_code)
    return blocks, schedule


@dataclass
class EquationRecord:
    """Everything a framework's Brian2 networks are made of, as built."""

    framework: str
    surrogate: str
    blocks: list[Block]
    schedule: list[dict]
    note: str = ""  # e.g. what ran instead when no Brian2 network did (the numpy form)
    version: int = RECORD_VERSION  # how the blocks were read (RECORD_VERSION)

    @classmethod
    def of(cls, framework: str, surrogate: str, networks: Mapping[str, object], note: str = "") -> "EquationRecord":
        """The record of ``networks`` (role → a CompiledNetwork or an objects dict with "network")."""
        blocks, schedule = [], []
        for role, network in networks.items():
            objects = network.brian_objects() if hasattr(network, "brian_objects") else network
            found, order = read_blocks(role, every_object(objects["network"]))
            blocks += found
            schedule += order
        return cls(framework, surrogate, blocks, schedule, note)

    @property
    def digests(self) -> set[str]:
        return {block.digest for block in self.blocks}

    def as_dict(self) -> dict:
        return {"version": RECORD_VERSION, "framework": self.framework, "surrogate": self.surrogate,
                "note": self.note, "blocks": [b.as_dict() for b in self.blocks], "schedule": self.schedule}

    @classmethod
    def from_dict(cls, data: Mapping) -> "EquationRecord":
        blocks = [Block(b["network"], b["owner"], b["kind"], b["role"], b["text"]) for b in data["blocks"]]
        return cls(data["framework"], data["surrogate"], blocks, list(data["schedule"]), data.get("note", ""),
                   int(data.get("version", 1)))

    def as_recorded_for(self, previous: "EquationRecord") -> "EquationRecord":
        """This record as the reader that wrote ``previous`` would have made it, to compare the two
        (a resumed run): version 1 did not read the run_regularly code that only a group holds, so
        code runners the older record does not name are left out."""
        if previous.version >= 2:
            return self
        named = {block.owner for block in previous.blocks}
        return replace(self, blocks=[b for b in self.blocks if b.kind != "CodeRunner" or b.owner in named],
                       version=previous.version)

    def markdown(self, title: str) -> str:
        """model.md: per network and object, its schedule, constants and code, readable."""
        lines = [f"# The equations this run was built with: {title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines += [f"Pseudo-derivative family: `{self.surrogate}` (models/surrogate.py). Each object below is "
                  "listed with its place in the step (`when`, `order`), its clock and the constants of its "
                  "namespace, then its code.", ""]
        by_owner: dict[tuple[str, str], list[Block]] = {}
        for block in self.blocks:
            by_owner.setdefault((block.network, block.owner), []).append(block)
        network = None
        for entry in self.schedule:
            if entry["network"] != network:
                network = entry["network"]
                lines += [f"## Network `{network}`", ""]
            lines.append(f"### {entry['kind']} `{entry['owner']}` ({entry['when']}, order {entry['order']}, "
                         f"dt {entry['dt']})")
            for event, (when, order) in entry.get("events", {}).items():
                lines.append(f"- event `{event}` tested at {when}, order {order}")
            for name, (event, when, order) in entry.get("pathways", {}).items():
                lines.append(f"- pathway `{name}` on `{event}` at {when}, order {order}")
            if entry["namespace"]:
                lines.append("- constants: " + ", ".join(f"`{k}` = {v}" for k, v in entry["namespace"].items()))
            lines.append("")
            for block in by_owner.get((network, entry["owner"]), []):
                lines += [f"{block.role}:", "", "```", block.text, "```", ""]
        return "\n".join(lines)


# ------------------------------------------------------------------ the references' equations
REFERENCE_FILE = "reference_equations.json"


def reference_path(spec) -> Path | None:
    """Where a framework keeps the digests of the blocks its references implement (or None)."""
    return Path(spec.reference_file) if getattr(spec, "reference_file", None) else None


def load_reference(spec) -> dict[str, set[str]] | None:
    """Family → digests the framework's references implement; None if it declares none."""
    path = reference_path(spec)
    if path is None or not path.exists():
        return None
    data = json.loads(path.read_text())
    return {family: set(digests) for family, digests in data["families"].items()}


@dataclass(frozen=True)
class ReferenceVerdict:
    """Whether a record's equations are those the framework's references implement."""

    checked: bool  # False: the framework declares no reference equations
    unmatched: tuple[Block, ...] = ()  # one block per distinct piece of code
    holders: tuple[tuple[str, ...], ...] = ()  # per unmatched block, every object built with that code

    @property
    def matches(self) -> bool:
        return self.checked and not self.unmatched

    def reason(self, limit: int = 3) -> str:
        """One line naming the first blocks no reference implements."""
        if not self.checked:
            return "the framework declares no reference equations"
        owners = self.holders or tuple((b.owner,) for b in self.unmatched)
        shown = "; ".join(f"{', '.join(who)} {b.role}: {' / '.join(b.text.splitlines())[:120]!r}"
                          for b, who in zip(self.unmatched[:limit], owners))
        more = f" and {len(self.unmatched) - limit} more" if len(self.unmatched) > limit else ""
        return f"{len(self.unmatched)} piece(s) of model code that no reference implements ({shown}{more})"


def check_against_reference(spec, record: EquationRecord) -> ReferenceVerdict:
    """Compare a record with the digests shipped for its pseudo-derivative family."""
    reference = load_reference(spec)
    if reference is None:
        return ReferenceVerdict(checked=False)
    known = reference.get(record.surrogate, set())
    unmatched, holders = {}, {}
    for block in record.blocks:
        if block.digest not in known:
            unmatched.setdefault(block.digest, block)
            owners = holders.setdefault(block.digest, [])
            if block.owner not in owners:
                owners.append(block.owner)
    return ReferenceVerdict(checked=True, unmatched=tuple(unmatched.values()),
                            holders=tuple(tuple(holders[d]) for d in unmatched))


def write_reference(spec, records_by_family: Mapping[str, Iterable[EquationRecord]]) -> Path:
    """Write the digests of every block of ``records_by_family`` as the framework's reference."""
    path = reference_path(spec)
    if path is None:
        raise ValueError(f"framework {spec.name!r} declares no reference_file")
    families = {family: sorted({d for record in records for d in record.digests})
                for family, records in records_by_family.items()}
    path.write_text(json.dumps({"framework": spec.name, "families": families}, indent=1) + "\n")
    return path
