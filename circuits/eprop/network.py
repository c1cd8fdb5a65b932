"""e-prop (Bellec et al. 2020, Nat. Commun. 11:3625) as a Brian2 network: a recurrent layer of LIF or
ALIF cells, a leaky readout, and eligibility traces kept by the synapses (docs/models/eprop.md);
the equations are those of models/eprop.py, assembled here on the circuit core.

Schedule of a step (the table of :meth:`EpropNetwork.schedule`; all in the ``groups`` slot, by
order): the leak of every state (0); the input spikes (1, 2); the previous step's reset and
adaptation, which also emits the recurrent relay (3); the afferent (4) and recurrent (5) pathways;
ψ (6); the threshold (7) and its reset (8); the readout pathway (9), the softmax normaliser (10),
the error (11), the learning signal (12); the eligibility updates (13–15). Sample and minibatch boundaries run at ``start``: the regulariser
folds the sample (0), the minibatch's update (1), the states restart (2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from brian2 import NeuronGroup, Quantity, SpikeMonitor, Synapses, ms

from apical.circuits.core import (CompiledNetwork, Dense, Every, Masked, RunValues, Schedule, StateVariable,
                                  connect_dense)
from apical.models.eprop import (ADAPTIVE, AFFERENT, ELIGIBILITY_ALIF, ELIGIBILITY_LIF, ELIGIBLE,
                                 ELIGIBLE_SAMPLE_END, MINIBATCH_END, PLASTIC, READOUT_CELL,
                                 READOUT_ERROR, READOUT_GRADIENT, READOUT_SAMPLE_START, RECURRENT_AFTER_SPIKE,
                                 RECURRENT_CELL, RECURRENT_RESET, RECURRENT_SAMPLE_START)
from apical.models.surrogate import Surrogate


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


def state_arrays(state: EpropState) -> dict[str, np.ndarray]:
    """The state under its checkpoint names (weights_1 = W^in, weights_2 = W^out, recurrent_weights_1,
    feedback_1 = B for random feedback)."""
    arrays = {"weights_1": state.input_weights, "weights_2": state.output_weights,
              "recurrent_weights_1": state.recurrent_weights}
    if state.feedback is not None:
        arrays["feedback_1"] = state.feedback
    return arrays


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
        alif = s.neuron == "alif"
        afferents = NeuronGroup(n_in, AFFERENT, threshold="input_raster(t, i) > 0.5", reset="zbar += zeta",
                                method="exact", dt=s.dt, namespace=ns, name="afferents")
        cells = NeuronGroup(H, RECURRENT_CELL, threshold="v >= A", reset=RECURRENT_RESET, method="exact",
                            events={"relay": "z > 0.5"}, dt=s.dt, namespace=ns, name="recurrent")
        readout = NeuronGroup(K, READOUT_CELL, method="exact", dt=s.dt, namespace=ns, name="readout")
        eligible = ELIGIBLE + (ADAPTIVE if alif else "")
        forward = Synapses(afferents, cells, eligible, on_pre="v_post += zeta * w", dt=s.dt, namespace=ns,
                           name="input_pathway")
        connect_dense(forward)
        rec_i, rec_j = np.nonzero(s.recurrent_mask.T)  # pre-major, no autapses
        recurrent = Synapses(cells, cells, eligible, on_pre="v_post += zeta * w", on_event="relay", dt=s.dt,
                             namespace=ns, name="recurrent_pathway")
        recurrent.connect(i=rec_i, j=rec_j)
        symmetric = s.feedback == "symmetric"
        out_model = PLASTIC + ("L_pre = w * err_post : 1 (summed)\n" if symmetric else "")
        output = Synapses(cells, readout, out_model, on_pre="y_post += zeta_out * w", dt=s.dt, namespace=ns,
                          name="readout_pathway")
        connect_dense(output)
        normaliser = feedback = None
        if s.loss == "cross_entropy":  # the readouts share exp(y) to normalise the softmax
            normaliser = Synapses(readout, readout, "norm_post = exp(y_pre) : 1 (summed)", dt=s.dt,
                                  name="normaliser")
            normaliser.connect()
        if not symmetric:
            feedback = Synapses(readout, cells, "b : 1\nL_post = b * err_pre : 1 (summed)", dt=s.dt,
                                name="feedback")
            connect_dense(feedback)
        return {"input": afferents, "recurrent": cells, "readout": readout, "forward": forward,
                "recurrent_pathway": recurrent, "output": output, "normaliser": normaliser, "feedback": feedback,
                "spikes": SpikeMonitor(cells, name="recurrent_spikes"),
                "sample_ends": self.sample_end_monitor(readout, ["loss", "score"], "readout_sample_ends"),
                "layers": [cells, readout]}

    def schedule(self, o: dict) -> Schedule:
        """Every object's place in the step (see the module docstring), one row each."""
        s = self.settings
        afferents, cells, readout, forward, recurrent, output = (
            o[name] for name in ("input", "recurrent", "readout", "forward", "recurrent_pathway", "output"))
        eligibility = ELIGIBILITY_ALIF if s.neuron == "alif" else ELIGIBILITY_LIF
        sample_end = ELIGIBLE_SAMPLE_END + ("eps = 0" if s.neuron == "alif" else "")
        surrogate_code = f"psi = {s.surrogate().brian('v', 'A', 'surrogate_width', 'surrogate_height')}"
        if o["feedback"] is None:
            learning_signal = output.summed_updaters["L_pre"]  # B = W^outᵀ
        else:
            learning_signal = o["feedback"].summed_updaters["L_post"]
        rows = [("groups", 0, group.state_updater) for group in (afferents, cells, readout)]
        rows += [
            ("groups", 1, afferents.thresholder["spike"]),
            ("groups", 2, afferents.resetter["spike"]),
            ("groups", 2, cells.thresholder["relay"]),  # before z is cleared (3)
            ("groups", 3, Every(cells, RECURRENT_AFTER_SPIKE, "recurrent_after_spike")),
            ("groups", 4, forward.pre),
            ("groups", 5, recurrent.pre),
            ("groups", 6, Every(cells, surrogate_code, "recurrent_pseudo_derivative")),
            ("groups", 7, cells.thresholder["spike"]),
            ("groups", 8, cells.resetter["spike"]),
            ("groups", 9, output.pre),
            ("groups", 11, Every(readout, READOUT_ERROR[s.loss], "readout_error")),
            ("groups", 12, learning_signal),
            ("groups", 13, Every(forward, eligibility, "input_eligibility")),
            ("groups", 14, Every(recurrent, eligibility, "recurrent_eligibility")),
            ("groups", 15, Every(output, READOUT_GRADIENT, "readout_gradient")),
            ("start", 0, Every(forward, sample_end, "input_sample_end", "sample")),
            ("start", 0, Every(recurrent, sample_end, "recurrent_sample_end", "sample")),
            *[("start", 1, Every(p, MINIBATCH_END, f"{p.name}_minibatch_end", "minibatch"))
              for p in (forward, recurrent, output)],
            ("start", 2, Every(cells, RECURRENT_SAMPLE_START, "recurrent_sample_start", "sample")),
            ("start", 2, Every(afferents, "zbar = 0", "afferent_sample_start", "sample")),
            ("start", 2, Every(readout, READOUT_SAMPLE_START, "readout_sample_start", "sample")),
        ]
        if o["normaliser"] is not None:
            rows.append(("groups", 10, o["normaliser"].summed_updaters["norm_post"]))
        return Schedule(rows)

    # ------------------------------------------------------------------------------ runs
    def state_variables(self) -> list[StateVariable]:
        """W^in, W^out, W^rec and B under their checkpoint names, and each pathway's η (a run value)."""
        n_in, H, K = self.settings.sizes
        declared = [StateVariable("weights_1", lambda o: o["forward"].w, Dense(H, n_in)),
                    StateVariable("weights_2", lambda o: o["output"].w, Dense(K, H)),
                    StateVariable("recurrent_weights_1", lambda o: o["recurrent_pathway"].w,
                                  Masked(self.settings.recurrent_mask)),
                    *[StateVariable(f"learning_rate_{name}", lambda o, key=key: o[key].learning_rate)
                      for name, key in (("input", "forward"), ("recurrent", "recurrent_pathway"),
                                        ("output", "output"))]]
        if self.settings.feedback != "symmetric":
            declared.append(StateVariable("feedback_1", lambda o: o["feedback"].b, Dense(H, K)))
        return declared

    def run_values(self, state: EpropState, input_spikes, targets, window, learning_rate: float) -> RunValues:
        s = self.settings
        n_in, H, K = s.sizes
        if learning_rate != 0 and self.samples_per_run % s.batch_size:
            raise ValueError(f"{self.samples_per_run} samples per run are not whole minibatches of {s.batch_size}: "
                             "the last one would never be applied")
        input_spikes = self.check_samples(input_spikes, n_in, "input_spikes")
        targets = self.check_samples(np.asarray(targets, dtype=np.float64), K, "targets")
        window = np.broadcast_to(np.asarray(window, dtype=np.float64), input_spikes.shape[:2])[..., None]
        tables = {"input_raster": self.table("input_raster", input_spikes, n_in),
                  "target": self.table("target", targets, K),
                  "error_window": self.table("error_window", window, 1)}
        rates = {f"learning_rate_{name}": float(learning_rate) for name in ("input", "recurrent", "output")}
        return self.values_of({**state_arrays(state), **rates}, tables)

    def run(self, state: EpropState, input_spikes, targets, window, learning_rate: float,
            learn: bool = True) -> RunResult:
        """Run ``samples`` samples ([N, T, n_in] of 0/1, targets y* [N, T, K], error mask m [T] or
        [N, T]) from ``state``, learning at rate η; ``learn=False`` evaluates (η = 0)."""
        rate = learning_rate if learn else 0.0
        objects = self.simulate(self.run_values(state, input_spikes, targets, window, rate))
        return self.read(objects, state)

    def read(self, o: dict, state: EpropState) -> RunResult:
        learned = self.read_state(o, ["weights_1", "weights_2", "recurrent_weights_1"])
        after = EpropState(learned["weights_1"], learned["recurrent_weights_1"], learned["weights_2"],
                           None if state.feedback is None else state.feedback.copy())
        ends = o["sample_ends"]
        return RunResult(after, self.at_sample_ends(ends.loss).sum(axis=1), self.at_sample_ends(ends.score),
                         self.spike_rasters(o["spikes"], self.settings.sizes[1]))
