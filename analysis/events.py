"""What a training sample and an inference sample cost, counted from the built network.

A neuromorphic chip spends energy per event: a spike delivered to each synapse it fans out to
(a synaptic event), a change of synaptic state by a learning rule (a plasticity update), and the
update of each neuron's state at each time step. This module counts those operations in a
framework's own Brian2 network (``Framework.brian_network``) on real samples, then prices them
with the per-operation costs of a named chip, beside the same learning counted as dense arithmetic,
as array code on a GPU or CPU does it.

What is counted, per sample (totals over the run ÷ samples):

- **synaptic events**, per pathway (an ``on_pre`` or ``on_post`` pathway of a ``Synapses``
  object): Σ over the spikes of its source group of the spiking cell's fan-out in that object
  (the number of its synapses, read from ``Synapses.i``/``.j``). Each pathway carries one traffic
  class: ``forward`` (the signal that computes the output), ``feedback`` (errors, targets and
  top-down signals that exist for learning) or ``learning`` (events that only change synaptic
  state, such as a postsynaptic spike updating a trace). The framework names the classes
  (``Framework.traffic_classes``, by pathway name or a prefix of it, such as the name of the
  Synapses object) for the pathways that deliver a signal; a pathway that writes a postsynaptic
  variable is forward unless declared otherwise, and one that writes only synaptic variables is
  learning traffic unless its exact name is declared.
- **plasticity updates** (training only): per-synapse changes of synaptic state: each event of a pathway whose
  code writes a synaptic variable (an eligibility trace, a weight), each execution of a
  ``run_regularly`` operation over a ``Synapses`` object (× its synapses), and each step of a
  ``Synapses`` object with differential equations (× its synapses).
  A training sample counts everything the network does while it learns. An inference sample
  counts the same network with its labels withheld and learning off: learning-class events and
  plasticity updates are left out, as a chip would not run them (the Brian2 network runs its
  traces at η = 0 all the same). On the chip, an event that changes the synapse's state is priced
  as a plasticity update; other events as synaptic spike operations (``spike_operations``).
- **analog updates**: summed variables (a synapse writing its postsynaptic cell every step, not
  through spikes) × steps; priced as synaptic events and listed apart, since a chip that only
  passes spikes cannot map them as they are.
- **neuron updates**: every neuron of every group that receives synapses × the steps of its clock
  (groups that only replay an input raster are inputs, not neurons to update).
- **dense multiply-accumulates**: the same network as array code, which touches every synapse
  whether or not its afferent spiked: each signal pathway's synapses at every step, each plastic
  synapse at every step where the rule is event-driven (as array code updates traces densely), the
  run_regularly and state-updater work as counted above, the analog updates, and one operation per
  neuron update.

Energy (one named chip and one dense reference, each cost stated where it is used):

- Intel Loihi, per-operation figures of Davies et al. 2018, "Loihi: a neuromorphic manycore
  processor with on-chip learning", IEEE Micro 38(1):82-99, Table 2: 23.6 pJ per synaptic spike
  operation, 120 pJ per synaptic (learning) update, 52 pJ per neuron update (the inactive-neuron
  figure, the lower one); the chip's static power, spike routing between cores (1.7 pJ within a
  tile, a few pJ per hop) and the learning engine's epoch overhead are left out, so the estimate
  is a lower bound of the same kind as the dense one.
- Dense arithmetic: 4.6 pJ per 32-bit floating-point multiply-accumulate (3.7 pJ multiply + 0.9 pJ
  add, 45 nm), from Horowitz 2014, "Computing's energy problem (and what we can do about it)",
  ISSCC, Fig. 1.1.9; memory traffic, which dominates on real GPUs and CPUs, is left out.

A framework without a Brian2 network counts its own operations (``Framework.operation_counts``),
in the same terms; fields that do not apply (an event-based cost of BPTT) are None.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["CHIP", "DENSE", "TRAFFIC_CLASSES", "PathwayCount", "OperationCounts", "count_network",
           "backprop_counts", "combined", "count_framework", "energy", "event_summary", "default_traffic_class"]

TRAFFIC_CLASSES = ("forward", "feedback", "learning")

#: Per-operation energies of the neuromorphic chip priced here (pJ), with their source.
CHIP = {
    "name": "Intel Loihi",
    "synaptic_event_pJ": 23.6,  # energy per synaptic spike operation (minimum)
    "plasticity_update_pJ": 120.0,  # energy per synaptic update by the learning engine (minimum)
    "neuron_update_pJ": 52.0,  # energy per neuron update (inactive neuron, the lower figure)
    "source": "Davies et al. 2018, IEEE Micro 38(1):82-99, Table 2",
}
#: The dense reference: arithmetic energy of one 32-bit floating-point multiply-accumulate (pJ).
DENSE = {
    "name": "dense float32 arithmetic (GPU/CPU)",
    "mac_pJ": 4.6,  # 3.7 pJ multiply + 0.9 pJ add, 45 nm
    "source": "Horowitz 2014, ISSCC, Fig. 1.1.9 (arithmetic only, no memory traffic)",
}

_ASSIGNED = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:[-+*/]?=)(?!=)")


def _written(code: str) -> set[str]:
    """The names a block of Brian2 statements assigns to."""
    return {m.group(1) for line in code.splitlines() if (m := _ASSIGNED.match(line))}


def default_traffic_class(prepost: str, code: str) -> str:
    """A pathway that writes a variable of the cell it delivers to is signal (forward); one that
    writes only synaptic variables is learning traffic."""
    other = "_post" if prepost == "pre" else "_pre"
    return "forward" if any(name.endswith(other) for name in _written(code)) else "learning"


def _class_of(name: str, declared: dict[str, str], fallback: str) -> str:
    """The declared class of a pathway: its exact name, else the longest declared prefix of it
    (the name of its Synapses object, say), else ``fallback``."""
    if name in declared:
        return declared[name]
    prefixes = [key for key in declared if name.startswith(key)]
    return declared[max(prefixes, key=len)] if prefixes else fallback


@dataclass
class PathwayCount:
    """One pathway of a Synapses object, over the whole run."""

    name: str  # the SynapticPathway's name, e.g. "forward_1_pre"
    synapses: str  # the Synapses object's name
    source: str  # the group whose spikes it carries
    traffic: str  # forward, feedback or learning
    n_synapses: int
    source_spikes: int
    events: int  # Σ over source spikes of the spiking cell's fan-out
    plastic: bool  # its code writes synaptic state (each event is also a plasticity update)


@dataclass
class OperationCounts:
    """Operations per sample of one phase (training or inference), see the module docstring."""

    phase: str
    samples: int
    synaptic_events: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in TRAFFIC_CLASSES})
    plasticity_updates: float | None = 0.0
    spike_operations: float = 0.0  # what the chip delivers as spikes: signal events + learning events that change nothing
    analog_updates: float = 0.0
    neuron_updates: float = 0.0
    dense_macs: float = 0.0
    pathways: list[dict] = field(default_factory=list)  # per pathway, per sample
    source: str = "Brian2 network (brian_network), runtime device"
    event_based: bool = True  # False: the learning has no event-based form (energy on the chip: None)

    @property
    def total_synaptic_events(self) -> float:
        return float(sum(self.synaptic_events.values()))

    def to_dict(self) -> dict:
        found = asdict(self)
        found["total_synaptic_events"] = self.total_synaptic_events
        found["energy"] = energy(self)
        return found


def energy(counts: OperationCounts) -> dict:
    """Energy per sample (nJ) on the chip of :data:`CHIP` and as dense arithmetic (:data:`DENSE`)."""
    chip = None
    if counts.event_based and counts.plasticity_updates is not None:
        chip = 1e-3 * ((counts.spike_operations + counts.analog_updates) * CHIP["synaptic_event_pJ"]
                       + counts.plasticity_updates * CHIP["plasticity_update_pJ"]
                       + counts.neuron_updates * CHIP["neuron_update_pJ"])
    dense = 1e-3 * counts.dense_macs * DENSE["mac_pJ"]
    return {"chip_nJ": chip, "chip": CHIP["name"], "chip_costs": CHIP, "dense_nJ": dense, "dense_costs": DENSE,
            "dense_over_chip": (dense / chip) if chip else None}


def _runs(duration: float, dt: float) -> int:
    """How often an operation on a clock of step ``dt`` runs in ``duration`` (from t = 0)."""
    return int(math.ceil(duration / dt - 1e-9))


def count_network(objects: dict, samples: int, phase: str, traffic_classes: dict[str, str] | None = None,
                  ) -> OperationCounts:
    """Run the network of ``objects`` (``network`` and ``duration`` as ``brian_network`` returns
    them, not yet run) with spike monitors on every group that feeds a pathway, and count."""
    from brian2 import EventMonitor, NeuronGroup, SpikeMonitor, Synapses
    from brian2.groups.group import CodeRunner

    declared = dict(traffic_classes or {})
    network, duration = objects["network"], objects["duration"]
    seconds = float(duration)
    synapses = [o for o in network.objects if isinstance(o, Synapses)]
    runners = {o.name: o for s in synapses for o in [*network.objects, *s.contained_objects]
               if isinstance(o, CodeRunner) and getattr(o, "group", None) is not None
               and getattr(o.group, "name", None) == s.name and o.template == "stateupdate"
               and not o.name.endswith("_stateupdater")}
    targets = {s.target.name for s in synapses}
    monitors = {}
    for s in synapses:
        for pathway in s._pathways:
            key = (pathway.source.name, pathway.event)
            if key not in monitors:
                monitor_class = SpikeMonitor if pathway.event == "spike" else EventMonitor
                arguments = {} if pathway.event == "spike" else {"event": pathway.event}
                monitors[key] = monitor_class(pathway.source, record=True, name=f"events_{len(monitors)}",
                                              **arguments)
    network.add(*monitors.values())
    network.run(duration)

    counts = OperationCounts(phase=phase, samples=samples)
    learning = phase == "training"
    dense = 0.0
    for s in synapses:
        n_syn = len(s)
        steps = _runs(seconds, float(s.clock.dt))
        plastic_dense = False
        for pathway in s._pathways:
            index = np.asarray(s.i[:] if pathway.prepost == "pre" else s.j[:], dtype=int)
            fan_out = np.bincount(index, minlength=len(pathway.source))
            spikes = np.asarray(monitors[(pathway.source.name, pathway.event)].i[:], dtype=int)
            events = int(fan_out[spikes].sum())
            written = _written(pathway.code)
            own = {n for n in written if not n.endswith(("_pre", "_post"))}
            traffic = default_traffic_class(pathway.prepost, pathway.code)
            signal = traffic == "forward"  # it writes the cell it delivers to
            if signal or pathway.name in declared:  # a declared class names the signal carried
                traffic = _class_of(pathway.name, declared, traffic)
            if traffic not in TRAFFIC_CLASSES:
                raise ValueError(f"traffic class {traffic!r} of {pathway.name} is none of {', '.join(TRAFFIC_CLASSES)}")
            if not learning and traffic == "learning":
                continue  # learning off: a chip would not run these events at all
            counts.synaptic_events[traffic] += events
            if signal or not (own and learning):
                counts.spike_operations += events
            if own and learning:
                counts.plasticity_updates += events  # the event changes the synapse's own state
                plastic_dense = True
            if signal:
                dense += n_syn * steps  # every synapse, every step: W·s as array code
            counts.pathways.append(asdict(PathwayCount(pathway.name, s.name, pathway.source.name, traffic, n_syn,
                                                       int(len(spikes)), events, bool(own))))
        if plastic_dense:
            dense += n_syn * steps  # the traces of an event-driven rule, updated densely
        if s.equations.diff_eq_names and learning:
            counts.plasticity_updates += n_syn * steps
            dense += n_syn * steps
        for updater in s.summed_updaters.values():
            counts.analog_updates += n_syn * _runs(seconds, float(updater.clock.dt))
            dense += n_syn * _runs(seconds, float(updater.clock.dt))
    for runner in runners.values() if learning else ():  # run_regularly over synapses: each synapse, each run
        work = len(runner.group) * _runs(seconds, float(runner.clock.dt))
        counts.plasticity_updates += work
        dense += work
    for group in network.objects:
        if isinstance(group, NeuronGroup) and group.name in targets:
            work = len(group) * _runs(seconds, float(group.clock.dt))
            counts.neuron_updates += work
            dense += work
    counts.dense_macs = dense
    return _per_sample(counts, samples)


def _per_sample(counts: OperationCounts, samples: int) -> OperationCounts:
    scale = 1.0 / samples
    counts.synaptic_events = {k: v * scale for k, v in counts.synaptic_events.items()}
    if counts.plasticity_updates is not None:
        counts.plasticity_updates *= scale
    counts.analog_updates *= scale
    counts.spike_operations *= scale
    counts.neuron_updates *= scale
    counts.dense_macs *= scale
    for pathway in counts.pathways:
        for key in ("source_spikes", "events"):
            pathway[key] = pathway[key] * scale
    return counts


def combined(counts: OperationCounts, extra: OperationCounts, label: str) -> OperationCounts:
    """``counts`` with ``extra`` (another network's operations per sample of the same phase, e.g. a
    sleep phase) added; ``extra``'s pathways are listed under ``label``."""
    total = OperationCounts(phase=counts.phase, samples=counts.samples, source=f"{counts.source}; {label}: {extra.source}")
    total.synaptic_events = {k: counts.synaptic_events[k] + extra.synaptic_events[k] for k in TRAFFIC_CLASSES}
    total.plasticity_updates = (None if counts.plasticity_updates is None or extra.plasticity_updates is None
                                else counts.plasticity_updates + extra.plasticity_updates)
    for name in ("spike_operations", "analog_updates", "neuron_updates", "dense_macs"):
        setattr(total, name, getattr(counts, name) + getattr(extra, name))
    total.pathways = counts.pathways + [{**p, "phase": label} for p in extra.pathways]
    total.event_based = counts.event_based and extra.event_based
    return total


def backprop_counts(sizes, layer_spikes, time_steps: int, samples: int, batch_size: int,
                    optimizer_ops_per_parameter: int = 1) -> dict[str, OperationCounts]:
    """Operations per sample of a layered LIF network (``sizes``: input, hidden..., output, all to
    all) trained by backprop through time, from the spikes of each layer over the samples
    (``layer_spikes[0]``: the input's, then each layer's). Inference is an ordinary spiking
    network: events = spikes × fan-out, a neuron update per cell and step. Training adds the
    backward pass, which has no event-based form (it replays every stored step of every neuron):
    as dense arithmetic, δ through Wᵀ and the weight gradient's outer product each touch every
    synapse at every step, every neuron's pseudo-derivative is taken at every step, and the
    optimiser touches every parameter ``optimizer_ops_per_parameter`` times per minibatch."""
    synapses = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    neurons = sum(sizes[1:])
    parameters = sum(synapses) + neurons  # weights and biases
    forward_events = sum(float(spikes) * fan_out for spikes, fan_out in zip(layer_spikes[:-1], sizes[1:])) / samples
    forward_dense = time_steps * (sum(synapses) + neurons)
    found = {}
    for phase in ("training", "inference"):
        counts = OperationCounts(phase=phase, samples=samples, source="layered network, numpy forward pass")
        counts.synaptic_events["forward"] = forward_events
        counts.spike_operations = forward_events
        counts.neuron_updates = float(time_steps * neurons)
        counts.dense_macs = float(forward_dense)
        counts.pathways = [{"name": f"weights_{l + 1}", "traffic": "forward", "n_synapses": n,
                            "source_spikes": float(spikes) / samples, "events": float(spikes) * fan_out / samples}
                           for l, (n, spikes, fan_out) in enumerate(zip(synapses, layer_spikes[:-1], sizes[1:]))]
        if phase == "training":
            counts.event_based = False
            counts.plasticity_updates = None  # no event-based form: the chip's figure does not apply
            counts.dense_macs += time_steps * (2 * sum(synapses) + neurons) + optimizer_ops_per_parameter * parameters / batch_size
        found[phase] = counts
    return found


def count_framework(framework, input_spikes: np.ndarray, labels: np.ndarray) -> dict[str, OperationCounts] | None:
    """Operations per training sample (the samples with their labels: learning on) and per
    inference sample (no labels, no learning), on a copy of the framework's current state (its
    own state is left as it is). None when the framework has neither a Brian2 network nor its
    own count."""
    own = framework.operation_counts(input_spikes, labels)
    if own is not None:
        return own
    declared = framework.traffic_classes()
    found = {}
    for phase, given in (("training", labels), ("inference", None)):
        try:
            objects = framework.brian_network(input_spikes, given)
        except NotImplementedError:
            return None
        found[phase] = count_network(objects, len(input_spikes), phase, declared)
    return found


def event_summary(framework, input_spikes: np.ndarray, labels: np.ndarray, split: str = "test") -> dict | None:
    """The ``events`` entry of summary.json, analysis.json and the bench: per phase, the counts
    per sample and their energy, and which samples were counted."""
    counted = count_framework(framework, input_spikes, labels)
    if counted is None:
        return None
    return {"samples": {"split": split, "first": len(labels)},
            **{phase: counts.to_dict() for phase, counts in counted.items()}}


def summary_line(events: dict) -> str:
    """One printed line: events and energy per training and per inference sample."""
    parts = []
    for phase in ("training", "inference"):
        c = events.get(phase)
        if not c:
            continue
        e = c["energy"]
        chip = "n/a" if e["chip_nJ"] is None else f"{e['chip_nJ']:.3g} nJ"
        parts.append(f"per {phase} sample: {c['total_synaptic_events']:.4g} synaptic events "
                     f"({', '.join(f'{k} {v:.3g}' for k, v in c['synaptic_events'].items())}), "
                     f"{'n/a' if c['plasticity_updates'] is None else format(c['plasticity_updates'], '.3g')} "
                     f"plasticity updates, {c['neuron_updates']:.3g} neuron updates; {e['chip']} {chip}, "
                     f"dense {c['dense_macs']:.3g} MAC = {e['dense_nJ']:.3g} nJ")
    return "; ".join(parts)
