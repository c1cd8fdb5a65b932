"""The four synapse types of the BioLeaF microcircuit and their plasticity.

Yang & Li (2021), arXiv 2111.13188: "a local microcircuit of two cell types and four synapse
types"; "STDP operating in local compartments updates the weights". Reconstructed (see
docs/models/bioleaf.md) as the synapses of the dendritic cortical microcircuit (Sacramento et
al. 2018), spiking, all learning by one kind of rule — a trace of one cell's spikes times a
compartment-local signal of the other cell:

1. forward W_PP, pyramidal l−1 → soma of pyramidal l (basal input). Each synapse keeps the
   presynaptic input since the postsynaptic cell's last spike,
       ε_ij[t] = λ·(1 − s_i[t−1])·ε_ij[t−1] + s_j[t]      (so that v_i = Σ_j W_ij·ε_ij + b_i·ε^b_i),
   and learns from the postsynaptic cell's learning signal η·g_i·A_i:
       ΔW_ij = η·Σ_t g_i[t]·A_i[t]·ε_ij[t],
   a pre-before-post rule (a postsynaptic spike clears the trace) whose sign and size the apical
   compartment sets, on steps where the soma is depolarised into the window g.
2. top-down B, pyramidal l+1 → apical of pyramidal l. It carries the upper cell's spikes
   (A_i += B_ik) and its bursts (A_i += B_ik·b_k): events and bursts multiplexed on one axon
   (Payeur et al. 2021). Its one-to-one branch onto the interneuron that mirrors the upper cell
   is that interneuron's teaching input (models/interneurons.py).
3. W_IP, pyramidal l → interneuron l: the forward rule with the interneuron's learning signal
   η_IP·(τ_k − s^I_k) + η_M·b_k/c (models/interneurons.py).
4. W_PI, interneuron l → apical of pyramidal l: A_i += W_PI_ik on an interneuron spike, and, on
   steps without a target error, ΔW_PI_ik = −η_PI·A_i[t]·s^I_k[t]: the interneurons learn to cancel
   the apical input they can predict (Sacramento's ΔW_PI ∝ (v_rest − v_A)·r^I).

Mirror STDP (types 2 and 4, rate η_M): a synapse from cell k onto cell i keeps the spikes of i
since k last fired, ε_ki, and moves by the mirror signal of k: ΔB_ik = η_M·Σ_t g_k·A_k·ε_ki, and
ΔW_PI_ik = −η_M·Σ_t (b_k/c)·ε_ki with b_k the partner's burst relayed to the interneuron. This is
the forward rule of W_ki computed from the top-down side (the local mirror of Kolen & Pollack 1994
and Akrout et al. 2019): at η_M = η, ΔB = ΔWᵀ and ΔW_PI = −ΔWᵀ, so a network that starts in the
special circumstance (B = Wᵀ, W_PI = −B, W_IP = W) stays in it while it learns.

Every rule reads only the synapse's own variables and its two cells. The per-step parts run
only for synapses whose trace can be nonzero: those of a cell that has spiked in the sample
(its ``active`` event, as BioGrad's traces in models/eligibility.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import NeuronGroup, Synapses

from apical.models.eligibility import FORWARD_MINIBATCH_END, FORWARD_ON_PRE, all_to_all_indices
from apical.models.interneurons import TEACHING_ON_BURST, TEACHING_ON_SPIKE

# ------------------------------------------------------------------ forward STDP (W_PP, W_IP)
FORWARD_STDP_MODEL = """
w : 1                     # W_ij
eligibility_trace : 1     # eps_ij: presynaptic input since the postsynaptic cell's last spike
weight_change : 1         # sum over the minibatch of Delta W_ij
"""

#: A presynaptic spike drives the soma and enters the trace in the same step (as BioGrad's).
FORWARD_STDP_ON_PRE = FORWARD_ON_PRE

#: Every step, once the postsynaptic cell's learning signal is complete (synapses of active
#: presynaptic cells only): ΔW += signal·ε, then the trace decays or a spike clears it.
FORWARD_STDP_STEP = """
weight_change += learning_signal_post * eligibility_trace
eligibility_trace *= trace_survival_post
"""

#: Sample boundary: traces restart at 0 (forward and mirror traces alike).
TRACE_SAMPLE_END = "eligibility_trace = 0"

#: Minibatch boundary: the mean weight change is applied (W_PP, W_IP and W_PI).
PLASTIC_MINIBATCH_END = FORWARD_MINIBATCH_END

# ------------------------------------------------------------------ mirror STDP (B, W_PI)
#: The postsynaptic cell's spike enters the trace (it is the input of the mirrored synapse).
MIRROR_ON_POST_SPIKE = "eligibility_trace += 1"
#: Every step for synapses onto active cells: Δ += ±η_M·(presynaptic gate)·ε, then the trace
#: decays or the presynaptic cell's spike clears it.
MIRROR_STEP = """
weight_change += mirror_sign * mirror_signal_pre * eligibility_trace
eligibility_trace *= trace_survival_pre
"""

# ------------------------------------------------------------------ top-down (B)
TOP_DOWN_MODEL = """
feedback_weight : 1       # B_ik, from pyramidal cell k of the layer above to the apical of cell i
eligibility_trace : 1     # eps_ki: spikes of the lower cell i since the upper cell k last fired
weight_change : 1         # sum over the minibatch of Delta B_ik
"""
TOP_DOWN_ON_SPIKE = "apical_post += feedback_weight"
TOP_DOWN_ON_BURST = "apical_post += feedback_weight * burst_pre"
TOP_DOWN_MINIBATCH_END = """
feedback_weight += weight_change / batch_size
weight_change = 0
"""

# ------------------------------------------------------------------ interneuron → apical (W_PI)
INTERNEURON_APICAL_MODEL = """
w : 1                     # W_PI_ik
eligibility_trace : 1     # spikes of pyramidal cell i since interneuron k last fired
weight_change : 1         # sum over the minibatch of Delta W_PI_ik
"""
INTERNEURON_APICAL_ON_SPIKE = "apical_post += w"
#: Read once the apical compartment is complete; learns only on steps without a target error.
INTERNEURON_APICAL_LEARN = (
    "weight_change += -apical_learning_rate_post * (1 - teaching_post * error_window_post) * apical_post"
)


@dataclass(frozen=True)
class ForwardPlasticityEquations:
    """BioLeaF's forward STDP of the synapses onto pyramidal cells (W_PP) as Brian2 code, part by
    part; the defaults are the published rule (docs/models/bioleaf.md)."""

    synapse: str = FORWARD_STDP_MODEL  # W, ε, ΔW
    on_pre: str = FORWARD_STDP_ON_PRE  # v_post += w, ε += 1
    step: str = FORWARD_STDP_STEP  # ΔW += η·g·A·ε, ε ← λ(1 − s)·ε
    sample_end: str = TRACE_SAMPLE_END  # ε = 0
    minibatch_end: str = PLASTIC_MINIBATCH_END  # W += ΔW / M


def _dense(synapses: Synapses, n_pre: int, n_post: int) -> Synapses:
    pre_index, post_index = all_to_all_indices(n_pre, n_post)
    synapses.connect(i=pre_index, j=post_index)
    return synapses


def make_forward_stdp(pre: NeuronGroup, post: NeuronGroup, batch_size: int, name: str,
                      equations: ForwardPlasticityEquations = ForwardPlasticityEquations()) -> Synapses:
    """Dense plastic ``pre → post`` (W_PP onto pyramidal cells, W_IP onto interneurons)."""
    synapses = Synapses(
        pre, post, model=equations.synapse,
        on_pre={"pre": equations.on_pre, "plasticity": equations.step},
        on_event={"pre": "spike", "plasticity": "active"},
        namespace={"batch_size": float(batch_size)},
        dt=pre.clock.dt, name=name,
    )
    return _dense(synapses, len(pre), len(post))


def _mirror_pathways(on_pre: dict, on_pre_events: dict) -> dict:
    return {
        "on_pre": on_pre,
        "on_post": {"post_spike": MIRROR_ON_POST_SPIKE, "mirror": MIRROR_STEP},
        "on_event": {**on_pre_events, "post_spike": "spike", "mirror": "active"},
    }


def make_top_down(upper: NeuronGroup, lower: NeuronGroup, batch_size: int, name: str) -> Synapses:
    """Dense B from ``upper`` pyramidal cells onto the apical compartments of ``lower``."""
    synapses = Synapses(
        upper, lower, model=TOP_DOWN_MODEL,
        **_mirror_pathways({"spikes": TOP_DOWN_ON_SPIKE, "bursts": TOP_DOWN_ON_BURST},
                           {"spikes": "spike", "bursts": "burst"}),
        namespace={"batch_size": float(batch_size), "mirror_sign": 1.0},
        dt=upper.clock.dt, name=name,
    )
    return _dense(synapses, len(upper), len(lower))


def make_teaching(upper: NeuronGroup, interneurons: NeuronGroup, name: str) -> Synapses:
    """One-to-one branch of the top-down axon: upper cell k → interneuron k, spikes and bursts."""
    synapses = Synapses(upper, interneurons, on_pre={"spikes": TEACHING_ON_SPIKE, "bursts": TEACHING_ON_BURST},
                        on_event={"spikes": "spike", "bursts": "burst"}, dt=upper.clock.dt, name=name)
    synapses.connect(j="i")
    return synapses


def make_interneuron_apical(interneurons: NeuronGroup, pyramidal: NeuronGroup, batch_size: int,
                            name: str) -> Synapses:
    """Dense plastic W_PI from a layer's interneurons onto its pyramidal cells' apical compartments."""
    synapses = Synapses(
        interneurons, pyramidal, model=INTERNEURON_APICAL_MODEL,
        **_mirror_pathways({"spikes": INTERNEURON_APICAL_ON_SPIKE, "learn": INTERNEURON_APICAL_LEARN},
                           {"spikes": "spike", "learn": "spike"}),
        namespace={"batch_size": float(batch_size), "mirror_sign": -1.0},
        dt=interneurons.clock.dt, name=name,
    )
    return _dense(synapses, len(interneurons), len(pyramidal))


# ------------------------------------------------------------------ the SC microcircuit's two connectivity types
# Yang & Li (2022), arXiv 2205.07292: "two types of synaptic connectivity", Hebbian rules "in local
# compartments" (docs/models/scmicro.md). Every connection from pyramidal cell j to pyramidal cell i
# of the layer above is one of two types, fixed for the life of the network (Dale's law):
#
#   direct (excitatory)   feedforward  j → soma of i,            v_i += W⁺_ij ≥ 0
#                         feedback     i → apical of j (bursts),  A_j += R_ji·b_i,   R_ji ≥ 0
#   relayed (inhibitory)  feedforward  j → PV_j → soma of i,      v_i −= W⁻_ij ≥ 0
#                         feedback     i → SST_i → apical of j,   A_j −= R_ji·b_i
#
# so W_ij = W⁺_ij − W⁻_ij and the effective feedback B_ji = ±R_ji has the sign of W_ij: the
# feedback reuses the cell-type path of the connection it belongs to.
#
# Hebbian plasticity in the soma/basal compartment, read from the postsynaptic cell's window and
# apical potential (the learning signal η·g_i·A_i) and the synapse's presynaptic trace ε_ij (input
# since i last fired, the same trace as BioLeaF's, and the PV relay's spikes are its partner's):
#       excitatory  ΔW⁺_ij = +η·Σ_t g_i·A_i·ε_ij        inhibitory  ΔW⁻_ij = −η·Σ_t g_i·A_i·ε_ij
# (an inhibitory synapse onto a cell that should fire more weakens), so W = W⁺ − W⁻ moves by
# η·Σ_t g_i·A_i·ε_ij whichever its type. Both magnitudes are bounded below by zero: a synapse that
# learning pushes past zero stays silent at zero (it never changes sign) until Hebbian
# potentiation revives it. The feedback magnitudes R are fixed.

#: Inhibitory (PV → soma) forward synapse: the magnitude subtracts, and learns with the opposite sign.
INHIBITORY_STDP_ON_PRE = """
v_post -= w
eligibility_trace += 1
"""
INHIBITORY_STDP_STEP = """
weight_change -= learning_signal_post * eligibility_trace
eligibility_trace *= trace_survival_post
"""
#: Minibatch boundary of both types: the mean change is applied, the magnitude bounded at zero.
SIGN_CONSTRAINED_MINIBATCH_END = """
w = clip(w + weight_change / batch_size, 0, inf)
weight_change = 0
"""


@dataclass(frozen=True)
class SignConstrainedPlasticityEquations:
    """The SC microcircuit's forward plasticity of both synapse types as Brian2 code, part by part;
    the defaults are the published rule (docs/models/scmicro.md)."""

    synapse: str = FORWARD_STDP_MODEL  # magnitude w ≥ 0, ε, ΔW
    excitatory_on_pre: str = FORWARD_STDP_ON_PRE  # pyramidal → soma: v_post += w, ε += 1
    excitatory_step: str = FORWARD_STDP_STEP  # ΔW⁺ += η·g·A·ε
    inhibitory_on_pre: str = INHIBITORY_STDP_ON_PRE  # PV → soma: v_post −= w, ε += 1
    inhibitory_step: str = INHIBITORY_STDP_STEP  # ΔW⁻ −= η·g·A·ε
    sample_end: str = TRACE_SAMPLE_END  # ε = 0
    minibatch_end: str = SIGN_CONSTRAINED_MINIBATCH_END  # w ← max(0, w + ΔW / M)

#: Feedback onto apical compartments: bursts only (facilitating synapses), fixed magnitudes R ≥ 0.
BURST_FEEDBACK_MODEL = "feedback_weight : 1 (constant)   # R_ji >= 0, fixed random magnitude"
EXCITATORY_FEEDBACK_ON_BURST = "apical_post += feedback_weight * burst_pre"
INHIBITORY_FEEDBACK_ON_BURST = "apical_post -= feedback_weight * relayed_pre"


def _connect(synapses: Synapses, pre_index, post_index) -> Synapses:
    synapses.connect(i=np.asarray(pre_index, dtype=np.int32), j=np.asarray(post_index, dtype=np.int32))
    return synapses


def make_sign_constrained_forward(pre: NeuronGroup, post: NeuronGroup, pre_index, post_index, inhibitory: bool,
                                  batch_size: int, name: str,
                                  equations: SignConstrainedPlasticityEquations = SignConstrainedPlasticityEquations(),
                                  ) -> Synapses:
    """The forward synapses of one type: from pyramidal cells (direct, excitatory) or from their PV
    relays (``inhibitory``) onto the somata of ``post``, only for the pairs given."""
    synapses = Synapses(
        pre, post, model=equations.synapse,
        on_pre={"pre": equations.inhibitory_on_pre if inhibitory else equations.excitatory_on_pre,
                "plasticity": equations.inhibitory_step if inhibitory else equations.excitatory_step},
        on_event={"pre": "spike", "plasticity": "active"},
        namespace={"batch_size": float(batch_size)},
        dt=pre.clock.dt, name=name,
    )
    return _connect(synapses, pre_index, post_index)


def make_burst_feedback(sender: NeuronGroup, lower: NeuronGroup, pre_index, post_index, inhibitory: bool,
                        name: str) -> Synapses:
    """Feedback of one type onto the apical compartments of ``lower``: from pyramidal cells
    (direct, excitatory) or from the SST cells relaying their bursts (``inhibitory``)."""
    synapses = Synapses(sender, lower, model=BURST_FEEDBACK_MODEL,
                        on_pre={"bursts": INHIBITORY_FEEDBACK_ON_BURST if inhibitory else EXCITATORY_FEEDBACK_ON_BURST},
                        on_event={"bursts": "burst"}, dt=sender.clock.dt, name=name)
    return _connect(synapses, pre_index, post_index)


def make_relay(partner: NeuronGroup, relay: NeuronGroup, on_pre: str, event: str, relay_drive: float, name: str):
    """One-to-one synapse from each pyramidal cell (or afferent) to its own interneuron."""
    synapses = Synapses(partner, relay, on_pre={"relay": on_pre}, on_event={"relay": event},
                        namespace={"relay_drive": relay_drive}, dt=partner.clock.dt, name=name)
    synapses.connect(j="i")
    return synapses
