"""Run configuration: TOML files parsed into frozen dataclasses.

What the network is (`[model]`: the framework, sizes and time steps every framework reads; the
framework's own constants in its `[name]` section, e.g. `[biograd]`) is kept apart from how it
learns (`[learning]`), which data it sees (`[data]`), how it is run (`[run]`) and the seed of each
source of randomness (`[seeds]`), as in NetPyNE's split of netParams and simConfig. Quantities with
units are strings parsed with Brian2's unit names ("5*ms") and checked for their dimension. Every
error is a one-line ConfigError naming the key, e.g. ``config key 'biograd.threshold' must be > 0,
got -1``. docs/config.md lists every key (written by apical.runs.config_reference).

    config = load_config("runs/configs/mnist.toml", overrides=["learning.learning_rate=5e-4"])
    config.biograd.leak_per_step(config.model.dt)  # λ, from biograd.leak or exp(-dt / tau_m)
    config_to_toml(config)      # every key, resolved; loads back to an equal Config
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import math
import operator
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from brian2 import Quantity, ms, second
from brian2.core.namespace import DEFAULT_UNITS
from brian2.units.fundamentalunits import get_dimensions

from apical.circuits import registry
from apical.circuits.backend import DEVICES
from apical.circuits.framework import ConfigError, ConfigSection, edited_equations
from apical.runs.datasets import DATASETS, SAMPLE_GEOMETRY

__all__ = [
    "ConfigError",
    "ModelConfig",
    "LearningConfig",
    "DataConfig",
    "RunConfig",
    "SeedsConfig",
    "Config",
    "sections",
    "parse_time",
    "load_config",
    "config_from_dict",
    "config_from_resolved",
    "config_to_toml",
    "apply_overrides",
]


DEFAULT_FRAMEWORK = registry.DEFAULT_FRAMEWORK


@dataclass(frozen=True)
class ModelConfig:
    """What every framework reads: which one, its layer sizes and its time steps. Each framework's
    own constants are in its section ([biograd], [bp], [bioleaf], ...)."""

    framework: str = DEFAULT_FRAMEWORK  # the learning framework, one of the registered ones (apical.circuits.registry)
    hidden: tuple[int, ...] = (500, 100)  # hidden layer sizes, input side first
    time_steps: int = 20  # T, time bins per sample
    dt: Quantity = field(default_factory=lambda: 5 * ms)  # duration of one time bin
    equations: tuple[tuple[str, str], ...] = ()  # model code replacing published parts of the framework's
    #   equations, e.g. {"soma.reset" = "v -= theta"} (its parts: apical equations CONFIG; docs/editing.md)


@dataclass(frozen=True)
class LearningConfig:
    """What every learning rule is stepped by: its rate, its minibatch, the rate's schedule and the optimiser."""

    learning_rate: float = 1e-3  # η, learning rate of the rule (BioGrad's wake phase; BPTT's: bp.learning_rate)
    batch_size: int = 1  # M, samples per weight update (1 = online)
    decay: float = 1.0  # learning-rate factor applied every decay_every epochs (1 = constant rate)
    decay_every: float = 1.0  # epochs between two learning-rate decays (0.5: every half epoch)
    warmup_epochs: float = 0.0  # η ramps linearly from 0 to its full value over these first epochs (0 = none)
    optimizer: str = "sgd"  # "sgd": the rule's own step; "adam": Adam on each parameter's own updates
    #   (the bp framework; BioGrad on its numpy form)

    def rate_scale(self, epochs_done: float, chunk_epochs: float = 0.0) -> float:
        """The factor on every learning rate for a chunk of ``chunk_epochs`` epochs that starts once
        ``epochs_done`` epochs (a fraction counts: 2.5 = half-way through the third) have been trained.
        Step decay: × decay every decay_every epochs (a fraction allowed). Warm-up: during the first
        warmup_epochs the factor is also × (epochs_done + chunk_epochs) / warmup_epochs, the ramp's
        value at the chunk's end, so no chunk learns at rate 0."""
        scale = self.decay ** math.floor(epochs_done / self.decay_every + 1e-9)
        if self.warmup_epochs > 0:
            scale *= min(1.0, (epochs_done + chunk_epochs) / self.warmup_epochs)
        return scale


@dataclass(frozen=True)
class DataConfig:
    """The dataset and how its samples become spikes."""

    dataset: str = "mnist"  # "mnist", "fashion-mnist", "nmnist" or "cifar10" (32×32×3 intensities, 3072 inputs)
    data_dir: str = ""  # data folder; "" = $APICAL_DATA_DIR, then the repository's data/
    train_samples: int = 0  # training samples used per epoch, 0 = all
    test_samples: int = 0  # test samples used per evaluation, 0 = all
    validation_samples: int = 0  # held out from the END of the training set, never trained on; each evaluation
    #   also scores them, and the summary selects the evaluation with the best validation accuracy
    encoding: str = "bernoulli"  # image encoding: Bernoulli rate code of pixel intensity
    intensity_scale: float = 1.0  # gain of the rate code: spike probability per step = scale × pixel/255
    #   (images, not N-MNIST events); 0.5 gives Fashion-MNIST about MNIST's mean input rate
    shift_pixels: int = 0  # training samples moved by a random whole-pixel offset in [−k, k] (x and y) each
    #   time they are trained on (a new draw per epoch, keyed by seeds.input; test and validation
    #   samples never); 0 = none. MNIST, Fashion-MNIST and N-MNIST


@dataclass(frozen=True)
class RunConfig:
    """How the simulation is run: device, schedule, checkpoints."""

    device: str = "cpp"  # Brian2 device: "cpp" (cpp_standalone), "cuda" (brian2cuda), "runtime";
    #   "numpy": BioGrad, wake and sleep (circuits/biograd/numpy_form.py, exact kernel form), or the SC
    #   microcircuit's learning (circuits/scmicro/numpy_form.py) in batched numpy, for sweeps
    epochs: int = 1  # passes over the training samples
    eval_every: int = 0  # evaluate every this many training samples, 0 = once per epoch
    checkpoint_every: int = 10000  # checkpoint every this many training samples (and at every evaluation and epoch end), 0 = only those
    chunk_samples: int = 1000  # samples per device.run() call of the compiled project
    threads: int = 1  # OpenMP threads (0 = all cores); synaptic pathways run on one thread anyway
    precision: str = "float64"  # floating-point type of the simulation: "float64" or "float32"
    shuffle: bool = True  # shuffle the training samples each epoch
    max_weight: float = 1000.0  # a learned value beyond ± this stops the run as diverged (0 = no bound);
    #   the models' thresholds are of order 1, so such a weight silences or saturates its cell


@dataclass(frozen=True)
class SeedsConfig:
    """One seed per source of randomness, so each can be replayed or varied alone."""

    weights: int = 1  # initial forward weights and biases
    input: int = 2  # input spike rasters (Bernoulli rate code)
    sleep: int = 3  # sleep-phase noise spikes
    shuffle: int = 4  # order of training samples
    feedback: int = 5  # random feedback weights B (feedback_init = "random"; the SC microcircuit's and e-prop's B)


@dataclass(frozen=True)
class Config:
    """A complete, validated run configuration: the five core sections, and the ``[name]`` table of
    every registered framework that declares one (``config.bioleaf``, ``config.scmicro``, ...)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    data: DataConfig = field(default_factory=DataConfig)
    run: RunConfig = field(default_factory=RunConfig)
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    sections: Mapping[str, Any] = field(default_factory=lambda: {name: s.schema() for name, s in framework_sections().items()})

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: a framework's own section, e.g. config.scmicro.
        sections = self.__dict__.get("sections")
        if sections is not None and name in sections:
            return sections[name]
        raise AttributeError(f"Config has no section {name!r}")


# Kind of each core key: "int", "float", "bool", "str", "time", "int_list"; bounds checked below.
CORE = {
    "model": ConfigSection("model", ModelConfig, kinds={
        "framework": "str", "hidden": "int_list", "time_steps": "int", "dt": "time", "equations": "str_table",
    }, bounds={"time_steps": [(">=", 1)]}),
    "learning": ConfigSection("learning", LearningConfig, bounds={
        "learning_rate": [(">", 0)], "batch_size": [(">=", 1)], "decay": [(">", 0), ("<=", 1)],
        "decay_every": [(">", 0)], "warmup_epochs": [(">=", 0)],
    }, choices={"optimizer": ("sgd", "adam")}),
    "data": ConfigSection("data", DataConfig, bounds={
        "train_samples": [(">=", 0)], "test_samples": [(">=", 0)], "validation_samples": [(">=", 0)],
        "intensity_scale": [(">", 0), ("<=", 1)], "shift_pixels": [(">=", 0)],
    }, choices={"dataset": tuple(DATASETS), "encoding": ("bernoulli",)}),
    "run": ConfigSection("run", RunConfig, bounds={
        "epochs": [(">=", 1)], "eval_every": [(">=", 0)], "checkpoint_every": [(">=", 0)],
        "chunk_samples": [(">=", 1)], "threads": [(">=", 0)], "max_weight": [(">=", 0)],
    }, choices={"device": tuple(DEVICES), "precision": ("float64", "float32")}),
    "seeds": ConfigSection("seeds", SeedsConfig,
                           bounds={name: [(">=", 0)] for name in ("weights", "input", "sleep", "shuffle", "feedback")}),
}


def framework_sections() -> dict[str, ConfigSection]:
    """The ``[name]`` tables the registered frameworks declare, in the registry's order."""
    found = {}
    for spec in registry.frameworks().values():
        if spec.section is not None:
            if spec.section.name in CORE or spec.section.name in found:
                raise ConfigError(f"framework {spec.name!r} declares the config section [{spec.section.name}], "
                                  "which another part of the config already uses")
            found[spec.section.name] = spec.section
    return found


def sections() -> dict[str, ConfigSection]:
    """Every section of a config, in the order a resolved config is written."""
    return {**CORE, **framework_sections()}


def key_schema() -> tuple[dict[str, str], dict[str, list], dict[str, tuple]]:
    """Kinds, bounds and choices of every key ("section.key"), the framework choice from the registry."""
    kinds, bounds, choices = {}, {}, {"model.framework": registry.names()}
    for name, section in sections().items():
        kinds.update({f"{name}.{key}": kind for key, kind in section.kinds.items()})
        bounds.update({f"{name}.{key}": value for key, value in section.bounds.items()})
        choices.update({f"{name}.{key}": value for key, value in section.choices.items()})
    return kinds, bounds, choices


def moved_keys() -> dict[str, list[tuple[str, str]]]:
    """Each older key ("model.leak") → (section, key) of every framework section that took it over,
    in the registry's order."""
    moved: dict[str, list[tuple[str, str]]] = {}
    for name, section in framework_sections().items():
        for old, new in section.moved.items():
            moved.setdefault(old, []).append((name, new))
    return moved


def _own_section(framework: Any) -> str | None:
    """The name of the section of the framework ``model.framework`` names, if it declares one."""
    spec = registry.frameworks().get(framework) if isinstance(framework, str) else None
    return spec.section.name if spec is not None and spec.section is not None else None


def _moved(key: str, framework: Any, moved: Mapping[str, list[tuple[str, str]]]) -> ConfigError:
    """The refusal of an older key, naming its new place: in the section of the config's framework
    if that took it over, else in the first that did (BioGrad's, for BioGrad's keys)."""
    places = moved[key]
    own = _own_section(framework)
    section, name = next(((s, k) for s, k in places if s == own), places[0])
    return ConfigError(f"config key {key!r} moved to '{section}.{name}'")


def _framework_named(data: Mapping[str, Any]) -> Any:
    model = data.get("model")
    return model.get("framework", DEFAULT_FRAMEWORK) if isinstance(model, Mapping) else DEFAULT_FRAMEWORK


def migrated(data: Mapping[str, Any]) -> dict[str, Any]:
    """A config written by an older Apical (a results directory's config.toml, a checkpoint's record)
    with each key that moved in its new place: in the section of the run's framework if that took it
    over; a key the run's framework did not read is dropped (its section keeps its defaults)."""
    moved = moved_keys()
    own = _own_section(_framework_named(data))
    tree = {section: dict(table) if isinstance(table, Mapping) else table for section, table in data.items()}
    for old, places in moved.items():
        section, _, name = old.partition(".")
        table = tree.get(section)
        if not isinstance(table, dict) or name not in table:
            continue
        value = table.pop(name)
        for place, new in places:
            if place == own:
                tree.setdefault(place, {})[new] = value
    return tree


_COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


# --------------------------------------------------------------------------------------------
# parsing values


def _show(value: Any) -> str:
    """A value as the user wrote it: strings in double quotes, like TOML."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Quantity):
        return str(value)
    return repr(value)


_ARITHMETIC = {ast.Mult: operator.mul, ast.Div: operator.truediv, ast.Add: operator.add, ast.Sub: operator.sub}


def _evaluate_units(node: ast.AST) -> Any:
    """Evaluate a parsed unit expression: numbers, Brian2 unit names, + - * / and powers only."""
    if isinstance(node, ast.Expression):
        return _evaluate_units(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)  # floats, so that a power overflows instead of growing without bound
    if isinstance(node, ast.Name):
        if node.id not in DEFAULT_UNITS:
            raise ValueError(f"unknown unit {node.id!r}")
        return DEFAULT_UNITS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _evaluate_units(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        return _ARITHMETIC[type(node.op)](_evaluate_units(node.left), _evaluate_units(node.right))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        exponent = _evaluate_units(node.right)
        if not isinstance(exponent, (int, float)):
            raise ValueError("an exponent must be a plain number")
        return _evaluate_units(node.left) ** exponent
    raise ValueError("only numbers, unit names and + - * / ** are allowed")


# "5 ms" or "5. ms" (Brian2's str() of a quantity) mean "5*ms".
_NUMBER_SPACE_UNIT = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s+([A-Za-z_]\w*)\s*$")


def parse_time(text: Any, key: str = "value") -> Quantity:
    """A time quantity from a string such as "5*ms"; ConfigError naming `key` otherwise."""
    expected = 'expected e.g. "5*ms"'
    if not isinstance(text, str):
        raise ConfigError(f"config key {key!r}: {_show(text)} is not a time ({expected}, a string with a unit)")
    spaced = _NUMBER_SPACE_UNIT.match(text)
    source = f"{spaced.group(1)}*{spaced.group(2)}" if spaced else text
    try:
        value = _evaluate_units(ast.parse(source.strip(), mode="eval"))
    except SyntaxError:
        raise ConfigError(f"config key {key!r}: {text!r} is not a time (cannot parse it; {expected})") from None
    except Exception as error:  # ValueError, ZeroDivisionError, OverflowError, Brian2's DimensionMismatchError
        raise ConfigError(f"config key {key!r}: {text!r} is not a time ({error}; {expected})") from None
    if get_dimensions(value) != get_dimensions(second):
        raise ConfigError(f"config key {key!r}: {text!r} is not a time ({expected})")
    value = Quantity(value)
    if not math.isfinite(float(value / second)):
        raise ConfigError(f"config key {key!r} must be finite, got {_show(text)}")
    return value


def _coerce(key: str, value: Any, kinds: Mapping[str, str], choices: Mapping[str, tuple]) -> Any:
    kind = kinds[key]
    if kind == "time":
        return parse_time(value, key)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r}: expected an integer, got {_show(value)}")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r}: expected a number, got {_show(value)}")
        if not math.isfinite(value):
            raise ConfigError(f"config key {key!r} must be finite, got {_show(value)}")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r}: expected true or false, got {_show(value)}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r}: expected a string, got {_show(value)}")
        if key == "model.framework" and value in registry.broken():
            registry.get(value)  # one line: the entry point that names it fails to load, and why
        if key in choices and value not in choices[key]:
            allowed = ", ".join(_show(choice) for choice in choices[key])
            raise ConfigError(f"config key {key!r} must be one of {allowed}, got {_show(value)}")
        return value
    if kind == "str_table":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ConfigError(f"config key {key!r}: expected a table of strings, e.g. {{\"soma.reset\" = \"v = 0\"}}, "
                              f"got {_show(value)}")
        return tuple(sorted(value.items()))
    if kind == "int_list":
        if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise ConfigError(f"config key {key!r}: expected a list of integers, got {_show(value)}")
        if any(v < 1 for v in value):
            raise ConfigError(f"config key {key!r}: every layer size must be >= 1, got {_show(list(value))}")
        return tuple(value)
    raise AssertionError(kind)


def _check_bounds(key: str, value: Any, written: Any, bounds: Mapping[str, list]) -> None:
    for symbol, bound in bounds.get(key, ()):
        if not _COMPARE[symbol](value, bound):
            raise ConfigError(f"config key {key!r} must be {symbol} {bound}, got {_show(written)}")


def _unknown(kind: str, name: str, candidates: Iterable[str]) -> ConfigError:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(candidates))})"
    return ConfigError(f"config {kind} {name!r} is unknown{hint}")


# --------------------------------------------------------------------------------------------
# building a Config


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Validate a nested mapping {section: {key: value}} (as read from TOML) into a Config."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a configuration must be a table of sections, got {_show(data)}")
    schema = sections()
    kinds, bounds, choices = key_schema()
    moved = moved_keys()
    all_keys = list(kinds)
    values_of: dict[str, dict[str, Any]] = {}
    written: dict[str, dict[str, Any]] = {}  # values as given, for error messages
    for section, table in data.items():
        if section not in schema:
            if not isinstance(table, Mapping) and section in {k.split(".")[1] for k in all_keys}:
                close = [k for k in all_keys if k.endswith("." + section)]
                raise ConfigError(f"config key {section!r} must be inside a section (did you mean {close[0]!r}?)")
            raise _unknown("section", section, schema)
        if not isinstance(table, Mapping):
            raise ConfigError(f"config section {section!r} must be a table ([{section}]), got {_show(table)}")
        values = {}
        written[section] = dict(table)
        for name, value in table.items():
            key = f"{section}.{name}"
            if key not in kinds and key in moved:
                raise _moved(key, _framework_named(data), moved)
            if key not in kinds:
                raise _unknown("key", key, [k for k in all_keys if k.startswith(section + ".")] or all_keys)
            values[name] = _coerce(key, value, kinds, choices)
            _check_bounds(key, values[name], value, bounds)
        values_of[section] = values

    for section, values in values_of.items():
        for key, other in schema[section].replaces.items():  # e.g. tau_m, the other way of giving the leak
            if key in values:
                if other in values:
                    raise ConfigError(f"config keys '{section}.{other}' and '{section}.{key}' are both given: give one "
                                      f"({key} sets {other})")
                values[other] = None
    model = values_of.setdefault("model", {})
    if "dt" in model and float(model["dt"] / second) <= 0:
        raise ConfigError(f"config key 'model.dt' must be > 0, got {written['model']['dt']!r}")

    built = {name: section.schema(**values_of.get(name, {})) for name, section in schema.items()}
    config = Config(**{name: built.pop(name) for name in CORE}, sections=built)
    framework = registry.get(config.model.framework)
    if config.run.device not in framework.devices:
        with_numpy = [registry.get(name) for name in registry.numpy_forms()]
        if config.run.device == "numpy":
            raise ConfigError(
                f"config key 'run.device': \"numpy\" runs only {' and '.join(spec.title for spec in with_numpy)} "
                f"(model.framework = {' or '.join(repr(spec.name) for spec in with_numpy)}), "
                f"not {config.model.framework!r}; "
                f"use {', '.join(repr(d) for d in framework.devices)}"
            )
        raise ConfigError(f"config key 'run.device': {config.model.framework!r} runs on "
                          f"{', '.join(repr(d) for d in framework.devices)}, not {config.run.device!r}")
    if config.model.equations:
        if framework.equation_parts is None:
            raise ConfigError(f"config key 'model.equations': {framework.title} takes no equation edits from the config")
        edited_equations(config.model.equations, framework.equation_parts())  # refuses unknown parts
    if config.data.shift_pixels and config.data.dataset not in SAMPLE_GEOMETRY:
        raise ConfigError(f"config key 'data.shift_pixels': shifts are defined for {', '.join(SAMPLE_GEOMETRY)}, "
                          f"not {config.data.dataset!r}")
    if config.learning.optimizer not in framework.optimizers:
        raise ConfigError(
            f"config key 'learning.optimizer': {framework.title} steps with {' or '.join(map(repr, framework.optimizers))}, "
            f"not {config.learning.optimizer!r}")
    if framework.check_config is not None:
        framework.check_config(config)
    return config


def _parse_override(text: str) -> tuple[str, str, Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    path, raw = text.split("=", 1)
    path = path.strip()
    parts = path.split(".")
    if len(parts) > 2 and parts[:2] == ["model", "equations"] and all(parts):
        # --set model.equations.soma.reset="v -= theta": one part of the equations table
        try:
            code = tomllib.loads(f"value = {raw.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            code = raw.strip()
        return "model", "equations", {".".join(parts[2:]): code}
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"override {text!r} must name a key as section.key, got {path!r}")
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # not TOML syntax: a bare string such as fashion-mnist or 2*ms
    return parts[0], parts[1], value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of the nested mapping with each "section.key=value" override set (value in TOML syntax)."""
    merged = {section: dict(table) if isinstance(table, Mapping) else table for section, table in data.items()}
    for text in overrides:
        section, name, value = _parse_override(text)
        schema = sections()
        if section not in schema:
            raise _unknown("section", section, schema)
        key = f"{section}.{name}"
        moved = moved_keys()
        if key not in schema[section].keys() and key in moved:
            raise _moved(key, _framework_named(merged), moved)
        if key not in schema[section].keys():
            raise _unknown("key", key, [k for k in schema[section].keys()])
        table = merged.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"config section {section!r} must be a table ([{section}]), got {_show(table)}")
        if section == "model" and name == "equations" and isinstance(value, Mapping):
            value = {**dict(table.get("equations", {})), **value}  # parts add up
        # An override replaces the other way of giving the same quantity (leak, tau_m), rather than
        # conflicting with the file.
        replaces = schema[section].replaces
        for key, other in replaces.items():
            if name in (key, other):
                table.pop(other if name == key else key, None)
        table[name] = value
    return merged


RESOLVED_HEADER = "# Resolved Apical configuration: every key, defaults filled in."


def load_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> Config:
    """Read a TOML configuration file, apply "section.key=value" overrides, validate. A file written
    by :func:`config_to_toml` (a results directory's config.toml) is read with the keys that moved
    put in their new places (:func:`migrated`), so that runs of older versions still resume and
    analyse; in a file of one's own, such a key is refused naming its new place."""
    try:
        with open(path, "rb") as handle:
            source = handle.read().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {os.fspath(path)} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {os.fspath(path)} is a folder, not a TOML file") from None
    except OSError as error:
        raise ConfigError(f"config file {os.fspath(path)} cannot be read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {os.fspath(path)} is not UTF-8 text ({error.reason})") from None
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as error:
        # tomllib says "at end of document" without a line number; give the last line.
        last_line = source.count("\n") + (0 if source.endswith("\n") else 1)
        reason = str(error).replace("(at end of document)", f"(at end of document, line {last_line})")
        raise ConfigError(f"config file {os.fspath(path)} is not valid TOML: {reason}") from None
    if source.startswith(RESOLVED_HEADER):
        data = migrated(data)
    return config_from_dict(apply_overrides(data, overrides))


def config_from_resolved(text: str) -> Config:
    """The Config of a resolved config's text (config_to_toml's, e.g. a checkpoint's record), older
    keys in their new places (:func:`migrated`). tomllib.TOMLDecodeError if it is not TOML."""
    return config_from_dict(migrated(tomllib.loads(text)))


# --------------------------------------------------------------------------------------------
# writing a Config


def _format_time(value: Quantity) -> str:
    """A time as "<number>*ms" when that reads back exactly, else in seconds (always exact)."""
    seconds = float(value / second)
    in_ms = float(value / ms)
    if float(repr(in_ms)) * float(ms) == seconds:
        return f"{in_ms!r}*ms"
    return f"{seconds!r}*second"


def format_value(value: Any) -> str:
    """A value as the resolved config.toml writes it (TOML syntax, times with their unit)."""
    if isinstance(value, Quantity):
        return _show(_format_time(value))
    if isinstance(value, tuple):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    return _show(value)


def config_to_toml(config: Config) -> str:
    """The fully resolved configuration as TOML: every key, reading back to an equal Config."""
    lines = [RESOLVED_HEADER]
    for section, declared in sections().items():
        lines.append("")
        lines.append(f"[{section}]")
        for spec in dataclasses.fields(declared.schema):
            value = getattr(getattr(config, section), spec.name)
            if value is None:
                # e.g. one of two ways of giving a quantity (leak, tau_m): the other one is set
                others = [second if first == spec.name else first
                          for first, second in declared.replaces.items() if spec.name in (first, second)]
                lines.append(f"# {spec.name} not set" + (f" ({others[0]} is)" if others else ""))
                continue
            if section == "model" and spec.name == "equations":
                pairs = ", ".join(f"{json.dumps(part)} = {json.dumps(code)}" for part, code in value)
                lines.append(f"equations = {{{pairs}}}")
                continue
            lines.append(f"{spec.name} = {format_value(value)}")
    return "\n".join(lines) + "\n"
