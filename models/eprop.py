"""e-prop's cells and synapses (Bellec et al. 2020, Nat. Commun. 11:3625; docs/models/eprop.md): a
recurrent layer of LIF or ALIF cells, a leaky readout, and eligibility traces kept by the synapses.

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
"""

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
