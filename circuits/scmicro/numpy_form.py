"""The SC microcircuit's learning in batched numpy: the same equations, summed in another order.

circuits/scmicro/network.py is the model: every synapse carries its own eligibility trace, updated
on every step, as a Brian2 synapse would (docs/models/scmicro.md, eqs. 1–8). Over one sample the
change it accumulates is

    ΔW_ij = η · Σ_t G_i[t] · ε_ij[t],   G_i = g_i·A_i (gate times apical potential),
    ε_ij[t] = λ·(1 − s_i[t−1])·ε_ij[t−1] + x_j[t]          (the trace decays, a post spike clears it)

Unrolling ε and exchanging the two sums gives the same number from per-cell quantities only:

    ΔW_ij = η · Σ_τ H_i[τ] · x_j[τ],   H_i[τ] = G_i[τ] + λ·(1 − s_i[τ])·H_i[τ+1],  H_i[T] = 0
    Δb_i  = η · Σ_τ H_i[τ]

H runs backwards in time over the n_post cells, and ΔW is then one matrix product per layer,
(B·T × n_post)ᵀ·(B·T × n_pre), instead of n_post·n_pre trace updates per step. Nothing here is
biologically meaningful — a synapse cannot see the future — it is the same arithmetic, used for
fast sweeps of the learning rule's settings: the tests hold it to the step-by-step oracle
(circuits/scmicro/oracle.py) to 1e-9 in float64, and the oracle is held to the Brian2 network.
The forward pass (somata, spikes, the window g, the spiking error, bursts and apical compartments
top-down) is the oracle's, batched over the samples of one minibatch.

`NumpySCMicroNetwork.run` has the interface of `SCMicroNetwork.run`; `apical train` uses it for
``run.device = "numpy"`` (SC microcircuit only). Reported results come from the Brian2 circuit.
"""

from __future__ import annotations

import numpy as np

from apical.circuits.microcircuit import desired_spikes, output_error
from apical.circuits.scmicro.network import RunResult, SCMicroSettings, SCMicroState

__all__ = ["NumpySCMicroNetwork", "minibatch_changes"]

EVALUATION_BATCH = 500  # samples per forward pass without learning (bounds memory, not results)


def minibatch_changes(weights, biases, feedback, input_spikes, desired, params, learning_rate, teaching=True,
                      learn=True):
    """Output spike counts [B, n_out] of B samples (each from rest, weights fixed) and, if ``learn``,
    the summed changes η·Σ_samples ΔW^l and η·Σ_samples Δb^l they ask for. Arrays keep the dtype of
    ``input_spikes``; ``params`` are the discrete constants (``SCMicroSettings.discrete()``)."""
    x = input_spikes
    dtype = x.dtype.type
    batch, T, _ = x.shape
    L = len(weights)
    lam = dtype(params.leak)
    sizes = [W.shape[0] for W in weights]
    v = [np.zeros((batch, n), x.dtype) for n in sizes]
    s = [np.zeros((batch, n), x.dtype) for n in sizes]
    A = [np.zeros((batch, n), x.dtype) for n in sizes]
    spikes = [np.zeros((batch, T, n), x.dtype) for n in sizes]
    gates = [np.zeros((batch, T, n), x.dtype) for n in sizes] if learn else None
    own = np.zeros((batch, sizes[-1]), x.dtype)
    wanted = np.zeros_like(own)
    first_drive = (x.reshape(batch * T, -1) @ weights[0].T).reshape(batch, T, -1)  # W¹·x for every step at once
    teach = 1.0 if teaching else 0.0
    for t in range(T):
        g = []
        pre = None
        for l in range(L):
            drive = first_drive[:, t] if l == 0 else pre @ weights[l].T
            nudge = params.nudging * A[l] if (l == L - 1 and params.nudging) else 0.0  # A of step t−1
            v[l] = lam * v[l] * (1 - s[l]) + drive + biases[l] + nudge
            s[l] = (v[l] > params.threshold).astype(x.dtype)
            g.append(params.pseudo_derivative.numpy(v[l], params.threshold).astype(x.dtype))
            spikes[l][:, t] = s[l]
            pre = s[l]
        own = params.psp_leak * own + s[-1]
        wanted = params.psp_leak * wanted + desired[:, t]
        A[-1] = ((teach * (t >= params.error_start)) * output_error(wanted, own, params)[0]).astype(x.dtype)
        for m in reversed(range(L - 1)):  # bursts of layer m+1 reach the apical compartments of layer m
            A[m] = params.apical_leak * A[m] + (params.burst_gain * g[m + 1] * A[m + 1]) @ feedback[m].T
        if learn:
            for l in range(L):
                gates[l][:, t] = g[l] * A[l]
    counts = spikes[-1].sum(axis=1)
    if not learn:
        return counts, None, None
    weight_changes, bias_changes = [], []
    for l in range(L):
        H = np.empty_like(gates[l])
        H[:, T - 1] = gates[l][:, T - 1]
        for t in range(T - 2, -1, -1):  # H[t] = G[t] + λ·(1 − s[t])·H[t+1]
            H[:, t] = gates[l][:, t] + lam * (1 - spikes[l][:, t]) * H[:, t + 1]
        presynaptic = x if l == 0 else spikes[l - 1]
        weight_changes.append(dtype(learning_rate) * (H.reshape(batch * T, -1).T @ presynaptic.reshape(batch * T, -1)))
        bias_changes.append(dtype(learning_rate) * H.sum(axis=(0, 1)))
    return counts, weight_changes, bias_changes


class NumpySCMicroNetwork:
    """`SCMicroNetwork`'s runs computed by :func:`minibatch_changes`: samples in order, W and b
    moved by each minibatch's mean change, every connection's sign kept (a magnitude stops at 0)."""

    compile_seconds = 0.0

    def __init__(self, settings: SCMicroSettings, connection_types, samples_per_run: int, precision: str = "float32",
                 transposed_feedback: bool = False):
        self.settings = settings
        # True: B = Wᵀ of the layer above before every minibatch (spatial backprop of the spiking
        # error under the same sign bound), a reference for the sign-concordant feedback
        self.transposed_feedback = transposed_feedback
        self.params = settings.discrete()
        self.samples_per_run = samples_per_run
        self.dtype = {"float32": np.float32, "float64": np.float64}[precision]
        self.connection_types = [np.asarray(kind, dtype=self.dtype) for kind in connection_types]

    def run(self, state: SCMicroState, input_spikes, labels=None, learning_rate: float = 0.0, teaching: bool = True,
            desired=None, learn: bool = True) -> RunResult:
        s = self.settings
        state.check(built_for=self.connection_types)
        x = np.asarray(input_spikes, dtype=self.dtype)
        if x.shape != (self.samples_per_run, s.time_steps, s.sizes[0]):
            raise ValueError(f"input spikes {x.shape} must be [{self.samples_per_run}, {s.time_steps}, {s.sizes[0]}]")
        if desired is None:
            desired = (desired_spikes(labels, s.sizes[-1], s.time_steps, s.error_start, s.desired_interval)
                       if teaching else np.zeros((len(x), s.time_steps, s.sizes[-1])))
        desired = np.asarray(desired, dtype=self.dtype)
        weights = [np.array(W, dtype=self.dtype) for W in state.weights]
        biases = [np.array(b, dtype=self.dtype) for b in state.biases]
        feedback = [np.array(B, dtype=self.dtype) for B in state.feedback]
        learn = learn and teaching  # the rule learns from a presented target only
        step = s.batch_size if learn else EVALUATION_BATCH
        counts = []
        for start in range(0, len(x), step):
            batch = slice(start, start + step)
            if self.transposed_feedback:
                feedback = [np.ascontiguousarray(W.T) for W in weights[1:]]
            c, dW, db = minibatch_changes(weights, biases, feedback, x[batch], desired[batch], self.params,
                                          learning_rate, teaching, learn)
            counts.append(c)
            if learn:
                n = len(c)
                for l, kind in enumerate(self.connection_types):
                    weights[l] = kind * np.maximum(kind * (weights[l] + dW[l] / n), 0)
                    biases[l] = biases[l] + db[l] / n
        new_state = SCMicroState([W.astype(np.float64) for W in weights], [b.astype(np.float64) for b in biases],
                                 [np.array(B, dtype=np.float64) for B in state.feedback],
                                 [np.array(kind) for kind in state.connection_types])
        return RunResult(state=new_state, output_counts=np.concatenate(counts).astype(np.int64))
