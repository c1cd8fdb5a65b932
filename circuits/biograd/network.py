"""BioGrad (Tang et al. 2021, arXiv 2110.14092) assembled as one Brian2 network.

Cell types and connections (models/ holds every equation):

    input (rate-coded spikes) ─W¹→ hidden 1 ─W²→ … ─Wᴸ→ output ─softmax→ error ± ─±1→ output apical
                                      ↑ apical                                     └─B^l→ hidden apical

One sample lasts T steps of length dt; samples follow each other in one simulation, and the
learning bookkeeping happens at sample and minibatch boundaries inside the network. A run of
N samples lasts N·T + 1 steps: the extra step is the boundary that folds the last sample's
update into the weights (its own dynamics are discarded).

Schedule of one step (``when``/``order``, the table of :meth:`BioGradNetwork.schedule`):

    start         sample boundary: ΔW += −η·δ·E, traces and apical potentials to zero;
                  minibatch boundary: W += ΔW / M. Synapses take part through their
                  presynaptic group's ``sample_end``/``minibatch_end`` events (order −2,
                  before any counter is reset), so only those of neurons that spiked do work
    groups  −100  every soma leaks (exact integration of dv/dt = −v/τ_m)
            0, 1  input spikes of this step are read from the raster and emitted
            10·l  layer l: bias jump, pathway from layer l−1 (same-step spikes), threshold,
                  then g, λρ and bias eligibility from the fresh v; the ``active`` event
            10·(L+1)  softmax couplings, error neurons integrate ±e and fire, feedback to apical
    after_groups  every forward synapse of an active presynaptic neuron: E += g·ε, ε ← λρ·ε
    resets        somata reset to 0, error neurons subtract 1

Because layer l+1's pathway runs after layer l's threshold in the same step, layer l+1 sees
layer l's spikes of the same step, as in the discrete model: no per-layer delay.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from brian2 import NeuronGroup, SpikeMonitor

from apical.circuits.biograd.oracle import DiscreteParameters, LayerRecord
from apical.circuits.core import CompiledNetwork, Dense, Every, Flat, RunValues, Schedule, StateVariable
from apical.models.eligibility import (
    EligibilityEquations,
    make_forward_pathway,
    synapses_to_matrix,
)
from apical.models.error_neurons import (
    ERROR_NEURON_SAMPLE_END,
    ERROR_NEURON_STEP,
    feedback_to_synapses,
    make_error_population,
    make_hidden_feedback,
    make_output_feedback,
    make_softmax_coupling,
    synapses_to_feedback,
)
from apical.models.soma import (
    SomaEquations,
    SomaParameters,
    boundary_events,
    boundary_namespace,
    make_layer,
)

#: Cell types and signs, declared for the analyses (Dale, locality) to read.
CELL_TYPES = {
    "input": "sensory afferent (excitatory spikes, weights of either sign)",
    "layer": "multi-compartment pyramidal-like neuron: soma + apical error compartment",
    "error_plus": "error neuron reporting e > 0",
    "error_minus": "error neuron reporting e < 0",
}
PLASTIC_SYNAPSES = ("forward",)  # feedback B changes only in the sleep phase


@dataclass(frozen=True)
class BioGradSettings:
    """What the network is: sizes and constants fixed when the network is built."""

    sizes: tuple[int, ...]  # (n_in, hidden..., n_out)
    soma: SomaParameters = field(default_factory=SomaParameters)
    time_steps: int = 20  # T, steps per sample
    error_start: int = 5  # t0, first step with an output error
    batch_size: int = 1  # M, samples per weight update
    soma_equations: SomaEquations = SomaEquations()  # the soma's Brian2 code (published by default)
    plasticity: EligibilityEquations = EligibilityEquations()  # the forward synapses' rule

    def __post_init__(self):
        if len(self.sizes) < 2:
            raise ValueError(f"sizes needs an input and an output size, got {self.sizes}")
        if not 0 <= self.error_start < self.time_steps:
            raise ValueError(f"error_start must lie in [0, time_steps), got {self.error_start}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {self.batch_size}")

    def discrete(self, learning_rate: float) -> DiscreteParameters:
        """The same model in the oracle's discrete terms."""
        return DiscreteParameters(
            leak=self.soma.leak,
            threshold=self.soma.theta,
            window=self.soma.window,
            gamma=self.soma.gamma,
            surrogate=self.soma.surrogate,
            time_steps=self.time_steps,
            error_start=self.error_start,
            learning_rate=learning_rate,
        )


@dataclass
class BioGradState:
    """Learned quantities: forward weights W^l (post × pre), biases b^l, feedback B^l."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    feedback: list[np.ndarray]  # B^l, (n_l × n_out), one per hidden layer

    def copy(self) -> "BioGradState":
        return BioGradState(
            [w.copy() for w in self.weights], [b.copy() for b in self.biases], [B.copy() for B in self.feedback]
        )


def state_arrays(state: BioGradState) -> dict[str, np.ndarray]:
    """The state under its checkpoint names: weights_<l>, biases_<l>, feedback_<l>."""
    arrays = {}
    for l, (W, b) in enumerate(zip(state.weights, state.biases)):
        arrays[f"weights_{l + 1}"], arrays[f"biases_{l + 1}"] = W, b
    arrays.update({f"feedback_{l + 1}": B for l, B in enumerate(state.feedback)})
    return arrays


def state_from_arrays(arrays, n_layers: int) -> BioGradState:
    """The state of named arrays written by :func:`state_arrays` (copies, float64)."""
    return BioGradState([np.array(arrays[f"weights_{l + 1}"], dtype=np.float64) for l in range(n_layers)],
                        [np.array(arrays[f"biases_{l + 1}"], dtype=np.float64) for l in range(n_layers)],
                        [np.array(arrays[f"feedback_{l + 1}"], dtype=np.float64) for l in range(n_layers - 1)])


class SignedFeedback(Flat):
    """B^l (n_l × n_out) as its feedback synapses hold it: the "+" and the "−" error neuron of
    output k both reach hidden cell i through B_ik (models/error_neurons.py)."""

    def __init__(self, n_out: int, n_hidden: int):
        self.n_out, self.n_hidden = n_out, n_hidden

    def to_network(self, feedback) -> np.ndarray:
        return feedback_to_synapses(feedback)

    def from_network(self, values) -> np.ndarray:
        return synapses_to_feedback(np.asarray(values, dtype=np.float64), self.n_out, self.n_hidden)


@dataclass
class RunResult:
    state: BioGradState  # weights after the run
    output_counts: np.ndarray  # [N, n_out] output spikes per sample
    layers: list[LayerRecord] | None = None  # per-sample records, when built with record_all


def initial_state(sizes, rng: np.random.Generator, feedback_init: str = "forward_product") -> BioGradState:
    """W, b ~ U(±1/√fan_in); B^l as the transposed product of the forward matrices above l
    (the released code's choice) or random U(±1/√n_out)."""
    weights, biases = [], []
    for n_pre, n_post in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(n_pre)
        weights.append(rng.uniform(-bound, bound, size=(n_post, n_pre)))
        biases.append(rng.uniform(-bound, bound, size=n_post))
    return BioGradState(weights, biases, initial_feedback(weights, rng, feedback_init))


def initial_feedback(weights, rng: np.random.Generator, feedback_init: str) -> list[np.ndarray]:
    n_out = weights[-1].shape[0]
    feedback = []
    for l in range(len(weights) - 1):
        if feedback_init == "forward_product":
            pathway = weights[-1]
            for W in reversed(weights[l + 1 : -1]):
                pathway = pathway @ W
            feedback.append(pathway.T.copy())  # (n_l × n_out)
        elif feedback_init == "random":
            bound = 1.0 / np.sqrt(n_out)
            feedback.append(rng.uniform(-bound, bound, size=(weights[l].shape[0], n_out)))
        else:
            raise ValueError(f"feedback_init must be 'forward_product' or 'random', got {feedback_init!r}")
    return feedback


class BioGradNetwork(CompiledNetwork):
    """A BioGrad network for runs of a fixed number of samples, built once per device.

    On a standalone device the project is compiled once, at construction; every :meth:`run`
    passes weights, input spikes and labels as run arguments (compile once, run many).
    On ``runtime`` the objects are rebuilt for every run (tiny networks, tests).
    """

    def __init__(
        self,
        settings: BioGradSettings,
        samples_per_run: int,
        device_name: str = "runtime",
        build_dir=None,
        record_all: bool = False,
        threads: int = 1,
        precision: str = "float64",
    ):
        self.settings = settings
        self.record_all = record_all
        super().__init__(samples_per_run, settings.time_steps, settings.soma.dt, device_name, build_dir, threads,
                         precision, build_key=(settings, int(samples_per_run), record_all))

    # ----------------------------------------------------------------- construction
    def table_widths(self) -> dict[str, int]:
        return {"input_raster": self.settings.sizes[0], "target_raster": self.settings.sizes[-1]}

    def construct(self, tables) -> dict:
        s = self.settings
        dt, T = s.soma.dt, s.time_steps
        input_raster, target_raster = tables["input_raster"], tables["target_raster"]

        inputs = NeuronGroup(
            s.sizes[0], "spiked : 1\nspike_count : 1\nminibatch_spike_count : 1", threshold="spiked > 0.5", reset="",
            events=boundary_events(), namespace={"input_raster": input_raster, **boundary_namespace(T, s.batch_size)},
            dt=dt, name="input",
        )
        read_input = inputs.run_regularly(
            "spiked = input_raster(t, i)\nspike_count += spiked\nminibatch_spike_count += spiked", name="input_read")
        layers, pathways = [], []
        pre = inputs
        for l, n in enumerate(s.sizes[1:]):
            name = "output" if l == len(s.sizes) - 2 else f"hidden_{l + 1}"
            layer = make_layer(n, s.soma, T - s.error_start, s.batch_size, name=name, time_steps=T,
                               equations=s.soma_equations)
            pathway = make_forward_pathway(pre, layer, s.batch_size, name=f"forward_{l + 1}", equations=s.plasticity)
            layers.append(layer)
            pathways.append(pathway)
            pre = layer
        output = layers[-1]
        errors = make_error_population(s.sizes[-1], T, s.error_start, dt, target_raster, name="error")
        softmax = make_softmax_coupling(output, errors, name="softmax_coupling")
        feedback = [make_hidden_feedback(errors, layer, name=f"feedback_{l + 1}")
                    for l, layer in enumerate(layers[:-1])]
        output_feedback = make_output_feedback(errors, output, name="feedback_output")

        objects = {
            "inputs": inputs, "read_input": read_input, "layers": layers, "pathways": pathways,
            "errors": errors, "softmax": softmax, "feedback": feedback, "output_feedback": output_feedback,
        }
        objects["output_spikes"] = SpikeMonitor(output, name="output_readout")
        if self.record_all:
            objects["layer_spikes"] = [SpikeMonitor(layer, name=f"{layer.name}_spikes") for layer in layers]
            # Sample-end values, read at the boundary step before they are folded and cleared.
            objects["eligibility_at_end"] = [self.sample_end_monitor(p, "eligibility", f"{p.name}_eligibility_at_end")
                                             for p in pathways]
            objects["soma_at_end"] = [self.sample_end_monitor(layer, ["bias_eligibility", "apical", "apical_error"],
                                                              f"{layer.name}_at_end") for layer in layers]
        return objects

    def schedule(self, o: dict) -> Schedule:
        """Every object's place in the step (see the module docstring), one row each."""
        soma, errors = self.settings.soma_equations, o["errors"]
        rows = [("groups", 0, o["read_input"]), ("groups", 1, o["inputs"].thresholder["spike"]),
                ("groups", 2, o["inputs"].thresholder["active"]),
                ("start", 1, Every(o["inputs"], "spike_count = 0", "input_sample_end", "sample")),
                ("start", 2, Every(o["inputs"], "minibatch_spike_count = 0", "input_minibatch_end", "minibatch"))]
        # Boundary events of every group that feeds forward synapses, before anything is reset.
        rows += [("start", -2, group.thresholder[event]) for group in [o["inputs"], *o["layers"]]
                 for event in ("sample_end", "minibatch_end") if event in group.thresholder]
        for l, (layer, pathway) in enumerate(zip(o["layers"], o["pathways"])):
            base = 10 * (l + 1)
            rows += [
                ("groups", -100, layer.state_updater),
                ("groups", base, Every(layer, soma.bias_jump, f"{layer.name}_bias")),
                ("groups", base + 1, pathway.pre),
                ("groups", base + 2, layer.thresholder["spike"]),
                ("groups", base + 3, Every(layer, soma.after_threshold_code(self.settings.soma),
                                           f"{layer.name}_after_threshold")),
                ("groups", base + 4, layer.thresholder["active"]),
                ("after_groups", l, pathway.trace),
                ("start", 0, pathway.fold),  # ΔW += −η·δ·E (sample_end event)
                ("start", 1, Every(layer, soma.sample_end, f"{layer.name}_sample_end", "sample")),
                ("start", 2, pathway.apply),  # W += ΔW / M (minibatch_end event)
                ("start", 2, Every(layer, soma.minibatch_end, f"{layer.name}_minibatch_end", "minibatch")),
            ]
        base = 10 * (len(o["layers"]) + 1)
        rows += [("groups", base, updater) for updater in o["softmax"].summed_updaters.values()]
        rows += [("groups", base + 1, Every(errors, ERROR_NEURON_STEP, "error_step")),
                 ("groups", base + 2, errors.thresholder["spike"])]
        rows += [("groups", base + 3, feedback.pre) for feedback in o["feedback"] + [o["output_feedback"]]]
        rows.append(("start", 1, Every(errors, ERROR_NEURON_SAMPLE_END, "error_sample_end", "sample")))
        return Schedule(rows)

    # ----------------------------------------------------------------- state
    def state_variables(self) -> list[StateVariable]:
        """W^l, b^l, B^l under their checkpoint names, and each layer's η (a run value)."""
        sizes = self.settings.sizes
        declared = []
        for l in range(len(sizes) - 1):
            declared += [
                StateVariable(f"weights_{l + 1}", lambda o, l=l: o["pathways"][l].w, Dense(sizes[l + 1], sizes[l])),
                StateVariable(f"biases_{l + 1}", lambda o, l=l: o["layers"][l].bias),
                StateVariable(f"learning_rate_{l + 1}", lambda o, l=l: o["layers"][l].learning_rate),
            ]
        declared += [StateVariable(f"feedback_{l + 1}", lambda o, l=l: o["feedback"][l].feedback_weight,
                                   SignedFeedback(sizes[-1], sizes[l + 1])) for l in range(len(sizes) - 2)]
        return declared

    def run_values(self, state: BioGradState, input_spikes, labels, learning_rate: float) -> RunValues:
        """What a run from ``state`` is given: the input raster, the one-hot targets of ``labels``
        (None: no target) and every learned and control variable."""
        sizes = self.settings.sizes
        input_spikes = self.check_samples(input_spikes, sizes[0], "input_spikes")
        targets = None if labels is None else self.one_hot(labels, sizes[-1])
        tables = {"input_raster": self.table("input_raster", input_spikes, sizes[0]),
                  "target_raster": self.table("target_raster", targets, sizes[-1])}
        return self.values_of({**state_arrays(state), **{f"learning_rate_{l + 1}": learning_rate
                                                          for l in range(len(sizes) - 1)}}, tables)

    def run(self, state: BioGradState, input_spikes, labels, learning_rate: float, learn: bool = True) -> RunResult:
        """Run ``samples_per_run`` samples from ``state``; returns the new state and outputs.

        ``input_spikes`` is [N, T, n_in] of 0/1 and ``labels`` [N]; ``learn=False`` evaluates: the
        network runs with η = 0, so nothing it has learned changes.
        """
        rate = learning_rate if learn else 0.0
        return self.read(self.simulate(self.run_values(state, input_spikes, labels, rate)))

    def read(self, o: dict) -> RunResult:
        """The state and output counts a run left in its objects (and the records, with ``record_all``)."""
        sizes = self.settings.sizes
        state = state_from_arrays(self.read_state(o), len(sizes) - 1)
        counts = self.spike_rasters(o["output_spikes"], sizes[-1]).sum(axis=1)
        layers = self._records(o) if self.record_all else None
        return RunResult(state=state, output_counts=counts, layers=layers)

    def _records(self, o: dict) -> list[LayerRecord]:
        """Per-sample records; ``weight_change``/``bias_change`` hold the open minibatch's sum
        (one sample in :func:`run_single_sample`)."""
        sizes = self.settings.sizes
        records = []
        for l, layer in enumerate(o["layers"]):
            n_pre, n_post = sizes[l], sizes[l + 1]
            pathway = o["pathways"][l]
            eligibility = self.at_sample_ends(o["eligibility_at_end"][l].eligibility)  # [N, synapses]
            at_end = o["soma_at_end"][l]
            records.append(LayerRecord(
                spikes=self.spike_rasters(o["layer_spikes"][l], n_post),
                eligibility=np.stack([synapses_to_matrix(e, n_pre, n_post) for e in eligibility]),
                bias_eligibility=self.at_sample_ends(at_end.bias_eligibility),
                apical=self.at_sample_ends(at_end.apical),
                apical_error=self.at_sample_ends(at_end.apical_error),
                weight_change=synapses_to_matrix(pathway.weight_change[:], n_pre, n_post)[None],
                bias_change=np.array(layer.bias_change[:])[None],
            ))
        return records


def run_single_sample(
    weights, biases, feedback, input_spikes, label, settings: BioGradSettings, learning_rate: float,
    device_name: str = "runtime", build_dir=None,
) -> list[LayerRecord]:
    """One BioGrad sample through the Brian2 network (the single-sample entry point).

    Returns per layer: spike raster [1, T, n], E, E^b, apical a, δ, and ΔW, Δb — the update
    the sample asks for, read before it is applied (the minibatch is left open).
    """
    open_minibatch = replace(settings, batch_size=2)
    network = BioGradNetwork(open_minibatch, 1, device_name=device_name, build_dir=build_dir, record_all=True)
    state = BioGradState([np.asarray(w, float) for w in weights], [np.asarray(b, float) for b in biases],
                         [np.asarray(B, float) for B in feedback])
    result = network.run(state, np.asarray(input_spikes)[None], np.array([label]), learning_rate)
    return result.layers
