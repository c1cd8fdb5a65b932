"""BioLeaF (Yang & Li 2021, arXiv 2111.13188), reconstructed, assembled as one Brian2 network.

Two cell types, four synapse types (models/ holds every equation; docs/models/bioleaf.md the
reasons):

    input ─W_PP→ P¹ ─W_PP→ P² ─ … ─W_PP→ Pᴸ (output; apical = d − o, the spiking error)
                  │  ↑apical   │  ↑apical       │
                  │  B ← spikes + bursts of the layer above; W_PI ← interneurons Iˡ
                  └W_IP→ Iˡ (one interneuron per cell of layer l+1, taught one-to-one by it)

One sample lasts T steps; samples follow each other in one simulation, and the plasticity's
bookkeeping happens at sample and minibatch boundaries inside the network. A run of N samples
lasts N·T + 1 steps: the extra step is the boundary that folds the last sample's update.

Schedule of one step (``when``/``order``, set in :meth:`BioLeaFNetwork.schedule`, one table):

    start        sample boundary: traces, compartments and counts to zero; minibatch boundary:
                 every plastic weight and bias += its summed change / M
    groups −100  every potential decays (soma, apical, PSP traces); −90: no teaching input yet
           0–2   input spikes of the step read and emitted
           100·l layer l: bias jump (output: + β·A), W_PP pathway from layer l−1 (same-step
                 spikes), threshold, after-threshold bookkeeping (output: its error d − o),
                 ``active`` event; +10…: the layer's interneurons (input from layer l, same step),
                 and layer l's spikes enter the mirror traces of the synapses onto it
           100·(l+1)+5  teaching spikes from layer l+1 onto the interneurons of layer l
           top-down, from the output down, one stage per hidden layer: the layer above's
                 ``burst`` event; its spikes and bursts through B (and its bursts through the
                 teaching branch), the interneurons' spikes through W_PI reach the apical
                 compartments; then W_PI's anti-Hebbian rule reads them
    after_groups per-step plasticity of synapses with a possibly nonzero trace: W_PP
                 (ΔW += η·g·A·ε), biases, W_IP (its interneuron's learning signal), then the
                 mirror STDP of B and W_PI; each trace then decays or a spike clears it
    resets       somata to 0

Because each pathway runs after the threshold of its presynaptic layer in the same step, every
layer sees the spikes of the layer below of the same step, and the apical compartments see the
spikes and bursts of the layer above of the same step, as the numpy oracle
(circuits/bioleaf/oracle.py) does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from brian2 import SpikeMonitor, StateMonitor

from apical.circuits.core import (Broadcast, CompiledNetwork, Dense, Every, RunValues, Schedule, StateVariable,
                                  afferent_rows, make_afferents)
from apical.circuits.bioleaf.oracle import LearningRates, MicrocircuitRecord
from apical.circuits.microcircuit import LayerRecord, MicrocircuitSettings
from apical.models.eligibility import synapses_to_matrix
from apical.models.interneurons import (
    INTERNEURON_AFTER_THRESHOLD,
    INTERNEURON_BIAS_PLASTICITY,
    INTERNEURON_SAMPLE_END,
    INTERNEURON_STEP_START,
    make_interneuron_layer,
)
from apical.models.plasticity import (
    PLASTIC_MINIBATCH_END,
    TOP_DOWN_MINIBATCH_END,
    TRACE_SAMPLE_END,
    ForwardPlasticityEquations,
    make_forward_stdp,
    make_interneuron_apical,
    make_teaching,
    make_top_down,
)
from apical.models.pyramidal import (
    ACTIVE_CONDITION,
    OUTPUT_ERROR,
    OUTPUT_NUDGING,
    OUTPUT_PSP_SAMPLE_END,
    SOMA_BIAS_JUMP,
    SOMA_MINIBATCH_END,
    PyramidalParameters,
    make_pyramidal_layer,
)

#: Cell types and signs, declared for the analyses (Dale, locality) to read.
CELL_TYPES = {
    "input": "sensory afferent (spikes; weights of either sign)",
    "pyramidal": "pyramidal cell: soma with basal input, apical compartment (top-down error), bursts",
    "interneuron": "SST-like interneuron: mirrors one pyramidal cell of the layer above, "
                   "inhibits apical compartments of its own layer (W_PI learns to be ≤ 0 there)",
}
#: The four synapse types: (presynaptic cell, target compartment, plastic?)
SYNAPSE_TYPES = {
    "forward": ("pyramidal l−1 (or input)", "soma/basal of pyramidal l", True),
    "top_down": ("pyramidal l+1", "apical of pyramidal l (and one-to-one onto interneuron l, teaching)", True),
    "interneuron_input": ("pyramidal l", "interneuron l", True),
    "interneuron_apical": ("interneuron l", "apical of pyramidal l", True),
}
PLASTIC_SYNAPSES = ("forward", "top_down", "interneuron_input", "interneuron_apical")  # top-down: mirror STDP only
#: Signals broadcast to many cells on purpose (for the locality audit): the learning rates (0 while
#: testing), whether a target is presented, the minibatch size, and the clock's step counter with the
#: sample timing it is read against (which steps carry an error).
GLOBAL_SIGNALS = ("learning_rate", "apical_learning_rate", "mirror_learning_rate", "teaching", "batch_size",
                  "t_in_timesteps", "sample_steps", "error_start")


@dataclass(frozen=True)
class BioLeaFSettings(MicrocircuitSettings):
    """What the network is: sizes and constants fixed when it is built (docs/models/bioleaf.md,
    "Time and constants"). Its output cells hold the spiking error d − o, and no other."""

    plasticity: ForwardPlasticityEquations = ForwardPlasticityEquations()  # W_PP's rule (published)

    def __post_init__(self):
        super().__post_init__()
        if type(self.pyramidal) is not PyramidalParameters:
            raise ValueError("the BioLeaF circuit computes the kernel_mse spiking error d − o only: its cells take "
                             f"PyramidalParameters, got {type(self.pyramidal).__name__}")


@dataclass
class BioLeaFState:
    """Learned and fixed weights; layer l (0-based) is W^{l+1} of the docs."""

    weights: list[np.ndarray]  # W_PP, (n_l × n_{l−1})
    biases: list[np.ndarray]  # b, (n_l)
    feedback: list[np.ndarray]  # B, (n_l × n_{l+1}), one per hidden layer
    interneuron_weights: list[np.ndarray]  # W_IP, (n_{l+1} × n_l)
    interneuron_biases: list[np.ndarray]  # b^I, (n_{l+1})
    apical_weights: list[np.ndarray]  # W_PI, (n_l × n_{l+1})

    GROUPS = ("weights", "biases", "feedback", "interneuron_weights", "interneuron_biases", "apical_weights")

    def copy(self) -> "BioLeaFState":
        return BioLeaFState(*[[np.array(a, dtype=np.float64) for a in getattr(self, k)] for k in self.GROUPS])


def state_arrays_names(n_layers: int) -> list[str]:
    """The checkpoint names of a state of ``n_layers`` pyramidal layers: ``<group>_<l>``."""
    counts = {"weights": n_layers, "biases": n_layers}
    return [f"{group}_{l + 1}" for group in BioLeaFState.GROUPS for l in range(counts.get(group, n_layers - 1))]


def state_arrays(state: BioLeaFState) -> dict[str, np.ndarray]:
    """The state under its checkpoint names (``weights_1``, ..., ``apical_weights_1``, ...)."""
    return {f"{group}_{l + 1}": array for group in BioLeaFState.GROUPS for l, array in enumerate(getattr(state, group))}


def state_from_arrays(arrays, n_layers: int) -> BioLeaFState:
    """The state of named arrays written by :func:`state_arrays` (copies, float64)."""
    counts = {"weights": n_layers, "biases": n_layers}
    return BioLeaFState(*[
        [np.array(arrays[f"{group}_{l + 1}"], dtype=np.float64) for l in range(counts.get(group, n_layers - 1))]
        for group in BioLeaFState.GROUPS
    ])


@dataclass
class RunResult:
    state: BioLeaFState  # weights after the run
    output_counts: np.ndarray  # [N, n_out]
    layers: list[LayerRecord] | None = None  # per-sample records (record_all)
    interneurons: list[MicrocircuitRecord] | None = None


def self_predicting(weights, biases, feedback):
    """Interneuron weights of the self-predicting state: W_IP = W^{l+1}, b^I = b^{l+1}, W_PI = −B."""
    return ([np.array(W, dtype=np.float64) for W in weights[1:]], [np.array(b, dtype=np.float64) for b in biases[1:]],
            [-np.array(B, dtype=np.float64) for B in feedback])


def initial_state(sizes, rng: np.random.Generator, feedback_init: str = "forward_product",
                  interneuron_init: str = "mirror") -> BioLeaFState:
    """W, b ~ U(±1/√fan_in); B^l = (W^{l+1})ᵀ ("forward_product", the special circumstance) or
    U(±1/√n_{l+1}) ("random"); interneurons in the self-predicting state ("mirror") or random."""
    weights, biases = [], []
    for n_pre, n_post in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(n_pre)
        weights.append(rng.uniform(-bound, bound, size=(n_post, n_pre)))
        biases.append(rng.uniform(-bound, bound, size=n_post))
    if feedback_init == "forward_product":
        feedback = [W.T.copy() for W in weights[1:]]
    elif feedback_init == "random":
        feedback = [rng.uniform(-1, 1, size=(n, n_up)) / np.sqrt(n_up) for n, n_up in zip(sizes[1:-1], sizes[2:])]
    else:
        raise ValueError(f"feedback_init must be 'forward_product' or 'random', got {feedback_init!r}")
    if interneuron_init == "mirror":
        inter_w, inter_b, apical = self_predicting(weights, biases, feedback)
    elif interneuron_init == "random":
        inter_w = [rng.uniform(-1, 1, size=(n_up, n)) / np.sqrt(n) for n, n_up in zip(sizes[1:-1], sizes[2:])]
        inter_b = [rng.uniform(-1, 1, size=n_up) / np.sqrt(n) for n, n_up in zip(sizes[1:-1], sizes[2:])]
        apical = [rng.uniform(-1, 1, size=(n, n_up)) / np.sqrt(n_up) for n, n_up in zip(sizes[1:-1], sizes[2:])]
    else:
        raise ValueError(f"interneuron_init must be 'mirror' or 'random', got {interneuron_init!r}")
    return BioLeaFState(weights, biases, feedback, inter_w, inter_b, apical)


class BioLeaFNetwork(CompiledNetwork):
    """A BioLeaF network for runs of a fixed number of samples, built once per device.

    On a standalone device the project is compiled once, at construction; each :meth:`run` passes
    weights, input spikes, desired spikes, learning rates and the teaching flag as run arguments.
    On ``runtime`` the objects are rebuilt for every run (tiny networks, tests).
    """

    def __init__(self, settings: BioLeaFSettings, samples_per_run: int, device_name: str = "runtime",
                 build_dir=None, record_all: bool = False, threads: int = 1, precision: str = "float64",
                 profile: bool = False):
        self.settings = settings
        self.record_all = record_all
        super().__init__(samples_per_run, settings.time_steps, settings.pyramidal.dt, device_name, build_dir, threads,
                         precision, build_key=(settings, int(samples_per_run), record_all, profile), profile=profile)

    # ----------------------------------------------------------------- construction
    def table_widths(self) -> dict[str, int]:
        return {"input_raster": self.settings.sizes[0], "desired_raster": self.settings.sizes[-1]}

    def construct(self, tables) -> dict:
        s = self.settings
        p, T, M = s.pyramidal, s.time_steps, s.batch_size
        desired_raster = tables["desired_raster"]
        inputs, read_input = make_afferents(s.sizes[0], tables["input_raster"], ACTIVE_CONDITION, p.dt)
        n_layers = len(s.sizes) - 1
        layers, forward = [], []
        pre = inputs
        for l, n in enumerate(s.sizes[1:]):
            output = l == n_layers - 1
            layer = make_pyramidal_layer(n, p, T, s.error_start, M, name="output" if output else f"pyramidal_{l + 1}",
                                         output=output, sends_bursts=l > 0, desired_raster=desired_raster,
                                         equations=s.pyramidal_equations)
            forward.append(make_forward_stdp(pre, layer, M, name=f"forward_{l + 1}", equations=s.plasticity))
            layers.append(layer)
            pre = layer
        interneurons, top_down, teaching, inter_input, inter_apical = [], [], [], [], []
        for m in range(n_layers - 1):
            group = make_interneuron_layer(s.sizes[m + 2], p, M, name=f"interneuron_{m + 1}")
            interneurons.append(group)
            top_down.append(make_top_down(layers[m + 1], layers[m], M, name=f"top_down_{m + 1}"))
            teaching.append(make_teaching(layers[m + 1], group, name=f"teaching_{m + 1}"))
            inter_input.append(make_forward_stdp(layers[m], group, M, name=f"interneuron_input_{m + 1}"))
            inter_apical.append(make_interneuron_apical(group, layers[m], M, name=f"interneuron_apical_{m + 1}"))
        o = {"inputs": inputs, "read_input": read_input, "layers": layers, "forward": forward,
             "interneurons": interneurons, "top_down": top_down, "teaching": teaching,
             "interneuron_input": inter_input, "interneuron_apical": inter_apical}
        o["output_spikes"] = SpikeMonitor(layers[-1], name="output_readout")
        if self.record_all:
            o["layer_states"] = [StateMonitor(layer, ["spiked", "v", "apical", "plasticity_gate"], record=True,
                                              name=f"{layer.name}_states") for layer in layers]
            o["interneuron_states"] = [StateMonitor(group, ["spiked", "v"], record=True, name=f"{group.name}_states")
                                       for group in interneurons]
            # Changes read at the boundary that ends the run, before the extra step's own dynamics.
            o["changes"] = {
                name: [self.sample_end_monitor(obj, variable, f"{obj.name}_{variable}_at_end") for obj in objs]
                for name, objs, variable in (
                    ("forward", forward, "weight_change"), ("bias", layers, "bias_change"),
                    ("interneuron_input", inter_input, "weight_change"), ("interneuron_bias", interneurons, "bias_change"),
                    ("interneuron_apical", inter_apical, "weight_change"), ("feedback", top_down, "weight_change"))
            }
        return o

    def schedule(self, o: dict) -> Schedule:
        """Every object's place in the step (module docstring), one row each."""
        s = self.settings
        layers, interneurons = o["layers"], o["interneurons"]
        n_layers = len(layers)
        rows = afferent_rows(o["inputs"], o["read_input"])
        soma = s.pyramidal_equations
        for l, (layer, pathway) in enumerate(zip(layers, o["forward"])):
            base, output = 100 * (l + 1), l == n_layers - 1
            rows.append(("groups", -100, layer.state_updater))
            rows.append(("groups", base, Every(layer, OUTPUT_NUDGING if output else soma.bias_jump,
                                               f"{layer.name}_bias")))
            rows.append(("groups", base + 1, pathway.pre))
            rows.append(("groups", base + 2, layer.thresholder["spike"]))
            after_threshold = soma.after_threshold_code(s.pyramidal) + (OUTPUT_ERROR if output else "")
            rows.append(("groups", base + 3, Every(layer, after_threshold, f"{layer.name}_after_threshold")))
            rows.append(("groups", base + 4, layer.thresholder["active"]))
            rows.append(("after_groups", l, pathway.plasticity))
            rows.append(("after_groups", 50 + l, Every(layer, soma.bias_plasticity, f"{layer.name}_bias_plasticity")))
            rows.append(("start", 0, Every(pathway, s.plasticity.sample_end, f"{pathway.name}_sample_end", "sample")))
            rows.append(("start", 1, Every(layer, soma.sample_end + (OUTPUT_PSP_SAMPLE_END if output else ""),
                                           f"{layer.name}_sample_end", "sample")))
            rows.append(("start", 2, Every(pathway, s.plasticity.minibatch_end, f"{pathway.name}_minibatch_end",
                                           "minibatch")))
            rows.append(("start", 2, Every(layer, soma.minibatch_end, f"{layer.name}_minibatch_end", "minibatch")))
        for m, group in enumerate(interneurons):
            base = 100 * (m + 1) + 10  # after pyramidal layer m+1 (1-based) has fired
            inputs, apical, top_down = o["interneuron_input"][m], o["interneuron_apical"][m], o["top_down"][m]
            rows.append(("groups", -100, group.state_updater))
            rows.append(("groups", -90, Every(group, INTERNEURON_STEP_START, f"{group.name}_step_start")))
            rows.append(("groups", base, Every(group, SOMA_BIAS_JUMP, f"{group.name}_bias")))
            rows.append(("groups", base + 1, inputs.pre))
            rows.append(("groups", base + 2, group.thresholder["spike"]))
            rows.append(("groups", base + 3, Every(group, INTERNEURON_AFTER_THRESHOLD,
                                                   f"{group.name}_after_threshold")))
            for mirrored in (top_down, apical):  # the spikes of pyramidal layer m+1 enter mirror traces
                rows.append(("groups", base + 4, mirrored.post_spike))
            rows.append(("groups", 100 * (m + 2) + 5, o["teaching"][m].spikes))  # after the partner layer's threshold
            # after the top-down stage: W_IP (forward rule), b^I, then the mirror STDP of B and W_PI
            rows.append(("after_groups", 100 + m, inputs.plasticity))
            rows.append(("after_groups", 110 + m, Every(group, INTERNEURON_BIAS_PLASTICITY,
                                                        f"{group.name}_bias_plasticity")))
            rows.append(("after_groups", 120 + m, top_down.mirror))
            rows.append(("after_groups", 130 + m, apical.mirror))
            for synapses in (inputs, top_down, apical):
                rows.append(("start", 0, Every(synapses, TRACE_SAMPLE_END, f"{synapses.name}_sample_end", "sample")))
            rows.append(("start", 1, Every(group, INTERNEURON_SAMPLE_END, f"{group.name}_sample_end", "sample")))
            for synapses in (inputs, apical):
                rows.append(("start", 2, Every(synapses, PLASTIC_MINIBATCH_END, f"{synapses.name}_minibatch_end",
                                               "minibatch")))
            rows.append(("start", 2, Every(top_down, TOP_DOWN_MINIBATCH_END, f"{top_down.name}_minibatch_end",
                                           "minibatch")))
            rows.append(("start", 2, Every(group, SOMA_MINIBATCH_END, f"{group.name}_minibatch_end", "minibatch")))
        # Top-down, from the output down: stage j completes the apical compartments of layer L−1−j.
        for j, m in enumerate(reversed(range(n_layers - 1))):
            base = 100 * (n_layers + 1) + 10 * j
            rows.append(("groups", base, layers[m + 1].thresholder["burst"]))
            for pathway in (o["top_down"][m].spikes, o["top_down"][m].bursts, o["teaching"][m].bursts,
                            o["interneuron_apical"][m].spikes):
                rows.append(("groups", base + 1, pathway))
            rows.append(("groups", base + 2, o["interneuron_apical"][m].learn))
        # records of every step (record_all), read after its plasticity
        records = o.get("layer_states", []) + o.get("interneuron_states", [])
        rows += [("after_groups", 1000, monitor) for monitor in records]
        return Schedule(rows)

    # ----------------------------------------------------------------- running
    def state_variables(self) -> list[StateVariable]:
        """Every weight and bias under its checkpoint name (``<group>_<l>``), and the run values:
        the learning rates and whether a target is presented, each set on every group that reads it."""
        sizes = self.settings.sizes
        declared = []
        for l in range(len(sizes) - 1):
            declared += [
                StateVariable(f"weights_{l + 1}", lambda o, l=l: o["forward"][l].w, Dense(sizes[l + 1], sizes[l])),
                StateVariable(f"biases_{l + 1}", lambda o, l=l: o["layers"][l].bias)]
        for m in range(len(sizes) - 2):  # the microcircuit between pyramidal layers m+1 and m+2
            below, above = sizes[m + 1], sizes[m + 2]
            declared += [
                StateVariable(f"feedback_{m + 1}", lambda o, m=m: o["top_down"][m].feedback_weight,
                              Dense(below, above)),
                StateVariable(f"interneuron_weights_{m + 1}", lambda o, m=m: o["interneuron_input"][m].w,
                              Dense(above, below)),
                StateVariable(f"interneuron_biases_{m + 1}", lambda o, m=m: o["interneurons"][m].bias),
                StateVariable(f"apical_weights_{m + 1}", lambda o, m=m: o["interneuron_apical"][m].w,
                              Dense(below, above)),
            ]

        def on_every(groups: str, variable: str):
            return lambda o: tuple(getattr(group, variable) for group in o[groups])

        layouts = {"layers": Broadcast(len(sizes) - 1), "interneurons": Broadcast(len(sizes) - 2)}
        for name, groups, variable in (("rate_forward", "layers", "learning_rate"),
                                       ("rate_apical", "layers", "apical_learning_rate"),
                                       ("rate_mirror", "layers", "mirror_learning_rate"),
                                       ("teaching", "layers", "teaching"),
                                       ("rate_interneuron", "interneurons", "learning_rate"),
                                       ("rate_mirror_interneurons", "interneurons", "mirror_learning_rate")):
            declared.append(StateVariable(name, on_every(groups, variable), layouts[groups]))
        return declared

    def run_values(self, state: BioLeaFState, input_spikes, labels=None, rates: LearningRates = LearningRates(),
                   teaching: bool = True, desired=None) -> RunValues:
        """What a run from ``state`` is given (the arguments of :meth:`run`)."""
        s = self.settings
        input_spikes = self.check_samples(input_spikes, s.sizes[0], "input_spikes")
        desired = self.targets(labels, desired, s.desired, s.sizes[-1])
        tables = {"input_raster": self.table("input_raster", input_spikes, s.sizes[0]),
                  "desired_raster": self.table("desired_raster", desired, s.sizes[-1])}

        controls = {"teaching": 1.0 if teaching else 0.0, "rate_forward": rates.forward, "rate_apical": rates.apical,
                    "rate_mirror": rates.mirror, "rate_interneuron": rates.interneuron,
                    "rate_mirror_interneurons": rates.mirror}
        return self.values_of({**state_arrays(state), **controls}, tables)

    def run(self, state: BioLeaFState, input_spikes, labels=None, rates: LearningRates = LearningRates(),
            teaching: bool = True, desired=None, learn: bool = True) -> RunResult:
        """Run ``samples_per_run`` samples from ``state``; returns the new state and outputs.

        ``input_spikes`` is [N, T, n_in] of 0/1; the target is ``labels`` [N] (turned into
        desired spike trains) or ``desired`` [N, T, n_out] directly. ``teaching=False`` presents
        no target (the output's apical compartment stays at 0); ``learn=False`` evaluates: every
        plasticity runs at rate 0.
        """
        rates = rates if learn else LearningRates()
        return self.read(self.simulate(self.run_values(state, input_spikes, labels, rates, teaching, desired)))

    def read(self, o: dict) -> RunResult:
        """The state and output counts a run left in its objects (and the records, with ``record_all``)."""
        sizes = self.settings.sizes

        layer_shapes = list(zip(sizes[:-1], sizes[1:]))
        inter_shapes = [(sizes[m + 1], sizes[m + 2]) for m in range(len(o["interneurons"]))]
        state = state_from_arrays(self.read_state(o, state_arrays_names(len(sizes) - 1)), len(sizes) - 1)
        counts = self.spike_rasters(o["output_spikes"], sizes[-1]).sum(axis=1)
        result = RunResult(state=state, output_counts=counts)
        if self.record_all:
            result.layers, result.interneurons = self._records(o, layer_shapes, inter_shapes)
        return result

    def _records(self, o, layer_shapes, inter_shapes):
        """Per-step records and the open minibatch's summed changes (one sample in
        :func:`run_single_sample`)."""
        changes = o["changes"]

        def at_end(name, index, shape=None):
            """The open minibatch's change at the run's last boundary."""
            monitor = changes[name][index]
            values = self.at_sample_ends(getattr(monitor, monitor.record_variables[0]))[-1]
            return (values if shape is None else synapses_to_matrix(values, *shape))[None]

        layers = []
        for l, shape in enumerate(layer_shapes):
            states = o["layer_states"][l]
            layers.append(LayerRecord(
                spikes=self.per_sample(states.spiked), soma=self.per_sample(states.v),
                apical=self.per_sample(states.apical), plasticity_gate=self.per_sample(states.plasticity_gate),
                weight_change=at_end("forward", l, shape), bias_change=at_end("bias", l),
            ))
        interneurons = []
        for m, (n, n_up) in enumerate(inter_shapes):
            states = o["interneuron_states"][m]
            interneurons.append(MicrocircuitRecord(
                spikes=self.per_sample(states.spiked), soma=self.per_sample(states.v),
                weight_change=at_end("interneuron_input", m, (n, n_up)), bias_change=at_end("interneuron_bias", m),
                apical_weight_change=at_end("interneuron_apical", m, (n_up, n)),
                feedback_change=at_end("feedback", m, (n_up, n)),
            ))
        return layers, interneurons


def run_single_sample(state: BioLeaFState, input_spikes, label, settings: BioLeaFSettings,
                      rates: LearningRates = LearningRates(forward=1.0), teaching: bool = True, desired=None,
                      device_name: str = "runtime", build_dir=None) -> RunResult:
    """One BioLeaF sample through the Brian2 network (the single-sample entry point); ``label`` may be
    None when ``desired`` [T, n_out] gives the target spike trains.

    Returns per pyramidal layer: spikes, soma v, apical A, gate g·A (each [1, T, n]), ΔW and Δb;
    per hidden layer's interneurons: spikes, soma, ΔW_IP, Δb^I, ΔW_PI — the changes the sample
    asks for, read before they are applied (the minibatch is left open).
    """
    open_minibatch = replace(settings, batch_size=2)
    network = BioLeaFNetwork(open_minibatch, 1, device_name=device_name, build_dir=build_dir, record_all=True)
    desired = None if desired is None else np.asarray(desired, dtype=np.float64)[None]
    labels = None if label is None else np.array([label])
    return network.run(state, np.asarray(input_spikes)[None], labels, rates, teaching, desired)


def effective_feedback(state: BioLeaFState, input_spikes, label, settings: BioLeaFSettings,
                       perturbation: float = 1e-3, device_name: str = "runtime") -> list[np.ndarray]:
    """The feedback each hidden layer effectively receives, measured by perturbation.

    For each output unit k the desired spike train gets an extra ``perturbation`` on every step
    of the error window; F^l[i, k] = Σ_t ΔA^l_i[t] / Σ_t ΔA^L_k[t], the change of hidden cell i's
    apical potential per unit change of output k's apical error (one sample, the Brian2 network).
    Returns one (n_l × n_out) matrix per hidden layer.
    """
    s = settings
    base_desired = s.desired([label])[0]
    network = BioLeaFNetwork(replace(s, batch_size=2), 1, device_name=device_name, record_all=True)

    def apical_sums(desired):
        result = network.run(state, np.asarray(input_spikes)[None], None, LearningRates(), True, desired[None])
        return [layer.apical[0].sum(axis=0) for layer in result.layers]

    base = apical_sums(base_desired)
    n_out = s.sizes[-1]
    feedback = [np.zeros((len(a), n_out)) for a in base[:-1]]
    for k in range(n_out):
        desired = base_desired.copy()
        desired[s.error_start:, k] += perturbation
        changed = apical_sums(desired)
        output_change = changed[-1][k] - base[-1][k]
        for l in range(len(feedback)):
            feedback[l][:, k] = (changed[l] - base[l]) / output_change
    return feedback
