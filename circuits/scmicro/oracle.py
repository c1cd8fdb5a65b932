"""The SC microcircuit in plain numpy: its discrete equations, and sign-concordant FA.

Two independent things live here, both in plain numpy (docs/models/scmicro.md):

1. :func:`run_circuit` — the microcircuit of circuits/scmicro/network.py step by step, written in the
   *effective* weights it implements (W = W⁺ − W⁻, B = ±R), the reference the Brian2 network is
   tested against to 1e-9 in float64:

       v^l[t] = λ·v^l[t−1]·(1 − s^l[t−1]) + W^l·s^{l−1}[t] + b^l (+ β·A^L[t−1] at the output),
       s = 1[v > θ],  g = γ·1[|v − θ| < w]
       A^L[t] = [t ≥ t0]·(d[t] − o[t])                              the global spiking error
                (or [t ≥ t0]·(y − softmax(κ·o[t])) with output_error = "softmax")
       b^l[t] = c·g^l[t]·A^l[t]                                      bursts (plus an optional probe)
       A^l[t] = λ_a·A^l[t−1] + B^l·b^{l+1}[t]                         apical compartment, l < L
       ΔW^l = η·Σ_t (g^l·A^l)[t] ⊗ ε^l[t],  Δb^l = η·Σ_t (g^l·A^l)[t]·ε^{b,l}[t]

   and, over a training run, each minibatch's mean change applied with the connection's sign
   kept: W ← sign·max(sign·(W + ΔW), 0) (:func:`train_sequential`).
2. Sign-concordant feedback alignment of the spiking error, for comparison (Liao, Leibo &
   Poggio 2016): spatial backprop of the spiking error (:func:`apical.circuits.microcircuit.backprop`)
   with B^l in place of (W^{l+1})ᵀ — :func:`sign_concordant_fa`; with B = Wᵀ it is backprop itself.

Layers are 0-based (``weights[l]`` is W^{l+1} of the docs, post × pre; ``feedback[m]`` is the
n_m × n_{m+1} matrix that carries the bursts of layer m+1 to the apical compartments of layer m).
"""

from __future__ import annotations

import numpy as np

from apical.circuits.microcircuit import DiscreteParameters, LayerRecord, backprop, output_error

__all__ = ["run_circuit", "train_sequential", "sign_concordant_fa", "keep_signs"]


def _check(input_spikes, desired, params):
    x = np.asarray(input_spikes, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    if x.ndim != 3 or x.shape[1] != params.time_steps or desired.shape[:2] != x.shape[:2]:
        raise ValueError(f"input {x.shape} and desired {desired.shape} must be [B, T={params.time_steps}, n]")
    return x, desired


def run_circuit(weights, biases, feedback, input_spikes, desired, params: DiscreteParameters,
                learning_rate: float, teaching: bool = True, burst_probe=None) -> list[LayerRecord]:
    """The SC microcircuit over a batch of samples, each from zero state, weights fixed within the
    batch; returns per layer what it did and the change of its effective weights W each sample asks
    for. ``burst_probe[l]`` ([B, T, n_l], or None) is added to the bursts of layer l (l ≥ 1)."""
    x, desired = _check(input_spikes, desired, params)
    batch, T, _ = x.shape
    L = len(weights)
    sizes = [W.shape[0] for W in weights]
    lam, p = params.leak, params
    teach = 1.0 if teaching else 0.0
    v = [np.zeros((batch, n)) for n in sizes]
    s = [np.zeros((batch, n)) for n in sizes]
    A = [np.zeros((batch, n)) for n in sizes]
    eps = [np.zeros((batch,) + W.shape) for W in weights]
    eps_b = [np.zeros((batch, n)) for n in sizes]
    own = np.zeros((batch, sizes[-1]))
    wanted = np.zeros((batch, sizes[-1]))
    rec = {k: [np.zeros((batch, T, n)) for n in sizes] for k in ("spikes", "soma", "apical", "gate")}
    dW = [np.zeros((batch,) + W.shape) for W in weights]
    db = [np.zeros((batch, n)) for n in sizes]
    for t in range(T):
        window = 1.0 if t >= p.error_start else 0.0
        pre = x[:, t]
        g = []
        for l in range(L):
            nudge = p.nudging * A[l] if l == L - 1 else 0.0  # the teacher's somatic drive: the output's error of step t−1
            v[l] = lam * v[l] * (1.0 - s[l]) + pre @ weights[l].T + biases[l] + nudge
            eps[l] = lam * (1.0 - s[l])[:, :, None] * eps[l] + pre[:, None, :]
            eps_b[l] = lam * (1.0 - s[l]) * eps_b[l] + 1.0
            s[l] = (v[l] > p.threshold).astype(float)
            g.append(p.pseudo_derivative.numpy(v[l], p.threshold))
            rec["spikes"][l][:, t], rec["soma"][l][:, t] = s[l], v[l]
            pre = s[l]
        own = p.psp_leak * own + s[-1]
        wanted = p.psp_leak * wanted + desired[:, t]
        A[-1] = teach * window * output_error(wanted, own, p)[0]
        for m in reversed(range(L - 1)):  # bursts of layer m+1 reach the apical compartments of layer m
            burst = p.burst_gain * g[m + 1] * A[m + 1]
            if burst_probe is not None and burst_probe[m + 1] is not None:
                burst = burst + burst_probe[m + 1][:, t]
            A[m] = p.apical_leak * A[m] + burst @ feedback[m].T
        for l in range(L):
            gate = g[l] * A[l]
            rec["apical"][l][:, t], rec["gate"][l][:, t] = A[l], gate
            dW[l] += learning_rate * gate[:, :, None] * eps[l]
            db[l] += learning_rate * gate * eps_b[l]
    return [LayerRecord(rec["spikes"][l], rec["soma"][l], rec["apical"][l], rec["gate"][l], dW[l], db[l])
            for l in range(L)]


def keep_signs(W, connection_types):
    """A connection's magnitude is bounded at zero and never changes sign (Dale's law):
    sign·max(sign·W, 0), with sign = +1 for direct, −1 for PV-relayed connections."""
    return connection_types * np.maximum(connection_types * W, 0.0)


def train_sequential(weights, biases, feedback, connection_types, input_spikes, desired,
                     params: DiscreteParameters, learning_rate: float, batch_size: int = 1):
    """Samples in order, W and b moved by their mean change once per minibatch, W with its signs
    kept. Returns new (weights, biases) and the output spike counts [N, n_out]."""
    weights = [np.array(W, dtype=np.float64) for W in weights]
    biases = [np.array(b, dtype=np.float64) for b in biases]
    counts = []
    for start in range(0, len(input_spikes), batch_size):
        stop = start + batch_size
        layers = run_circuit(weights, biases, feedback, input_spikes[start:stop], desired[start:stop], params,
                             learning_rate)
        counts.append(layers[-1].spikes.sum(axis=1))
        for l, record in enumerate(layers):
            weights[l] = keep_signs(weights[l] + record.weight_change.sum(axis=0) / batch_size, connection_types[l])
            biases[l] = biases[l] + record.bias_change.sum(axis=0) / batch_size
    return weights, biases, np.concatenate(counts)


def sign_concordant_fa(weights, biases, feedback, input_spikes, desired, params: DiscreteParameters):
    """−∂E/∂W and −∂E/∂b of sign-concordant FA (spatial; the error descends through B^l), summed
    over the batch, and E."""
    return backprop(weights, biases, input_spikes, desired, params, feedback=feedback)
