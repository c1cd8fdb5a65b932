"""BioLeaF in plain numpy: the circuit's discrete equations.

:func:`run_circuit` is the microcircuit of docs/models/bioleaf.md step by step (pyramidal cells,
interneurons, the four synapse types, the plasticity rules), the reference the Brian2 network
(circuits/bioleaf/network.py) is tested against to 1e-9 in float64. Its update is compared with
the gradients of the global spiking error of the *network*, spatial backprop and BPTT
(:func:`apical.circuits.microcircuit.backprop`, :func:`~apical.circuits.microcircuit.bptt`):
BioLeaF's special circumstance makes the circuit's update equal to (η·c^{L−l} times) the spatial
gradient (docs/models/bioleaf.md, "The special circumstance, and why the update is then the
gradient").

Layers are 0-based here (``weights[l]`` is W^{l+1} of the docs, post × pre); interneuron layer m
sits in pyramidal layer m and mirrors layer m+1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apical.circuits.microcircuit import DiscreteParameters, LayerRecord, as_batch


@dataclass(frozen=True)
class LearningRates:
    """η of each plastic synapse type (0 switches that plasticity off)."""

    forward: float = 0.0  # η, W_PP and pyramidal biases
    interneuron: float = 0.0  # η_IP, W_IP and interneuron biases
    apical: float = 0.0  # η_PI, W_PI
    mirror: float = 0.0  # η_M, mirror STDP of B, W_IP and W_PI


@dataclass
class MicrocircuitRecord:
    """The interneurons (they mirror the layer above) and top-down synapses of one hidden layer."""

    spikes: np.ndarray  # [B, T, n_above] interneuron spikes
    soma: np.ndarray  # [B, T, n_above]
    weight_change: np.ndarray  # [B, n_above, n] ΔW_IP
    bias_change: np.ndarray  # [B, n_above] Δb^I
    apical_weight_change: np.ndarray  # [B, n, n_above] ΔW_PI
    feedback_change: np.ndarray  # [B, n, n_above] ΔB


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
    x, desired = as_batch(input_spikes, desired, params)
    W, b, B = state.weights, state.biases, state.feedback
    WIP, bI, WPI = state.interneuron_weights, state.interneuron_biases, state.apical_weights
    batch, T, _ = x.shape
    L = len(W)
    lam, theta, p = params.leak, params.threshold, params
    sizes = [w.shape[0] for w in W]
    teach = 1.0 if teaching else 0.0

    def per_cell(counts):
        return [np.zeros((batch, n)) for n in counts]

    def per_synapse(matrices):
        return [np.zeros((batch,) + w.shape) for w in matrices]

    inter_sizes = sizes[1:]  # the interneurons of layer m mirror pyramidal layer m+1
    v, s, g, A, eps_b, db = (per_cell(sizes) for _ in range(6))
    vI, sI, epsI_b, dbI = (per_cell(inter_sizes) for _ in range(4))
    eps, dW, epsI, dWIP, dB = per_synapse(W), per_synapse(W), per_synapse(WIP), per_synapse(WIP), per_synapse(B)
    epsPI, dWPI = per_synapse(WPI), per_synapse(WPI)  # epsPI: spikes of pyramidal i since interneuron k fired
    own, wanted = np.zeros((batch, sizes[-1])), np.zeros((batch, sizes[-1]))
    rec = {k: [np.zeros((batch, T, n)) for n in sizes] for k in ("spikes", "soma", "apical", "gate")}
    recI = {k: [np.zeros((batch, T, n)) for n in inter_sizes] for k in ("spikes", "soma")}

    for t in range(T):
        error_window = 1.0 if t >= p.error_start else 0.0
        pre = x[:, t]
        for l in range(L):
            nudge = p.nudging * A[l] if l == L - 1 else 0.0  # the output's apical error of step t−1
            v[l] = lam * v[l] * (1.0 - s[l]) + pre @ W[l].T + b[l] + nudge
            eps[l] = lam * (1.0 - s[l])[:, :, None] * eps[l] + pre[:, None, :]
            eps_b[l] = lam * (1.0 - s[l]) * eps_b[l] + 1.0
            s[l] = (v[l] > theta).astype(float)
            g[l] = p.pseudo_derivative.numpy(v[l], theta)
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
