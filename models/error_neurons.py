"""Error neurons and direct feedback of BioGrad.

Tang et al. (2021), arXiv 2110.14092, §3.3 (discrete form: docs/models/biograd.md). For every output
unit k there is one "+" and one "−" error neuron: non-leaky integrators with threshold 1
and subtractive reset, driven from step t0 on by the output error

    e_k[t] = softmax(C[t])_k − y_k        C = output spike counts so far, y = one-hot label
    u⁺_k ← u⁺_k + e_k,   u⁻_k ← u⁻_k − e_k,   spike when u > 1, then u ← u − 1

so the "+" neuron fires at a rate ∝ max(e, 0) and the "−" neuron at ∝ max(−e, 0). The
softmax is a divisive normalisation: each error neuron receives exp(C_j) from every output
unit (``partition``) and exp(C_k) from its own unit (``own_drive``) through analog couplings.

Their spikes reach the apical compartments:

    output unit k:    a_k += s⁺_k − s⁻_k                         (one-to-one, weight ±1)
    hidden unit i:    a_i += Σ_k B_ik·(s⁺_k − s⁻_k)              (direct feedback, weights B)

The "+" and "−" neuron of a unit carry the same feedback weight B_ik with opposite effect
(declared as ``error_sign``), so the apical compartment sees B·(s⁺ − s⁻).
"""

from __future__ import annotations

import numpy as np
from brian2 import NeuronGroup, Synapses

ERROR_NEURON_EQUATIONS = """
u : 1                                   # integrated error (no leak)
error_sign : 1 (constant)                  # +1 for the "+" population, -1 for the "-" population
unit : integer (constant)               # output unit k this neuron reports on
target = target_raster(t, unit) : 1     # y_k of the current sample
own_drive : 1                           # exp(C_k), analog input from its own output unit
partition : 1                           # sum_j exp(C_j), analog input from all output units
output_error = own_drive / partition - target : 1   # e_k[t] = softmax(C)_k - y_k
error_active = int(t_in_timesteps % sample_steps >= error_start) : 1   # 1 from step t0 on
"""

#: Every step, after the output layer has fired: integrate ±e (only from t0 on).
ERROR_NEURON_STEP = "u += error_sign * output_error * error_active"

#: Sample boundary: error neurons start each sample at rest.
ERROR_NEURON_SAMPLE_END = "u = 0"

#: Analog couplings output → error neurons (all-to-all, summed every step).
SOFTMAX_COUPLING_MODEL = """
partition_post = exp(spike_count_pre) : 1 (summed)
own_drive_post = exp(spike_count_pre) * int(i == unit_post) : 1 (summed)
"""

#: Error neuron → output unit: a_k += ±1.
OUTPUT_FEEDBACK_ON_PRE = "apical_post += error_sign_pre"

FEEDBACK_MODEL = """
feedback_weight : 1      # B_ik, direct feedback from output unit k's error neurons
"""

#: Error neuron → hidden unit: a_i += ±B_ik.
HIDDEN_FEEDBACK_ON_PRE = "apical_post += error_sign_pre * feedback_weight"


def make_error_population(n_out: int, time_steps: int, error_start: int, dt, target_raster, name: str) -> NeuronGroup:
    """2·n_out error neurons: indices 0..n_out−1 are "+", n_out..2·n_out−1 are "−"."""
    population = NeuronGroup(
        2 * n_out,
        ERROR_NEURON_EQUATIONS,
        threshold="u > 1",
        reset="u -= 1",
        namespace={
            "target_raster": target_raster,
            "sample_steps": int(time_steps),
            "error_start": int(error_start),
        },
        dt=dt,
        name=name,
    )
    population.error_sign = np.repeat([1.0, -1.0], n_out)
    population.unit = np.tile(np.arange(n_out), 2)
    return population


def make_softmax_coupling(output_layer: NeuronGroup, error_population: NeuronGroup, name: str) -> Synapses:
    coupling = Synapses(output_layer, error_population, model=SOFTMAX_COUPLING_MODEL, dt=output_layer.clock.dt, name=name)
    coupling.connect()
    return coupling


def make_output_feedback(error_population: NeuronGroup, output_layer: NeuronGroup, name: str) -> Synapses:
    feedback = Synapses(error_population, output_layer, on_pre=OUTPUT_FEEDBACK_ON_PRE, dt=error_population.clock.dt, name=name)
    n_out = len(output_layer)
    feedback.connect(i=np.arange(2 * n_out), j=np.tile(np.arange(n_out), 2))
    return feedback


def make_hidden_feedback(error_population: NeuronGroup, hidden_layer: NeuronGroup, name: str) -> Synapses:
    """Dense error → hidden projection; synapse k = e·n_hidden + i (error-neuron-major)."""
    feedback = Synapses(
        error_population, hidden_layer, model=FEEDBACK_MODEL, on_pre=HIDDEN_FEEDBACK_ON_PRE,
        dt=error_population.clock.dt, name=name,
    )
    n_error, n_hidden = len(error_population), len(hidden_layer)
    feedback.connect(i=np.repeat(np.arange(n_error), n_hidden), j=np.tile(np.arange(n_hidden), n_error))
    return feedback


def feedback_to_synapses(feedback_matrix: np.ndarray) -> np.ndarray:
    """B (n_hidden × n_out) → synapse values for the "+" and then the "−" neurons."""
    per_error_neuron = np.asarray(feedback_matrix, dtype=np.float64).T  # [n_out, n_hidden]
    return np.concatenate([per_error_neuron, per_error_neuron]).ravel()


def synapses_to_feedback(values: np.ndarray, n_out: int, n_hidden: int) -> np.ndarray:
    """B from the "+" neurons' synapses (the "−" copies are equal by construction)."""
    return np.asarray(values)[: n_out * n_hidden].reshape(n_out, n_hidden).T.copy()
