"""SST-like interneurons of the BioLeaF microcircuit: learn to mirror the layer above.

Yang & Li (2021), arXiv 2111.13188, reconstructed after Sacramento et al. (2018): layer l has one
interneuron per pyramidal cell of layer l+1. Interneuron k has the pyramidal soma of
models/pyramidal.py (same τ_m, θ) and no apical compartment; it is driven by the pyramidal cells
of its own layer through W_IP and learns to fire when its partner k in the layer above fires:

    v^I[t] = λ·v^I[t−1]·(1 − s^I[t−1]) + Σ_j W_IP_kj·s_j[t] + b^I_k,   s^I[t] = 1[v^I[t] > θ]
    τ_k[t] = 1 when pyramidal cell k of the layer above fired at t, b_k[t] its burst
             (the teaching synapse, a one-to-one branch of k's top-down axon)
    ΔW_IP_kj = Σ_t (η_IP·(τ_k[t] − s^I_k[t]) + η_M·b_k[t]/c)·ε^I_kj[t]      (same for b^I with ε^{I,b})

(ε^I: input since the interneuron's last spike, models/plasticity.py). The first term stops
changing once the interneuron fires exactly with its partner; with W_IP = W^{l+1} and
b^I = b^{l+1} its potential equals the partner's free potential at every step (the
self-predicting state). The second, mirror STDP, is the partner's own forward rule
(b_k/c = g_k·A_k, the partner's compartment-local gate), so at η_M = η it moves W_IP exactly as
the partner's weights move and the self-predicting state persists while the network learns.
Its spikes reach the apical compartments of its own layer through W_PI, where they cancel the
top-down copy of the same spikes (models/plasticity.py).
"""

from __future__ import annotations

from brian2 import NeuronGroup

from apical.models.pyramidal import ACTIVE_CONDITION, PyramidalParameters

INTERNEURON_EQUATIONS = """
dv/dt = -v / tau_m : 1                      # soma potential
bias : 1                                    # b^I_k
spiked : 1                                  # s^I_k[t]
trace_survival : 1                          # lambda * (1 - s^I_k[t])
bias_trace : 1                              # eps^{I,b}_k
bias_change : 1                             # Delta b^I_k over the minibatch
taught : 1                                  # tau_k[t]: the partner above fired this step
teaching_burst : 1                          # b_k[t]: the partner's burst this step (same teaching branch)
teaching_error = taught - spiked : 1        # tau_k - s^I_k, what the interneuron got wrong this step
mirror_signal = mirror_learning_rate * teaching_burst / burst_gain : 1     # eta_M * g_k * A_k of the partner
learning_signal = learning_rate * teaching_error + mirror_signal : 1      # what W_IP and b^I learn from
burst_gain : 1 (shared, constant)           # c, the partner's burst size per unit of g * A
learning_rate : 1 (shared)                  # eta_IP, learning from spike mismatches
mirror_learning_rate : 1 (shared)           # eta_M, mirror STDP (W_IP follows the partner's forward weights)
"""

#: Start of every step: no teaching spike or burst has arrived yet.
INTERNEURON_STEP_START = """
taught = 0
teaching_burst = 0
"""

#: After the threshold test.
INTERNEURON_AFTER_THRESHOLD = """
spiked = int(v > theta)
trace_survival = exp(-dt / tau_m) * (1 - spiked)
bias_trace += 1
"""

#: After the teaching spikes and bursts of the step have arrived: the bias's share of the update.
INTERNEURON_BIAS_PLASTICITY = """
bias_change += learning_signal * bias_trace
bias_trace *= trace_survival
"""

#: One-to-one teaching synapse from the partner pyramidal cell (a branch of its top-down axon,
#: so it carries the partner's spikes and its bursts).
TEACHING_ON_SPIKE = "taught_post += 1"  # one-to-one: at most one teaching spike per step
TEACHING_ON_BURST = "teaching_burst_post += burst_pre"

INTERNEURON_SAMPLE_END = """
v = 0
bias_trace = 0
spiked = 0
taught = 0
teaching_burst = 0
"""


def make_interneuron_layer(n: int, params: PyramidalParameters, batch_size: int, name: str) -> NeuronGroup:
    """``n`` interneurons, one per pyramidal cell of the layer above."""
    group = NeuronGroup(
        n,
        INTERNEURON_EQUATIONS,
        threshold="v > theta",
        reset="v = 0",
        method="exact",
        namespace={**params.namespace(), "batch_size": float(batch_size)},
        dt=params.dt,
        name=name,
    )
    group.burst_gain = params.burst_gain
    return group


# ------------------------------------------------------------------ the SC microcircuit's interneurons
# Yang & Li (2022), arXiv 2205.07292: "three types of cells" — pyramidal cells and, by the papers
# the authors cite (Tremblay et al. 2016; Pfeffer et al. 2013; Urban-Ciećko & Barth 2016), PV and
# SST interneurons (docs/models/scmicro.md). Pyramidal cells are excitatory (Dale's law), so every
# negative effect of one pyramidal cell on another is relayed by an interneuron:
#
#   PV (basket) cell, feedforward inhibition of the soma: PV cell j of layer l−1 is driven one-to-one
#       by pyramidal cell j (a strong, depressing synapse that transmits single spikes) and fires in
#       the same step; its inhibitory synapses onto the somata of layer l carry the negative forward
#       weights:  v^PV_j[t] = λ·v^PV_j[t−1]·(1 − s^PV_j[t−1]) + κ·s_j[t],  κ > θ  ⇒  s^PV_j[t] = s_j[t].
#   SST (Martinotti) cell, inhibition of apical dendrites: SST cell k of layer l+1 receives the bursts
#       of pyramidal cell k one-to-one (a facilitating synapse, which passes bursts and not single
#       spikes; Silberberg & Markram 2007, Payeur et al. 2021) and relays them, sign reversed by its
#       GABAergic synapses, to the apical compartments of layer l:  r^SST_k[t] = b_k[t].

#: PV relay: the pyramidal soma without apical compartment; ``relay_drive`` κ > θ makes it fire
#: on exactly the steps its pyramidal partner fires.
PV_EQUATIONS = """
dv/dt = -v / tau_m : 1                      # soma potential
spike_count : 1                             # spikes in the current sample (its ``active`` event)
"""
PV_AFTER_THRESHOLD = "spike_count += int(v > theta)"
PV_SAMPLE_END = """
v = 0
spike_count = 0
"""
#: One-to-one drive from the partner pyramidal cell (or input afferent).
PV_DRIVE_ON_SPIKE = "v_post += relay_drive"

#: SST relay of bursts: ``relayed`` holds the burst of its partner in this step (0 without one).
SST_EQUATIONS = """
relayed : 1                                 # r^SST_k[t] = b_k[t], the partner's burst of this step
"""
SST_STEP_START = "relayed = 0"
SST_BURST_CONDITION = "relayed != 0"
#: One-to-one facilitating synapse from the partner pyramidal cell: only its bursts pass.
SST_DRIVE_ON_BURST = "relayed_post += burst_pre"  # one-to-one: at most one burst per step


def make_pv_layer(n: int, params: PyramidalParameters, name: str) -> NeuronGroup:
    """``n`` PV basket cells, one per pyramidal cell (or afferent) they relay."""
    return NeuronGroup(n, PV_EQUATIONS, threshold="v > theta", reset="v = 0", events={"active": ACTIVE_CONDITION},
                       method="exact", namespace={"tau_m": params.tau_m, "theta": params.theta},
                       dt=params.dt, name=name)


def make_sst_layer(n: int, params: PyramidalParameters, name: str) -> NeuronGroup:
    """``n`` SST cells, one per pyramidal cell whose bursts they relay to the layer below."""
    return NeuronGroup(n, SST_EQUATIONS, events={"burst": SST_BURST_CONDITION}, dt=params.dt, name=name)
