"""BioGrad in plain numpy: the reference every Brian2 run is tested against.

Tang, Kumar, Polykretis & Michmizos (2021), "BioGrad: Biologically plausible gradient-based
learning for spiking neural networks", arXiv 2110.14092; the discrete form below follows
docs/models/biograd.md, "The discrete form" (read from the authors' released code). One step is one time bin, layers
l = 1..L, ``W[l]`` is (post × pre), a batch of B samples runs side by side:

    v[t]   = λ·v[t-1]·(1 − s[t-1]) + W·s_pre[t] + b        soma, hard reset via (1 − s)
    s[t]   = 1[v[t] > θ]
    g[t]   = γ·1[|v[t] − θ| < w]                           pseudo-derivative (published; another
                                                            ``surrogate`` family: models/surrogate.py)
    ρ[t]   = 1 − s[t] − v[t]·g[t]                          reset factor
    ε[t]   = λ·ρ_post[t-1]·ε[t-1] + s_pre[t]               eligibility trace, per synapse
    E     += g_post[t]·ε[t]                                eligibility, per synapse
    e[t]   = softmax(C[t]) − y        (t ≥ t0, C = output counts up to and including t)
    u±[t]  = u±[t-1] − s±[t-1] ± e[t],  s± = 1[u± > 1]     error neurons
    a_out += s⁺ − s⁻,   a_l += B_l·(s⁺ − s⁻)               apical compartments
    δ = a / (T − t0),   ΔW = −η·δ_post·E,   Δb = −η·δ·E^b  wake update

Time steps are counted from 0 within a sample, so the error is active on T − t0 steps.
This module is deliberately independent of Brian2: it is the oracle, not the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apical.models.surrogate import Surrogate


@dataclass(frozen=True)
class DiscreteParameters:
    """The published discrete constants (docs/models/biograd.md, "The discrete form")."""

    leak: float = 0.3  # λ, membrane decay per step
    threshold: float = 0.3  # θ
    window: float = 0.3  # w, half width of the pseudo-derivative window
    gamma: float = 1.0  # γ, height of the pseudo-derivative
    surrogate: str = "rectangular"  # family of g (models/surrogate.py)
    time_steps: int = 20  # T
    error_start: int = 5  # t0, first step on which the error neurons integrate
    learning_rate: float = 1e-3  # η

    @property
    def pseudo_derivative(self) -> Surrogate:
        return Surrogate(self.surrogate, self.window, self.gamma)


@dataclass
class LayerRecord:
    """What one layer did during a batch of samples (leading axis: sample)."""

    spikes: np.ndarray  # [B, T, n]
    eligibility: np.ndarray  # [B, n_post, n_pre]  E
    bias_eligibility: np.ndarray  # [B, n_post]      E^b
    apical: np.ndarray  # [B, n_post]               a
    apical_error: np.ndarray  # [B, n_post]         δ
    weight_change: np.ndarray  # [B, n_post, n_pre] ΔW
    bias_change: np.ndarray  # [B, n_post]          Δb


def _softmax(counts: np.ndarray) -> np.ndarray:
    shifted = np.exp(counts - counts.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class ErrorNeurons:
    """The "+" and "−" error neurons of each output unit over a batch: no leak, threshold 1,
    subtractive reset; ``step`` integrates ±e and returns the signed spikes s⁺ − s⁻."""

    def __init__(self, batch: int, n_out: int):
        self.u_plus, self.u_minus = np.zeros((batch, n_out)), np.zeros((batch, n_out))
        self.s_plus, self.s_minus = np.zeros((batch, n_out)), np.zeros((batch, n_out))

    def step(self, error: np.ndarray) -> np.ndarray:
        self.u_plus = self.u_plus - self.s_plus + error
        self.u_minus = self.u_minus - self.s_minus - error
        self.s_plus = (self.u_plus > 1.0).astype(np.float64)
        self.s_minus = (self.u_minus > 1.0).astype(np.float64)
        return self.s_plus - self.s_minus


def run_batch(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    feedback: list[np.ndarray],
    input_spikes: np.ndarray,
    labels: np.ndarray,
    params: DiscreteParameters,
) -> list[LayerRecord]:
    """One wake pass of BioGrad over a batch, each sample from zero state.

    ``feedback[l]`` is B_l, (n_l × n_out), for every hidden layer l (not the output layer).
    ``input_spikes`` is [B, T, n_in] of 0/1, ``labels`` [B] integers.
    """
    input_spikes = np.asarray(input_spikes, dtype=np.float64)
    if input_spikes.ndim == 2:
        input_spikes = input_spikes[None]
    labels = np.atleast_1d(np.asarray(labels))
    batch, steps, _ = input_spikes.shape
    if steps != params.time_steps:
        raise ValueError(f"input raster has {steps} steps, params.time_steps is {params.time_steps}")
    if len(feedback) != len(weights) - 1:
        raise ValueError(f"need one feedback matrix per hidden layer ({len(weights) - 1}), got {len(feedback)}")
    lam, theta = params.leak, params.threshold
    n_out = weights[-1].shape[0]
    target = np.zeros((batch, n_out))
    target[np.arange(batch), labels] = 1.0

    sizes = [w.shape[0] for w in weights]
    v = [np.zeros((batch, n)) for n in sizes]
    spiked = [np.zeros((batch, n)) for n in sizes]
    reset_factor = [np.zeros((batch, n)) for n in sizes]
    trace = [np.zeros((batch,) + w.shape) for w in weights]
    eligibility = [np.zeros((batch,) + w.shape) for w in weights]
    bias_trace = [np.zeros((batch, n)) for n in sizes]
    bias_eligibility = [np.zeros((batch, n)) for n in sizes]
    apical = [np.zeros((batch, n)) for n in sizes]
    rasters = [np.zeros((batch, steps, n)) for n in sizes]
    counts = np.zeros((batch, n_out))
    error_neurons = ErrorNeurons(batch, n_out)

    for t in range(steps):
        presynaptic = input_spikes[:, t]
        for l, (W, b) in enumerate(zip(weights, biases)):
            v[l] = lam * v[l] * (1.0 - spiked[l]) + presynaptic @ W.T + b
            s = (v[l] > theta).astype(np.float64)
            g = params.pseudo_derivative.numpy(v[l], theta)
            trace[l] = lam * reset_factor[l][:, :, None] * trace[l] + presynaptic[:, None, :]
            eligibility[l] += g[:, :, None] * trace[l]
            bias_trace[l] = lam * reset_factor[l] * bias_trace[l] + 1.0
            bias_eligibility[l] += g * bias_trace[l]
            reset_factor[l] = 1.0 - s - v[l] * g
            spiked[l] = s
            rasters[l][:, t] = s
            presynaptic = s
        counts += spiked[-1]
        if t >= params.error_start:
            error_spikes = error_neurons.step(_softmax(counts) - target)
            apical[-1] += error_spikes
            for l, B in enumerate(feedback):
                apical[l] += error_spikes @ B.T

    return layer_records(rasters, eligibility, bias_eligibility, apical, steps - params.error_start,
                         params.learning_rate)


def layer_records(rasters, eligibility, bias_eligibility, apical, error_steps: int, learning_rate: float):
    """Each layer's record of a wake pass: δ = a / (T − t0), ΔW = −η·δ·E, Δb = −η·δ·E^b."""
    records = []
    for l in range(len(rasters)):
        delta = apical[l] / error_steps
        records.append(
            LayerRecord(
                spikes=rasters[l],
                eligibility=eligibility[l],
                bias_eligibility=bias_eligibility[l],
                apical=apical[l],
                apical_error=delta,
                weight_change=-learning_rate * delta[:, :, None] * eligibility[l],
                bias_change=-learning_rate * delta * bias_eligibility[l],
            )
        )
    return records


def train_sequential(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    feedback: list[np.ndarray],
    input_spikes: np.ndarray,
    labels: np.ndarray,
    params: DiscreteParameters,
    batch_size: int = 1,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Wake-phase training over samples in order, one update per minibatch (mean of ΔW).

    Returns the new weights, biases and the output spike counts of every sample.
    """
    weights = [w.copy() for w in weights]
    biases = [b.copy() for b in biases]
    all_counts = []
    for start in range(0, len(labels), batch_size):
        stop = start + batch_size
        records = run_batch(weights, biases, feedback, input_spikes[start:stop], labels[start:stop], params)
        all_counts.append(records[-1].spikes.sum(axis=1))
        for l, record in enumerate(records):
            weights[l] += record.weight_change.sum(axis=0) / batch_size
            biases[l] += record.bias_change.sum(axis=0) / batch_size
    return weights, biases, np.concatenate(all_counts)


@dataclass(frozen=True)
class SleepParameters:
    """Sleep phase constants of the released N-MNIST run (docs/models/biograd.md, "The discrete form")."""

    steps: int = 50  # T_s, steps of one noise sample
    batch_size: int = 128  # noise samples per sleep
    learning_rate: float = 1e-4 / 3  # η_s
    decay_power: float = 2.0  # P, exponent of the output activity in the decay term


def forward_counts(weights, biases, presynaptic_input: np.ndarray, leak: float, threshold: float) -> np.ndarray:
    """Output spike counts [B, n_out] of the layers given, driven by a signed input [B, T, n]."""
    batch, steps, _ = presynaptic_input.shape
    v = [np.zeros((batch, w.shape[0])) for w in weights]
    spiked = [np.zeros((batch, w.shape[0])) for w in weights]
    counts = np.zeros((batch, weights[-1].shape[0]))
    for t in range(steps):
        presynaptic = presynaptic_input[:, t]
        for l, (W, b) in enumerate(zip(weights, biases)):
            v[l] = leak * v[l] * (1.0 - spiked[l]) + presynaptic @ W.T + b
            spiked[l] = (v[l] > threshold).astype(np.float64)
            presynaptic = spiked[l]
        counts += spiked[-1]
    return counts


def sleep_noise(rng: np.random.Generator, batch: int, steps: int, n: int) -> np.ndarray:
    """Zero-mean signed noise spikes x⁺ − x⁻, each Bernoulli(p), p ~ U(0, 1) drawn once."""
    p = rng.uniform(0.0, 1.0)
    plus = rng.random((batch, steps, n)) < p
    minus = rng.random((batch, steps, n)) < p
    return plus.astype(np.float64) - minus.astype(np.float64)


def sleep_noise_per_layer(rng: np.random.Generator, sleep: SleepParameters, sizes) -> list[np.ndarray]:
    """One sleep phase's noise: [B_s, T_s, n_l] per hidden layer of a network of ``sizes``."""
    return [sleep_noise(rng, sleep.batch_size, sleep.steps, n) for n in sizes[1:-1]]


def sleep_update(weights, biases, feedback, noise: list[np.ndarray], params: DiscreteParameters,
                 sleep: SleepParameters) -> list[np.ndarray]:
    """One sleep phase: for each hidden layer l, from the top down, layer l's output is
    replaced by ``noise[l]`` [B_s, T_s, n_l] and the layers above run normally; then

        ΔB^l_ik = η_s·[Σ_batch n_i·o_k − mean_batch(o_k^P)·B^l_ik],   n_i = Σ_t noise_i

    a Hebbian term between the hidden unit's (noise) activity and the output activity it
    causes, with a decay that bounds B. Returns the new feedback matrices.
    """
    new_feedback = [B.copy() for B in feedback]
    for l in reversed(range(len(feedback))):
        outputs = forward_counts(weights[l + 1 :], biases[l + 1 :], noise[l], params.leak, params.threshold)
        hidden_activity = noise[l].sum(axis=1)  # n_i per noise sample
        hebbian = hidden_activity.T @ outputs  # Σ_batch n_i·o_k, (n_l × n_out)
        decay = (outputs**sleep.decay_power).mean(axis=0)  # mean_batch(o_k^P), per output unit
        new_feedback[l] += sleep.learning_rate * (hebbian - decay[None, :] * new_feedback[l])
    return new_feedback
