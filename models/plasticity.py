"""The four synapse types of the BioLeaF microcircuit and their plasticity.

Yang & Li (2021), arXiv 2111.13188: "a local microcircuit of two cell types and four synapse
types"; "STDP operating in local compartments updates the weights". Reconstructed (see
docs/models/bioleaf.md) as the synapses of the dendritic cortical microcircuit (Sacramento et
al. 2018), spiking:

1. forward W_PP, pyramidal l−1 → basal/soma of pyramidal l, plastic. Each synapse keeps the
   presynaptic input since the postsynaptic cell's last spike,
       ε_ij[t] = λ·(1 − s_i[t−1])·ε_ij[t−1] + s_j[t]      (so that v_i = Σ_j W_ij·ε_ij + b_i·ε^b_i),
   and potentiates or depresses by the postsynaptic cell's compartment-local gate,
       ΔW_ij = η·Σ_t g_i[t]·A_i[t]·ε_ij[t]:
   a pre-before-post rule (the trace is cleared by a postsynaptic spike) whose sign and size the
   apical compartment sets, on steps where the soma is depolarised into the window g.
2. top-down B, pyramidal l+1 → apical of pyramidal l, fixed. It carries the upper cell's
   spikes (A_i += B_ik) and its bursts (A_i += B_ik·b_k): events and bursts multiplexed on one
   axon (Payeur et al. 2021). Its one-to-one branch onto the interneuron that mirrors the upper
   cell is the interneuron's teaching input (models/interneurons.py).
3. W_IP, pyramidal l → interneuron l, plastic (models/interneurons.py):
       ΔW_IP_kj = η_IP·Σ_t (τ_k[t] − s^I_k[t])·ε^I_kj[t].
4. W_PI, interneuron l → apical of pyramidal l, plastic: A_i += W_PI_ik on an interneuron spike,
   and, on steps without a target error, ΔW_PI_ik = −η_PI·A_i[t]·s^I_k[t]: the interneurons learn
   to cancel the apical input they can predict (Sacramento's ΔW_PI ∝ (v_rest − v_A)·r^I).

Every rule reads only the synapse's own variables and its two cells. The forward traces run
as BioGrad's do (models/eligibility.py): a jump on each presynaptic spike, and a per-step
update only for synapses whose presynaptic cell has spiked in the sample (its ``active``
event); every other trace is exactly 0. The W_IP traces are event-driven equations, touched
only on presynaptic spikes and on the interneuron's own events.
"""

from __future__ import annotations

from brian2 import NeuronGroup, Synapses

from models.eligibility import FORWARD_MINIBATCH_END, all_to_all_indices
from models.interneurons import TEACHING_ON_PRE

# ------------------------------------------------------------------ 1. forward (basal) STDP
FORWARD_STDP_MODEL = """
w : 1                     # W_ij
eligibility_trace : 1     # eps_ij: presynaptic input since the postsynaptic cell's last spike
weight_change : 1         # sum over the minibatch of Delta W_ij
"""

#: A presynaptic spike drives the soma and enters the trace in the same step.
FORWARD_STDP_ON_PRE = """
v_post += w
eligibility_trace += 1
"""

#: Every step, once the postsynaptic apical compartment is complete (synapses of active
#: presynaptic cells only): ΔW += η·g·A·ε, then the trace decays or is cleared by a spike.
FORWARD_STDP_STEP = """
weight_change += learning_rate_post * plasticity_gate_post * eligibility_trace
eligibility_trace *= trace_survival_post
"""

#: Sample boundary: traces restart at 0.
FORWARD_STDP_SAMPLE_END = "eligibility_trace = 0"

#: Minibatch boundary: the mean weight change is applied (W_PP, W_IP and W_PI alike).
PLASTIC_MINIBATCH_END = FORWARD_MINIBATCH_END

# ------------------------------------------------------------------ 2. top-down
TOP_DOWN_MODEL = """
feedback_weight : 1       # B_ik, from pyramidal cell k of the layer above to the apical of cell i
"""
TOP_DOWN_ON_SPIKE = "apical_post += feedback_weight"
TOP_DOWN_ON_BURST = "apical_post += feedback_weight * burst_pre"

# ------------------------------------------------------------------ 3. pyramidal → interneuron
INTERNEURON_INPUT_MODEL = """
w : 1                     # W_IP_kj
deligibility_trace/dt = -eligibility_trace / tau_m : 1 (event-driven)   # eps^I_kj, cleared by an interneuron spike
weight_change : 1         # sum over the minibatch of Delta W_IP_kj
"""
INTERNEURON_INPUT_ON_PRE = """
v_post += w
eligibility_trace += 1
"""
#: On a step where the interneuron and its partner above disagree: Δ = η_IP·(τ − s^I)·ε^I.
INTERNEURON_INPUT_ON_MISMATCH = "weight_change += learning_rate_post * teaching_error_post * eligibility_trace"
#: An interneuron spike resets its soma, so its input trace starts again from 0.
INTERNEURON_INPUT_ON_SPIKE = "eligibility_trace = 0"

# ------------------------------------------------------------------ 4. interneuron → apical
INTERNEURON_APICAL_MODEL = """
w : 1                     # W_PI_ik
weight_change : 1         # sum over the minibatch of Delta W_PI_ik
"""
INTERNEURON_APICAL_ON_SPIKE = "apical_post += w"
#: Read once the apical compartment is complete; learns only on steps without a target error.
INTERNEURON_APICAL_LEARN = (
    "weight_change += -apical_learning_rate_post * (1 - teaching_post * error_window_post) * apical_post"
)


def _dense(synapses: Synapses, n_pre: int, n_post: int) -> Synapses:
    pre_index, post_index = all_to_all_indices(n_pre, n_post)
    synapses.connect(i=pre_index, j=post_index)
    return synapses


def make_forward_stdp(pre: NeuronGroup, post: NeuronGroup, batch_size: int, name: str) -> Synapses:
    """Dense plastic W_PP ``pre → post`` (weights set later), presynaptic-major order."""
    synapses = Synapses(
        pre, post, model=FORWARD_STDP_MODEL,
        on_pre={"pre": FORWARD_STDP_ON_PRE, "plasticity": FORWARD_STDP_STEP},
        on_event={"pre": "spike", "plasticity": "active"},
        namespace={"batch_size": float(batch_size)},
        dt=pre.clock.dt, name=name,
    )
    return _dense(synapses, len(pre), len(post))


def make_top_down(upper: NeuronGroup, lower: NeuronGroup, name: str) -> Synapses:
    """Dense B from ``upper`` pyramidal cells onto the apical compartments of ``lower``."""
    synapses = Synapses(
        upper, lower, model=TOP_DOWN_MODEL,
        on_pre={"spikes": TOP_DOWN_ON_SPIKE, "bursts": TOP_DOWN_ON_BURST},
        on_event={"spikes": "spike", "bursts": "burst"},
        dt=upper.clock.dt, name=name,
    )
    return _dense(synapses, len(upper), len(lower))


def make_teaching(upper: NeuronGroup, interneurons: NeuronGroup, name: str) -> Synapses:
    """One-to-one branch of the top-down axon: upper cell k → interneuron k."""
    synapses = Synapses(upper, interneurons, on_pre=TEACHING_ON_PRE, dt=upper.clock.dt, name=name)
    synapses.connect(j="i")
    return synapses


def make_interneuron_input(pyramidal: NeuronGroup, interneurons: NeuronGroup, tau_m, batch_size: int,
                           name: str) -> Synapses:
    """Dense plastic W_IP from a layer's pyramidal cells to its interneurons."""
    synapses = Synapses(
        pyramidal, interneurons, model=INTERNEURON_INPUT_MODEL,
        on_pre=INTERNEURON_INPUT_ON_PRE,
        on_post={"mismatch": INTERNEURON_INPUT_ON_MISMATCH, "clear": INTERNEURON_INPUT_ON_SPIKE},
        on_event={"pre": "spike", "mismatch": "mismatch", "clear": "spike"},
        namespace={"tau_m": tau_m, "batch_size": float(batch_size)},
        dt=pyramidal.clock.dt, name=name,
    )
    return _dense(synapses, len(pyramidal), len(interneurons))


def make_interneuron_apical(interneurons: NeuronGroup, pyramidal: NeuronGroup, batch_size: int,
                            name: str) -> Synapses:
    """Dense plastic W_PI from a layer's interneurons onto its pyramidal cells' apical compartments."""
    synapses = Synapses(
        interneurons, pyramidal, model=INTERNEURON_APICAL_MODEL,
        on_pre={"spikes": INTERNEURON_APICAL_ON_SPIKE, "learn": INTERNEURON_APICAL_LEARN},
        on_event={"spikes": "spike", "learn": "spike"},
        namespace={"batch_size": float(batch_size)},
        dt=interneurons.clock.dt, name=name,
    )
    return _dense(synapses, len(interneurons), len(pyramidal))
