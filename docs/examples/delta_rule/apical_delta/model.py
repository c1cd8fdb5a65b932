"""The delta rule on spike counts: its equations, constants and initial weights.

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

Every quantity the rule reads is the synapse's own (W, ΔW, m), its postsynaptic cell's (n, d) or
broadcast on purpose (η, M, T): the afferent's count m is kept by the synapse as it carries spikes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import Quantity, ms

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
