"""Backprop through time of e-prop's network: the gradient e-prop approximates (docs/models/eprop.md).

The same forward dynamics as the oracle (oracle.py), the same loss E = Σ_t ℓ(y[t]) and the same
pseudo-derivative ψ in place of ∂z/∂v (∂z/∂A = −ψ). Backwards, t = T−1 … 0 (Bellec et al. 2020,
eqs. 5–6, written as adjoints):

    δy[t] = err[t] + κ·δy[t+1]
    δz[t] = ζ_o·W^outᵀ δy[t] + ζ·W^recᵀ δv[t+1] − c·v_th·δv[t+1] + δa[t+1]
    δv[t] = ψ[t]·δz[t] + α·δv[t+1],        δa[t] = −β·ψ[t]·δz[t] + ρ·δa[t+1]
    ∂E/∂W^in = Σ_t ζ·δv[t] x[t]ᵀ,   ∂E/∂W^rec = Σ_t ζ·δv[t] z[t−1]ᵀ,   ∂E/∂W^out = Σ_t ζ_o·δy[t] z[t]ᵀ

c = 0 by default: the reset is not differentiated (the authors' code stops the gradient there, and
e-prop's eligibility, like NEST's, has no reset term), so e-prop differs from this gradient only by
the paths through other recurrent cells; c = 1 (``through_reset``) keeps it. The firing-rate
regulariser is left out: compare with e-prop at c_reg = 0.

``soft = True`` replaces the step z = H(v − A) by σ((v − A)/w) and ψ by its derivative, which
makes E differentiable so finite differences can check this code (tests/test_eprop_bptt.py).
"""

from __future__ import annotations

import numpy as np

from apical.circuits.eprop.network import EpropSettings, EpropState
from apical.circuits.eprop.oracle import readout_error


def _spike(v, threshold, settings: EpropSettings, soft: bool):
    if soft:
        width = settings.width * settings.threshold
        z = 1.0 / (1.0 + np.exp(-(v - threshold) / width))
        return z, z * (1.0 - z) / width
    return (v >= threshold).astype(np.float64), settings.surrogate().numpy(v, threshold)


def forward_loss(state: EpropState, input_spikes, targets, window, settings: EpropSettings,
                 soft: bool = False) -> float:
    """E summed over the samples (for the finite-difference check)."""
    return float(_forward(state, input_spikes, targets, window, settings, soft)["loss"])


def _forward(state, input_spikes, targets, window, settings, soft):
    s = settings
    x = np.asarray(input_spikes, dtype=np.float64)
    N, T, _ = x.shape
    H, K = s.sizes[1], s.sizes[2]
    window = np.broadcast_to(np.asarray(window, dtype=np.float64), (N, T))
    v, a, z, y = np.zeros((N, H)), np.zeros((N, H)), np.zeros((N, H)), np.zeros((N, K))
    record = {name: np.zeros((N, T, n)) for name, n in (("z", H), ("psi", H), ("err", K))}
    loss = 0.0
    for t in range(T):
        v = s.alpha * v - s.threshold * z + s.zeta * (x[:, t] @ state.input_weights.T + z @ state.recurrent_weights.T)
        a = s.rho * a + z
        z, psi = _spike(v, s.threshold + s.beta_effective * a, s, soft)
        y = s.kappa * y + s.zeta_out * (z @ state.output_weights.T)
        err, step_loss, _ = readout_error(y, np.asarray(targets)[:, t], window[:, t], s.loss)
        record["z"][:, t], record["psi"][:, t], record["err"][:, t] = z, psi, err
        loss += step_loss.sum()
    record["loss"] = loss
    return record


def bptt_gradients(state: EpropState, input_spikes, targets, window, settings: EpropSettings,
                   through_reset: bool = False, soft: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """∂E/∂W^in, ∂E/∂W^rec, ∂E/∂W^out summed over the samples ([N, T, n_in] inputs, targets
    [N, T, K], error mask [T] or [N, T])."""
    s = settings
    x = np.asarray(input_spikes, dtype=np.float64)
    rec = _forward(state, x, targets, window, s, soft)
    N, T, _ = x.shape
    H = s.sizes[1]
    z, psi, err = rec["z"], rec["psi"], rec["err"]
    reset = s.threshold if through_reset else 0.0
    dy, dv, da = np.zeros_like(err[:, 0]), np.zeros((N, H)), np.zeros((N, H))
    delta_v, delta_y = np.zeros((N, T, H)), np.zeros_like(err)
    for t in range(T - 1, -1, -1):
        dy = err[:, t] + s.kappa * dy
        dz = s.zeta_out * dy @ state.output_weights + s.zeta * dv @ state.recurrent_weights - reset * dv + da
        dv, da = psi[:, t] * dz + s.alpha * dv, -s.beta_effective * psi[:, t] * dz + s.rho * da
        delta_v[:, t], delta_y[:, t] = dv, dy
    previous = np.concatenate([np.zeros((N, 1, H)), z[:, :-1]], axis=1)
    g_in = s.zeta * np.einsum("ntj,nti->ji", delta_v, x)
    g_rec = s.zeta * np.einsum("ntj,nti->ji", delta_v, previous) * s.recurrent_mask
    g_out = s.zeta_out * np.einsum("ntk,ntj->kj", delta_y, z)
    return g_in, g_rec, g_out
