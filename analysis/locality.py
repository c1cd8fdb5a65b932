"""Locality audit of a built Brian2 network: does every plasticity rule use local information?

A synapse is local when everything its code reads or writes is one of
- its own variables (w, traces, lastupdate, i, j, N, ...),
- a variable of its presynaptic or postsynaptic group, reached as ``x_pre`` / ``x_post``
  (or unsuffixed, which Brian2 resolves to the postsynaptic group),
- a constant: a number, a unit, a scalar from the namespace, the clock's t and dt, or a
  pure mathematical function of Brian2's defaults (exp, clip, rand, ...),
- a name the caller declares as a global signal (a phase flag, a learning rate, a
  neuromodulator), the "globally defined" signals the papers allow.

Anything else is a finding: a variable owned by a third group (reached through the
namespace or a hand-added reference), a TimedArray or user function (they can carry any
other neuron's recorded state), a non-scalar namespace array, a write into another object's
variable, and every ``NetworkOperation`` (Python code that can read and write any weight,
for example copy forward weights into feedback weights after initialisation). A copy made
in plain Python between runs leaves no trace in the network; compare the feedback and
forward weights (analysis.alignment) to catch that.

Names are resolved with Brian2's own machinery (``Group._resolve``, the group's
``variables`` and namespace), in the context Brian2 itself uses: the synaptic pathway for
``on_pre``/``on_post`` code, the owning group for equations and ``run_regularly`` code.

The report also lists what is allowed but worth stating in a plausibility claim:
analog couplings (summed variables, presynaptic state read by equations evaluated every
time step rather than on a spike, linked variables) and global phase switches (shared
variables and one-dimensional TimedArrays read by any group, and the declared global
signals in use).

:func:`audit_small_copy` audits a framework's code on a small copy of its network, which the
framework builds with the run's own settings (``Framework.locality_copy``): the code, not the
size, is what the audit reads.
"""

import ast
import gc
import inspect
import re
import textwrap
from dataclasses import asdict, dataclass, field

from brian2 import Clock, Network, prefs
from brian2.core.functions import DEFAULT_FUNCTIONS, Function
from brian2.core.namespace import get_local_namespace
from brian2.core.operations import NetworkOperation
from brian2.core.variables import Constant, Variable
from brian2.equations.equations import DIFFERENTIAL_EQUATION, SUBEXPRESSION
from brian2.groups.group import CodeRunner, Group
from brian2.groups.neurongroup import SubexpressionUpdater
from brian2.groups.subgroup import Subgroup
from brian2.input.timedarray import TimedArray
from brian2.synapses.synapses import Synapses
from brian2.utils.stringtools import KEYWORDS, get_identifiers

__all__ = ["Finding", "AnalogCoupling", "PhaseSwitch", "LocalityReport", "audit_locality", "audit_small_copy"]

SMALL_INPUTS, SMALL_HIDDEN, SMALL_OUTPUTS = 8, 6, 3  # sizes of the copy audit_small_copy reads


@dataclass
class Finding:
    """A violation of locality: where, which name, the code line, and why."""

    object: str
    kind: str
    identifier: str
    code: str
    message: str


@dataclass
class AnalogCoupling:
    """A non-spiking interaction between neurons (allowed, but to be stated)."""

    object: str
    kind: str  # "summed variable", "continuous presynaptic read", "linked variable"
    identifier: str
    code: str
    detail: str


@dataclass
class PhaseSwitch:
    """A signal shared by many neurons at once, read by a group's code."""

    object: str
    identifier: str
    kind: str  # "shared variable", "TimedArray", "declared global"
    owner: str
    code: str


@dataclass
class LocalityReport:
    audited: list = field(default_factory=list)  # names of the Synapses objects audited
    findings: list = field(default_factory=list)
    analog_couplings: list = field(default_factory=list)
    phase_switches: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.findings

    def to_dict(self):
        return {**asdict(self), "ok": self.ok}

    def summary(self):
        lines = [
            f"locality audit of {len(self.audited)} synapse objects: "
            + ("ok" if self.ok else f"{len(self.findings)} findings")
        ]
        lines += [f"  {f.object}: {f.kind} '{f.identifier}' in `{f.code}`" for f in self.findings]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Statement:
    """One line of code, the group whose names it uses, and when it is evaluated."""

    where: str
    code: str
    reads: frozenset
    writes: frozenset
    continuous: bool  # evaluated every time step, not only on a spike
    context: object


_ASSIGNMENT = re.compile(r"^\s*([A-Za-z_]\w*)\s*(=|\+=|-=|\*=|/=|//=|%=|\*\*=)(?!=)\s*(.*)$")


def _statements_of_code(code, where, context, continuous):
    """Split abstract code into statements (Brian2 splits on ';' and newlines)."""
    statements = []
    for line in re.split(r"[;\n]", code or ""):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = _ASSIGNMENT.match(line)
        if match:
            target, operator, expression = match.groups()
            reads = get_identifiers(expression) | ({target} if operator != "=" else set())
            writes = {target}
        else:
            reads, writes = get_identifiers(line), set()
        statements.append(
            _Statement(
                where, line, frozenset(reads - KEYWORDS), frozenset(writes), continuous, context
            )
        )
    return statements


def _equation_statement(eq, where, context, continuous):
    writes = {eq.varname} if eq.type == DIFFERENTIAL_EQUATION else set()
    return _Statement(
        where, str(eq), frozenset(eq.identifiers - KEYWORDS), frozenset(writes), continuous, context
    )


def _user_runners(group):
    """CodeRunners made by run_regularly / run_at (plain CodeRunner, not a Brian2 subclass)."""
    return [obj for obj in group.contained_objects if type(obj) is CodeRunner]


def _synapse_statements(synapses):
    statements = []
    subexpressions = {}
    for eq in synapses.equations.values():
        if eq.type == DIFFERENTIAL_EQUATION:
            statements.append(_equation_statement(eq, "clock-driven equation", synapses, True))
        elif eq.type == SUBEXPRESSION:
            subexpressions[eq.varname] = eq
    if synapses.event_driven is not None:
        for eq in synapses.event_driven.values():
            if eq.type == DIFFERENTIAL_EQUATION:
                statements.append(
                    _equation_statement(eq, "event-driven equation", synapses, False)
                )
    for varname, updater in synapses.summed_updaters.items():
        code = f"{varname} = {updater.expression} (summed)"
        reads = frozenset(updater.expression.identifiers - KEYWORDS)
        statements.append(
            _Statement("summed variable", code, reads, frozenset({varname}), True, synapses)
        )
    for pathway in synapses._pathways:
        where = f"on_{pathway.prepost} pathway '{pathway.objname}'"
        statements += _statements_of_code(pathway.code, where, pathway, continuous=False)
    for runner in _user_runners(synapses):
        statements += _statements_of_code(
            runner.abstract_code, f"run_regularly '{runner.name}'", synapses, continuous=True
        )
    if isinstance(synapses.subexpression_updater, SubexpressionUpdater):
        statements += _statements_of_code(
            synapses.subexpression_updater.abstract_code,
            "constant-over-dt subexpression",
            synapses,
            continuous=True,
        )
    # a subexpression is evaluated every step only if something evaluated every step uses it
    continuous_names = set()
    pending = [name for s in statements if s.continuous for name in s.reads]
    while pending:
        name = pending.pop()
        if name in subexpressions and name not in continuous_names:
            continuous_names.add(name)
            pending.extend(subexpressions[name].identifiers)
    for name, eq in subexpressions.items():
        statements.append(
            _equation_statement(eq, "subexpression", synapses, name in continuous_names)
        )
    return statements


def _group_statements(group):
    """Statements of a non-synaptic group: equations, thresholds, resets, run_regularly."""
    statements = []
    equations = getattr(group, "equations", None)
    for eq in equations.values() if equations is not None else ():
        if eq.expr is not None:
            statements.append(_equation_statement(eq, "equation", group, True))
    for event, condition in (getattr(group, "events", None) or {}).items():
        statements += _statements_of_code(condition, f"condition of '{event}'", group, True)
    for event, code in (getattr(group, "event_codes", None) or {}).items():
        statements += _statements_of_code(code, f"on '{event}' (reset)", group, False)
    for runner in _user_runners(group):
        statements += _statements_of_code(
            runner.abstract_code, f"run_regularly '{runner.name}'", group, True
        )
    return statements


def _root(group):
    while isinstance(group, Subgroup):
        group = group.source
    return group


def _name(obj):
    return getattr(obj, "name", repr(obj))


def _all_objects(network_or_objects):
    """The objects of a Network (or iterable of objects) with their contained objects."""
    if isinstance(network_or_objects, Network):
        top = list(network_or_objects.objects)
    elif isinstance(network_or_objects, (list, tuple, set)):
        top = list(network_or_objects)
    else:
        top = [network_or_objects]
    seen, ordered = set(), []
    pending = top[::-1]
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        ordered.append(obj)
        pending.extend(getattr(obj, "contained_objects", [])[::-1])
    return sorted(ordered, key=_name)


def _is_user_state(var):
    """A variable the model declares (not N, t, dt, or Brian2's internal arrays)."""
    equations = getattr(var.owner, "equations", None)
    return equations is not None and var.name in equations.names


class _Auditor:
    def __init__(self, global_signals, allowed_functions, namespace):
        self.global_signals = set(global_signals)
        self.allowed_functions = set(allowed_functions)
        self.namespace = namespace
        self.report = LocalityReport()
        self._switches_seen = set()

    def declared(self, name):
        base = re.sub(r"_(pre|post)$", "", name)
        return name in self.global_signals or base in self.global_signals

    def resolve(self, statement, name):
        """Brian2's resolution of a name in the statement's context; an error message if none."""
        try:
            return statement.context._resolve(name, self.namespace, user_identifier=False), None
        except KeyError as error:
            return None, str(error).strip("'\"")

    def note_switch(self, group, statement, name, resolved):
        """Record shared variables, 1-D TimedArrays and declared globals read by a group."""
        if self.declared(name):
            kind = "declared global"
        elif isinstance(resolved, TimedArray) and resolved.values.ndim == 1:
            kind = "TimedArray"
        elif (
            isinstance(resolved, Variable)
            and not isinstance(resolved, Constant)
            and resolved.scalar
            and resolved.owner is not None
            and _is_user_state(resolved)
        ):
            kind = "shared variable"
        else:
            return
        key = (group.name, name)
        if key in self._switches_seen:
            return
        self._switches_seen.add(key)
        if isinstance(resolved, Variable) and resolved.owner is not None:
            owner = f"{resolved.owner.name}.{resolved.name}"
        else:
            owner = "namespace"
        self.report.phase_switches.append(
            PhaseSwitch(group.name, name, kind, owner, statement.code)
        )

    def role(self, synapses, name, var):
        """Which end of the synapse owns a variable: synapse, pre, post, clock or foreign."""
        if var.owner is None:
            return "constant"
        owner = var.owner
        if isinstance(owner, Clock):
            return "clock"
        owner_name = owner.name
        is_pre = owner_name == _root(synapses.source).name
        is_post = owner_name == _root(synapses.target).name
        if is_pre and (not is_post or name.endswith("_pre")):
            return "pre"
        if is_post:
            return "post"
        if owner_name == synapses.name:
            return "synapse"
        return "foreign"

    def find(self, synapses, kind, name, statement, message):
        self.report.findings.append(
            Finding(synapses.name, kind, name, statement.code, f"{statement.where}: {message}")
        )

    def audit_synapses(self, synapses):
        self.report.audited.append(synapses.name)
        for statement in _synapse_statements(synapses):
            for name in sorted(statement.reads | statement.writes):
                self.check_name(synapses, statement, name)
        for varname, updater in synapses.summed_updaters.items():
            self.report.analog_couplings.append(
                AnalogCoupling(
                    synapses.name,
                    "summed variable",
                    varname,
                    f"{varname} = {updater.expression} (summed)",
                    f"sums an expression over synapses into {updater.target.name}."
                    f"{updater.target_var.name} at every time step",
                )
            )

    def check_name(self, synapses, statement, name):
        resolved, error = self.resolve(statement, name)
        if self.declared(name):
            self.note_switch(synapses, statement, name, resolved)
            return
        if resolved is None:
            kind = "namespace array" if "not a scalar" in error else "unresolved"
            self.find(synapses, kind, name, statement, error)
            return
        self.note_switch(synapses, statement, name, resolved)
        if isinstance(resolved, Function):
            if DEFAULT_FUNCTIONS.get(name) is resolved or name in self.allowed_functions:
                return
            if isinstance(resolved, TimedArray):
                shape = "×".join(str(n) for n in resolved.values.shape)
                self.find(
                    synapses,
                    "timed array",
                    name,
                    statement,
                    f"reads TimedArray '{resolved.name}' ({shape} values), external data "
                    "that can hold any neuron's state; declare it in global_signals if it "
                    "is a global signal",
                )
            else:
                self.find(
                    synapses,
                    "external function",
                    name,
                    statement,
                    "calls a user-defined function, which can return any neuron's state; "
                    "list it in allowed_functions if it is pure mathematics",
                )
            return
        role = self.role(synapses, name, resolved)
        if role != "foreign":
            if role == "pre" and statement.continuous and name not in statement.writes:
                self.report.analog_couplings.append(
                    AnalogCoupling(
                        synapses.name,
                        "continuous presynaptic read",
                        name,
                        statement.code,
                        f"{statement.where} reads presynaptic state every time step, "
                        "not on a spike",
                    )
                )
            return
        owner = f"{resolved.owner.name}.{resolved.name}"
        if name in statement.writes:
            self.find(
                synapses, "foreign write", name, statement,
                f"writes {owner}, which belongs to neither this synapse nor its two neurons",
            )
        elif statement.writes and isinstance(resolved.owner, Synapses):
            self.find(
                synapses, "weight transport", name, statement,
                f"assigns {', '.join(sorted(statement.writes))} from {owner}, a variable of "
                "another synapse object",
            )
        else:
            self.find(
                synapses, "foreign variable", name, statement,
                f"reads {owner}, which belongs to neither this synapse "
                f"({synapses.name}) nor its pre- ({_root(synapses.source).name}) or "
                f"postsynaptic ({_root(synapses.target).name}) group",
            )

    def audit_group(self, group):
        """Non-synaptic groups: phase switches, and writes into synaptic variables."""
        for statement in _group_statements(group):
            for name in sorted(statement.reads | statement.writes):
                resolved, _ = self.resolve(statement, name)
                self.note_switch(group, statement, name, resolved)
                if (
                    name in statement.writes
                    and isinstance(resolved, Variable)
                    and isinstance(resolved.owner, Synapses)
                    and resolved.owner.name != group.name
                ):
                    self.report.findings.append(
                        Finding(
                            group.name,
                            "foreign write",
                            name,
                            statement.code,
                            f"{statement.where}: writes {resolved.owner.name}."
                            f"{resolved.name}, a synaptic variable of another object",
                        )
                    )

    def audit_links(self, group):
        for name in sorted(getattr(group, "_linked_variables", ())):
            var = group.variables.get(name)
            if var is None or var.owner is None or var.owner.name == group.name:
                detail = "declared (linked) but not linked yet"
            else:
                detail = f"reads {var.owner.name}.{var.name} continuously"
            code = str(group.equations[name])
            self.report.analog_couplings.append(
                AnalogCoupling(group.name, "linked variable", name, code, detail)
            )

    def audit_operation(self, operation):
        """A NetworkOperation runs arbitrary Python: report it, pointing at state writes."""
        function = operation.function
        function_name = getattr(function, "__qualname__", repr(function))
        writes = []
        try:
            source = textwrap.dedent(inspect.getsource(function))
            tree = ast.parse(source)
        except (OSError, TypeError, SyntaxError):
            source, tree = "", None
        if tree is not None:
            lines = source.splitlines()
            for node in ast.walk(tree):
                targets = []
                if isinstance(node, ast.Assign):
                    targets = node.targets
                elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                    targets = [node.target]
                for target in targets:
                    if isinstance(target, (ast.Attribute, ast.Subscript)):
                        writes.append((ast.unparse(target), lines[node.lineno - 1].strip()))
        message = (
            f"network_operation '{function_name}' runs Python every step; it can read "
            "and write any state, weights included"
        )
        if not writes:
            first_line = source.splitlines()[0].strip() if source else function_name
            writes = [(function_name, first_line)]
        for target, line in writes:
            self.report.findings.append(
                Finding(operation.name, "network operation", target, line, message)
            )


def audit_locality(
    network_or_objects,
    global_signals=(),
    *,
    namespace=None,
    allowed_functions=(),
    level=0,
):
    """Audit every Synapses object of a network (or list of Brian2 objects) for locality.

    ``global_signals`` names the signals a model may broadcast (phase flags, learning
    rates); ``allowed_functions`` names user functions known to be pure mathematics.
    ``namespace`` is the namespace the network runs with; if omitted, names are looked up
    in the caller's locals and globals, as ``Network.run`` does (``level`` as there).
    """
    if namespace is None:
        namespace = get_local_namespace(level + 1)
    auditor = _Auditor(global_signals, allowed_functions, namespace)
    for obj in _all_objects(network_or_objects):
        if isinstance(obj, Synapses):
            auditor.audit_synapses(obj)
        elif isinstance(obj, Group) and not isinstance(obj, CodeRunner):
            auditor.audit_group(obj)
        elif isinstance(obj, NetworkOperation):
            auditor.audit_operation(obj)
        if isinstance(obj, Group) and not isinstance(obj, CodeRunner):
            auditor.audit_links(obj)
    return auditor.report


def audit_small_copy(framework):
    """Audit a framework's Brian2 code on a copy of its network with the same depth and a few
    neurons per layer (``framework.locality_copy(sizes)``, built with the run's settings), with
    the global signals the framework declares. Returns the report and the copy's sizes, or
    (None, None) for a framework without a Brian2 network."""
    sizes = (SMALL_INPUTS, *[SMALL_HIDDEN] * (len(framework.settings.sizes) - 2), SMALL_OUTPUTS)
    copy = framework.locality_copy(sizes)
    if copy is None:
        return None, None
    report = audit_locality(copy.network, global_signals=copy.global_signals, namespace={})
    # built to be read, never run: collected now, without Brian2's "unused object" warnings (the
    # next circuit build resets every preference to its default)
    prefs.logging.warn_for_unused_objects = False
    del copy
    gc.collect()
    return report, sizes
