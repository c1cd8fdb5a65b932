"""The SC microcircuit (Yang & Li 2022, arXiv 2205.07292), reconstructed, as one Brian2 network.

Three cell types and two types of synaptic connectivity (models/ holds every equation;
docs/models/scmicro.md the reasons):

    input ─┬─W⁺→ P¹ ─┬─W⁺→ P² ─ … → Pᴸ (output; apical = d − o, the spiking error)
           └PV─W⁻┘   └PV─W⁻┘           (PV: one basket cell per pyramidal cell/afferent, relays its spikes)
                 P¹ apical ←R (direct, bursts of P²) ; P¹ apical ←SST←R (bursts of P², relayed, inhibitory)

Every pyramidal → pyramidal connection is *direct* (excitatory: W⁺ onto the soma, R onto the
apical compartment on the way back) or *relayed* (inhibitory: W⁻ through the presynaptic cell's PV
relay onto the soma, R through the upper cell's SST relay onto the apical compartment). The type
of each connection is fixed when the network is built (Dale's law), so the effective feedback B
has the sign of Wᵀ on every connection: sign-concordant feedback alignment.

One sample lasts T steps; samples follow each other in one simulation, with sample and minibatch
boundaries inside the network; a run of N samples lasts N·T + 1 steps.

Schedule of one step (``when``/``order``, set in :meth:`SCMicroNetwork.schedule`, one table):

    start        sample boundary: traces, compartments, counts to zero; minibatch boundary: W⁺, W⁻,
                 b += summed change / M, magnitudes bounded at zero
    groups −100  every potential decays (pyramidal soma and apical, PSP traces, PV somata); −90: no
                 SST cell relays a burst yet
           0–2   input spikes of the step read and emitted
           100·l layer l: bias jump, direct pathway W⁺ from layer l−1 (same-step spikes), PV relays of
                 layer l−1 driven and firing, relayed pathway W⁻, threshold, after-threshold
                 bookkeeping (output: its error d − o), ``active`` event; with the softmax error the
                 output's PSP traces first, then the summed Σ_j exp(κ·o_j) (+10), then its error (+11)
           top-down, from the output down, one stage per hidden layer: the layer above's ``burst``
                 event; its bursts through the direct feedback R and into its SST relays; the SST
                 relays' bursts through the inhibitory feedback R
    after_groups per-step plasticity of synapses with a possibly nonzero trace (ΔW⁺ += η·g·A·ε,
                 ΔW⁻ −= η·g·A·ε), biases; each trace then decays or a spike clears it
    resets       somata to 0
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import numpy as np
from brian2 import SpikeMonitor, StateMonitor, Synapses

from apical.analysis.alignment import measure_effective_feedback
from apical.circuits.core import (Broadcast, CompiledNetwork, Every, Flat, Masked, RunValues, Schedule,
                                  StateVariable, afferent_rows, make_afferents)
from apical.circuits.microcircuit import DiscreteParameters, LayerRecord, MicrocircuitSettings
from apical.models.interneurons import (
    PV_AFTER_THRESHOLD,
    PV_DRIVE_ON_SPIKE,
    PV_SAMPLE_END,
    SST_DRIVE_ON_BURST,
    SST_STEP_START,
    make_pv_layer,
    make_sst_layer,
)
from apical.models.plasticity import (
    make_burst_feedback,
    make_relay,
    SignConstrainedPlasticityEquations,
    make_sign_constrained_forward,
)
from apical.models.pyramidal import (
    ACTIVE_CONDITION,
    OUTPUT_ERROR,
    OUTPUT_NUDGING,
    OUTPUT_PSP_TRACES,
    OUTPUT_SOFTMAX_ERROR,
    OUTPUT_PSP_SAMPLE_END,
    SC_PROBE_STEP,
    SC_PROBED_SOMA_EQUATIONS,
    SC_SOMA_EQUATIONS,
    SOFTMAX_PARTITION_COUPLING,
    SCPyramidalParameters,
    make_pyramidal_layer,
)

#: The three cell types (and the afferents), with the sign of every synapse they make.
CELL_TYPES = {
    "input": ("excitatory", "sensory afferent: excitatory onto pyramidal somata and onto its own PV relay"),
    "pyramidal": ("excitatory", "pyramidal cell: soma with basal input, apical compartment (error), bursts; "
                                "excitatory onto somata (W⁺), apical compartments (R), PV and SST relays"),
    "pv": ("inhibitory", "PV basket cell: relays one pyramidal cell's spikes as feedforward inhibition "
                         "of the somata of the layer above (W⁻)"),
    "sst": ("inhibitory", "SST (Martinotti) cell: relays one pyramidal cell's bursts as inhibition of the "
                          "apical compartments of the layer below (R)"),
}
#: The two types of synaptic connectivity: every connection is one of them, forward and back.
CONNECTIVITY_TYPES = {
    "direct": ("pyramidal l−1 → soma of pyramidal l (W⁺ ≥ 0)", "pyramidal l → apical of pyramidal l−1 (R ≥ 0)"),
    "relayed": ("pyramidal l−1 → PV → soma of pyramidal l (−W⁻ ≤ 0)",
                "pyramidal l → SST → apical of pyramidal l−1 (−R ≤ 0)"),
}
PLASTIC_SYNAPSES = ("excitatory_forward", "inhibitory_forward")  # the feedback magnitudes R are fixed
#: Signals broadcast on purpose (for the locality audit): the learning rate (0 while testing),
#: whether a target is presented, the minibatch size, the clock's step counter and sample timing.
GLOBAL_SIGNALS = ("learning_rate", "teaching", "batch_size", "t_in_timesteps", "sample_steps", "error_start")
RELAY_DRIVE = 1.0  # κ, PV drive per partner spike: above θ, so the PV cell fires with its partner


@dataclass(frozen=True)
class SCMicroSettings(MicrocircuitSettings):
    """What the network is: sizes and constants fixed when it is built (docs/models/scmicro.md,
    "Time and constants"); ``pyramidal`` also chooses the output cells' error, d − o or the softmax
    error. The PV relays need θ below their drive κ. With ``pyramidal.nudging`` β > 0 the output
    somata also receive β·A (the teacher's somatic drive, Sacramento et al. 2018)."""

    pyramidal: SCPyramidalParameters = field(default_factory=SCPyramidalParameters)
    plasticity: SignConstrainedPlasticityEquations = SignConstrainedPlasticityEquations()  # forward rule (published)

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.pyramidal, SCPyramidalParameters):
            raise TypeError(f"the SC microcircuit's cells take SCPyramidalParameters, got {type(self.pyramidal).__name__}")
        if self.pyramidal.theta >= RELAY_DRIVE:
            raise ValueError(f"threshold θ = {self.pyramidal.theta} must lie below the PV relay drive {RELAY_DRIVE}")

    def discrete(self) -> DiscreteParameters:
        """The same network in the oracle's discrete terms, with the output cells' error."""
        return replace(super().discrete(), output_error=self.pyramidal.output_error,
                       error_gain=self.pyramidal.error_gain)


@dataclass
class SCMicroState:
    """Effective weights of the circuit; layer l (0-based) is W^{l+1} of the docs.

    ``connection_types[l]`` (n_l × n_{l−1}, +1 direct, −1 relayed) is fixed for the network's
    life; ``weights[l]`` = W⁺ − W⁻ has its sign or is 0; ``feedback[m]`` (n_m × n_{m+1}) = ±R has
    the sign of connection_types[m+1]ᵀ on every entry.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    feedback: list[np.ndarray]
    connection_types: list[np.ndarray]

    GROUPS = ("weights", "biases", "feedback", "connection_types")

    def copy(self) -> "SCMicroState":
        return SCMicroState(*[[np.array(a, dtype=np.float64) for a in getattr(self, k)] for k in self.GROUPS])

    def check(self, built_for=None) -> None:
        """Raise ValueError if a weight or a feedback entry disagrees with its connection's type, or
        if the types differ from ``built_for`` (the types a network was built for), when given."""
        for l, (ours, theirs) in enumerate(zip(built_for or [], self.connection_types)):
            if not np.array_equal(ours, theirs):
                raise ValueError(f"state.connection_types[{l}] differs from the types this network was built for")
        for l, (W, kind) in enumerate(zip(self.weights, self.connection_types)):
            if not np.isin(kind, (-1.0, 1.0)).all():
                raise ValueError(f"connection_types[{l}] must hold only +1 (direct) and −1 (relayed)")
            if (W * kind < 0).any():
                raise ValueError(f"weights[{l}] has {int((W * kind < 0).sum())} entries of the wrong sign for "
                                 "their connection type (a connection never changes sign)")
        for m, B in enumerate(self.feedback):
            if not np.array_equal(np.sign(B), self.connection_types[m + 1].T) or (B == 0).any():
                raise ValueError(f"feedback[{m}] must be nonzero with the sign of connection_types[{m + 1}]ᵀ")


def initial_state(sizes, rng: np.random.Generator, feedback_rng: np.random.Generator,
                  feedback_scale: float = 1.0, feedback_floor: float = 0.0) -> SCMicroState:
    """W, b ~ U(±1/√fan_in) (drawn as BioGrad's and BioLeaF's, so the networks start alike); each
    connection's type is the sign of its initial weight; feedback magnitudes R^m ~ U(f·s/√n_m, s/√n_m]
    (s = ``feedback_scale``, f = ``feedback_floor``; with f = 0 the distribution of |W^{m+1}| at the
    start when s = 1), independent of W: B^m = sign(W^{m+1})ᵀ·R^m. A floor f > 0 keeps every
    feedback synapse at some minimal efficacy; the magnitudes stay random."""
    if not 0.0 <= feedback_floor < 1.0:
        raise ValueError(f"feedback_floor must lie in [0, 1), got {feedback_floor}")
    weights, biases = [], []
    for n_pre, n_post in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(n_pre)
        weights.append(rng.uniform(-bound, bound, size=(n_post, n_pre)))
        biases.append(rng.uniform(-bound, bound, size=n_post))
    types = [np.where(W >= 0, 1.0, -1.0) for W in weights]
    feedback = []
    for m, (n, n_up) in enumerate(zip(sizes[1:-1], sizes[2:])):
        unit = 1.0 - feedback_rng.random((n, n_up))  # in (0, 1]
        magnitude = feedback_scale * (feedback_floor + (1.0 - feedback_floor) * unit) / np.sqrt(n)  # (f·s, s]/√n
        feedback.append(types[m + 1].T * magnitude)
    return SCMicroState(weights, biases, feedback, types)


def _pairs(mask: np.ndarray):
    """(pre, post) indices of the True entries of a (post × pre) mask, presynaptic-major."""
    pre, post = np.nonzero(np.asarray(mask).T)
    return pre, post


class Split(Flat):
    """A matrix W = W⁺ − W⁻ (post × pre) held by two pathways: the pairs where ``kind`` > 0 carry W
    (direct, excitatory), those where ``kind`` < 0 carry −W (relayed through PV cells, inhibitory)."""

    def __init__(self, kind):
        self.direct, self.relayed = Masked(np.asarray(kind) > 0), Masked(np.asarray(kind) < 0)

    def to_network(self, matrix) -> tuple[np.ndarray, np.ndarray]:
        return self.direct.to_network(matrix), self.relayed.to_network(-np.asarray(matrix, dtype=np.float64))

    def from_network(self, values) -> np.ndarray:
        return self.direct.from_network(values[0]) - self.relayed.from_network(values[1])


@dataclass
class RunResult:
    state: SCMicroState  # weights after the run
    output_counts: np.ndarray  # [N, n_out]
    layers: list[LayerRecord] | None = None  # per-sample records (record_all); weight_change is ΔW = ΔW⁺ − ΔW⁻


class SCMicroNetwork(CompiledNetwork):
    """An SC microcircuit for runs of a fixed number of samples, built once per device for the
    given connection types (``connection_types[l]``, +1 direct, −1 relayed).

    On a standalone device the project is compiled once, at construction; each :meth:`run` passes
    weights, input spikes, desired spikes, the learning rate and the teaching flag as run
    arguments. On ``runtime`` the objects are rebuilt for every run (tiny networks, tests).
    ``probe`` adds a dendritic electrode to every cell that sends bursts (:func:`effective_feedback`).
    """

    def __init__(self, settings: SCMicroSettings, connection_types, samples_per_run: int,
                 device_name: str = "runtime", build_dir=None, record_all: bool = False, probe: bool = False,
                 threads: int = 1, precision: str = "float64", profile: bool = False):
        self.settings = settings
        self.connection_types = [np.asarray(kind, dtype=np.float64) for kind in connection_types]
        expected = [(n_post, n_pre) for n_pre, n_post in zip(settings.sizes[:-1], settings.sizes[1:])]
        if [kind.shape for kind in self.connection_types] != expected:
            raise ValueError(f"connection_types must have shapes {expected}")
        self.record_all, self.probe = record_all, probe
        types_digest = hashlib.sha256(b"".join(np.sign(k).astype(np.int8).tobytes()
                                               for k in self.connection_types)).hexdigest()
        super().__init__(samples_per_run, settings.time_steps, settings.pyramidal.dt, device_name, build_dir, threads,
                         precision, build_key=(settings, types_digest, int(samples_per_run), record_all, probe, profile),
                         profile=profile)

    # ----------------------------------------------------------------- construction
    def table_widths(self) -> dict[str, int]:
        """The input and desired spike trains; with ``probe``, the electrode's protocol for every
        layer above the first hidden one (``burst_probe_<l>``, l counted from the input)."""
        sizes = self.settings.sizes
        probes = {f"burst_probe_{l + 2}": n for l, n in enumerate(sizes[2:])} if self.probe else {}
        return {"input_raster": sizes[0], "desired_raster": sizes[-1], **probes}

    def construct(self, tables) -> dict:
        s = self.settings
        p, T, M = s.pyramidal, s.time_steps, s.batch_size
        desired_raster = tables["desired_raster"]
        inputs, read_input = make_afferents(s.sizes[0], tables["input_raster"], ACTIVE_CONDITION, p.dt)
        n_layers = len(s.sizes) - 1
        layers, pv, pv_drive, excitatory, inhibitory = [], [], [], [], []
        pre, pre_name = inputs, "input"
        for l, n in enumerate(s.sizes[1:]):
            output = l == n_layers - 1
            probed = self.probe and l > 0
            layer = make_pyramidal_layer(
                n, p, T, s.error_start, M, name="output" if output else f"pyramidal_{l + 1}", output=output,
                sends_bursts=l > 0, desired_raster=desired_raster, equations=s.pyramidal_equations,
                soma_equations=SC_PROBED_SOMA_EQUATIONS if probed else SC_SOMA_EQUATIONS,
                namespace={"burst_probe": tables[f"burst_probe_{l + 1}"]} if probed else None,
            )
            relay = make_pv_layer(len(pre), p, name=f"pv_{pre_name}")
            kind = self.connection_types[l]
            pv_drive.append(make_relay(pre, relay, PV_DRIVE_ON_SPIKE, "spike", RELAY_DRIVE, name=f"pv_drive_{pre_name}"))
            excitatory.append(make_sign_constrained_forward(pre, layer, *_pairs(kind > 0), False, M,
                                                            name=f"excitatory_forward_{l + 1}",
                                                            equations=s.plasticity))
            inhibitory.append(make_sign_constrained_forward(relay, layer, *_pairs(kind < 0), True, M,
                                                            name=f"inhibitory_forward_{l + 1}",
                                                            equations=s.plasticity))
            layers.append(layer)
            pv.append(relay)
            pre, pre_name = layer, layer.name
        sst, sst_drive, excitatory_feedback, inhibitory_feedback = [], [], [], []
        for m in range(n_layers - 1):  # feedback from layer m+1 (0-based) onto layer m
            upper, lower, kind = layers[m + 1], layers[m], self.connection_types[m + 1].T  # (n_m × n_{m+1})
            relay = make_sst_layer(len(upper), p, name=f"sst_{upper.name}")
            sst.append(relay)
            sst_drive.append(make_relay(upper, relay, SST_DRIVE_ON_BURST, "burst", RELAY_DRIVE,
                                        name=f"sst_drive_{upper.name}"))
            excitatory_feedback.append(make_burst_feedback(upper, lower, *_pairs(kind > 0), False,
                                                           name=f"excitatory_feedback_{m + 1}"))
            inhibitory_feedback.append(make_burst_feedback(relay, lower, *_pairs(kind < 0), True,
                                                           name=f"inhibitory_feedback_{m + 1}"))
        softmax = []
        if p.output_error == "softmax":  # the output cells' analog all-to-all couplings: Σ_j exp(κ·o_j)
            coupling = Synapses(layers[-1], layers[-1], SOFTMAX_PARTITION_COUPLING, namespace=p.namespace(), dt=p.dt,
                                name="softmax_partition")
            coupling.connect()
            softmax.append(coupling)
        o = {"inputs": inputs, "read_input": read_input, "layers": layers, "pv": pv, "pv_drive": pv_drive,
             "softmax_partition": softmax,
             "excitatory_forward": excitatory, "inhibitory_forward": inhibitory, "sst": sst, "sst_drive": sst_drive,
             "excitatory_feedback": excitatory_feedback, "inhibitory_feedback": inhibitory_feedback}
        o["output_spikes"] = SpikeMonitor(layers[-1], name="output_readout")
        if self.record_all:
            o["layer_states"] = [StateMonitor(layer, ["spiked", "v", "apical", "plasticity_gate"], record=True,
                                              name=f"{layer.name}_states") for layer in layers]
            o["changes"] = {  # read before the boundary folds them
                name: [self.sample_end_monitor(obj, variable, f"{obj.name}_{variable}_at_end") for obj in objs]
                for name, objs, variable in (("excitatory_forward", excitatory, "weight_change"),
                                             ("inhibitory_forward", inhibitory, "weight_change"),
                                             ("bias", layers, "bias_change"))
            }
        return o

    def schedule(self, o: dict) -> Schedule:
        """Every object's place in the step (module docstring), one row each."""
        s = self.settings
        layers = o["layers"]
        n_layers = len(layers)
        rows = afferent_rows(o["inputs"], o["read_input"])
        if self.probe:  # the electrode's protocol, read before any burst of the step
            rows += [("groups", -95, Every(layer, SC_PROBE_STEP, f"{layer.name}_probe")) for layer in layers[1:]]
        soma = s.pyramidal_equations
        for l, layer in enumerate(layers):
            base, output = 100 * (l + 1), l == n_layers - 1
            relay, drive = o["pv"][l], o["pv_drive"][l]
            excitatory, inhibitory = o["excitatory_forward"][l], o["inhibitory_forward"][l]
            rows.append(("groups", -100, layer.state_updater))
            rows.append(("groups", -100, relay.state_updater))
            rows.append(("groups", base, Every(layer, OUTPUT_NUDGING if output else soma.bias_jump,
                                               f"{layer.name}_bias")))
            rows.append(("groups", base + 1, excitatory.pre))
            # the PV relays of layer l−1 fire in the same step as their partners
            rows.append(("groups", base + 2, drive.relay))
            rows.append(("groups", base + 3, relay.thresholder["spike"]))
            rows.append(("groups", base + 4, Every(relay, PV_AFTER_THRESHOLD, f"{relay.name}_after_threshold")))
            rows.append(("groups", base + 5, relay.thresholder["active"]))
            rows.append(("groups", base + 6, inhibitory.pre))
            rows.append(("groups", base + 7, layer.thresholder["spike"]))
            if output and o["softmax_partition"]:  # traces, then Σ_j exp(κ·o_j), then the error
                traces = soma.after_threshold_code(s.pyramidal) + OUTPUT_PSP_TRACES
                rows.append(("groups", base + 8, Every(layer, traces, f"{layer.name}_after_threshold")))
                rows.append(("groups", base + 10, o["softmax_partition"][0].summed_updaters["partition_post"]))
                rows.append(("groups", base + 11, Every(layer, OUTPUT_SOFTMAX_ERROR, f"{layer.name}_softmax_error")))
            else:
                after_threshold = soma.after_threshold_code(s.pyramidal) + (OUTPUT_ERROR if output else "")
                rows.append(("groups", base + 8, Every(layer, after_threshold, f"{layer.name}_after_threshold")))
            rows.append(("groups", base + 9, layer.thresholder["active"]))
            rows.append(("after_groups", 2 * l, excitatory.plasticity))
            rows.append(("after_groups", 2 * l + 1, inhibitory.plasticity))
            rows.append(("after_groups", 50 + l, Every(layer, soma.bias_plasticity, f"{layer.name}_bias_plasticity")))
            for synapses in (excitatory, inhibitory):
                rows.append(("start", 0, Every(synapses, s.plasticity.sample_end, f"{synapses.name}_sample_end",
                                               "sample")))
                rows.append(("start", 2, Every(synapses, s.plasticity.minibatch_end, f"{synapses.name}_minibatch_end",
                                               "minibatch")))
            rows.append(("start", 1, Every(layer, soma.sample_end + (OUTPUT_PSP_SAMPLE_END if output else ""),
                                           f"{layer.name}_sample_end", "sample")))
            rows.append(("start", 1, Every(relay, PV_SAMPLE_END, f"{relay.name}_sample_end", "sample")))
            rows.append(("start", 2, Every(layer, soma.minibatch_end, f"{layer.name}_minibatch_end", "minibatch")))
        # Top-down, from the output down: stage j completes the apical compartments of layer L−1−j.
        for j, m in enumerate(reversed(range(n_layers - 1))):
            base = 100 * (n_layers + 1) + 10 * j
            relay = o["sst"][m]
            rows.append(("groups", -90, Every(relay, SST_STEP_START, f"{relay.name}_step_start")))
            rows.append(("groups", base, layers[m + 1].thresholder["burst"]))
            rows.append(("groups", base + 1, o["excitatory_feedback"][m].bursts))
            rows.append(("groups", base + 1, o["sst_drive"][m].relay))
            rows.append(("groups", base + 2, relay.thresholder["burst"]))
            rows.append(("groups", base + 3, o["inhibitory_feedback"][m].bursts))
        # records of every step (record_all), read after its plasticity
        rows += [("after_groups", 1000, monitor) for monitor in o.get("layer_states", [])]
        return Schedule(rows)

    # ----------------------------------------------------------------- running
    def state_variables(self) -> list[StateVariable]:
        """W^l = W⁺ − W⁻ (its direct and relayed pathways), b^l and B^m = ±R (excitatory and inhibitory
        burst feedback) under their checkpoint names, and the run values η and the teaching flag."""
        n_layers = len(self.settings.sizes) - 1
        declared = []
        for l, kind in enumerate(self.connection_types):
            declared += [StateVariable(f"weights_{l + 1}", lambda o, l=l: (o["excitatory_forward"][l].w,
                                                                           o["inhibitory_forward"][l].w), Split(kind)),
                         StateVariable(f"biases_{l + 1}", lambda o, l=l: o["layers"][l].bias)]
        for m in range(n_layers - 1):
            declared.append(StateVariable(f"feedback_{m + 1}",
                                          lambda o, m=m: (o["excitatory_feedback"][m].feedback_weight,
                                                          o["inhibitory_feedback"][m].feedback_weight),
                                          Split(self.connection_types[m + 1].T)))
        for variable in ("learning_rate", "teaching"):
            declared.append(StateVariable(variable, lambda o, v=variable: tuple(getattr(layer, v) for layer in o["layers"]),
                                          Broadcast(n_layers)))
        return declared

    def run_values(self, state: SCMicroState, input_spikes, labels=None, learning_rate: float = 0.0,
                   teaching: bool = True, desired=None, burst_probe=None) -> RunValues:
        """What a run from ``state`` is given (the arguments of :meth:`run`)."""
        s = self.settings
        state.check(built_for=self.connection_types)
        input_spikes = self.check_samples(input_spikes, s.sizes[0], "input_spikes")
        desired = self.targets(labels, desired, s.desired, s.sizes[-1])
        if burst_probe is not None and not self.probe:
            raise ValueError("burst_probe needs a network built with probe=True")
        tables = {"input_raster": self.table("input_raster", input_spikes, s.sizes[0]),
                  "desired_raster": self.table("desired_raster", desired, s.sizes[-1])}
        for l, (values, n) in enumerate(zip(burst_probe or [], s.sizes[2:])):
            tables[f"burst_probe_{l + 2}"] = self.table(f"burst_probe_{l + 2}", values, n)

        learned = {f"{group}_{l + 1}": array for group in ("weights", "biases", "feedback")
                   for l, array in enumerate(getattr(state, group))}
        controls = {"learning_rate": float(learning_rate), "teaching": 1.0 if teaching else 0.0}
        return self.values_of({**learned, **controls}, tables)

    def run(self, state: SCMicroState, input_spikes, labels=None, learning_rate: float = 0.0, teaching: bool = True,
            desired=None, burst_probe=None, learn: bool = True) -> RunResult:
        """Run ``samples_per_run`` samples from ``state``; returns the new state and outputs.

        ``input_spikes`` is [N, T, n_in] of 0/1; the target is ``labels`` [N] (as desired spike
        trains) or ``desired`` [N, T, n_out]; ``teaching=False`` presents none. ``burst_probe``
        (probe networks only): one [N, T, n_l] array per layer above the first hidden one.
        ``learn=False`` evaluates: the network runs with η = 0.
        """
        rate = learning_rate if learn else 0.0
        values = self.run_values(state, input_spikes, labels, rate, teaching, desired, burst_probe)
        return self.read(self.simulate(values), state)

    def read(self, o: dict, before: SCMicroState) -> RunResult:
        """The state and output counts a run from ``before`` left in its objects (and the records,
        with ``record_all``); the feedback magnitudes are fixed, so they are ``before``'s."""
        n_layers = len(self.connection_types)
        learned = self.read_state(o, [f"{group}_{l + 1}" for group in ("weights", "biases") for l in range(n_layers)])
        state = SCMicroState([learned[f"weights_{l + 1}"] for l in range(n_layers)],
                             [learned[f"biases_{l + 1}"] for l in range(n_layers)],
                             [np.array(B, dtype=np.float64) for B in before.feedback],
                             [np.array(kind) for kind in self.connection_types])
        counts = self.spike_rasters(o["output_spikes"], self.settings.sizes[-1]).sum(axis=1)
        result = RunResult(state=state, output_counts=counts)
        if self.record_all:
            result.layers = self._records(o)
        return result

    def _records(self, o) -> list[LayerRecord]:
        """Per-step records and the open minibatch's summed ΔW = ΔW⁺ − ΔW⁻ and Δb."""
        changes = o["changes"]

        def at_end(name, index):
            """The open minibatch's change at the run's last boundary."""
            monitor = changes[name][index]
            return self.at_sample_ends(getattr(monitor, monitor.record_variables[0]))[-1]

        layers = []
        for l, kind in enumerate(self.connection_types):
            states = o["layer_states"][l]
            change = Split(kind).from_network((at_end("excitatory_forward", l), at_end("inhibitory_forward", l)))
            layers.append(LayerRecord(
                spikes=self.per_sample(states.spiked), soma=self.per_sample(states.v),
                apical=self.per_sample(states.apical), plasticity_gate=self.per_sample(states.plasticity_gate),
                weight_change=change[None], bias_change=at_end("bias", l)[None],
            ))
        return layers


def run_single_sample(state: SCMicroState, input_spikes, label, settings: SCMicroSettings, learning_rate: float = 1.0,
                      teaching: bool = True, desired=None, device_name: str = "runtime", build_dir=None) -> RunResult:
    """One sample through the Brian2 network (the single-sample entry point); ``label`` may be None
    when ``desired`` [T, n_out] gives the target spike trains.

    Returns per pyramidal layer: spikes, soma v, apical A, gate g·A (each [1, T, n]), and the
    changes the sample asks for — ΔW of the effective weights (ΔW⁺ − ΔW⁻) and Δb — read before
    they are applied (the minibatch is left open).
    """
    network = SCMicroNetwork(replace(settings, batch_size=2), state.connection_types, 1, device_name=device_name,
                             build_dir=build_dir, record_all=True)
    desired = None if desired is None else np.asarray(desired, dtype=np.float64)[None]
    labels = None if label is None else np.array([label])
    return network.run(state, np.asarray(input_spikes)[None], labels, learning_rate, teaching, desired)


def effective_feedback(state: SCMicroState, input_spikes, label, settings: SCMicroSettings,
                       perturbation: float = 1e-3, device_name: str = "runtime") -> list[np.ndarray]:
    """The feedback each hidden layer effectively receives, measured by perturbation.

    A dendritic electrode adds ``perturbation`` to the burst of one cell k of layer m+1 on every
    step of the error window (the target presented as usual); F^m[i, k] is the change of hidden cell
    i's apical potential summed over the sample, per unit of injected burst, minus the same with no
    injection (analysis.alignment.measure_effective_feedback). Returns one (n_m × n_{m+1}) matrix
    per hidden layer m — what B^m should be, whatever the circuit's wiring. All injections run as
    samples of one simulation (each sample starts from rest, and nothing learns: η = 0).
    """
    s = settings
    window = np.zeros(s.time_steps)
    window[s.error_start:] = perturbation
    protocols = [(None, None)] + [(m, k) for m in range(len(s.sizes) - 2) for k in range(s.sizes[m + 2])]
    probes = [np.zeros((len(protocols), s.time_steps, n)) for n in s.sizes[2:]]
    for r, (m, k) in enumerate(protocols):
        if m is not None:
            probes[m][r, :, k] = window
    network = SCMicroNetwork(replace(s, batch_size=len(protocols) + 1), state.connection_types, len(protocols),
                             device_name=device_name, record_all=True, probe=True)
    spikes = np.repeat(np.asarray(input_spikes)[None], len(protocols), axis=0)
    result = network.run(state, spikes, np.full(len(protocols), label), 0.0, True, burst_probe=probes)
    apical_sums = [layer.apical.sum(axis=1) / window.sum() for layer in result.layers]  # [samples, n] per layer
    matrices = []
    for m in range(len(s.sizes) - 2):
        row = {k: r for r, (mm, k) in enumerate(protocols) if mm == m}
        inject = (lambda k, m=m, row=row: apical_sums[m][0 if k is None else row[k]])
        matrices.append(measure_effective_feedback(inject, s.sizes[m + 2], s.sizes[m + 1]))
    return matrices


def dale_matrices(state: SCMicroState) -> list[tuple[str, np.ndarray, list[str]]]:
    """Every synaptic pathway as (name, post × pre matrix of signed effects, presynaptic cell
    types) for the Dale audit (analysis.alignment.dale_violations): afferent/pyramidal → soma (W⁺),
    PV → soma (−W⁻), pyramidal → apical (R), SST → apical (−R)."""
    pathways = []
    for l, (W, kind) in enumerate(zip(state.weights, state.connection_types)):
        n_pre = W.shape[1]
        sender = "input" if l == 0 else f"pyramidal {l}"
        pathways.append((f"{sender} → soma {l + 1} (direct)", np.where(kind > 0, W, 0.0), ["excitatory"] * n_pre))
        pathways.append((f"PV of {sender} → soma {l + 1} (relayed)", np.where(kind < 0, W, 0.0),
                         ["inhibitory"] * n_pre))
    for m, B in enumerate(state.feedback):
        kind = state.connection_types[m + 1].T
        n_up = B.shape[1]
        pathways.append((f"pyramidal {m + 2} → apical {m + 1} (direct)", np.where(kind > 0, B, 0.0),
                         ["excitatory"] * n_up))
        pathways.append((f"SST of pyramidal {m + 2} → apical {m + 1} (relayed)", np.where(kind < 0, B, 0.0),
                         ["inhibitory"] * n_up))
    return pathways


__all__ = ["CELL_TYPES", "CONNECTIVITY_TYPES", "GLOBAL_SIGNALS", "PLASTIC_SYNAPSES", "SCMicroSettings",
           "SCMicroState", "SCMicroNetwork", "RunResult", "initial_state", "run_single_sample", "effective_feedback",
           "dale_matrices"]
