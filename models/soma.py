"""Leaky integrate-and-fire soma with BioGrad's pseudo-derivative and reset factor.

Tang et al. (2021), arXiv 2110.14092, neuron model of §3 (discrete form: docs/models/biograd.md):

    dv/dt = −v / τ_m                       between steps, integrated exactly
    v ← v + Σ_j W_ij·s_j + b_i             instantaneous synaptic and bias jumps, every step
    spike when v > θ, then v ← 0           hard reset

With τ_m = dt / ln(1/λ) the exact integration gives the published discrete decay
v[t] = λ·v[t-1]·(1 − s[t-1]) + W·s[t] + b (λ = 0.3 at dt = 5 ms, τ_m ≈ 4.15 ms).

After the threshold test of each step the soma computes, from its own v:

    s = 1[v > θ]                           the step's spike indicator
    g = γ·1[|v − θ| < w]                   pseudo-derivative ds/dv (published: rectangular;
                                           ``surrogate`` picks another family, models/surrogate.py)
    λρ = exp(−dt/τ_m)·(1 − s − v·g)        how much of each eligibility trace survives the step

and carries its bias eligibility (the bias is a synapse from an always-active input):
ε^b ← ε^b + 1, E^b ← E^b + g·ε^b, ε^b ← λρ·ε^b.

Every piece of Brian2 code of the soma is a field of :class:`SomaEquations` with the published
code as its default, so a variant is ``replace(SomaEquations(), reset="v -= theta")`` passed to
the circuit's settings, never an edit of this module.

The apical compartment ``apical`` is non-leaky and integrates feedback error spikes; its
time average over the error window is the neuron's error δ = a / (T − t0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from brian2 import NeuronGroup, Quantity, ms, second

from apical.models.surrogate import Surrogate

SOMA_EQUATIONS = """
dv/dt = -v / tau_m : 1                      # soma potential, leaks between steps
bias : 1                                    # b_i, one bias jump per step
spiked : 1                                  # s_i[t], 1 on the steps the soma fired
pseudo_derivative : 1                       # g_i[t], the surrogate ds/dv at this step's v
trace_survival : 1                          # lambda * rho_i[t], decay applied to eligibility traces
bias_trace : 1                              # eps^b_i, eligibility trace of the bias
bias_eligibility : 1                        # E^b_i
apical : 1                                  # a_i, apical compartment, integrates error spikes
apical_error = apical / error_steps : 1     # delta_i, time-averaged apical error
spike_count : 1                             # spikes in the current sample
minibatch_spike_count : 1                   # spikes in the current minibatch
bias_change : 1                             # Delta b_i, accumulated over the minibatch
learning_rate : 1 (shared)                  # eta, 0 during evaluation
error_steps : 1 (shared, constant)          # T - t0, steps on which the error neurons integrate
"""

#: Per-step somatic bookkeeping after the threshold test (before the reset); the line
#: ``pseudo_derivative = g(v)`` is put in front of it (:meth:`SomaEquations.after_threshold_code`).
SOMA_AFTER_THRESHOLD = """
spiked = int(v > theta)
trace_survival = exp(-dt / tau_m) * (1 - spiked - v * pseudo_derivative)
bias_trace += 1
bias_eligibility += pseudo_derivative * bias_trace
bias_trace *= trace_survival
spike_count += spiked
minibatch_spike_count += spiked
"""

#: The ``active`` event: the neuron has spiked in the current sample, so its outgoing
#: synapses carry eligibility traces that need updating (models/eligibility.py).
ACTIVE_CONDITION = "spike_count > 0"


def boundary_events() -> dict[str, str]:
    """The events by which a presynaptic group drives its outgoing forward synapses
    (models/eligibility.py): ``active`` on every step once it has spiked in the sample, and,
    on the boundary step that closes a sample (a minibatch), ``sample_end`` (``minibatch_end``)
    if it has spiked in that sample (minibatch). Synapses of a silent neuron hold E = ΔW = 0,
    so the boundary updates skip them without changing a number. A sample spans T steps from
    step 0; the boundary steps are the multiples of T (of M·T), the constants ``sample_steps``
    and ``minibatch_steps`` of :func:`boundary_namespace` in the group's namespace."""
    return {
        "active": ACTIVE_CONDITION,
        "sample_end": "spike_count > 0 and t_in_timesteps % sample_steps == 0",
        "minibatch_end": "minibatch_spike_count > 0 and t_in_timesteps % minibatch_steps == 0",
    }


def boundary_namespace(time_steps: int, batch_size: int) -> dict[str, int]:
    """The constants the conditions of :func:`boundary_events` read: T and M·T in steps."""
    return {"sample_steps": int(time_steps), "minibatch_steps": int(time_steps) * int(batch_size)}


#: Once per step, before the threshold: the bias jump.
SOMA_BIAS_JUMP = "v += bias"

#: At each sample boundary: fold δ·E^b into the minibatch's bias change, start afresh.
SOMA_SAMPLE_END = """
bias_change += -learning_rate * apical_error * bias_eligibility
bias_eligibility = 0
bias_trace = 0
apical = 0
spike_count = 0
v = 0
"""

#: At each minibatch boundary: apply the averaged bias change.
SOMA_MINIBATCH_END = """
bias += bias_change / batch_size
bias_change = 0
minibatch_spike_count = 0
"""


@dataclass(frozen=True)
class SomaEquations:
    """The soma as Brian2 code, part by part; the defaults are the published model.

    ``pseudo_derivative`` is the expression of g; empty means the surrogate family named by
    :attr:`SomaParameters.surrogate` (models/surrogate.py), which the numpy references implement too.
    """

    state: str = SOMA_EQUATIONS  # state variables and dv/dt
    threshold: str = "v > theta"  # spike condition
    reset: str = "v = 0"  # hard reset after a spike
    bias_jump: str = SOMA_BIAS_JUMP  # v += b, every step before the threshold
    pseudo_derivative: str = ""  # g(v); "" = the configured surrogate family
    after_threshold: str = SOMA_AFTER_THRESHOLD  # s, λρ, bias eligibility, counts
    sample_end: str = SOMA_SAMPLE_END  # Δb += −η·δ·E^b, state back to zero
    minibatch_end: str = SOMA_MINIBATCH_END  # b += Δb / M

    def after_threshold_code(self, params: "SomaParameters") -> str:
        """``pseudo_derivative = g(v)`` followed by :attr:`after_threshold`."""
        g = self.pseudo_derivative or params.pseudo_derivative.brian()
        return f"pseudo_derivative = {g}\n{self.after_threshold.strip()}\n"


@dataclass(frozen=True)
class SomaParameters:
    """Soma constants of Tang et al. (2021); defaults are the published MNIST setting."""

    dt: Quantity = field(default_factory=lambda: 5 * ms)  # time bin of the discrete model
    tau_m: Quantity = field(default_factory=lambda: 5 * ms / math.log(1 / 0.3))  # τ_m: λ = exp(−dt/τ_m) = 0.3
    theta: float = 0.3  # θ, firing threshold
    window: float = 0.3  # w, half width of the pseudo-derivative window
    gamma: float = 1.0  # γ, height of the pseudo-derivative
    surrogate: str = "rectangular"  # family of g (models/surrogate.py); the paper's is rectangular

    @classmethod
    def from_leak(cls, leak: float, dt: Quantity = 5 * ms, **kwargs) -> "SomaParameters":
        """Parameters whose exact decay per step equals the discrete λ = ``leak``."""
        if not 0.0 < leak < 1.0:
            raise ValueError(f"leak per step must lie in (0, 1), got {leak}")
        return cls(dt=dt, tau_m=dt / math.log(1.0 / leak), **kwargs)

    @property
    def pseudo_derivative(self) -> Surrogate:
        """g as a :class:`Surrogate` of width w and height γ."""
        return Surrogate(self.surrogate, self.window, self.gamma)

    @property
    def leak(self) -> float:
        """λ, the decay of v over one step."""
        return math.exp(-float(self.dt / second) / float(self.tau_m / second))


def make_layer(
    n: int, params: SomaParameters, error_steps: int, batch_size: int, name: str, time_steps: int | None = None,
    equations: SomaEquations = SomaEquations(),
) -> NeuronGroup:
    """A layer of BioGrad somata with apical compartments; scheduling is set by the circuit.

    ``error_steps`` is T − t0 (the apical average's denominator), ``batch_size`` M; with
    ``time_steps`` (T) the layer also emits the sample and minibatch boundary events of
    :func:`boundary_events`, which a layer feeding forward synapses needs. The per-step code
    of ``equations`` (bias jump, after-threshold, boundaries) is scheduled by the circuit.
    """
    layer = NeuronGroup(
        n,
        equations.state,
        threshold=equations.threshold,
        reset=equations.reset,
        events=boundary_events() if time_steps else {"active": ACTIVE_CONDITION},
        method="exact",
        namespace={
            "tau_m": params.tau_m,
            "theta": params.theta,
            "window": params.window,
            "gamma": params.gamma,
            "batch_size": float(batch_size),
            **(boundary_namespace(time_steps, batch_size) if time_steps else {}),
        },
        dt=params.dt,
        name=name,
    )
    layer.error_steps = float(error_steps)
    return layer
