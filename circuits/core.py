"""The core every Brian2 circuit runs on: compile once, pass each run's values in, read the state back.

A circuit runs a fixed number N of samples in one simulation: samples follow each other, T steps
each, and a run lasts N·T + 1 steps (the extra step is the boundary that folds the last sample's
update). :class:`CompiledNetwork` holds what every circuit does with such a run:

- on a standalone device (``cpp``, ``cuda``) the project is generated and compiled once, when the
  network is built; every run hands the same binary what changes as run arguments;
- on the runtime device every run builds fresh objects, assigns the same values and runs them;
- what changes between runs is one :class:`RunValues`: the TimedArray tables (input spikes,
  targets, noise) and the initial values of variables (weights, biases, learning rates);
- what a run returns is its objects, read back through the helpers below (spike rasters and state
  monitors cut into per-sample [N, T, n] arrays, values at the sample boundaries).

A circuit declares four things and the core does the rest (docs/frameworks.md):

- :meth:`CompiledNetwork.table_widths`: the per-step tables it reads;
- :meth:`CompiledNetwork.construct`: its groups, pathways and monitors by name (the core gathers
  them into one Network);
- :meth:`CompiledNetwork.schedule`: its step order, one :class:`Schedule` table of rows (slot,
  order, code object or :class:`Every`), placed by the core in one place;
- :meth:`CompiledNetwork.state_variables`: the named arrays it learns and the values a run is
  given, each with its Brian2 variable and layout (:class:`Dense`, :class:`Masked`, :class:`Flat`,
  :class:`Broadcast`), which :meth:`values_of` and :meth:`read_state` map to run values and back.

Every run passes through :meth:`simulate`, so running several runs side by side (batched copies,
docs/batching.md), when it comes, belongs in this class. ``afferent_rows`` and ``make_afferents``
are the input layer the microcircuits share.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from brian2 import Network, NeuronGroup, SpikeMonitor, StateMonitor, TimedArray
from brian2.groups.group import Group
from brian2.core.variables import DynamicArrayVariable

from apical.circuits.backend import (DeviceError, device_workarounds, forget_run_arg_files, prepare_device,
                                     select_runtime)
from apical.circuits.traps import check_network

__all__ = ["Broadcast", "CompiledNetwork", "Dense", "Every", "Flat", "Masked", "RunValues", "Schedule", "StateVariable",
           "afferent_rows", "as_samples", "connect_dense", "make_afferents"]


@dataclass
class RunValues:
    """What one run is given: ``tables``, the [N·T + 1, n] values of each TimedArray by name (a
    table left out reads 0), and ``variables``, a function of the run's objects that returns the
    initial value of each variable it sets, keyed by the variable (``{pathway.w: ..., layer.bias:
    ...}``)."""

    tables: Mapping[str, np.ndarray] = field(default_factory=dict)
    variables: Callable[[dict], Mapping] = lambda objects: {}


class Flat:
    """A state array held as is by its variable (per-cell values, a scalar)."""

    def to_network(self, values) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    def from_network(self, values) -> np.ndarray:
        return np.array(values, dtype=np.float64)


@dataclass(frozen=True)
class Dense(Flat):
    """A matrix (post × pre) held by an all-to-all pathway whose synapses are listed pre-major:
    synapse k joins presynaptic cell k // n_post to postsynaptic cell k % n_post."""

    n_post: int
    n_pre: int

    def to_network(self, matrix) -> np.ndarray:
        return np.asarray(matrix, dtype=np.float64).T.ravel()

    def from_network(self, values) -> np.ndarray:
        return np.asarray(values, dtype=np.float64).reshape(self.n_pre, self.n_post).T.copy()


@dataclass(frozen=True)
class Masked(Flat):
    """A matrix (post × pre) held by a pathway of the pairs where ``mask`` (post × pre) is true,
    listed pre-major (``np.nonzero(mask.T)``); the matrix is zero elsewhere."""

    mask: np.ndarray

    def to_network(self, matrix) -> np.ndarray:
        pre, post = np.nonzero(np.asarray(self.mask).T)
        return np.asarray(matrix, dtype=np.float64)[post, pre]

    def from_network(self, values) -> np.ndarray:
        pre, post = np.nonzero(np.asarray(self.mask).T)
        matrix = np.zeros(np.shape(self.mask))
        matrix[post, pre] = np.asarray(values, dtype=np.float64)
        return matrix


@dataclass(frozen=True)
class Broadcast(Flat):
    """One run value (a learning rate, a phase flag) given to the same variable of ``count``
    groups, read back from the first."""

    count: int

    def to_network(self, value) -> tuple:
        return tuple(float(value) for _ in range(self.count))

    def from_network(self, values) -> np.ndarray:
        return np.array(values[0], dtype=np.float64)


@dataclass(frozen=True)
class StateVariable:
    """A named array of a circuit's state (its checkpoint name, ``weights_1``) or a value a run is
    given (a learning rate), and where it lives: ``variable(objects)`` is the Brian2 variable
    (``objects["forward_1"].w``), ``layout`` how the array maps onto it. An array held by several
    variables (one matrix split over an excitatory and an inhibitory pathway) names them as a
    tuple, and its layout maps the array to a tuple of values and back."""

    name: str
    variable: Callable[[dict], Any]
    layout: Flat = Flat()


def no_space_note(folder: Path) -> str:
    """Why a result file may be short, with the space left where it was written."""
    free = shutil.disk_usage(folder).free
    return f"no space left on the device? ({free / 1e6:.1f} MB free in {folder})"


class CompiledNetwork:
    """A Brian2 network for runs of ``samples`` samples of ``time_steps`` steps of ``dt``, built
    once for ``device_name`` (see the module docstring).

    A subclass sets what :meth:`construct` reads (its settings) before calling this constructor,
    which compiles the project on a standalone device. ``build_key`` holds everything else the
    generated code depends on; the project's folder in ``build_dir`` is named after it, so a build
    made for other settings is never reused. ``profile`` records the time of every code object
    (:meth:`profiling_info`).
    """

    def __init__(self, samples: int, time_steps: int, dt, device_name: str = "runtime", build_dir=None,
                 threads: int = 1, precision: str = "float64", build_key: tuple = (), profile: bool = False,
                 batch_size: int | None = None):
        self.samples_per_run = int(samples)
        self.time_steps = int(time_steps)
        self.dt = dt
        self.steps = self.samples_per_run * self.time_steps + 1
        # M, the samples of a minibatch ("minibatch" rows of the schedule); the settings' by default
        self.batch_size = int(batch_size or getattr(getattr(self, "settings", None), "batch_size", 1))
        self.device_name = device_name
        self.precision = precision
        self._buffers: dict[str, np.ndarray] = {}
        build_key = repr((type(self).__name__, *build_key))
        self.device, self.project_dir = prepare_device(device_name, build_dir, threads, precision, build_key)
        self.standalone = self.project_dir is not None
        if self.standalone:
            self._objects = self._build({})
            # Every object carries its own namespace: nothing may resolve from this frame's locals (dt).
            self._objects["network"].run(self.duration, profile=profile, namespace={})
            self.device.build(directory=str(self.project_dir), compile=True, run=False, with_output=False)

    # ----------------------------------------------------------------- what a circuit supplies
    def table_widths(self) -> dict[str, int]:
        """The TimedArray tables the circuit reads: name → number of columns."""
        raise NotImplementedError

    def construct(self, tables: Mapping[str, TimedArray]) -> dict:
        """The circuit's objects by name, reading ``tables`` (TimedArrays by name): its groups,
        pathways and monitors (lists of them allowed), nothing scheduled. The core places them
        by :meth:`schedule` and gathers every group and monitor into ``objects["network"]``."""
        raise NotImplementedError

    def schedule(self, objects: dict) -> Schedule:
        """The circuit's step order, one table (:class:`Schedule`) over the objects of :meth:`construct`."""
        raise NotImplementedError

    def state_variables(self) -> list[StateVariable]:
        """The named arrays a run takes and gives back (:meth:`values_of`, :meth:`read_state`)."""
        return []

    # ----------------------------------------------------------------- building and running
    @property
    def duration(self):
        """N·T + 1 steps: the samples and the boundary that folds the last one's update."""
        return self.steps * self.dt

    def _build(self, tables: Mapping[str, np.ndarray]) -> dict:
        widths = self.table_widths()
        unknown = set(tables) - set(widths)
        if unknown:
            raise ValueError(f"{type(self).__name__} reads no table named {', '.join(sorted(unknown))}")
        timed = {name: TimedArray(tables[name] if name in tables else np.zeros((self.steps, n)), dt=self.dt,
                                  name=name) for name, n in widths.items()}
        objects = self.construct(timed)
        if "network" in objects:
            raise TypeError(f"{type(self).__name__}.construct returns a Network; it returns the circuit's objects and "
                            "the core gathers them into one (docs/frameworks.md)")
        periods = {"sample": self.time_steps * self.dt, "minibatch": self.batch_size * self.time_steps * self.dt}
        objects["runners"] = self.schedule(objects).apply(periods)
        objects["network"] = Network(*_groups_in(objects))
        check_network(objects["network"])  # names Brian2 would read as something else (circuits/traps.py)
        objects["network"].add(*device_workarounds(self.device_name, self.dt))
        objects["tables"] = timed
        objects["duration"] = self.duration
        return objects

    def simulate(self, values: RunValues) -> dict:
        """Run the network once with ``values``; returns the objects to read the outcome from."""
        if not self.standalone:
            objects = self.runtime_objects(values)
            objects["network"].run(self.duration, namespace={})
            return objects
        objects = self._objects
        run_args = dict(values.variables(objects))
        for name, n in self.table_widths().items():
            run_args[objects["tables"][name]] = values.tables[name] if name in values.tables else np.zeros((self.steps, n))
        self.device.run(directory=str(self.project_dir), with_output=False, run_args=run_args)
        forget_run_arg_files(self.device, self.project_dir)
        self.check_results()
        return objects

    def values_of(self, state: Mapping[str, Any], tables: Mapping[str, np.ndarray] | None = None) -> RunValues:
        """A run's values: ``tables`` as given, and each entry of ``state`` (arrays and run values
        by the names of :meth:`state_variables`) put in its variable."""
        declared = {declared.name: declared for declared in self.state_variables()}
        unknown = set(state) - set(declared)
        if unknown:
            raise ValueError(f"{type(self).__name__} declares no state named {', '.join(sorted(unknown))}")

        def variables(objects: dict) -> dict:
            found = {}
            for name, value in state.items():
                target, held = declared[name].variable(objects), declared[name].layout.to_network(value)
                found.update(zip(target, held) if isinstance(target, tuple) else [(target, held)])
            return found

        return RunValues(dict(tables or {}), variables)

    def read_state(self, objects: dict, names=None) -> dict[str, np.ndarray]:
        """The named arrays of :meth:`state_variables` (or those of ``names``) as a run left them."""
        found = {}
        for declared in self.state_variables():
            if names is None or declared.name in names:
                target = declared.variable(objects)
                held = tuple(part[:] for part in target) if isinstance(target, tuple) else target[:]
                found[declared.name] = declared.layout.from_network(held)
        return found

    def check_results(self) -> None:
        """Refuse what the compiled program left incomplete: a run it ended early (a signal sent to
        it alone) or result files written short (a full disk); Brian2 would read either back as if
        whole."""
        completed = getattr(self.device, "_last_run_completed_fraction", 1.0)
        if completed < 1.0:
            raise DeviceError(f"the compiled program in {self.project_dir} stopped after {100 * completed:.1f} % of "
                              "its run (was it sent a signal?); its results are not used")
        if self.device_name == "cuda":
            return  # brian2cuda lays its result files out its own way; not checked (no GPU has run it yet)
        results = Path(self.device.results_dir)
        lengths: dict[str, dict[str, int]] = {}
        for variable, name in self.device.arrays.items():
            path = results / self.device.get_array_filename(variable)
            if not path.exists():
                continue  # never written (constants): Brian2 does not read it back either
            written = path.stat().st_size
            itemsize = np.dtype(variable.dtype).itemsize
            if isinstance(variable, DynamicArrayVariable):
                short = written % itemsize != 0
                if not short and variable.name in ("i", "t") and variable.ndim == 1:  # a spike monitor's columns
                    lengths.setdefault(getattr(variable.owner, "name", ""), {})[variable.name] = written // itemsize
            else:
                short = written != int(np.prod(variable.size)) * itemsize
            if short:
                raise DeviceError(f"the compiled program wrote {path} short ({written} bytes): "
                                  f"{no_space_note(results)}")
        for owner, found in lengths.items():
            if len(found) == 2 and found["i"] != found["t"]:  # a spike monitor's i and t grow together
                raise DeviceError(f"the compiled program's records of {owner} in {results} differ in length "
                                  f"(i: {found['i']}, t: {found['t']}): {no_space_note(results)}")

    def runtime_objects(self, values: RunValues) -> dict:
        """Fresh objects holding ``values``, not yet run (runtime device only): add monitors to
        ``objects["network"]`` and run it for ``objects["duration"]``."""
        if self.standalone:
            raise RuntimeError("the objects of a standalone network belong to its compiled project; "
                               "build the network on the runtime device to run its objects yourself")
        # Another network built since (a compiled one, or one of another precision) changed Brian2's
        # device and float type: select this network's again before building its objects.
        select_runtime(self.precision)
        objects = self._build(values.tables)
        for variable, value in values.variables(objects).items():
            variable[:] = value
        return objects

    def brian_objects(self) -> dict:
        """The Brian2 objects of this network (``network``, ``tables`` and the circuit's own), for
        audits; on runtime a fresh set with silent inputs."""
        if self.standalone:
            return self._objects
        select_runtime(self.precision)
        return self._build({})

    def profiling_info(self) -> list[tuple[str, float]]:
        """(code object, seconds) of the last standalone run, slowest first (built with ``profile``)."""
        return [(name, float(time)) for name, time in self.device.network_get_profiling_info(self._objects["network"])]

    # ----------------------------------------------------------------- inputs in
    def check_samples(self, values, n: int, what: str) -> np.ndarray:
        """``values`` as an array, refused unless it is [N, T, n] per-sample values."""
        values = np.asarray(values)
        expected = (self.samples_per_run, self.time_steps, n)
        if values.shape != expected:
            raise ValueError(f"{what} must have shape {expected}, got {values.shape}")
        return values

    def check_labels(self, labels) -> np.ndarray:
        labels = np.asarray(labels, dtype=int)
        if labels.shape != (self.samples_per_run,):
            raise ValueError(f"labels must have shape ({self.samples_per_run},), got {labels.shape}")
        return labels

    def targets(self, labels, desired, desired_of: Callable[[np.ndarray], np.ndarray], n_out: int) -> np.ndarray:
        """Desired spike trains [N, T, n_out]: ``desired`` as given, else ``desired_of(labels)``
        (label 0 for every sample when there are no labels either)."""
        if desired is None:
            labels = np.zeros(self.samples_per_run, int) if labels is None else self.check_labels(labels)
            desired = desired_of(labels)
        return self.check_samples(np.asarray(desired, dtype=np.float64), n_out, "desired")

    def one_hot(self, labels, n_out: int) -> np.ndarray:
        """[N, T, n_out]: 1 at each sample's label on every step."""
        labels = self.check_labels(labels)
        values = np.zeros((self.samples_per_run, self.time_steps, n_out))
        values[np.arange(self.samples_per_run), :, labels] = 1.0
        return values

    def table(self, name: str, samples, n: int) -> np.ndarray:
        """[N, T, n] per-sample values (None: zeros) → the [N·T + 1, n] table a TimedArray reads.

        A standalone run's arguments are written to files before the run returns, so there one
        buffer per table is refilled (sparing ~125 MB allocated and zeroed per chunk of 1000 MNIST
        samples); a TimedArray built on runtime keeps its values, so it gets a fresh array."""
        values = self._buffers.get(name) if self.standalone else None
        if values is None or values.shape != (self.steps, n):
            values = np.zeros((self.steps, n))
            if self.standalone:
                self._buffers[name] = values
        if samples is None:
            values[:] = 0.0
        else:
            np.copyto(values[: self.steps - 1], np.asarray(samples).reshape(-1, n), casting="unsafe")
        return values

    # ----------------------------------------------------------------- state out
    def spike_rasters(self, monitor: SpikeMonitor, n: int) -> np.ndarray:
        """[N, T, n] 0/1 spikes per sample; the trailing boundary step is dropped."""
        steps = np.round(np.asarray(monitor.t / self.dt)).astype(int)
        indices = np.asarray(monitor.i[:], dtype=int)
        keep = steps < self.steps - 1
        raster = np.zeros((self.steps - 1, n))
        raster[steps[keep], indices[keep]] = 1.0
        return raster.reshape(self.samples_per_run, self.time_steps, n)

    def per_sample(self, values) -> np.ndarray:
        """Values a StateMonitor recorded every step, [n, N·T + 1] → [N, T, n]."""
        return np.asarray(values)[:, : self.steps - 1].T.reshape(self.samples_per_run, self.time_steps, -1)

    def sample_end_monitor(self, source, variables, name: str) -> StateMonitor:
        """Records ``variables`` of ``source`` at every sample boundary, before the boundary's own
        operations fold and clear them (read with :meth:`at_sample_ends`)."""
        return StateMonitor(source, variables, record=True, dt=self.time_steps * self.dt, when="start", order=-1,
                            name=name)

    def at_sample_ends(self, values) -> np.ndarray:
        """Values a :meth:`sample_end_monitor` recorded, [n, N + 1] → [N, n], row k the value at
        the end of sample k (monitor column k + 1 is the boundary that ends sample k)."""
        return np.asarray(values)[:, 1: self.samples_per_run + 1].T


def connect_dense(pathway) -> None:
    """Every pair of ``pathway``, listed pre-major (the layout of :class:`Dense`), as explicit
    indices: a device's own all-to-all generator need not list them in that order."""
    n_pre, n_post = len(pathway.source), len(pathway.target)
    pathway.connect(i=np.repeat(np.arange(n_pre), n_post), j=np.tile(np.arange(n_post), n_pre))


def _groups_in(objects: Mapping) -> list:
    """Every group and monitor among the objects (values, lists and dicts of them), once each, in
    the order found; their code runners (thresholds, pathways, ``run_regularly``) come with them."""
    found, seen = [], set()

    def visit(value):
        if isinstance(value, Group):
            if id(value) not in seen:
                seen.add(id(value))
                found.append(value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)

    for key, value in objects.items():
        if key != "tables":
            visit(value)
    return found


def as_samples(input_spikes, labels, time_steps: int, n_in: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Notebook inputs as a run takes them: spikes [N, T, n_in] from [N, T, n_in], one sample's
    [T, n_in] or None (one silent sample); labels [N] from [N], one label, or None (kept None)."""
    spikes = np.zeros((1, time_steps, n_in)) if input_spikes is None else np.asarray(input_spikes, dtype=np.float64)
    if spikes.ndim == 2:
        spikes = spikes[None]
    if spikes.shape[1:] != (time_steps, n_in):
        raise ValueError(f"input_spikes must have shape [samples, {time_steps}, {n_in}] or [{time_steps}, {n_in}], "
                         f"got {list(spikes.shape)}")
    if labels is not None:
        labels = np.atleast_1d(np.asarray(labels, dtype=int))
        if labels.shape != (len(spikes),):
            raise ValueError(f"labels must hold one label per sample ({len(spikes)}), got shape {labels.shape}")
    return spikes, labels


@dataclass(frozen=True)
class Every:
    """Code a schedule row runs on ``group`` (a ``run_regularly``): on every step (``period =
    "step"``), or once per sample or per minibatch, on the first step of the next one (``"sample"``,
    ``"minibatch"``: the boundary operations that fold a sample's update or apply a minibatch's)."""

    group: Any
    code: str
    name: str
    period: str = "step"


PERIODS = ("step", "sample", "minibatch")


class Schedule:
    """A circuit's step order, as one table: each row ``(slot, order, what)`` puts ``what`` — a
    code object of a group (``layer.thresholder["spike"]``, ``pathway.pre``, a summed updater) or
    an :class:`Every` — at ``order`` within Brian2's ``slot`` of every step ("start", "groups",
    "thresholds", "synapses", "resets", "end", or "before_"/"after_" one of them). Rows are
    applied in one place (:meth:`apply`); a run's model.md records where each object ran."""

    def __init__(self, rows=()):
        self.rows: list[tuple[str, int, Any]] = []
        for row in rows:
            self.add(*row)

    def add(self, slot: str, order: int, what) -> None:
        if slot not in SLOTS:
            raise ValueError(f"schedule row {_label(what)!r}: {slot!r} is not a Brian2 slot "
                             f"(one of {', '.join(SLOTS)})")
        if isinstance(what, Every) and what.period not in PERIODS:
            raise ValueError(f"schedule row {what.name!r}: period {what.period!r} is none of {', '.join(PERIODS)}")
        self.rows.append((slot, int(order), what))

    def apply(self, periods: Mapping[str, Any]) -> list:
        """Place every row's object; returns the code runners the :class:`Every` rows created
        (they join the network). ``periods`` maps "sample" and "minibatch" to their durations."""
        runners = []
        for slot, order, what in self.rows:
            if isinstance(what, Every):
                period = None if what.period == "step" else periods[what.period]
                runners.append(what.group.run_regularly(what.code, dt=period, when=slot, order=order, name=what.name))
            else:
                what.when, what.order = slot, order
        return runners


def _slots() -> tuple[str, ...]:
    slots = []
    for slot in ("start", "groups", "thresholds", "synapses", "resets", "end"):
        slots += [f"before_{slot}", slot, f"after_{slot}"]
    return tuple(slots)


SLOTS = _slots()


def _label(what) -> str:
    return what.name if isinstance(what, Every) else getattr(what, "name", repr(what))


def afferent_rows(inputs, read_input) -> list:
    """The input layer first in every step: read the raster (0), emit spikes (1), flag the
    afferents that have spiked in the sample (2); its spike counts restart with each sample."""
    return [("groups", 0, read_input), ("groups", 1, inputs.thresholder["spike"]),
            ("groups", 2, inputs.thresholder["active"]),
            ("start", 1, Every(inputs, "spike_count = 0", "input_sample_end", "sample"))]


def make_afferents(n: int, input_raster, active_condition: str, dt):
    """Sensory afferents that replay ``input_raster`` (0/1 per step): the group and its reader."""
    inputs = NeuronGroup(n, "spiked : 1\nspike_count : 1", threshold="spiked > 0.5", reset="",
                         events={"active": active_condition}, namespace={"input_raster": input_raster}, dt=dt,
                         name="input")
    read_input = inputs.run_regularly("spiked = input_raster(t, i)\nspike_count += spiked", name="input_read")
    return inputs, read_input
