"""The interface between a learning framework and the rest of Apical.

A learning framework (BioGrad, BioLeaF, the SC microcircuit, the BPTT baseline, or a rule of your
own) is a package that declares one :class:`FrameworkSpec`. The training driver, ``apical
evaluate/analyze/bench/compare-forms/sweep`` and the config parser reach a framework only through
that declaration and the :class:`Framework` object it builds; none of them names a framework.
docs/frameworks.md walks through writing one.

What a framework declares, and what it may leave out (defaults in brackets):

- ``name``: the value of ``model.framework`` that selects it; ``title`` for figures and reports;
- ``factory(config, n_in, n_out, chunk, build_dir)``: build the network once for runs of
  ``chunk`` samples on ``config.run.device`` and return a :class:`Framework`;
- ``section`` [none]: its own config table ``[name]``, a frozen dataclass whose fields are the
  keys (kinds read from the annotations, bounds and choices declared beside it; each field's
  comment is its line in docs/config.md): every constant of its network, since ``[model]`` holds
  only what every framework reads (framework, hidden, time_steps, dt, equations);
- ``check_config(config)`` [no check]: raise :class:`ConfigError` (one line, naming the key) for a
  combination its network cannot run;
- ``devices`` [cpp, cuda, runtime]: where it runs; ``"numpy"`` when it has a numpy form equal to
  its Brian2 network (``--device numpy`` and ``apical compare-forms`` use it);
- ``claims(context)`` [none]: its own checks for ``apical analyze`` (the generic checks run for
  every framework);
- ``claimed`` [the keys ``claims`` does not return as unclaimed; none without ``claims``]: the
  keys of the shared claims vocabulary (docs/claims.md) the rule claims to meet;
- ``bench(args)`` [the generic bench]: its own cost measurements for ``apical bench --framework
  NAME``; ``args`` carries the command's flags (``device``, ``samples`` and ``threads`` may be None:
  the bench picks its own), ``widths``, ``dry_run`` (a tiny network, seconds: the bench must accept
  it) and ``training_digits(samples, time_steps, seed)``, the first MNIST training digits
  rate-coded. Without it, the generic bench times ``train_chunk`` and ``evaluate_chunk`` on the
  framework's example config;
- ``optimizers`` [("sgd",)]: the values of ``learning.optimizer`` it steps with;
- ``describe(config)`` [title]: what trained, for figure titles, when a config changes it;
- ``example_config`` [none]: a config file that trains it (the contract tests shrink it to a tiny
  network and run every tool on it).

What ``apical analyze`` asks of a framework, all optional (docs/models/<name>.md states each
framework's claims):

- :meth:`Framework.layer_weights` and :meth:`Framework.feedback_pairs`: the forward matrices (Dale's
  law, weight distributions) and each feedback pathway with what exact backprop would send instead
  (angle, norm ratio and sign-concordance, over training too);
- :meth:`Framework.locality_copy` [none]: its Brian2 network built small, as a
  :class:`LocalityCopy` with the signals it broadcasts on purpose, for the locality audit;
- ``claims(context)``: gets a :class:`ClaimsContext` (the run, its trained network, the first test
  samples, the generic locality audit) and returns a :class:`ClaimsResult` (its own checks, entries
  of analysis.json, notes, figures, and how the generic checks are worded for it).
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from apical.circuits.backend import BRIAN_DEVICES

__all__ = ["ConfigError", "ConfigSection", "Framework", "FrameworkSpec", "DEFAULT_DEVICES", "LocalityCopy",
           "ClaimsContext", "ClaimsResult", "lazy"]

DEFAULT_DEVICES = BRIAN_DEVICES  # circuits/backend.py: every device that runs a Brian2 network


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


def lazy(target: str) -> Callable[..., Any]:
    """A callable that imports ``target`` ("package.module:name", a class or a function) on its
    first call and calls it with the same arguments, so that a framework's ``__init__`` declares its
    factory, claims or bench without importing its network (reading the registry stays cheap).
    ``load()`` imports and returns the target itself (the registry reads a factory's class so)."""
    module_name, _, name = target.partition(":")

    def load():
        return getattr(importlib.import_module(module_name), name)

    def call(*args, **kwargs):
        return load()(*args, **kwargs)

    call.load = load
    call.__module__, call.__name__, call.__qualname__ = module_name, name, name
    return call


def _kind_of(annotation: Any) -> str:
    """The config kind of a dataclass field from its annotation (a string under
    ``from __future__ import annotations``): time, int_list, bool, int, float or str."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    text = text.replace("typing.", "").replace(" ", "")
    if "Quantity" in text:
        return "time"
    if text.startswith("tuple[int"):
        return "int_list"
    for kind in ("bool", "int", "float", "str"):
        if text == kind or text in (f"{kind}|None", f"None|{kind}", f"Optional[{kind}]"):
            return kind
    raise TypeError(f"config field annotation {annotation!r} is none of int, float, bool, str, Quantity, "
                    "tuple[int, ...] (optionally | None)")


def edited_equations(overrides, parts: Mapping[str, Any]) -> dict[str, Any]:
    """``parts`` with the config's ``model.equations`` edits applied: ("soma.reset", "v -= theta")
    replaces the field ``reset`` of ``parts["soma"]``; an unknown name is one line naming the parts."""
    edited = dict(parts)
    for name, code in overrides:
        part, _, field_name = name.partition(".")
        if part not in edited or field_name not in {f.name for f in dataclasses.fields(edited[part])}:
            known = ", ".join(f"{p}.{f.name}" for p, value in parts.items() for f in dataclasses.fields(value))
            raise ConfigError(f"config key 'model.equations': {name!r} names no part of this model; its parts are "
                              f"{known}")
        edited[part] = dataclasses.replace(edited[part], **{field_name: code})
    return edited


@dataclass(frozen=True)
class ConfigSection:
    """A TOML table of the config: its name, its schema (a frozen dataclass, defaults = the published
    values) and the checks on each key. ``kinds`` defaults to what the annotations say;
    ``bounds`` maps a key to [(operator, bound), ...] the value must satisfy; ``choices`` to the
    strings it may take; ``replaces`` a key to the other way of giving the same quantity (tau_m →
    leak): giving both is refused, giving the first sets the second to None; ``moved`` an older key
    of another section to the key of this one that took it over ("model.leak" → "leak"): a config
    that still names it is refused naming the new place, a results directory's stored config is read
    with it (docs/config.md, "Keys that moved")."""

    name: str
    schema: type
    bounds: Mapping[str, list[tuple[str, float]]] = field(default_factory=dict)
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    kinds: Mapping[str, str] | None = None
    replaces: Mapping[str, str] = field(default_factory=dict)
    moved: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not dataclasses.is_dataclass(self.schema):
            raise TypeError(f"config section [{self.name}]: its schema must be a dataclass")
        if self.kinds is None:
            hints = {f.name: f.type for f in dataclasses.fields(self.schema)}
            object.__setattr__(self, "kinds", {name: _kind_of(hint) for name, hint in hints.items()})
        unknown = (set(self.bounds) | set(self.choices) | set(self.replaces) | set(self.replaces.values())
                   | set(self.moved.values())) - set(self.kinds)
        if unknown:
            raise TypeError(f"config section [{self.name}] declares checks for keys it does not have: "
                            f"{', '.join(sorted(unknown))}")

    def keys(self) -> list[str]:
        return [f"{self.name}.{f.name}" for f in dataclasses.fields(self.schema)]


@dataclass(frozen=True)
class FrameworkSpec:
    """A learning framework as Apical knows it (see the module docstring)."""

    name: str
    title: str
    factory: Callable[..., "Framework"]
    section: ConfigSection | None = None
    check_config: Callable[[Any], None] | None = None
    devices: tuple[str, ...] = DEFAULT_DEVICES
    claims: Callable[[Any], Any] | None = None
    # The keys of the shared claims vocabulary (docs/claims.md) the rule claims to meet. None: every
    # key its claims() does not list in ClaimsResult.unclaimed, and none without claims().
    claimed: tuple[str, ...] | None = None
    bench: Callable[[Any], int] | None = None
    describe: Callable[[Any], str] | None = None
    example_config: str | Path | None = None
    order: int = 100  # place in listings (built-in frameworks first)
    # The equations its references implement (circuits/provenance.py): the digest file, and the
    # config overrides (tiny networks) whose Brian2 networks together hold every such block.
    reference_file: str | Path | None = None
    reference_configs: tuple[dict, ...] = ()
    # The parts of its equations a config may replace (model.equations): part name → the published
    # part, a frozen dataclass of Brian2 code strings (e.g. {"soma": SomaEquations()}); None: none.
    equation_parts: Callable[[], dict] | None = None
    # The values of learning.optimizer its learning can step with; any other is refused (it would
    # be ignored silently). "sgd": the rule's own update ΔW; "adam": Adam on −ΔW/η, per synapse.
    optimizers: tuple[str, ...] = ("sgd",)
    # Where its arithmetic runs whatever run.device says (e.g. "numpy" for a framework written in
    # numpy alone); None: on run.device. Tables name this as the row's device.
    computes_on: str | None = None

    @property
    def has_numpy_form(self) -> bool:
        return "numpy" in self.devices

    def run_title(self, config) -> str:
        """What trained, for figure titles."""
        if self.describe is not None:
            return self.describe(config)
        return self.title + (" (numpy form)" if config.run.device == "numpy" else "")


class Framework(ABC):
    """A framework's network, built once, as the training driver and the tools use it.

    Required: ``settings`` (with ``sizes``: input, hidden..., output), ``compile_seconds``, and the
    four calls that train, test and checkpoint. The state is a set of named arrays (checkpoint
    names: ``weights_<l>``, ``biases_<l>``, ... layer l counted from the input); a run resumed from
    them continues exactly.
    """

    settings: Any
    compile_seconds: float = 0.0

    @abstractmethod
    def __init__(self, config, n_in: int, n_out: int, chunk: int, build_dir: Path | None):
        """Build the network for runs of ``chunk`` samples on ``config.run.device``."""

    @abstractmethod
    def train_chunk(self, input_spikes: np.ndarray, labels: np.ndarray, chunk_index: int = 0,
                    rate_scale: float = 1.0) -> np.ndarray:
        """Learn from a chunk of samples ([N, T, n_in] 0/1, labels [N]) at the config's learning
        rates times ``rate_scale``; ``chunk_index`` keys any noise the chunk draws, so a resumed run
        replays it. Returns the output spike counts [N, n_out]."""

    @abstractmethod
    def evaluate_chunk(self, input_spikes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Output spike counts [N, n_out] of a chunk, without learning."""

    @abstractmethod
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Everything learned, as named arrays (what a checkpoint holds)."""

    @abstractmethod
    def load_state_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Continue from named arrays written by :meth:`state_arrays`."""

    def metrics(self) -> dict[str, float]:
        """Columns of the framework's own added to each row of metrics.csv (default: none)."""
        return {}

    def figures(self, directory: Path, input_spikes: np.ndarray, labels: np.ndarray) -> None:
        """Figures of the trained network on a few test samples, written into ``directory``
        (default: none beyond the driver's learning curve)."""

    def layer_weights(self) -> list[np.ndarray]:
        """The forward weight matrices (post × pre), input side first, for the generic analyses
        (Dale's law, weight distributions). Default: the state's ``weights_<l>`` arrays."""
        arrays = self.state_arrays()
        found = []
        while f"weights_{len(found) + 1}" in arrays:
            found.append(np.asarray(arrays[f"weights_{len(found) + 1}"], dtype=np.float64))
        return found

    def feedback_pairs(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(label, feedback matrix, what exact backprop would send instead) for every feedback
        pathway, for the generic feedback-alignment check; default: none (no feedback pathway)."""
        return []

    def compiled_networks(self) -> dict:
        """The Brian2 networks this framework runs, by role ("wake", "sleep"), each a CompiledNetwork
        or an objects dict with a "network": what the run's record of its equations (model.md) is
        read from. On the numpy device, the Brian2 networks the numpy form is tested equal to, built
        on the runtime device from the same settings. Default: none (no Brian2 network)."""
        return {}

    def brian_network(self, input_spikes: np.ndarray | None = None, labels: np.ndarray | None = None) -> dict:
        """The Brian2 objects of this network with the current state and the given inputs, built on
        the runtime device so that monitors can be added before ``objects["network"].run(...)``;
        frameworks without a Brian2 network raise NotImplementedError."""
        raise NotImplementedError(f"{type(self).__name__} has no Brian2 network")

    # ---------------------------------------------------------------- what a sample costs (analysis.events)
    def traffic_classes(self) -> dict[str, str]:
        """The traffic class of the signal each pathway of :meth:`brian_network` delivers, by the
        name of its SynapticPathway or a prefix of it (the name of its Synapses object, say):
        "forward" (the signal that computes the output) or "feedback" (errors, targets, top-down
        signals that exist for learning). Pathways that write only synaptic state are "learning"
        traffic unless their exact name is declared. Default: none declared (every signal forward)."""
        return {}

    def operation_counts(self, input_spikes: np.ndarray, labels: np.ndarray) -> dict | None:
        """Operations per training and per inference sample ({"training": ..., "inference": ...},
        each an ``apical.analysis.events.OperationCounts``) for a framework that has no Brian2
        network to count them from; default None: ``apical.analysis.events`` counts them on
        :meth:`brian_network`."""
        return None

    # ---------------------------------------------------------------- what ``apical analyze`` reads
    def locality_copy(self, sizes: tuple[int, ...]) -> LocalityCopy | None:
        """This network's Brian2 code built at ``sizes`` (the same depth, a few neurons per layer),
        with this run's settings, on the runtime device, to be read by the locality audit and never
        run; default: None (no Brian2 network to audit)."""
        return None


@dataclass(frozen=True)
class LocalityCopy:
    """A framework's Brian2 network built small for the locality audit (:meth:`Framework.locality_copy`)."""

    network: Any  # a brian2.Network
    global_signals: tuple[str, ...] = ()  # names it broadcasts to many neurons on purpose (learning rate, phase)


@dataclass
class ClaimsContext:
    """What ``apical analyze`` hands a framework's ``claims``: the run and its trained network."""

    directory: Path  # the results directory (read only: figures go to ``figures_dir``)
    config: Any
    spec: FrameworkSpec
    framework: Framework  # built through ``spec.factory``, the analysed checkpoint's state loaded
    checkpoint: Path
    progress: Mapping[str, Any]  # the checkpoint's progress (``samples_seen``, ...)
    metrics: list[dict]  # rows of metrics.csv
    input_spikes: np.ndarray  # the first test samples [N, T, n_in], coded as the run's evaluations code them
    labels: np.ndarray  # their labels [N]
    locality: Any = None  # the generic locality audit of :meth:`Framework.locality_copy` (a LocalityReport), if any
    output: Path | None = None  # where the analysis is written (``apical analyze --out``); None: ``directory``

    @property
    def figures_dir(self) -> Path:
        return (self.output or self.directory) / "figures"

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(self.framework.settings.sizes)


@dataclass
class ClaimsResult:
    """What a framework's ``claims`` returns; every field may stay empty.

    ``restated`` words a generic check for this framework, by key ("locality", "event_based",
    "weight_transport", "feedback_alignment", "sign_concordance", "dale"): a new claim (a string, e.g. "... (not claimed
    by X)"), a whole row in its place (a Check), or None to leave it out (checked another way).
    """

    checks: list = field(default_factory=list)  # rows of plausibility.md (apical.analysis.report.Check)
    entries: list[dict] = field(default_factory=list)  # analysis.json entries, merged over the generic ones
    notes: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # markdown lines after the generic details
    figures: list[Path] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)  # lines the command prints
    info: dict = field(default_factory=dict)  # added to the "analysis" entry
    restated: dict[str, Any] = field(default_factory=dict)
    # keys of the shared claims vocabulary (apical.analysis.report.CLAIMS, docs/claims.md) the
    # framework's paper does not make (still checked, shown as not claimed), and those that do not
    # apply to it, with why (shown as N/A)
    unclaimed: list[str] = field(default_factory=list)
    not_applicable: dict[str, str] = field(default_factory=dict)
