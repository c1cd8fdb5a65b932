"""e-prop in numpy, step by step and synapse by synapse: the test oracle of the Brian2 network.

A literal transcription of docs/models/eprop.md (Bellec et al. 2020, Methods, eqs. 1–3, 13–14,
22–25, 29–30 in the discrete form NEST's ``*_bsshslm_2020`` models use): every per-synapse
quantity (eligibility vector ε, eligibility trace e, its low-pass ē, the gradient) is an array
[M, post, pre] updated at every step, for the M samples of a minibatch at once (weights change
only at the minibatch's end, so its samples are independent). Step t of a sample, t = 0 … T−1:

    v_j ← α·v_j + ζ·(Σ_i W^in_ji x_i[t] + Σ_i W^rec_ji z_i[t−1]) − v_th·z_j[t−1]
    a_j ← ρ·a_j + z_j[t−1];  A_j = v_th + β·a_j                       (ALIF; LIF: β = 0)
    ψ_j = surrogate(v_j − A_j);  z_j[t] = 1[v_j ≥ A_j]
    y_k ← κ·y_k + ζ_o·Σ_j W^out_kj z_j[t]
    err_k = m[t]·(π_k − y*_k[t])   (π = softmax(y) or y)
    L_j = Σ_k B_jk err_k           (B = W^outᵀ, or fixed random)
    z̄_i ← α·z̄_i + ζ·(presynaptic spike arriving at t)
    e_ji = ψ_j·(z̄_i − β·ε_ji);  ε_ji ← ρ·ε_ji + e_ji;  ē_ji ← κ·ē_ji + ζ_o·e_ji
    g_ji += L_j·ē_ji;  Σe_ji += e_ji;  g^out_kj += err_k·z̄^out_j  (z̄^out ← κ·z̄^out + ζ_o·z_j[t])

At the sample's end g_ji += c_reg·(f_j − f*)/T·Σe_ji (f_j = spikes of j / T, f* the target rate per
step); at the minibatch's end W ← W − η·Σ_samples g / M.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apical.circuits.eprop.network import EpropSettings, EpropState


@dataclass
class OracleResult:
    """What a run of samples produced."""

    state: EpropState  # the weights after the run
    loss: np.ndarray  # [N] Σ_t m[t]·loss_t per sample (½Σ(y − y*)² or −Σ y*·log π)
    scores: np.ndarray  # [N, K] Σ_t m[t]·π_k[t]: what the readout says (its argmax decodes a class)
    spikes: np.ndarray  # [N, T, H] recurrent spikes
    readout: np.ndarray  # [N, T, K] readout potentials y
    gradients: list  # per minibatch: (g_in, g_rec, g_out) summed over its samples


def readout_error(y: np.ndarray, target: np.ndarray, window: np.ndarray, loss: str):
    """(err, per-step loss, π) for readout potentials y [M, K], targets [M, K] and mask m [M]."""
    if loss == "cross_entropy":
        shifted = np.exp(y)
        pi = shifted / shifted.sum(axis=1, keepdims=True)
        step_loss = -(window[:, None] * target * np.log(pi)).sum(axis=1)
    else:
        pi = y
        step_loss = 0.5 * (window[:, None] * (y - target) ** 2).sum(axis=1)
    return window[:, None] * (pi - target), step_loss, pi


def run(state: EpropState, input_spikes, targets, window, settings: EpropSettings,
        learning_rate: float) -> OracleResult:
    """Run the samples ([N, T, n_in] of 0/1, targets [N, T, K], error mask [N, T]) from ``state``,
    learning at rate η, a minibatch of ``settings.batch_size`` samples at a time."""
    s = settings
    x_all = np.asarray(input_spikes, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    window = np.broadcast_to(np.asarray(window, dtype=np.float64), x_all.shape[:2])
    N, T, n_in = x_all.shape
    H, K, M = s.sizes[1], s.sizes[2], s.batch_size
    if N % M and learning_rate != 0:
        raise ValueError(f"{N} samples are not whole minibatches of {M}: the last one would never be applied")
    surrogate = s.surrogate()
    alpha, rho, kappa = s.alpha, s.rho, s.kappa
    zeta, zeta_out, beta, v_th = s.zeta, s.zeta_out, s.beta_effective, s.threshold
    state = state.copy()
    loss, scores = np.zeros(N), np.zeros((N, K))
    spikes, readout = np.zeros((N, T, H)), np.zeros((N, T, K))
    gradients = []
    for start in range(0, N, M):
        x = x_all[start:start + M]
        m = len(x)  # M, or fewer in a last minibatch run without learning
        W_in, W_rec, W_out = state.input_weights, state.recurrent_weights, state.output_weights
        B = W_out.T if state.feedback is None else state.feedback
        v, a, z_prev = np.zeros((m, H)), np.zeros((m, H)), np.zeros((m, H))
        y = np.zeros((m, K))
        zbar_in, zbar_rec, zbar_out = np.zeros((m, n_in)), np.zeros((m, H)), np.zeros((m, H))
        traces = {name: {key: np.zeros((m, H, n)) for key in ("eps", "ebar", "esum", "grad")}
                  for name, n in (("in", n_in), ("rec", H))}
        grad_out = np.zeros((m, K, H))
        count = np.zeros((m, H))
        for t in range(T):
            # Recurrent cells: leak, the previous step's reset and adaptation, then this step's input.
            v = alpha * v - v_th * z_prev
            a = rho * a + z_prev
            zbar_rec = alpha * zbar_rec + zeta * z_prev
            v = v + zeta * (x[:, t] @ W_in.T) + zeta * (z_prev @ W_rec.T)
            threshold = v_th + beta * a
            psi = surrogate.numpy(v, threshold)
            z = (v >= threshold).astype(np.float64)
            count += z
            # Readout and its error, the learning signal through B.
            zbar_out = kappa * zbar_out + zeta_out * z
            y = kappa * y + zeta_out * (z @ W_out.T)
            err, step_loss, pi = readout_error(y, targets[start:start + M, t], window[start:start + M, t], s.loss)
            L = err @ B.T
            # Eligibility, synapse by synapse.
            zbar_in = alpha * zbar_in + zeta * x[:, t]
            for name, zbar in (("in", zbar_in), ("rec", zbar_rec)):
                tr = traces[name]
                e = psi[:, :, None] * (zbar[:, None, :] - beta * tr["eps"])
                tr["eps"] = rho * tr["eps"] + e
                tr["ebar"] = kappa * tr["ebar"] + zeta_out * e
                tr["grad"] = tr["grad"] + L[:, :, None] * tr["ebar"]
                tr["esum"] = tr["esum"] + e
            grad_out = grad_out + err[:, :, None] * zbar_out[:, None, :]
            loss[start:start + M] += step_loss
            scores[start:start + M] += window[start:start + M, t, None] * pi
            spikes[start:start + M, t], readout[start:start + M, t] = z, y
            z_prev = z
        # Firing-rate regularisation at the sample's end, then the minibatch's update.
        rate_error = s.c_reg * (count / T - s.target_rate_per_step) / T
        g_in = (traces["in"]["grad"] + rate_error[:, :, None] * traces["in"]["esum"]).sum(axis=0)
        g_rec = (traces["rec"]["grad"] + rate_error[:, :, None] * traces["rec"]["esum"]).sum(axis=0)
        g_rec = g_rec * s.recurrent_mask
        g_out = grad_out.sum(axis=0)
        gradients.append((g_in, g_rec, g_out))
        state.input_weights = W_in - learning_rate * g_in / M
        state.recurrent_weights = W_rec - learning_rate * g_rec / M
        state.output_weights = W_out - learning_rate * g_out / M
    return OracleResult(state, loss, scores, spikes, readout, gradients)
