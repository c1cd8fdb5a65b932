"""One layer of LIF cells trained by the delta rule on spike counts, as a Brian2 network.

The delta rule (Widrow & Hoff 1960, the LMS rule) with the output cells' spike counts as the
output and the afferents' spike rates as the input. Output cell i, a dimensionless potential,
integrated exactly between steps:

    dv_i/dt = −v_i / τ_m
    afferent j spikes      →  v_i ← v_i + W_ij          (in the same step, before the threshold)
    v_i > θ                →  spike, v_i ← 0

After each sample of T steps, with n_i the spikes of cell i, m_j those of afferent j, and
d_i = d·1[i = label] the spikes asked of cell i:

    ΔW_ij ← ΔW_ij + (d_i − n_i) · m_j / T

and after each minibatch of M samples W ← W + η·ΔW / M, ΔW ← 0. Potentials and counts restart
with every sample, so samples are independent and a minibatch's order does not matter.

Samples follow each other in one simulation: a run of N samples lasts N·T + 1 steps, the extra
step being the boundary that folds the last sample's update. Schedule of a step:

    start    sample boundary: ΔW += (d − n)·m/T, m ← 0 (order 0); minibatch boundary:
             W += η·ΔW/M (1); potentials and counts to 0, the next sample's d read (2)
    groups   potentials decay (0); the step's input spikes (1) reach the cells, and each synapse
             counts the spikes it carries, m (2)
    thresholds, resets   the cells fire and reset; every spike adds one to its cell's count, n

Every quantity the rule reads is the synapse's own (W, ΔW, m), its postsynaptic cell's (n, d) or
broadcast on purpose (η, M, T): the afferent's count m is kept by the synapse as it carries spikes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import Network, NeuronGroup, Quantity, SpikeMonitor, Synapses, TimedArray, ms

from apical.circuits.backend import device_workarounds, forget_run_arg_files, prepare_device

CELL_EQUATIONS = """
dv/dt = -v / tau_m : 1              # membrane potential, leaks between steps
count : 1                           # n_i, spikes in the current sample
target : 1                          # d_i, spikes asked of the cell in the current sample
"""
CELL_SAMPLE_START = """
v = 0
count = 0
target = desired_counts(t, i)
"""
PATHWAY_EQUATIONS = """
w : 1                               # W_ij
carried : 1                         # m_j, spikes the synapse carried in the current sample
weight_change : 1                   # ΔW_ij, summed over the open minibatch
learning_rate : 1 (shared)          # η; 0 while testing
"""
PATHWAY_ON_PRE = """
v_post += w
carried += 1
"""
PATHWAY_SAMPLE_END = """
weight_change += (target_post - count_post) * carried / time_steps
carried = 0
"""
PATHWAY_MINIBATCH_END = """
w += learning_rate * weight_change / batch_size
weight_change = 0
"""

#: Signals broadcast to every synapse on purpose (for the locality audit): η (0 while testing), M and T.
GLOBAL_SIGNALS = ("learning_rate", "batch_size", "time_steps")


@dataclass(frozen=True)
class DeltaSettings:
    """What the network is: sizes and constants fixed when it is built."""

    sizes: tuple[int, int]  # (n_in, n_out)
    dt: Quantity = field(default_factory=lambda: 5 * ms)  # one step
    time_steps: int = 20  # T, steps per sample
    tau_m: Quantity = field(default_factory=lambda: 20 * ms)  # τ_m
    threshold: float = 1.0  # θ
    target_count: float = 15.0  # d
    batch_size: int = 1  # M

    @property
    def decay(self) -> float:
        """exp(−dt/τ_m), what is left of a potential after one step."""
        return float(np.exp(-float(self.dt / self.tau_m)))

    def desired(self, labels) -> np.ndarray:
        """d_i per sample [N, n_out]: d for the labelled cell, 0 for the others."""
        desired = np.zeros((len(labels), self.sizes[1]))
        desired[np.arange(len(labels)), np.asarray(labels, dtype=int)] = self.target_count
        return desired


def initial_weights(sizes, rng: np.random.Generator) -> np.ndarray:
    """W ~ U(±1/√n_in), (n_out × n_in)."""
    n_in, n_out = sizes
    bound = 1.0 / np.sqrt(n_in)
    return rng.uniform(-bound, bound, size=(n_out, n_in))


def make_layer(settings: DeltaSettings, input_raster: TimedArray, desired_counts: TimedArray) -> dict:
    """The afferents, the output cells and the plastic pathway between them, scheduled as the
    module docstring says; returns them with the network (nothing is run)."""
    s = settings
    n_in, n_out = s.sizes
    sample, minibatch = s.time_steps * s.dt, s.batch_size * s.time_steps * s.dt
    constants = {"tau_m": s.tau_m, "theta": s.threshold, "time_steps": s.time_steps, "batch_size": s.batch_size,
                 "input_raster": input_raster, "desired_counts": desired_counts}
    afferents = NeuronGroup(n_in, "", threshold="input_raster(t, i) > 0.5", reset="", dt=s.dt, namespace=constants,
                            name="input")
    cells = NeuronGroup(n_out, CELL_EQUATIONS, threshold="v > theta", reset="v = 0\ncount += 1", method="exact",
                        dt=s.dt, namespace=constants, name="output")
    pathway = Synapses(afferents, cells, PATHWAY_EQUATIONS, on_pre=PATHWAY_ON_PRE, dt=s.dt, namespace=constants,
                       name="forward")
    # Explicit pairs, afferent-major: synapse k joins afferent k // n_out to cell k % n_out (W.T.ravel()).
    pathway.connect(i=np.repeat(np.arange(n_in), n_out), j=np.tile(np.arange(n_out), n_in))
    boundaries = [
        pathway.run_regularly(PATHWAY_SAMPLE_END, dt=sample, when="start", order=0, name="forward_sample_end"),
        pathway.run_regularly(PATHWAY_MINIBATCH_END, dt=minibatch, when="start", order=1,
                              name="forward_minibatch_end"),
        cells.run_regularly(CELL_SAMPLE_START, dt=sample, when="start", order=2, name="output_sample_start"),
    ]
    # The step's input spikes reach the cells before their threshold test (same-step transmission).
    cells.state_updater.when, cells.state_updater.order = "groups", 0
    afferents.thresholder["spike"].when, afferents.thresholder["spike"].order = "groups", 1
    pathway.pre.when, pathway.pre.order = "groups", 2
    output_spikes = SpikeMonitor(cells, name="output_spikes")
    network = Network(afferents, cells, pathway, *boundaries, output_spikes)
    return {"network": network, "input": afferents, "layers": [cells], "forward": pathway,
            "output_spikes": output_spikes, "input_raster": input_raster, "desired_counts": desired_counts}


class DeltaNetwork:
    """The layer for runs of a fixed number of samples, built once per device.

    On ``cpp`` (and ``cuda``) the project is compiled once, at construction; each :meth:`run`
    passes the weights, the input raster, the desired counts and η as run arguments. On
    ``runtime`` the objects are rebuilt for every run.
    """

    def __init__(self, settings: DeltaSettings, samples_per_run: int, device_name: str = "runtime",
                 build_dir=None, threads: int = 1, precision: str = "float64"):
        self.settings = settings
        self.samples_per_run = int(samples_per_run)
        self.device_name, self.precision = device_name, precision
        build_key = repr(("apical_delta", settings, self.samples_per_run))
        self.device, self.project_dir = prepare_device(device_name, build_dir, threads, precision, build_key)
        self.standalone = self.project_dir is not None
        if self.standalone:
            self._objects = self._construct()
            self._objects["network"].run(self._objects["duration"], namespace={})
            self.device.build(directory=str(self.project_dir), compile=True, run=False, with_output=False)

    def _tables(self, input_spikes=None, labels=None) -> tuple[np.ndarray, np.ndarray]:
        """The [N·T + 1, n_in] input table read per step and the [N + 1, n_out] desired counts read
        per sample, for the samples given ([N, T, n_in], labels [N]) or for ``samples_per_run``
        silent ones; the last row of each is the boundary's."""
        s = self.settings
        n_in, n_out = s.sizes
        n_samples = self.samples_per_run if input_spikes is None else len(input_spikes)
        raster = np.zeros((n_samples * s.time_steps + 1, n_in))
        counts = np.zeros((n_samples + 1, n_out))
        if input_spikes is not None:
            raster[:-1] = np.asarray(input_spikes, dtype=np.float64).reshape(-1, n_in)
            counts[:-1] = s.desired(np.zeros(n_samples, int) if labels is None else labels)
        return raster, counts

    def _construct(self, input_spikes=None, labels=None) -> dict:
        s = self.settings
        raster, counts = self._tables(input_spikes, labels)
        objects = make_layer(s, TimedArray(raster, dt=s.dt, name="input_raster"),
                             TimedArray(counts, dt=s.time_steps * s.dt, name="desired_counts"))
        objects["network"].add(*device_workarounds(self.device_name, s.dt))
        objects["duration"] = len(raster) * s.dt
        return objects

    def run(self, weights: np.ndarray, input_spikes, labels, learning_rate: float) -> tuple[np.ndarray, np.ndarray]:
        """Run ``samples_per_run`` samples ([N, T, n_in] of 0/1, labels [N]) from ``weights``;
        returns the weights after the run and the output spike counts [N, n_out]."""
        s, N = self.settings, self.samples_per_run
        input_spikes = np.asarray(input_spikes)
        if input_spikes.shape != (N, s.time_steps, s.sizes[0]):
            raise ValueError(f"input_spikes must have shape {(N, s.time_steps, s.sizes[0])}, got {input_spikes.shape}")
        synaptic_weights = np.asarray(weights, dtype=np.float64).T.ravel()
        if self.standalone:
            o = self._objects
            raster, counts = self._tables(input_spikes, labels)
            run_args = {o["forward"].w: synaptic_weights, o["forward"].learning_rate: float(learning_rate),
                        o["input_raster"]: raster, o["desired_counts"]: counts}
            self.device.run(directory=str(self.project_dir), with_output=False, run_args=run_args)
            forget_run_arg_files(self.device, self.project_dir)
        else:
            prepare_device("runtime", precision=self.precision)  # another network may have set a device since
            o = self._construct(input_spikes, labels)
            o["forward"].w[:] = synaptic_weights
            o["forward"].learning_rate = float(learning_rate)
            o["network"].run(o["duration"], namespace={})
        return self._read(o)

    def _read(self, o: dict) -> tuple[np.ndarray, np.ndarray]:
        s, N = self.settings, self.samples_per_run
        n_in, n_out = s.sizes
        weights = np.asarray(o["forward"].w[:], dtype=np.float64).reshape(n_in, n_out).T.copy()
        monitor = o["output_spikes"]
        steps = np.round(np.asarray(monitor.t / s.dt)).astype(int)
        cells = np.asarray(monitor.i[:], dtype=int)
        keep = steps < N * s.time_steps  # the boundary step belongs to no sample
        counts = np.zeros((N, n_out))
        np.add.at(counts, (steps[keep] // s.time_steps, cells[keep]), 1.0)
        return weights, counts

    def brian_objects(self, weights: np.ndarray, input_spikes=None, labels=None) -> dict:
        """The Brian2 objects on the runtime device with ``weights`` and the given samples (η = 0),
        ready for monitors before ``objects["network"].run(objects["duration"])``."""
        prepare_device("runtime", precision=self.precision)
        objects = self._construct(input_spikes, labels)
        objects["forward"].w[:] = np.asarray(weights, dtype=np.float64).T.ravel()
        objects["forward"].learning_rate = 0.0
        return objects
