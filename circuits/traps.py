"""Brian2's traps, caught when a network is built, and its errors told in one line.

Measured on Brian2 2.10.1 (tests/test_traps.py holds each case):

- Brian2's exact integration (``method="exact"``, ``"linear"``, the default method list, which
  tries it first, and every event-driven equation of a Synapses) puts each variable of a
  differential equation back into its solution by name, through sympy's namespace. A variable
  named like one of sympy's objects is read as that object: ``E`` becomes Euler's number (the
  variable reads 2.718... on every step, without a warning), ``oo`` infinity, ``nan`` NaN, and
  hundreds of other names (``S``, ``Q``, ``beta``, ``gamma``, ``zeta``, ``trace``, ...) stop the
  run with a long traceback. Euler, Heun, Runge-Kutta and exponential Euler read them right.
- Code that reads ``e`` without defining it gets Brian2's constant e (Euler's number), silently.
- A variable of a group named like a constant of the group's own namespace hides that constant
  (Brian2 logs a warning and reads the variable, 0 unless set).
- Brian2 refuses by itself, when the group is constructed, variables named like its units
  (``ms``, ``volt``, ...), functions (``exp``, ``clip``, ``int``, ...) and constants (``e``,
  ``pi``, ``inf``), ``t``, ``dt``, ``t_in_timesteps``, ``xi`` and ``xi_*``, ``i``, ``N``,
  ``not_refractory``, ``lastspike`` with a refractory period, ``j``, ``delay``, ``N_incoming``
  and ``N_outgoing`` in a Synapses, names ending in ``_pre`` or ``_post``, Python keywords and
  names starting with an underscore. Its units are checked when a network first runs (a
  DimensionMismatchError inside a BrianObjectException of many lines). :func:`model_errors`
  turns both into one line naming the group.

:func:`check_network` refuses the first three, each with a :class:`ModelError`: one line that
names the group, the variable and why.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import sympy
from brian2 import Network, NeuronGroup, Synapses
from brian2.core.base import BrianObject, BrianObjectException
from brian2.groups.group import CodeRunner, Group
from brian2.stateupdaters.exact import LinearStateUpdater
from brian2.utils.stringtools import get_identifiers

from apical.circuits.framework import ConfigError

__all__ = ["ModelError", "check_network", "model_errors"]

#: What sympy's best-known names stand for, for the message.
_SYMPY_CONSTANTS = {"E": "Euler's number e (2.71828...)", "I": "the imaginary unit", "oo": "infinity",
                    "zoo": "complex infinity", "nan": "not-a-number"}


class ModelError(ConfigError):
    """A network's Brian2 code cannot run as written; the message names the group and the variable
    (the command line prints it in one line, as it prints a config error)."""


# ----------------------------------------------------------------------------- the checks
def check_network(network) -> None:
    """Refuse (:class:`ModelError`) the first name of ``network`` (a brian2 Network) that Brian2
    would read as something else: see the module docstring."""
    for group in sorted(_groups(network), key=lambda found: found.name):
        _check_exactly_integrated(group)
        _check_namespace_hidden(group)
        for part, code in _code_of(group):
            if "e" in _identifiers(code) and "e" not in group.namespace:
                raise ModelError(f"{part} of {group.name!r}: 'e' is Brian2's constant e, Euler's number (2.71828...), "
                                 "not a variable; write exp(1) for the number, or name the variable you mean")


def _groups(network) -> Iterator[Group]:
    for obj in network.objects:
        if isinstance(obj, (NeuronGroup, Synapses)):
            yield obj


def _integrates_exactly(method) -> bool:
    """Whether ``method`` (a group's ``method`` argument) makes Brian2 try its exact integration."""
    choices = method if isinstance(method, (tuple, list)) else (method,)
    return any(choice in ("exact", "linear") or isinstance(choice, LinearStateUpdater) for choice in choices)


def _check_exactly_integrated(group: Group) -> None:
    names = []
    updater = getattr(group, "state_updater", None)
    if updater is not None and _integrates_exactly(updater.method_choice):
        names += sorted(group.equations.diff_eq_names)
    if isinstance(group, Synapses) and group.event_driven is not None:
        names += sorted(group.event_driven.diff_eq_names)  # Brian2 always integrates these exactly
    for name in names:
        reading = _sympy_reading(name)
        if reading is not None:
            raise ModelError(f"equations of {group.name!r}: the variable {name!r} is sympy's name of {reading}, "
                             "which Brian2's exact integration reads in its place; rename it")


@functools.cache
def _sympy_reading(name: str) -> str | None:
    """What sympy makes of ``name`` where Brian2's exact integration substitutes it by name (its
    LinearStateUpdater: ``solution.subs(symbol, name)``); None for a plain symbol."""
    try:
        value = sympy.sympify(name)
    except (sympy.SympifyError, TypeError, ValueError, AttributeError):
        return "something other than a plain symbol"
    if value == sympy.Symbol(name):
        return None
    if name in _SYMPY_CONSTANTS:
        return _SYMPY_CONSTANTS[name]
    if getattr(value, "is_number", False) is True:
        return f"a constant ({value.evalf(6)})"
    return "a function" if callable(value) else "one of its objects"


def _check_namespace_hidden(group: Group) -> None:
    defined = set(group.equations.names)
    if isinstance(group, Synapses) and group.event_driven is not None:
        defined |= set(group.event_driven.names)
    for name in sorted(defined & set(group.namespace)):
        raise ModelError(f"equations of {group.name!r}: the variable {name!r} hides the constant {name} = "
                         f"{group.namespace[name]!r} of the group's namespace (Brian2 reads the variable); rename it")


def _code_of(group: Group) -> Iterator[tuple[str, str]]:
    """(what it is, code) of every piece of Brian2 code the group runs."""
    equations = [group.equations] + ([group.event_driven] if isinstance(group, Synapses) and group.event_driven else [])
    for eqs in equations:
        for equation in eqs.ordered:
            if equation.expr is not None:
                yield "equations", equation.expr.code
    if isinstance(group, NeuronGroup):
        for event, condition in group.events.items():
            yield ("threshold" if event == "spike" else f"condition of event {event!r}"), condition
        for event, code in group.event_codes.items():
            yield ("reset" if event == "spike" else f"code on event {event!r}"), code
    else:
        for pathway in group._pathways:
            yield f"code of pathway {pathway.name!r}", pathway.code
        for name, updater in group.summed_updaters.items():
            yield f"summed variable {name!r}", updater.expression.code
    for runner in group.contained_objects:
        if type(runner) is CodeRunner and isinstance(runner.abstract_code, str):
            yield f"code of {runner.name!r}", runner.abstract_code


@functools.cache
def _identifiers(code: str) -> frozenset[str]:
    return frozenset(get_identifiers(code))


# ----------------------------------------------------------------------------- Brian2's errors in one line
@contextmanager
def model_errors():
    """Turn an error Brian2 raises about a network's code (a refused name or an inconsistent unit,
    when a group is constructed or a network first runs) into a :class:`ModelError` of one line
    naming the group; the original stays attached (``__cause__``)."""
    try:
        yield
    except ModelError:
        raise
    except Exception as error:
        line = model_error_line(error)
        if line is None:
            raise
        raise ModelError(line) from error


def model_error_line(error: BaseException) -> str | None:
    """One line for a Brian2 error about a network's code, naming the group; None for another error."""
    preparing = _frames(error)[-1] if error.__traceback__ is not None else None
    if (isinstance(error, BrianObjectException) and preparing is not None and preparing.f_code.co_name == "before_run"
            and isinstance(preparing.f_locals.get("self"), Network)):
        obj = preparing.f_locals.get("obj")  # the object Network.before_run was preparing
        owner = getattr(obj, "group", None) or obj
        name = owner.name if isinstance(owner, BrianObject) else error._brian_objname
        cause = error.__cause__ if error.__cause__ is not None else error
        return f"{_part(obj)} of {name!r}: {_one_line(cause)}"
    constructing = _group_under_construction(error) if preparing is not None and _in_brian2(preparing) else None
    if constructing is not None:
        kind, name = constructing
        return f"equations of {name!r}: {_one_line(error)}" if name else f"equations of a {kind}: {_one_line(error)}"
    return None


def _part(obj) -> str:
    kind = type(obj).__name__
    return {"StateUpdater": "equations", "Thresholder": "threshold", "Resetter": "reset",
            "SynapticPathway": f"code of pathway {getattr(obj, 'name', '')!r}",
            "SummedVariableUpdater": "summed variable",
            "CodeRunner": f"code of {getattr(obj, 'name', '')!r}"}.get(kind, "equations")


def _in_brian2(frame) -> bool:
    """Whether ``frame`` runs Brian2's own code (or the parser and sympy it calls)."""
    return any(f"{sep}{package}{sep}" in frame.f_code.co_filename for package in ("brian2", "pyparsing", "sympy")
               for sep in ("/", "\\"))


def _frames(error: BaseException):
    return [frame for frame, _ in traceback.walk_tb(error.__traceback__)]


def _group_under_construction(error: BaseException) -> tuple[str, str] | None:
    """(class, name) of the innermost Brian2 group whose constructor raised ``error``; the name is ""
    where the group was given none."""
    for frame in reversed(_frames(error)):
        candidate = frame.f_locals.get("self")
        if frame.f_code.co_name == "__init__" and isinstance(candidate, Group):
            name = frame.f_locals.get("name")
            return type(candidate).__name__, name if isinstance(name, str) and not name.endswith("*") else ""
    return None


def _one_line(error: BaseException) -> str:
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(message).split()) or type(error).__name__
