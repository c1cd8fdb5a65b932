"""BioLeaF in plain numpy: the circuit's discrete equations, and backprop of the spiking error.

Two independent things live here, both free of Brian2:

1. :func:`run_circuit` — the microcircuit of docs/models/bioleaf.md step by step (pyramidal
   cells, interneurons, the four synapse types, the plasticity rules), the reference the Brian2
   network (circuits/bioleaf.py) is tested against to 1e-9 in float64.
2. :func:`backprop` and :func:`bptt` — gradients of the global spiking error of the *network*
   (no interneurons, no apical compartments, no bursts: explicit Wᵀ·δ):

       E = ½·Σ_{t ≥ t0} Σ_k (d_k[t] − o_k[t])²,   o[t] = λ_o·o[t−1] + s^L[t],  d likewise from the
       desired spike train (the TSSL-BP kind of loss: output and desired spike trains through a PSP kernel)

   with the rectangular pseudo-derivative ∂s/∂v = g = γ·1[|v − θ| < w] and the reset treated as
   a constant. :func:`bptt` is the full gradient through time. :func:`backprop` is its spatial
   part: at each step the error goes down the layers through Wᵀ (δ^L[t] = g^L[t]·(d − o)[t],
   δ^l[t] = g^l[t]·(W^{l+1})ᵀ·δ^{l+1}[t]) and each weight collects Σ_t δ_i[t]·ε_ij[t], where ε_ij is
   the input since neuron i's last spike (exactly ∂v_i[t]/∂W_ij); it leaves out the paths by which
   a spike at t changes o and the upper membranes at later steps. BioLeaF's special
   circumstance makes the circuit's update equal to (η·c^{L−l} times) this spatial gradient.

Layers are 0-based here (``weights[l]`` is W^{l+1} of the docs, post × pre); interneuron layer m
sits in pyramidal layer m and mirrors layer m+1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DiscreteParameters:
    """The discrete constants of one BioLeaF network (defaults: BioGrad's soma, T = 20, t0 = 5)."""

    leak: float = 0.3  # λ, soma decay per step
    threshold: float = 0.3  # θ
    window: float = 0.3  # w
    gamma: float = 1.0  # γ
    apical_leak: float = float(np.exp(-5.0))  # λ_a (τ_a = 1 ms at dt = 5 ms)
    psp_leak: float = float(np.exp(-1.0))  # λ_o (τ_psp = 5 ms at dt = 5 ms)
    burst_gain: float = 1.0  # c
    nudging: float = 0.0  # β
    time_steps: int = 20  # T
    error_start: int = 5  # t0
    output_error: str = "kernel_mse"  # the global spiking error: "kernel_mse" or "softmax" (output_error())
    error_gain: float = 2.0  # κ of the "softmax" error


OUTPUT_ERRORS = ("kernel_mse", "softmax")


def output_error(wanted, own, params: DiscreteParameters):
    """The output cells' error of one step, before the window and the teaching flag: −∂E/∂o[t].

    ``wanted`` and ``own`` are the desired and the own spike trains through the PSP kernel,
    d[t] and o[t] ([B, n_out]). "kernel_mse": d − o, for E = ½·Σ_t ‖d[t] − o[t]‖².
    "softmax": y − softmax(κ·o[t]), for E = −(1/κ)·Σ_t log softmax(κ·o[t])_y, where y marks the
    cell whose desired train has begun (d > 0: the labelled cell from its first desired spike on).
    Returns (error, loss of the step)."""
    if params.output_error == "kernel_mse":
        error = wanted - own
        return error, 0.5 * (error**2).sum(axis=-1)
    if params.output_error == "softmax":
        logits = params.error_gain * own
        logits = logits - logits.max(axis=-1, keepdims=True)
        probability = np.exp(logits)
        probability /= probability.sum(axis=-1, keepdims=True)
        labelled = (wanted > 0).astype(own.dtype)
        loss = -(labelled * np.log(probability)).sum(axis=-1) / params.error_gain
        return labelled - probability, loss
    raise ValueError(f"output_error must be one of {OUTPUT_ERRORS}, got {params.output_error!r}")


@dataclass(frozen=True)
class LearningRates:
    """η of each plastic synapse type (0 switches that plasticity off)."""

    forward: float = 0.0  # η, W_PP and pyramidal biases
    interneuron: float = 0.0  # η_IP, W_IP and interneuron biases
    apical: float = 0.0  # η_PI, W_PI
    mirror: float = 0.0  # η_M, mirror STDP of B, W_IP and W_PI


@dataclass
class LayerRecord:
    """One pyramidal layer during a batch of samples (leading axis: sample, then step)."""

    spikes: np.ndarray  # [B, T, n]
    soma: np.ndarray  # [B, T, n] v after the threshold test, before the reset
    apical: np.ndarray  # [B, T, n] A
    plasticity_gate: np.ndarray  # [B, T, n] g·A
    weight_change: np.ndarray  # [B, n, n_pre] ΔW of each sample
    bias_change: np.ndarray  # [B, n]


@dataclass
class MicrocircuitRecord:
    """The interneurons (they mirror the layer above) and top-down synapses of one hidden layer."""

    spikes: np.ndarray  # [B, T, n_above] interneuron spikes
    soma: np.ndarray  # [B, T, n_above]
    weight_change: np.ndarray  # [B, n_above, n] ΔW_IP
    bias_change: np.ndarray  # [B, n_above] Δb^I
    apical_weight_change: np.ndarray  # [B, n, n_above] ΔW_PI
    feedback_change: np.ndarray  # [B, n, n_above] ΔB


def desired_spikes(labels, n_out: int, time_steps: int, error_start: int, interval: int = 1) -> np.ndarray:
    """Desired output spike trains [B, T, n_out]: the labelled unit fires every ``interval`` steps
    from t0 on, the others stay silent."""
    labels = np.atleast_1d(np.asarray(labels, dtype=int))
    desired = np.zeros((len(labels), time_steps, n_out))
    steps = np.arange(error_start, time_steps, interval)
    desired[np.arange(len(labels))[:, None], steps[None, :], labels[:, None]] = 1.0
    return desired


def _check(input_spikes, desired, params):
    input_spikes = np.asarray(input_spikes, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    if input_spikes.ndim == 2:
        input_spikes, desired = input_spikes[None], desired[None] if desired.ndim == 2 else desired
    if input_spikes.shape[1] != params.time_steps or desired.shape[:2] != input_spikes.shape[:2]:
        raise ValueError(f"input {input_spikes.shape} and desired {desired.shape} must be [B, T={params.time_steps}, n]")
    return input_spikes, desired


def run_circuit(state, input_spikes, desired, params: DiscreteParameters, rates: LearningRates,
                teaching: bool = True) -> tuple[list[LayerRecord], list[MicrocircuitRecord]]:
    """The BioLeaF microcircuit over a batch of samples, each from zero state, weights fixed
    within the batch; returns what every layer did and the changes each sample asks for.

    ``state`` has ``weights``, ``biases``, ``feedback`` (B^m: n_m × n_{m+1}),
    ``interneuron_weights`` (W_IP^m: n_{m+1} × n_m), ``interneuron_biases`` and ``apical_weights``
    (W_PI^m: n_m × n_{m+1}).
    """
    if params.output_error != "kernel_mse":
        raise ValueError("the BioLeaF circuit computes the kernel_mse spiking error only")
    x, desired = _check(input_spikes, desired, params)
    W, b, B = state.weights, state.biases, state.feedback
    WIP, bI, WPI = state.interneuron_weights, state.interneuron_biases, state.apical_weights
    batch, T, _ = x.shape
    L = len(W)
    lam, theta, p = params.leak, params.threshold, params
    sizes = [w.shape[0] for w in W]
    teach = 1.0 if teaching else 0.0

    v = [np.zeros((batch, n)) for n in sizes]
    s = [np.zeros((batch, n)) for n in sizes]
    g = [np.zeros((batch, n)) for n in sizes]
    A = [np.zeros((batch, n)) for n in sizes]
    eps = [np.zeros((batch,) + w.shape) for w in W]
    eps_b = [np.zeros((batch, n)) for n in sizes]
    vI = [np.zeros((batch, sizes[m + 1])) for m in range(L - 1)]
    sI = [np.zeros((batch, sizes[m + 1])) for m in range(L - 1)]
    epsI = [np.zeros((batch,) + w.shape) for w in WIP]
    epsI_b = [np.zeros((batch, sizes[m + 1])) for m in range(L - 1)]
    epsPI = [np.zeros((batch,) + w.shape) for w in WPI]  # spikes of pyramidal i since interneuron k fired
    own = np.zeros((batch, sizes[-1]))
    wanted = np.zeros((batch, sizes[-1]))
    rec = {k: [np.zeros((batch, T, n)) for n in sizes] for k in ("spikes", "soma", "apical", "gate")}
    recI = {k: [np.zeros((batch, T, sizes[m + 1])) for m in range(L - 1)] for k in ("spikes", "soma")}
    dW = [np.zeros((batch,) + w.shape) for w in W]
    db = [np.zeros((batch, n)) for n in sizes]
    dWIP = [np.zeros((batch,) + w.shape) for w in WIP]
    dbI = [np.zeros((batch, sizes[m + 1])) for m in range(L - 1)]
    dWPI = [np.zeros((batch,) + w.shape) for w in WPI]
    dB = [np.zeros((batch,) + w.shape) for w in B]

    for t in range(T):
        error_window = 1.0 if t >= p.error_start else 0.0
        pre = x[:, t]
        for l in range(L):
            nudge = p.nudging * A[l] if l == L - 1 else 0.0  # the output's apical error of step t−1
            v[l] = lam * v[l] * (1.0 - s[l]) + pre @ W[l].T + b[l] + nudge
            eps[l] = lam * (1.0 - s[l])[:, :, None] * eps[l] + pre[:, None, :]
            eps_b[l] = lam * (1.0 - s[l]) * eps_b[l] + 1.0
            s[l] = (v[l] > theta).astype(float)
            g[l] = p.gamma * (np.abs(v[l] - theta) < p.window)
            rec["spikes"][l][:, t], rec["soma"][l][:, t] = s[l], v[l]
            if l < L - 1:  # this layer's interneurons, driven by its spikes of this step
                vI[l] = lam * vI[l] * (1.0 - sI[l]) + s[l] @ WIP[l].T + bI[l]
                epsI[l] = lam * (1.0 - sI[l])[:, :, None] * epsI[l] + s[l][:, None, :]
                epsI_b[l] = lam * (1.0 - sI[l]) * epsI_b[l] + 1.0
                epsPI[l] = lam * (1.0 - sI[l])[:, None, :] * epsPI[l] + s[l][:, :, None]
                sI[l] = (vI[l] > theta).astype(float)
                recI["spikes"][l][:, t], recI["soma"][l][:, t] = sI[l], vI[l]
            pre = s[l]
        own = p.psp_leak * own + s[-1]
        wanted = p.psp_leak * wanted + desired[:, t]
        A[-1] = teach * error_window * (wanted - own)
        for m in reversed(range(L - 1)):  # top-down: spikes and bursts of layer m+1, interneuron spikes
            burst = p.burst_gain * g[m + 1] * A[m + 1]
            A[m] = p.apical_leak * A[m] + (s[m + 1] + burst) @ B[m].T + sI[m] @ WPI[m].T
            dWPI[m] += -rates.apical * (1.0 - teach * error_window) * A[m][:, :, None] * sI[m][:, None, :]
            partner_gate = burst / p.burst_gain  # g·A of the partner above, relayed with its burst
            signal = rates.interneuron * (s[m + 1] - sI[m]) + rates.mirror * partner_gate
            dWIP[m] += signal[:, :, None] * epsI[m]
            dbI[m] += signal * epsI_b[m]
            dWPI[m] += -rates.mirror * partner_gate[:, None, :] * epsPI[m]
        for l in range(L):
            gate = g[l] * A[l]
            rec["apical"][l][:, t], rec["gate"][l][:, t] = A[l], gate
            dW[l] += rates.forward * gate[:, :, None] * eps[l]
            db[l] += rates.forward * gate * eps_b[l]
            if l > 0:  # mirror STDP of the top-down synapses into layer l−1
                dB[l - 1] += rates.mirror * (gate[:, :, None] * eps[l]).transpose(0, 2, 1)

    layers = [LayerRecord(rec["spikes"][l], rec["soma"][l], rec["apical"][l], rec["gate"][l], dW[l], db[l])
              for l in range(L)]
    interneurons = [MicrocircuitRecord(recI["spikes"][m], recI["soma"][m], dWIP[m], dbI[m], dWPI[m], dB[m])
                    for m in range(L - 1)]
    return layers, interneurons


def _forward(weights, biases, x, params):
    """The plain network step by step: yields, per step, each layer's spikes, pseudo-derivative
    and reset-aware input traces ε (per synapse) and ε^b."""
    batch = x.shape[0]
    v = [np.zeros((batch, w.shape[0])) for w in weights]
    s = [np.zeros((batch, w.shape[0])) for w in weights]
    eps = [np.zeros((batch,) + w.shape) for w in weights]
    eps_b = [np.zeros((batch, w.shape[0])) for w in weights]
    for t in range(x.shape[1]):
        pre = x[:, t]
        g = []
        for l, (W, b) in enumerate(zip(weights, biases)):
            v[l] = params.leak * v[l] * (1.0 - s[l]) + pre @ W.T + b
            eps[l] = params.leak * (1.0 - s[l])[:, :, None] * eps[l] + pre[:, None, :]
            eps_b[l] = params.leak * (1.0 - s[l]) * eps_b[l] + 1.0
            s[l] = (v[l] > params.threshold).astype(float)
            g.append(params.gamma * (np.abs(v[l] - params.threshold) < params.window))
            pre = s[l]
        yield s, g, eps, eps_b


class _SpikingError:
    """E = Σ_{t≥t0} of the step's loss (``output_error``: ½·‖d[t] − o[t]‖² by default), accumulated
    step by step; ``step`` returns −∂E/∂o[t] on the window ((d − o)[t] by default)."""

    def __init__(self, desired, params):
        self.desired, self.params = desired, params
        self.o = self.d = 0.0
        self.loss = 0.0

    def step(self, t, output_spikes):
        self.o = self.params.psp_leak * self.o + output_spikes
        self.d = self.params.psp_leak * self.d + self.desired[:, t]
        if t < self.params.error_start:
            return np.zeros_like(self.d - self.o)
        error, loss = output_error(self.d, self.o, self.params)
        self.loss += float(loss.sum())
        return error


def backprop(weights, biases, input_spikes, desired, params: DiscreteParameters, feedback=None):
    """Spatial backprop of the spiking error: per layer −∂E/∂W and −∂E/∂b summed over the
    batch, and E. At every step the error descends through Wᵀ (see the module docstring), so it
    is computed alongside the forward pass. With ``feedback`` (B^l, n_l × n_{l+1}, one per hidden
    layer) the error descends through B^l instead of (W^{l+1})ᵀ: feedback alignment (Lillicrap et
    al. 2016), sign-concordant when sign(B) = sign(Wᵀ) (Liao, Leibo & Poggio 2016)."""
    x, desired = _check(input_spikes, desired, params)
    spiking_error = _SpikingError(desired, params)
    descent_W = [np.zeros_like(w) for w in weights]
    descent_b = [np.zeros_like(b) for b in biases]
    for t, (s, g, eps, eps_b) in enumerate(_forward(weights, biases, x, params)):
        upstream = spiking_error.step(t, s[-1])  # −∂E/∂s^L[t], the step's own term
        for l in reversed(range(len(weights))):
            delta = g[l] * upstream
            descent_W[l] += np.einsum("bi,bij->ij", delta, eps[l])
            descent_b[l] += (delta * eps_b[l]).sum(axis=0)
            upstream = delta @ (weights[l] if feedback is None or l == 0 else feedback[l - 1].T)
    return descent_W, descent_b, spiking_error.loss


def bptt(weights, biases, input_spikes, desired, params: DiscreteParameters):
    """Full backprop through time of the same loss, same pseudo-derivative, reset as a constant:
    −∂E/∂W, −∂E/∂b per layer (summed over the batch) and E."""
    x, desired = _check(input_spikes, desired, params)
    spiking_error = _SpikingError(desired, params)
    S, G, error = [], [], []
    for t, (s, g, _, _) in enumerate(_forward(weights, biases, x, params)):
        S.append([a.copy() for a in s])
        G.append(g)
        error.append(spiking_error.step(t, s[-1]))
    inputs = [[x[:, t]] + S[t][:-1] for t in range(x.shape[1])]
    descent_W = [np.zeros_like(w) for w in weights]
    descent_b = [np.zeros_like(b) for b in biases]
    kernel_adjoint = np.zeros_like(error[0])  # −∂E/∂s^L[t] through o[t'] for every t' ≥ t
    membrane_adjoint = [np.zeros_like(a) for a in S[0]]  # −∂E/∂v^l[t+1]
    for t in reversed(range(x.shape[1])):
        kernel_adjoint = params.psp_leak * kernel_adjoint + error[t]
        upstream = kernel_adjoint
        for l in reversed(range(len(weights))):
            survive = params.leak * (1.0 - S[t][l])
            membrane_adjoint[l] = G[t][l] * upstream + survive * membrane_adjoint[l]
            descent_W[l] += membrane_adjoint[l].T @ inputs[t][l]
            descent_b[l] += membrane_adjoint[l].sum(axis=0)
            upstream = membrane_adjoint[l] @ weights[l]
    return descent_W, descent_b, spiking_error.loss


def train_sequential(state, input_spikes, desired, params: DiscreteParameters, rates: LearningRates,
                     batch_size: int = 1, teaching: bool = True):
    """Samples in order, every plastic weight moved by its mean change once per minibatch.
    Returns the new state (a copy) and the output spike counts [N, n_out]."""
    state = state.copy()
    counts = []
    plastic = (("weights", "weight_change", 0), ("biases", "bias_change", 0),
               ("interneuron_weights", "weight_change", 1), ("interneuron_biases", "bias_change", 1),
               ("apical_weights", "apical_weight_change", 1), ("feedback", "feedback_change", 1))
    for start in range(0, len(input_spikes), batch_size):
        stop = start + batch_size
        records = run_circuit(state, input_spikes[start:stop], desired[start:stop], params, rates, teaching)
        counts.append(records[0][-1].spikes.sum(axis=1))
        for group, change, which in plastic:
            for array, record in zip(getattr(state, group), records[which]):
                array += getattr(record, change).sum(axis=0) / batch_size
    return state, np.concatenate(counts)
