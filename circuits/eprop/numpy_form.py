"""e-prop's learning in batched numpy, equal to the Brian2 network (``--device numpy``).

The oracle (oracle.py) keeps every eligibility trace per synapse and per step; the sum the update
needs can be taken at the sample's end instead, with one matrix product per pathway. With
W_j[t] = L̃_j[t] + r_j, where L̃_j[t] = ζ_o·Σ_{t'≥t} κ^{t'−t}·L_j[t'] (the learning signal filtered
backwards, the mirror of ē's forward filter) and r_j = c_reg·(f_j − f*)/T the regulariser:

    Σ_t (L_j[t]·ē_ji[t] + r_j·e_ji[t]) = Σ_t Q_j[t]·z̄_i[t]
    LIF:   Q_j[t] = ψ_j[t]·W_j[t]
    ALIF:  Q_j[t] = ψ_j[t]·(W_j[t] − β·D_j[t]),  D_j[t] = W_j[t+1]·ψ_j[t+1] + (ρ − β·ψ_j[t+1])·D_j[t+1],
           D_j[T−1] = 0   (the adaptive eligibility vector ε, unrolled backwards)

so g^in = Σ_samples,t Q[t]ᵀ z̄^in[t] and g^rec likewise, g^out = Σ err[t]ᵀ z̄^out[t]. The forward
pass, cell by cell and step by step, is the oracle's. The sums are the same; only their order
differs (float64 rounding, far below the tests' 1e-9). The result is final once the sample has
ended, which the network's online traces do not need; the weights it learns are the same.
"""

from __future__ import annotations

import numpy as np

from apical.circuits.eprop.network import EpropSettings, EpropState, RunResult
from apical.circuits.eprop.oracle import readout_error


class NumpyEprop:
    """Runs of whole minibatches, with the interface of EpropNetwork."""

    def __init__(self, settings: EpropSettings, precision: str = "float64"):
        self.settings = settings
        self.dtype = np.float32 if precision == "float32" else np.float64

    def run(self, state: EpropState, input_spikes, targets, window, learning_rate: float,
            learn: bool = True) -> RunResult:
        """Run the samples from ``state`` as the Brian2 network does; ``learn=False`` only scores them."""
        s = self.settings
        x_all = np.asarray(input_spikes, dtype=self.dtype)
        targets = np.asarray(targets, dtype=np.float64)
        N, T, n_in = x_all.shape
        if (T, n_in) != (s.time_steps, s.sizes[0]):
            raise ValueError(f"input_spikes must have shape [N, {s.time_steps}, {s.sizes[0]}], got {x_all.shape}")
        window = np.broadcast_to(np.asarray(window, dtype=np.float64), (N, T))
        H, K, M = s.sizes[1], s.sizes[2], s.batch_size
        if N % M and learn:
            raise ValueError(f"{N} samples are not whole minibatches of {M}: the last one would never be applied")
        surrogate = s.surrogate()
        alpha, rho, kappa = s.alpha, s.rho, s.kappa
        zeta, zeta_out, beta, v_th = s.zeta, s.zeta_out, s.beta_effective, s.threshold
        state = state.copy()
        loss, scores, spikes = np.zeros(N), np.zeros((N, K)), np.zeros((N, T, H))
        mask = s.recurrent_mask
        step = M if learn else max(M, 256)  # without learning the samples are independent
        for start in range(0, N, step):
            x = x_all[start:start + step]
            m = len(x)  # M; without learning a larger block, or fewer samples at the end
            W_in, W_rec, W_out = state.input_weights, state.recurrent_weights, state.output_weights
            B = W_out.T if state.feedback is None else state.feedback
            drive = zeta * (x.reshape(-1, n_in) @ W_in.T.astype(self.dtype)).reshape(m, T, H)  # ζ·W^in x[t], all steps
            v, a, z = np.zeros((m, H)), np.zeros((m, H)), np.zeros((m, H))
            y, zbar_rec_t, zbar_out_t = np.zeros((m, K)), np.zeros((m, H)), np.zeros((m, H))
            psi, zbar_rec, zbar_out = np.zeros((m, T, H)), np.zeros((m, T, H)), np.zeros((m, T, H))
            err, L = np.zeros((m, T, K)), np.zeros((m, T, H))
            for t in range(T):
                v = alpha * v - v_th * z
                a = rho * a + z
                zbar_rec_t = alpha * zbar_rec_t + zeta * z
                v = v + drive[:, t] + zeta * (z @ W_rec.T)
                threshold = v_th + beta * a
                psi[:, t] = surrogate.numpy(v, threshold)
                z = (v >= threshold).astype(np.float64)
                zbar_out_t = kappa * zbar_out_t + zeta_out * z
                y = kappa * y + zeta_out * (z @ W_out.T)
                err[:, t], step_loss, pi = readout_error(y, targets[start:start + step, t], window[start:start + step, t],
                                                         s.loss)
                L[:, t] = err[:, t] @ B.T
                zbar_rec[:, t], zbar_out[:, t], spikes[start:start + step, t] = zbar_rec_t, zbar_out_t, z
                loss[start:start + step] += step_loss
                scores[start:start + step] += window[start:start + step, t, None] * pi
            if not learn:
                continue  # an evaluation: the weights stay, so the sums are not needed
            zbar_in = np.empty_like(x)
            trace = np.zeros((m, n_in), dtype=self.dtype)
            for t in range(T):
                trace = alpha * trace + zeta * x[:, t]
                zbar_in[:, t] = trace
            rate_error = s.c_reg * (spikes[start:start + step].sum(axis=1) / T - s.target_rate_per_step) / T
            Q = self.presynaptic_factor(psi, L, rate_error)
            g_in = Q.reshape(-1, H).T.astype(self.dtype) @ zbar_in.reshape(-1, n_in)  # Σ over samples and steps
            g_rec = (Q.reshape(-1, H).T @ zbar_rec.reshape(-1, H)) * mask
            g_out = err.reshape(-1, K).T @ zbar_out.reshape(-1, H)
            state.input_weights = W_in - learning_rate * g_in / M
            state.recurrent_weights = W_rec - learning_rate * g_rec / M
            state.output_weights = W_out - learning_rate * g_out / M
        return RunResult(state, loss, scores, spikes)

    def presynaptic_factor(self, psi, L, rate_error) -> np.ndarray:
        """Q [M, T, H] with g_ji = Σ_t Q_j[t]·z̄_i[t] (module docstring)."""
        s = self.settings
        kappa, zeta_out, rho, beta = s.kappa, s.zeta_out, s.rho, s.beta_effective
        T = psi.shape[1]
        filtered = np.zeros_like(L)
        running = np.zeros_like(L[:, 0])
        for t in range(T - 1, -1, -1):
            running = zeta_out * L[:, t] + kappa * running
            filtered[:, t] = running
        weight = filtered + rate_error[:, None, :]
        if beta == 0.0:
            return psi * weight
        D = np.zeros_like(L)
        for t in range(T - 2, -1, -1):
            D[:, t] = weight[:, t + 1] * psi[:, t + 1] + (rho - beta * psi[:, t + 1]) * D[:, t + 1]
        return psi * (weight - beta * D)
