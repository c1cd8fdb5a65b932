"""Pyramidal cells of the BioLeaF microcircuit: soma, basal input, apical compartment, bursts.

A reconstruction of Yang & Li (2021), arXiv 2111.13188, from its abstract, in the lineage of the
dendritic cortical microcircuit (Sacramento, Costa, Bengio & Senn 2018) made spiking, with the
event/burst multiplexing of Payeur, Guerguiev, Zenke, Richards & Naud (2021); the equations and
the reasons for each choice are in docs/models/bioleaf.md. Discrete time, one step = dt:

    soma       v[t] = λ·v[t−1]·(1 − s[t−1]) + Σ_j W_ij·s_j[t] + b_i      (basal input, hard reset)
               s[t] = 1[v[t] > θ]                                         somatic spike
               g[t] = γ·1[|v[t] − θ| < w]                                  depolarisation window
               (published: rectangular; ``surrogate`` picks another family, models/surrogate.py)
    apical     hidden cell: A[t] = λ_a·A[t−1] + top-down spikes and bursts + interneuron spikes
               output cell: A[t] = [t ≥ t0]·(d[t] − o[t]), the global spiking error, with
               d[t] = λ_o·d[t−1] + desired spikes[t]  and  o[t] = λ_o·o[t−1] + s[t]
    burst      b[t] = c·g[t]·A[t]: the cell's top-down output on steps where its soma is in the
               window and its apical compartment is depolarised (a burst event, BAC firing)

λ = exp(−dt/τ_m), λ_a = exp(−dt/τ_a), λ_o = exp(−dt/τ_psp). Between steps every potential
decays exactly (``dv/dt = −v/τ_m`` and so on); spikes, bursts and teacher spikes are jumps.
The compartment-local factor that gates plasticity is ``plasticity_gate = g·A``
(models/plasticity.py); the soma keeps its bias eligibility trace ε^b (an always-on input,
reset by its own spikes: ε^b[t] = λ·(1 − s[t−1])·ε^b[t−1] + 1), and Δb = η·Σ_t g·A·ε^b.

With ``nudging`` β > 0 the output soma also receives β·A (its apical potential of the previous
step) as a current, the somatic nudging of Sacramento et al.; BioLeaF's special circumstance
is β → 0, where the apical compartment never changes a somatic spike.

The per-step code of the soma is a field of :class:`PyramidalEquations` (published code by
default), which the circuits take from their settings: a variant is a ``replace`` away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from brian2 import NeuronGroup, Quantity, ms, second

from apical.models.surrogate import Surrogate

#: Soma and bookkeeping shared by hidden and output pyramidal cells (BioLeaF and the SC
#: microcircuit alike); each circuit adds how its cells' bursts are made and what else they learn.
SOMA_CORE_EQUATIONS = """
dv/dt = -v / tau_m : 1                      # soma potential (basal input jumps in), leaks between steps
bias : 1                                    # b_i, one jump per step
spiked : 1                                  # s_i[t]
pseudo_derivative : 1                       # g_i[t], the surrogate ds/dv at this step's v
trace_survival : 1                          # lambda * (1 - s_i[t]): what an input trace keeps for the next step
bias_trace : 1                              # eps^b_i, input since the last spike of an always-on input
bias_change : 1                             # Delta b_i, summed over the minibatch
spike_count : 1                             # spikes in the current sample
plasticity_gate = pseudo_derivative * apical : 1    # g_i * A_i, the compartment-local factor of STDP
learning_signal = learning_rate * plasticity_gate : 1   # eta * g_i * A_i, what the forward synapses and b learn from
error_window = int(t_in_timesteps % sample_steps >= error_start) : 1   # 1 from step t0 of a sample on
burst_gain : 1 (shared, constant)           # c, burst size per unit of g * A
sample_steps : integer (shared, constant)   # T, steps per sample
error_start : integer (shared, constant)    # t0, first step of the spiking error in a sample
learning_rate : 1 (shared)                  # eta of the forward synapses and biases, 0 while testing
teaching : 1 (shared)                       # 1 while a target is presented, 0 without target
"""

#: BioLeaF's cells: bursts b = c·g·A, and the rates of the interneuron and mirror plasticity.
SOMA_EQUATIONS = SOMA_CORE_EQUATIONS + """
burst = burst_gain * plasticity_gate : 1            # b_i = c * g_i * A_i, sent on top-down axons
mirror_signal = mirror_learning_rate * plasticity_gate : 1   # eta_M * g_i * A_i, for mirror STDP
apical_learning_rate : 1 (shared)           # eta_PI of the interneuron -> apical synapses
mirror_learning_rate : 1 (shared)           # eta_M of the mirror STDP of this cell's top-down synapses
"""

#: Hidden cells: the apical compartment integrates top-down and interneuron input and leaks.
HIDDEN_APICAL_EQUATIONS = """
dapical/dt = -apical / tau_apical : 1       # A_i, apical compartment
"""

#: Output cells: the apical compartment holds the global spiking error d − o.
OUTPUT_APICAL_EQUATIONS = """
apical : 1                                  # A_k = [t >= t0] * (d_k - o_k) while teaching
dpsp_desired/dt = -psp_desired / tau_psp : 1    # d_k, desired spike train through the PSP kernel
dpsp_own/dt = -psp_own / tau_psp : 1            # o_k, the cell's own spike train through the same kernel
"""

#: Once per step, before the threshold: the bias jump (and, for the output, somatic nudging).
SOMA_BIAS_JUMP = "v += bias"
OUTPUT_NUDGING = "v += bias + nudging * apical"

#: Per step, after the threshold test and before the reset; ``pseudo_derivative = g(v)`` is put in
#: front of it (:meth:`PyramidalEquations.after_threshold_code`).
SOMA_AFTER_THRESHOLD = """
spiked = int(v > theta)
trace_survival = exp(-dt / tau_m) * (1 - spiked)
bias_trace += 1
spike_count += spiked
"""

#: The output cell's own spikes and the teacher's desired spikes enter the PSP traces.
OUTPUT_PSP_TRACES = """
psp_own += spiked
psp_desired += desired_raster(t, i)
"""
#: Then the apical compartment holds the error of this step (Yang & Li's global spiking error, d − o).
OUTPUT_ERROR = OUTPUT_PSP_TRACES + """apical = teaching * error_window * (psp_desired - psp_own)
"""
#: The softmax error (SC microcircuit, ``output_error = "softmax"``), in two steps around the
#: summed ``partition`` = Σ_j exp(κ·o_j), which the output cells send each other through analog
#: all-to-all couplings (``SOFTMAX_PARTITION_COUPLING``): first the PSP traces, then
#:     A_k = [t ≥ t0]·(y_k − exp(κ·o_k) / Σ_j exp(κ·o_j)),  y_k = 1 once cell k's desired train has begun
#: the gradient of E = −(1/κ)·Σ_t log softmax(κ·o[t])_y with respect to o_k[t]. Unlike d − o, it
#: keeps pushing a wrongly firing cell down, and the labelled one up, as long as they compete.
OUTPUT_SOFTMAX_ERROR = """
apical = teaching * error_window * (int(psp_desired > 0) - exp(error_gain * psp_own) / partition)
"""
#: The summed input of the softmax: what every output cell receives from every output cell.
OUTPUT_SOFTMAX_EQUATIONS = """
partition : 1                               # sum_j exp(kappa * o_j), from the all-to-all couplings
"""
SOFTMAX_PARTITION_COUPLING = """
partition_post = exp(error_gain * psp_own_pre) : 1 (summed)
"""

#: After the apical compartment is complete: the bias's share of the update, Δb = η·g·A·ε^b.
SOMA_BIAS_PLASTICITY = """
bias_change += learning_signal * bias_trace
bias_trace *= trace_survival
"""

#: The ``active`` event: spiked at least once in this sample, so outgoing traces are nonzero.
ACTIVE_CONDITION = "spike_count > 0"

#: The ``burst`` event: a top-down signal to send (soma in the window, apical depolarised).
BURST_CONDITION = "burst != 0"

#: Sample boundary: every compartment and trace starts afresh.
SOMA_SAMPLE_END = """
v = 0
apical = 0
bias_trace = 0
spike_count = 0
spiked = 0
"""
#: What an output cell clears besides (its PSP traces).
OUTPUT_PSP_SAMPLE_END = """
psp_own = 0
psp_desired = 0
"""

#: Minibatch boundary: the mean bias change is applied.
SOMA_MINIBATCH_END = """
bias += bias_change / batch_size
bias_change = 0
"""


@dataclass(frozen=True)
class PyramidalEquations:
    """The pyramidal soma's per-step Brian2 code, part by part; the defaults are the published
    model. ``pseudo_derivative`` empty means the surrogate family of
    :attr:`PyramidalParameters.surrogate` (models/surrogate.py), which the references implement."""

    threshold: str = "v > theta"  # somatic spike
    reset: str = "v = 0"  # hard reset
    bias_jump: str = SOMA_BIAS_JUMP  # v += b before the threshold
    pseudo_derivative: str = ""  # g(v); "" = the configured surrogate family
    after_threshold: str = SOMA_AFTER_THRESHOLD  # s, λ(1 − s), bias trace, counts
    bias_plasticity: str = SOMA_BIAS_PLASTICITY  # Δb += η·g·A·ε^b
    sample_end: str = SOMA_SAMPLE_END  # every compartment and trace to zero
    minibatch_end: str = SOMA_MINIBATCH_END  # b += Δb / M

    def after_threshold_code(self, params: "PyramidalParameters") -> str:
        """``pseudo_derivative = g(v)`` followed by :attr:`after_threshold`."""
        g = self.pseudo_derivative or params.pseudo_derivative.brian()
        return f"pseudo_derivative = {g}\n{self.after_threshold.strip()}\n"


def leak_time_constant(leak: float, dt: Quantity) -> Quantity:
    """τ with exp(−dt/τ) = ``leak`` per step."""
    if not 0.0 < leak < 1.0:
        raise ValueError(f"a leak per step must lie in (0, 1), got {leak}")
    return dt / math.log(1.0 / leak)


def per_step(tau: Quantity, dt: Quantity) -> float:
    """exp(−dt/τ): what a potential with time constant τ keeps over one step."""
    return math.exp(-float(dt / second) / float(tau / second))


@dataclass(frozen=True)
class PyramidalParameters:
    """Constants of the pyramidal cell (BioLeaF's and the SC microcircuit's, and the soma of their
    interneurons); its output cells hold the spiking error d − o."""

    dt: Quantity = field(default_factory=lambda: 5 * ms)  # time step of the discrete model (as BioGrad)
    tau_m: Quantity = field(default_factory=lambda: leak_time_constant(0.3, 5 * ms))  # τ_m: λ = 0.3 per step (BioGrad's soma)
    theta: float = 0.3  # θ, firing threshold (strict)
    window: float = 0.3  # w, half width of the depolarisation window that gates plasticity and bursts
    gamma: float = 1.0  # γ, height of that window (the pseudo-derivative ds/dv)
    surrogate: str = "rectangular"  # family of g (models/surrogate.py); the published window is rectangular
    tau_apical: Quantity = field(default_factory=lambda: 1 * ms)  # τ_a, apical leak: λ_a = e^(−5) ≈ 0.007 per step
    tau_psp: Quantity = field(default_factory=lambda: 5 * ms)  # τ_psp, PSP kernel of the spiking error: λ_o = e^(−1)
    burst_gain: float = 1.0  # c, burst size per unit of g·A
    nudging: float = 0.0  # β, somatic nudging of the output cells by their apical error (0: none)

    @property
    def pseudo_derivative(self) -> Surrogate:
        """g as a :class:`Surrogate` of width w and height γ."""
        return Surrogate(self.surrogate, self.window, self.gamma)

    @property
    def leak(self) -> float:
        return per_step(self.tau_m, self.dt)

    @property
    def apical_leak(self) -> float:
        return per_step(self.tau_apical, self.dt)

    @property
    def psp_leak(self) -> float:
        return per_step(self.tau_psp, self.dt)

    def namespace(self) -> dict:
        return {"tau_m": self.tau_m, "theta": self.theta, "window": self.window, "gamma": self.gamma,
                "tau_apical": self.tau_apical, "tau_psp": self.tau_psp, "nudging": self.nudging}


def make_pyramidal_layer(
    n: int, params: PyramidalParameters, time_steps: int, error_start: int, batch_size: int, name: str,
    output: bool = False, sends_bursts: bool = True, desired_raster=None, soma_equations: str = SOMA_EQUATIONS,
    namespace: dict | None = None, equations: PyramidalEquations = PyramidalEquations(),
) -> NeuronGroup:
    """A layer of pyramidal cells; ``output`` cells hold the spiking error in their apical
    compartment (read from ``desired_raster``), hidden cells integrate top-down input.
    ``sends_bursts`` adds the ``burst`` event (cells with a layer below them).
    ``soma_equations`` (BioLeaF's by default) and extra ``namespace`` entries let another
    microcircuit give the same cell its own burst and learning variables."""
    events = {"active": ACTIVE_CONDITION}
    if sends_bursts:
        events["burst"] = BURST_CONDITION
    namespace = {**params.namespace(), "batch_size": float(batch_size), **(namespace or {})}
    if output:
        namespace["desired_raster"] = desired_raster
    layer = NeuronGroup(
        n,
        soma_equations + (OUTPUT_APICAL_EQUATIONS if output else HIDDEN_APICAL_EQUATIONS)
        + (OUTPUT_SOFTMAX_EQUATIONS if output and isinstance(params, SCPyramidalParameters)
           and params.output_error == "softmax" else ""),
        threshold=equations.threshold,
        reset=equations.reset,
        events=events,
        method="exact",
        namespace=namespace,
        dt=params.dt,
        name=name,
    )
    layer.burst_gain = params.burst_gain
    layer.sample_steps = int(time_steps)
    layer.error_start = int(error_start)
    return layer


# ------------------------------------------------------------------ the SC microcircuit's cells
@dataclass(frozen=True)
class SCPyramidalParameters(PyramidalParameters):
    """Constants of the SC microcircuit's pyramidal cell: those of :class:`PyramidalParameters`, and
    which error its output cells hold, d − o or the softmax error (``OUTPUT_SOFTMAX_ERROR``;
    docs/models/scmicro.md, "The three cell types")."""

    output_error: str = "kernel_mse"  # the output cells' error: d − o, or "softmax": y − softmax(κ·o)
    error_gain: float = 2.0  # κ of the softmax error

    def __post_init__(self):
        if self.output_error not in ("kernel_mse", "softmax"):
            raise ValueError(f"output_error must be 'kernel_mse' or 'softmax', got {self.output_error!r}")
        if not self.error_gain > 0:
            raise ValueError(f"error_gain κ must be positive, got {self.error_gain}")

    def namespace(self) -> dict:
        return {**super().namespace(), "error_gain": self.error_gain}


#: Pyramidal cells of the SC microcircuit (Yang & Li 2022, arXiv 2205.07292; docs/models/scmicro.md):
#: the same soma, window and apical compartment; the burst b = c·g·A is the cell's only top-down
#: signal (its top-down synapses facilitate and pass bursts, not single spikes: Payeur et al. 2021),
#: and there is no mirror or interneuron plasticity.
SC_SOMA_EQUATIONS = SOMA_CORE_EQUATIONS + """
burst = burst_gain * plasticity_gate : 1            # b_i = c * g_i * A_i, sent on top-down axons
"""

#: The same cell with a dendritic electrode: ``injected_burst`` adds to the burst of the cell
#: (used only to measure the effective feedback by perturbation, never while learning).
SC_PROBED_SOMA_EQUATIONS = SOMA_CORE_EQUATIONS + """
burst = burst_gain * plasticity_gate + injected_burst : 1   # b_i plus the experimenter's injected burst
injected_burst : 1                                          # set each step from the electrode's protocol
"""
#: Start of each step in a probed cell: the electrode's protocol ``burst_probe(t, i)``.
SC_PROBE_STEP = "injected_burst = burst_probe(t, i)"
