"""Forward synapses with BioGrad's per-synapse eligibility trace.

Tang et al. (2021), arXiv 2110.14092, eligibility of §3.2 (discrete form: docs/models/biograd.md).
Each synapse j → i keeps two numbers besides its weight W_ij:

    ε_ij[t] = λ·ρ_i[t-1]·ε_ij[t-1] + s_j[t]       eligibility trace
    E_ij   += g_i[t]·ε_ij[t]                     eligibility: the neuron's own forward-in-time
                                                 surrogate of ∂(spike count_i)/∂W_ij

λ·ρ_i and g_i are computed by the postsynaptic soma (``trace_survival``,
``pseudo_derivative``); s_j enters event-driven, as a jump of ε on each presynaptic spike.
At the end of a sample the synapse folds its eligibility into the minibatch's weight change
with the postsynaptic apical error δ_i, ΔW_ij = −η·δ_i·E_ij; at the end of a minibatch of M
samples the weight moves by the mean change. Every quantity used is the synapse's own, its
presynaptic spike, or its postsynaptic neuron's state: the rule is local.

The per-step trace update runs as a second synaptic pathway, triggered by the presynaptic
neuron's ``active`` event (it has spiked at least once in the current sample); a synapse whose
presynaptic neuron has been silent holds ε = E = 0 and needs no work. On MNIST about 18 % of
the input pixels ever spike in a sample. The sample-end fold and the minibatch-end weight
update are pathways of the same kind, on the presynaptic group's ``sample_end`` and
``minibatch_end`` events (models/soma.py, ``boundary_events``), for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import NeuronGroup, Synapses

FORWARD_SYNAPSE_MODEL = """
w : 1                     # W_ij, forward weight
eligibility_trace : 1     # lambda * rho_i * eps_ij carried from the last step (eps_ij - s_j)
eligibility : 1           # E_ij
weight_change : 1         # sum over the minibatch of Delta W_ij
"""

#: A presynaptic spike drives the soma and enters the trace in the same step.
FORWARD_ON_PRE = """
v_post += w
eligibility_trace += 1
"""

#: Every step, after all layers have fired: E += g·ε, then carry λρ·ε to the next step.
#: Run only for synapses whose presynaptic neuron is *active* (has spiked in this sample):
#: every other trace is exactly 0 and would stay 0, so skipping it changes no number.
FORWARD_TRACE_STEP = """
eligibility += pseudo_derivative_post * eligibility_trace
eligibility_trace *= trace_survival_post
"""

#: At each sample boundary: ΔW_ij = −η·δ_i·E_ij into the minibatch sum; traces restart at 0.
#: Run only for synapses whose presynaptic neuron spiked in the sample (``sample_end`` event).
FORWARD_SAMPLE_END = """
weight_change += -learning_rate_post * apical_error_post * eligibility
eligibility = 0
eligibility_trace = 0
"""

#: At each minibatch boundary: apply the mean weight change. Run only for synapses whose
#: presynaptic neuron spiked in the minibatch (``minibatch_end`` event): all others have ΔW = 0.
FORWARD_MINIBATCH_END = """
w += weight_change / batch_size
weight_change = 0
"""


@dataclass(frozen=True)
class EligibilityEquations:
    """The plasticity rule of a forward synapse as Brian2 code, part by part; the defaults are
    the published rule (a variant is ``replace(EligibilityEquations(), trace_step=...)``)."""

    synapse: str = FORWARD_SYNAPSE_MODEL  # w, ε, E, ΔW
    on_pre: str = FORWARD_ON_PRE  # presynaptic spike: v_post += w, ε += 1
    trace_step: str = FORWARD_TRACE_STEP  # every active step: E += g·ε, ε ← λρ·ε
    sample_end: str = FORWARD_SAMPLE_END  # ΔW += −η·δ·E
    minibatch_end: str = FORWARD_MINIBATCH_END  # W += ΔW / M


def all_to_all_indices(n_pre: int, n_post: int) -> tuple[np.ndarray, np.ndarray]:
    """Presynaptic and postsynaptic indices of a dense projection, presynaptic-major.

    Synapse k = j·n_post + i connects j → i, so a (post × pre) matrix W maps to the synapse
    array as ``W.T.ravel()``.
    """
    pre = np.repeat(np.arange(n_pre), n_post)
    post = np.tile(np.arange(n_post), n_pre)
    return pre, post


def make_forward_pathway(
    pre: NeuronGroup, post: NeuronGroup, batch_size: int, name: str,
    equations: EligibilityEquations = EligibilityEquations(),
) -> Synapses:
    """Dense plastic projection ``pre → post`` with eligibility traces (weights set later).

    ``pre`` must emit the events of ``models.soma.boundary_events``."""
    synapses = Synapses(
        pre,
        post,
        model=equations.synapse,
        on_pre={"pre": equations.on_pre, "trace": equations.trace_step, "fold": equations.sample_end,
                "apply": equations.minibatch_end},
        on_event={"pre": "spike", "trace": "active", "fold": "sample_end", "apply": "minibatch_end"},
        namespace={"batch_size": float(batch_size)},
        dt=pre.clock.dt,
        name=name,
    )
    pre_index, post_index = all_to_all_indices(len(pre), len(post))
    synapses.connect(i=pre_index, j=post_index)
    return synapses


def matrix_to_synapses(matrix: np.ndarray) -> np.ndarray:
    """(post × pre) matrix → values in the synapse order of :func:`all_to_all_indices`."""
    return np.ascontiguousarray(np.asarray(matrix, dtype=np.float64).T).ravel()


def synapses_to_matrix(values: np.ndarray, n_pre: int, n_post: int) -> np.ndarray:
    """Inverse of :func:`matrix_to_synapses`."""
    return np.asarray(values).reshape(n_pre, n_post).T.copy()
