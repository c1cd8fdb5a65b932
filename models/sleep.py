"""BioGrad's sleep phase: noise-driven Hebbian alignment of the feedback weights.

Tang et al. (2021), arXiv 2110.14092, §3.4 (discrete form: docs/models/biograd.md). During sleep the
output of hidden layer l is replaced by zero-mean noise spikes x⁺ − x⁻ (each Bernoulli(p),
p ~ U(0, 1) drawn once per sleep) for T_s steps; the layers above respond as in the wake
phase. For each noise sample the hidden unit counts its net noise n_i = Σ_t (x⁺_i − x⁻_i) and
the error unit of output k counts the output spikes o_k; after a sleep batch of noise samples

    ΔB_ik = η_s·[Σ_batch n_i·o_k − mean_batch(o_k^P)·B_ik]

a Hebbian product of pre- (o_k, relayed by the error unit) and postsynaptic (n_i) activity,
with a decay that keeps B bounded. Because the noise is zero-mean and independent across
units, Σ n_i·o_k estimates how strongly unit i drives output k: B aligns with the forward
pathway without any weight being copied.
"""

from __future__ import annotations

import numpy as np
from brian2 import NeuronGroup, Synapses

from apical.models.eligibility import all_to_all_indices

NOISE_SOURCE_EQUATIONS = """
spike_sign : 1          # x+ - x- of this step: +1, -1 or 0
noise_count : 1         # n_i, net noise spikes in the current noise sample
"""

#: Each step: read the signed noise raster before the threshold test.
NOISE_SOURCE_STEP = """
spike_sign = noise_raster(t, i)
noise_count += spike_sign
"""

#: A signed noise spike drives the layer above with the sign of the spike.
SIGNED_FORWARD_ON_PRE = "v_post += w * spike_sign_pre"
FORWARD_ON_PRE = "v_post += w"
STATIC_FORWARD_MODEL = "w : 1  # W_ij, a replica of the wake weight, fixed during sleep"

SLEEP_ERROR_UNIT_EQUATIONS = """
output_count : 1        # o_k in the current noise sample, relayed from output unit k
activity_power : 1      # sum over the sleep batch of o_k^P
"""
#: Output unit k → its error unit: count the output spike.
OUTPUT_RELAY_ON_PRE = "output_count_post += 1"

SLEEP_FEEDBACK_MODEL = """
feedback_weight : 1     # B_ik
hebbian_sum : 1         # sum over the sleep batch of n_i * o_k
"""

#: End of each noise sample, synapse side: accumulate the Hebbian product.
SLEEP_FEEDBACK_SAMPLE_END = "hebbian_sum += noise_count_post * output_count_pre"
#: End of each noise sample, error unit side: accumulate o_k^P, then restart the count.
SLEEP_ERROR_UNIT_SAMPLE_END = """
activity_power += output_count ** decay_power
output_count = 0
"""
#: End of each noise sample, noise source side.
NOISE_SOURCE_SAMPLE_END = "noise_count = 0"
#: End of the sleep batch: ΔB = η_s·[Σ n·o − mean(o^P)·B].
SLEEP_FEEDBACK_UPDATE = """
feedback_weight += sleep_learning_rate * (hebbian_sum - activity_power_pre / sleep_batch * feedback_weight)
hebbian_sum = 0
"""
SLEEP_ERROR_UNIT_BATCH_END = "activity_power = 0"


def make_noise_source(n: int, noise_raster, dt, name: str) -> NeuronGroup:
    """Stand-in for a hidden layer's output during sleep: signed noise spikes."""
    return NeuronGroup(n, NOISE_SOURCE_EQUATIONS, threshold="abs(spike_sign) > 0.5", reset="",
                       namespace={"noise_raster": noise_raster}, dt=dt, name=name)


def make_static_pathway(pre: NeuronGroup, post: NeuronGroup, signed: bool, name: str) -> Synapses:
    pathway = Synapses(pre, post, model=STATIC_FORWARD_MODEL,
                       on_pre=SIGNED_FORWARD_ON_PRE if signed else FORWARD_ON_PRE, dt=pre.clock.dt, name=name)
    pre_index, post_index = all_to_all_indices(len(pre), len(post))
    pathway.connect(i=pre_index, j=post_index)
    return pathway


def make_sleep_error_units(n_out: int, decay_power: float, dt, name: str) -> NeuronGroup:
    return NeuronGroup(n_out, SLEEP_ERROR_UNIT_EQUATIONS, namespace={"decay_power": decay_power}, dt=dt, name=name)


def make_output_relay(output_layer: NeuronGroup, error_units: NeuronGroup, name: str) -> Synapses:
    relay = Synapses(output_layer, error_units, on_pre=OUTPUT_RELAY_ON_PRE, dt=output_layer.clock.dt, name=name)
    relay.connect(j="i")
    return relay


def make_sleep_feedback(error_units: NeuronGroup, noise_source: NeuronGroup, learning_rate: float, batch: int,
                        name: str) -> Synapses:
    """Error unit k → hidden unit i (here its noise stand-in); synapse k·n_hidden + i."""
    feedback = Synapses(error_units, noise_source, model=SLEEP_FEEDBACK_MODEL,
                        namespace={"sleep_learning_rate": learning_rate, "sleep_batch": float(batch)},
                        dt=error_units.clock.dt, name=name)
    n_out, n_hidden = len(error_units), len(noise_source)
    feedback.connect(i=np.repeat(np.arange(n_out), n_hidden), j=np.tile(np.arange(n_hidden), n_out))
    return feedback
