"""e-prop (Bellec et al. 2020, Nat. Commun. 11:3625) as a Brian2 network: a recurrent layer of LIF or
ALIF cells, a leaky readout, and eligibility traces kept by the synapses (docs/models/eprop.md).

Recurrent cell j (dimensionless potential; eqs. 1–2 and 22 of the paper, NEST's
``eprop_iaf(_adapt)_bsshslm_2020``), integrated exactly between steps of dt:

    dv/dt = −v/τ_m,   da/dt = −a/τ_a,   A = v_th + β·a
    a spike of afferent or recurrent cell i arriving   →  v += ζ·W_ji      (ζ = 1 − α, or 1)
    the step after j spiked                             →  v −= v_th,  a += 1
    z_j = 1[v ≥ A];   ψ_j = surrogate(v; A) (models/surrogate.py, triangular by default)

Readout k: dy/dt = −y/τ_out, a spike of j → y += ζ_o·W^out_kj; π = softmax(y) (or y for a
regression), error err_k = m(t)·(π_k − y*_k) inside the error window m. Learning signal
L_j = Σ_k B_jk·err_k, B = W^outᵀ (symmetric e-prop) or fixed and random.

Every plastic synapse j←i holds its eligibility (eqs. 13–14, 24–25):
z̄_i (the presynaptic trace, α per step, +ζ per spike) is kept by the presynaptic cell,

    e = ψ_j·(z̄_i − β·ε),   ε ← ρ·ε + e,   ē ← κ·ē + ζ_o·e,   g += L_j·ē,   Σe += e

and the readout synapses g^out += err_k·z̄^out_j. At the sample's end the firing-rate
regulariser adds c_reg·(f_j − f*)/T·Σe (eq. 29); at the minibatch's end W ← W − η·Σg/M.

Schedule of a step (all in the ``groups`` slot, by order): the leak of every state (0); the input
spikes (1, 2); the previous step's reset and adaptation, which also emits the recurrent relay (3);
the afferent (4) and recurrent (5) pathways; ψ (6); the threshold (7) and its reset (8); the readout
pathway (9), the softmax normaliser (10), the error (11), the learning signal (12); the
eligibility updates (13–15). Sample and minibatch boundaries run at ``start``: the regulariser
folds the sample (0), the minibatch's update (1), the states restart (2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import Network, NeuronGroup, Quantity, SpikeMonitor, Synapses, ms

from apical.circuits.core import CompiledNetwork, RunValues
from apical.models.surrogate import Surrogate

# ------------------------------------------------------------------------------------ equations
RECURRENT_CELL = """
dv/dt = -v / tau_m : 1                  # membrane potential, leaks between steps
da/dt = -a / tau_a : 1                  # threshold adaptation (ALIF; β = 0 for LIF)
dzbar/dt = -zbar / tau_m : 1            # z̄_j, j's spikes as its recurrent targets see them
dzbar_out/dt = -zbar_out / tau_out : 1  # z̄^out_j, j's spikes as the readout sees them
A = v_th + beta * a : 1                 # adaptive threshold
z : 1                                   # 1 during the step after a spike
psi : 1                                 # ψ_j, the pseudo-derivative of this step
L : 1                                   # L_j, the learning signal
count : 1                               # spikes in the current sample
"""
RECURRENT_AFTER_SPIKE = """
v -= v_th * z
a += z
zbar += zeta * z
z = 0
"""
RECURRENT_RESET = """
z = 1
count += 1
zbar_out += zeta_out
"""
RECURRENT_SAMPLE_START = """
v = 0
a = 0
zbar = 0
zbar_out = 0
z = 0
psi = 0
count = 0
"""
AFFERENT = """
dzbar/dt = -zbar / tau_m : 1            # z̄_i, the afferent's spikes as the recurrent cells see them
"""
READOUT_CELL = """
dy/dt = -y / tau_out : 1                # readout potential
norm : 1                                # Σ_k' exp(y_k'), the softmax normaliser
err : 1                                 # err_k = m·(π_k − y*_k)
loss : 1                                # Σ_t m·loss_t over the sample
score : 1                               # Σ_t m·π_k over the sample
"""
READOUT_ERROR = {
    "cross_entropy": """
err = error_window(t, 0) * (exp(y) / norm - target(t, i))
loss += -error_window(t, 0) * target(t, i) * log(exp(y) / norm)
score += error_window(t, 0) * exp(y) / norm
""",
    "mse": """
err = error_window(t, 0) * (y - target(t, i))
loss += 0.5 * error_window(t, 0) * (y - target(t, i))**2
score += error_window(t, 0) * y
""",
}
READOUT_SAMPLE_START = """
y = 0
loss = 0
score = 0
"""
PLASTIC = """
w : 1                                   # W_ji
grad : 1                                # g_ji, summed over the open minibatch
learning_rate : 1 (shared)              # η; 0 while testing
"""
ELIGIBLE = PLASTIC + """
ebar : 1                                # ē_ji, low-pass filtered eligibility trace
esum : 1                                # Σ_t e_ji over the sample (for the regulariser)
"""
ADAPTIVE = """
eps : 1                                 # ε_ji, the adaptive part of the eligibility vector
"""
ELIGIBILITY_LIF = """
ebar = kappa * ebar + zeta_out * psi_post * zbar_pre
grad += L_post * ebar
esum += psi_post * zbar_pre
"""
ELIGIBILITY_ALIF = """
ebar = kappa * ebar + zeta_out * psi_post * (zbar_pre - beta * eps)
grad += L_post * ebar
esum += psi_post * (zbar_pre - beta * eps)
eps = rho * eps + psi_post * (zbar_pre - beta * eps)
"""
ELIGIBLE_SAMPLE_END = """
grad += c_reg * (count_post / time_steps - target_rate) / time_steps * esum
ebar = 0
esum = 0
"""
READOUT_GRADIENT = "grad += err_post * zbar_out_pre"
MINIBATCH_END = """
w -= learning_rate * grad / batch_size
grad = 0
"""

#: Signals broadcast to many synapses on purpose (the locality audit): η, M, T, the target rate.
GLOBAL_SIGNALS = ("learning_rate", "batch_size", "time_steps", "target_rate")


# ------------------------------------------------------------------------------------ parameters
@dataclass(frozen=True)
class EpropSettings:
    """What the network is: sizes, constants and the rule's choices, fixed when it is built.

    Defaults: the LIF network of NEST's sine-wave example of Bellec et al. (2020), Fig. 2 / S7."""

    sizes: tuple[int, int, int]  # (n_in, n_rec, n_out)
    dt: Quantity = field(default_factory=lambda: 1 * ms)  # one step
    time_steps: int = 1000  # T, steps per sample
    neuron: str = "lif"  # "lif" or "alif" (adaptive threshold)
    tau_m: Quantity = field(default_factory=lambda: 30 * ms)  # τ_m of the recurrent cells
    tau_out: Quantity = field(default_factory=lambda: 30 * ms)  # τ_out of the readout (κ)
    tau_a: Quantity = field(default_factory=lambda: 2000 * ms)  # τ_a, adaptation time constant (ALIF)
    beta: float = 0.0174  # β, NEST's adapt_beta: the paper's 1.7 × (1 − ρ)/(1 − α) at τ_a = 2 s, τ_m = 20 ms, dt = 1 ms
    threshold: float = 0.03  # v_th
    surrogate_family: str = "triangular"  # ψ's family (models/surrogate.py)
    gamma: float = 0.3  # γ: ψ(v = A) = γ/v_th
    width: float = 1.0  # ψ's half width in units of v_th
    scaled_input: bool = True  # ζ = 1 − α, ζ_o = 1 − κ (NEST's regular_spike_arrival = False); else 1
    loss: str = "mse"  # "mse" (regression) or "cross_entropy" (classification, softmax readout)
    feedback: str = "random"  # "random" (fixed B) or "symmetric" (B = W^outᵀ)
    c_reg: float = 300.0  # c_reg, firing-rate regularisation
    target_rate: float = 10.0  # f*, target rate in spikes/s
    batch_size: int = 1  # M

    @property
    def alpha(self) -> float:
        return float(np.exp(-float(self.dt / self.tau_m)))

    @property
    def kappa(self) -> float:
        return float(np.exp(-float(self.dt / self.tau_out)))

    @property
    def rho(self) -> float:
        return float(np.exp(-float(self.dt / self.tau_a)))

    @property
    def beta_effective(self) -> float:
        return self.beta if self.neuron == "alif" else 0.0

    @property
    def zeta(self) -> float:
        return 1.0 - self.alpha if self.scaled_input else 1.0

    @property
    def zeta_out(self) -> float:
        return 1.0 - self.kappa if self.scaled_input else 1.0

    @property
    def target_rate_per_step(self) -> float:
        return self.target_rate * float(self.dt / (1000 * ms))

    @property
    def recurrent_mask(self) -> np.ndarray:
        """1 off the diagonal: no autapses."""
        return 1.0 - np.eye(self.sizes[1])

    def surrogate(self) -> Surrogate:
        """ψ = γ/v_th·max(0, 1 − |v − A|/(width·v_th)) for the triangular family."""
        return Surrogate(self.surrogate_family, width=self.width * self.threshold, height=self.gamma / self.threshold)


# EpropSettings.beta is the configured β; the equations read the effective one (0 for LIF).
@dataclass
class EpropState:
    """Everything learned: W^in (H × n_in), W^rec (H × H, zero diagonal), W^out (K × H), and B
    (H × K) for random feedback (None: symmetric, B = W^outᵀ)."""

    input_weights: np.ndarray
    recurrent_weights: np.ndarray
    output_weights: np.ndarray
    feedback: np.ndarray | None = None

    def copy(self) -> "EpropState":
        return EpropState(self.input_weights.copy(), self.recurrent_weights.copy(), self.output_weights.copy(),
                          None if self.feedback is None else self.feedback.copy())


def initial_state(sizes, rng: np.random.Generator, feedback: str = "random",
                  feedback_rng: np.random.Generator | None = None) -> EpropState:
    """Gaussian weights scaled by 1/√fan-in, as in the authors' code and NEST's examples;
    W^rec without autapses; B (random feedback) Gaussian /√H from ``feedback_rng``."""
    n_in, H, K = sizes
    w_in = rng.standard_normal((H, n_in)) / np.sqrt(n_in)
    w_rec = rng.standard_normal((H, H)) / np.sqrt(H)
    np.fill_diagonal(w_rec, 0.0)
    w_out = rng.standard_normal((K, H)) / np.sqrt(H)
    B = None
    if feedback == "random":
        B = (feedback_rng or rng).standard_normal((H, K)) / np.sqrt(H)
    return EpropState(w_in, w_rec, w_out, B)


@dataclass
class RunResult:
    """A run read back from the network: the state after it and per-sample records."""

    state: EpropState
    loss: np.ndarray  # [N]
    scores: np.ndarray  # [N, K]
    spikes: np.ndarray  # [N, T, H] recurrent spikes


# ------------------------------------------------------------------------------------ the network
class EpropNetwork(CompiledNetwork):
    """The e-prop network for runs of ``samples`` samples, compiled once on a standalone device.

    Tables: ``input_raster`` [N·T + 1, n_in] (0/1), ``target`` [N·T + 1, K] (y*), ``error_window``
    [N·T + 1, 1] (m). Pairs are listed pre-major: synapse (i, j) of a pathway at i·n_post + j."""

    def __init__(self, settings: EpropSettings, samples: int, device_name: str = "runtime", build_dir=None,
                 threads: int = 1, precision: str = "float64"):
        self.settings = settings
        super().__init__(samples, settings.time_steps, settings.dt, device_name, build_dir, threads, precision,
                         build_key=(settings,))

    def table_widths(self) -> dict[str, int]:
        n_in, _, K = self.settings.sizes
        return {"input_raster": n_in, "target": K, "error_window": 1}

    def namespace(self, tables) -> dict:
        s = self.settings
        surrogate = s.surrogate()
        return {"tau_m": s.tau_m, "tau_out": s.tau_out, "tau_a": s.tau_a, "beta": s.beta_effective,
                "v_th": s.threshold, "zeta": s.zeta, "zeta_out": s.zeta_out, "kappa": s.kappa, "rho": s.rho,
                "surrogate_width": surrogate.width, "surrogate_height": surrogate.height, "c_reg": s.c_reg,
                "target_rate": s.target_rate_per_step, "time_steps": s.time_steps, "batch_size": s.batch_size,
                **tables}

    def construct(self, tables) -> dict:
        s = self.settings
        n_in, H, K = s.sizes
        ns = self.namespace(tables)
        sample, minibatch = s.time_steps * s.dt, s.batch_size * s.time_steps * s.dt
        alif = s.neuron == "alif"
        afferents = NeuronGroup(n_in, AFFERENT, threshold="input_raster(t, i) > 0.5", reset="zbar += zeta",
                                method="exact", dt=s.dt, namespace=ns, name="afferents")
        cells = NeuronGroup(H, RECURRENT_CELL, threshold="v >= A", reset=RECURRENT_RESET, method="exact",
                            events={"relay": "z > 0.5"}, dt=s.dt, namespace=ns, name="recurrent")
        readout = NeuronGroup(K, READOUT_CELL, method="exact", dt=s.dt, namespace=ns, name="readout")
        eligible = ELIGIBLE + (ADAPTIVE if alif else "")
        eligibility = ELIGIBILITY_ALIF if alif else ELIGIBILITY_LIF
        forward = Synapses(afferents, cells, eligible, on_pre="v_post += zeta * w", dt=s.dt, namespace=ns,
                           name="input_pathway")
        forward.connect(i=np.repeat(np.arange(n_in), H), j=np.tile(np.arange(H), n_in))
        rec_i, rec_j = np.nonzero(s.recurrent_mask.T)  # pre-major, no autapses
        recurrent = Synapses(cells, cells, eligible, on_pre="v_post += zeta * w", on_event="relay", dt=s.dt,
                             namespace=ns, name="recurrent_pathway")
        recurrent.connect(i=rec_i, j=rec_j)
        symmetric = s.feedback == "symmetric"
        out_model = PLASTIC + ("L_pre = w * err_post : 1 (summed)\n" if symmetric else "")
        output = Synapses(cells, readout, out_model, on_pre="y_post += zeta_out * w", dt=s.dt, namespace=ns,
                          name="readout_pathway")
        output.connect(i=np.repeat(np.arange(H), K), j=np.tile(np.arange(K), H))
        objects = [afferents, cells, readout, forward, recurrent, output]
        if s.loss == "cross_entropy":  # the readouts share exp(y) to normalise the softmax
            normaliser = Synapses(readout, readout, "norm_post = exp(y_pre) : 1 (summed)", dt=s.dt,
                                  name="normaliser")
            normaliser.connect()
            normaliser.summed_updaters["norm_post"].when = "groups"
            normaliser.summed_updaters["norm_post"].order = 10
            objects.append(normaliser)
        feedback = None
        if not symmetric:
            feedback = Synapses(readout, cells, "b : 1\nL_post = b * err_pre : 1 (summed)", dt=s.dt,
                                name="feedback")
            feedback.connect(i=np.repeat(np.arange(K), H), j=np.tile(np.arange(H), K))
            objects.append(feedback)

        surrogate_code = f"psi = {s.surrogate().brian('v', 'A', 'surrogate_width', 'surrogate_height')}"
        runners = [
            (cells.run_regularly(RECURRENT_AFTER_SPIKE, when="groups", order=3, name="recurrent_after_spike")),
            (cells.run_regularly(surrogate_code, when="groups", order=6, name="recurrent_pseudo_derivative")),
            (readout.run_regularly(READOUT_ERROR[s.loss], when="groups", order=11, name="readout_error")),
            (forward.run_regularly(eligibility, when="groups", order=13, name="input_eligibility")),
            (recurrent.run_regularly(eligibility, when="groups", order=14, name="recurrent_eligibility")),
            (output.run_regularly(READOUT_GRADIENT, when="groups", order=15, name="readout_gradient")),
        ]
        boundaries = [
            forward.run_regularly(ELIGIBLE_SAMPLE_END + ("eps = 0" if alif else ""), dt=sample, when="start",
                                  order=0, name="input_sample_end"),
            recurrent.run_regularly(ELIGIBLE_SAMPLE_END + ("eps = 0" if alif else ""), dt=sample, when="start",
                                    order=0, name="recurrent_sample_end"),
            *[p.run_regularly(MINIBATCH_END, dt=minibatch, when="start", order=1, name=f"{p.name}_minibatch_end")
              for p in (forward, recurrent, output)],
            cells.run_regularly(RECURRENT_SAMPLE_START, dt=sample, when="start", order=2, name="recurrent_sample_start"),
            afferents.run_regularly("zbar = 0", dt=sample, when="start", order=2, name="afferent_sample_start"),
            readout.run_regularly(READOUT_SAMPLE_START, dt=sample, when="start", order=2, name="readout_sample_start"),
        ]
        for group in (afferents, cells, readout):
            group.state_updater.when, group.state_updater.order = "groups", 0
        afferents.thresholder["spike"].when, afferents.thresholder["spike"].order = "groups", 1
        afferents.resetter["spike"].when, afferents.resetter["spike"].order = "groups", 2
        cells.thresholder["relay"].when, cells.thresholder["relay"].order = "groups", 2  # before z is cleared (3)
        forward.pre.when, forward.pre.order = "groups", 4
        recurrent.pre.when, recurrent.pre.order = "groups", 5
        cells.thresholder["spike"].when, cells.thresholder["spike"].order = "groups", 7
        cells.resetter["spike"].when, cells.resetter["spike"].order = "groups", 8
        output.pre.when, output.pre.order = "groups", 9
        if symmetric:
            output.summed_updaters["L_pre"].when, output.summed_updaters["L_pre"].order = "groups", 12
        else:
            feedback.summed_updaters["L_post"].when, feedback.summed_updaters["L_post"].order = "groups", 12
        spikes = SpikeMonitor(cells, name="recurrent_spikes")
        ends = self.sample_end_monitor(readout, ["loss", "score"], "readout_sample_ends")
        network = Network(*objects, *runners, *boundaries, spikes, ends)
        return {"network": network, "input": afferents, "recurrent": cells, "readout": readout,
                "forward": forward, "recurrent_pathway": recurrent, "output": output, "feedback": feedback,
                "spikes": spikes, "sample_ends": ends, "layers": [cells, readout]}

    # ------------------------------------------------------------------------------ runs
    def run_values(self, state: EpropState, input_spikes, targets, window, learning_rate: float) -> RunValues:
        s = self.settings
        n_in, H, K = s.sizes
        if learning_rate != 0 and self.samples_per_run % s.batch_size:
            raise ValueError(f"{self.samples_per_run} samples per run are not whole minibatches of {s.batch_size}: "
                             "the last one would never be applied")
        input_spikes = self.check_samples(input_spikes, n_in, "input_spikes")
        targets = self.check_samples(np.asarray(targets, dtype=np.float64), K, "targets")
        window = np.broadcast_to(np.asarray(window, dtype=np.float64), input_spikes.shape[:2])[..., None]
        rec_i, rec_j = np.nonzero(s.recurrent_mask.T)
        tables = {"input_raster": self.table("input_raster", input_spikes, n_in),
                  "target": self.table("target", targets, K),
                  "error_window": self.table("error_window", window, 1)}

        def variables(o: dict) -> dict:
            found = {o["forward"].w: state.input_weights.T.ravel(),
                     o["recurrent_pathway"].w: state.recurrent_weights[rec_j, rec_i],
                     o["output"].w: state.output_weights.T.ravel(),
                     o["forward"].learning_rate: float(learning_rate),
                     o["recurrent_pathway"].learning_rate: float(learning_rate),
                     o["output"].learning_rate: float(learning_rate)}
            if o["feedback"] is not None:
                found[o["feedback"].b] = state.feedback.T.ravel()
            return found

        return RunValues(tables, variables)

    def run(self, state: EpropState, input_spikes, targets, window, learning_rate: float) -> RunResult:
        """Run ``samples`` samples ([N, T, n_in] of 0/1, targets y* [N, T, K], error mask m [T] or
        [N, T]) from ``state``, learning at rate η (0: testing)."""
        objects = self.simulate(self.run_values(state, input_spikes, targets, window, learning_rate))
        return self.read(objects, state)

    def read(self, o: dict, state: EpropState) -> RunResult:
        s = self.settings
        n_in, H, K = s.sizes
        rec_i, rec_j = np.nonzero(s.recurrent_mask.T)
        recurrent = np.zeros((H, H))
        recurrent[rec_j, rec_i] = np.asarray(o["recurrent_pathway"].w[:], dtype=np.float64)
        after = EpropState(np.asarray(o["forward"].w[:], dtype=np.float64).reshape(n_in, H).T.copy(), recurrent,
                           np.asarray(o["output"].w[:], dtype=np.float64).reshape(H, K).T.copy(),
                           None if state.feedback is None else state.feedback.copy())
        ends = o["sample_ends"]
        return RunResult(after, self.at_sample_ends(ends.loss).sum(axis=1), self.at_sample_ends(ends.score),
                         self.spike_rasters(o["spikes"], H))
