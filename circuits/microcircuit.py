"""What the two reconstructed microcircuits share: BioLeaF (docs/models/bioleaf.md) and the SC
microcircuit (docs/models/scmicro.md) are both layered networks of the pyramidal cells of
models/pyramidal.py, taught by the same global spiking error. Neither microcircuit imports the
other; both import this module, which holds

- :class:`MicrocircuitSettings`, what such a network is (sizes, cell constants, T, t0, M, the
  desired spike trains), and :class:`DiscreteParameters`, the same constants per step;
- the global spiking error of the output cells (:func:`output_error`) and the desired spike trains
  it compares the output with (:func:`desired_spikes`);
- :class:`LayerRecord`, what a pyramidal layer did during a batch of samples;
- :func:`backprop` and :func:`bptt`, gradients of the spiking error of the *network* (no
  interneurons, no apical compartments, no bursts: explicit Wᵀ·δ), the references both circuits'
  updates are compared with;
- :func:`single_sample_figures`, figures of one sample through the circuit.

The spiking error (docs/models/bioleaf.md, "Cells and compartments"; docs/models/scmicro.md, "The
three cell types" for the softmax form), over the steps of the error window t ≥ t0:

    E = ½·Σ_{t ≥ t0} Σ_k (d_k[t] − o_k[t])²,   o[t] = λ_o·o[t−1] + s^L[t],  d likewise from the
    desired spike train (the TSSL-BP kind of loss: output and desired spike trains through a PSP kernel)

or, with ``output_error = "softmax"``, E = −(1/κ)·Σ_{t ≥ t0} log softmax(κ·o[t])_y.

:func:`backprop` and :func:`bptt` use the pseudo-derivative ∂s/∂v = g of the parameters' family
(``surrogate``, models/surrogate.py; rectangular γ·1[|v − θ| < w] as published) and treat the reset
as a constant. :func:`bptt` is the full gradient through time. :func:`backprop`
is its spatial part: at each step the error goes down the layers through Wᵀ (δ^L[t] = g^L[t]·(d − o)[t],
δ^l[t] = g^l[t]·(W^{l+1})ᵀ·δ^{l+1}[t]) and each weight collects Σ_t δ_i[t]·ε_ij[t], where ε_ij is the
input since neuron i's last spike (exactly ∂v_i[t]/∂W_ij); it leaves out the paths by which a spike
at t changes o and the upper membranes at later steps.

Layers are 0-based here (``weights[l]`` is W^{l+1} of the docs, post × pre); the references are
plain numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from apical.models.pyramidal import PyramidalEquations, PyramidalParameters
from apical.models.surrogate import Surrogate

__all__ = ["DiscreteParameters", "MicrocircuitSettings", "OUTPUT_ERRORS", "LayerRecord", "output_error",
           "desired_spikes", "as_batch", "backprop", "bptt", "single_sample_figures"]


@dataclass(frozen=True)
class DiscreteParameters:
    """The discrete constants of one microcircuit (defaults: BioGrad's soma, T = 20, t0 = 5)."""

    leak: float = 0.3  # λ, soma decay per step
    threshold: float = 0.3  # θ
    window: float = 0.3  # w
    gamma: float = 1.0  # γ
    surrogate: str = "rectangular"  # family of g (models/surrogate.py)
    apical_leak: float = float(np.exp(-5.0))  # λ_a (τ_a = 1 ms at dt = 5 ms)
    psp_leak: float = float(np.exp(-1.0))  # λ_o (τ_psp = 5 ms at dt = 5 ms)
    burst_gain: float = 1.0  # c
    nudging: float = 0.0  # β
    time_steps: int = 20  # T
    error_start: int = 5  # t0
    output_error: str = "kernel_mse"  # the global spiking error: "kernel_mse" or "softmax" (output_error())
    error_gain: float = 2.0  # κ of the "softmax" error

    @property
    def pseudo_derivative(self) -> Surrogate:
        return Surrogate(self.surrogate, self.window, self.gamma)


@dataclass(frozen=True)
class MicrocircuitSettings:
    """What a layered pyramidal network is: sizes and constants fixed when it is built. Each
    microcircuit derives its own settings from this one."""

    sizes: tuple[int, ...]  # (n_in, hidden..., n_out)
    pyramidal: PyramidalParameters = field(default_factory=PyramidalParameters)
    time_steps: int = 20  # T, steps per sample
    error_start: int = 5  # t0, first step of the spiking error
    batch_size: int = 1  # M, samples per weight update
    desired_interval: int = 1  # the labelled output should fire every this many steps from t0
    pyramidal_equations: PyramidalEquations = PyramidalEquations()  # the soma's Brian2 code (published)

    def __post_init__(self):
        if len(self.sizes) < 2:
            raise ValueError(f"sizes needs an input and an output size, got {self.sizes}")
        if not 0 <= self.error_start < self.time_steps:
            raise ValueError(f"error_start must lie in [0, time_steps), got {self.error_start}")
        if self.batch_size < 1 or self.desired_interval < 1:
            raise ValueError("batch_size and desired_interval must be ≥ 1")

    def discrete(self) -> DiscreteParameters:
        """The same network in the oracle's discrete terms."""
        p = self.pyramidal
        return DiscreteParameters(
            leak=p.leak, threshold=p.theta, window=p.window, gamma=p.gamma, surrogate=p.surrogate,
            apical_leak=p.apical_leak,
            psp_leak=p.psp_leak, burst_gain=p.burst_gain, nudging=p.nudging, time_steps=self.time_steps,
            error_start=self.error_start,
        )

    def desired(self, labels) -> np.ndarray:
        return desired_spikes(labels, self.sizes[-1], self.time_steps, self.error_start, self.desired_interval)


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


@dataclass
class LayerRecord:
    """One pyramidal layer during a batch of samples (leading axis: sample, then step)."""

    spikes: np.ndarray  # [B, T, n]
    soma: np.ndarray  # [B, T, n] v after the threshold test, before the reset
    apical: np.ndarray  # [B, T, n] A
    plasticity_gate: np.ndarray  # [B, T, n] g·A
    weight_change: np.ndarray  # [B, n, n_pre] ΔW of each sample
    bias_change: np.ndarray  # [B, n]


def desired_spikes(labels, n_out: int, time_steps: int, error_start: int, interval: int = 1) -> np.ndarray:
    """Desired output spike trains [B, T, n_out]: the labelled unit fires every ``interval`` steps
    from t0 on, the others stay silent."""
    labels = np.atleast_1d(np.asarray(labels, dtype=int))
    desired = np.zeros((len(labels), time_steps, n_out))
    steps = np.arange(error_start, time_steps, interval)
    desired[np.arange(len(labels))[:, None], steps[None, :], labels[:, None]] = 1.0
    return desired


def as_batch(input_spikes, desired, params: DiscreteParameters):
    """Input and desired spike trains as float64 batches [B, T, n] (one sample [T, n] becomes a
    batch of one); ValueError unless both span T = ``params.time_steps`` steps of the same samples."""
    input_spikes = np.asarray(input_spikes, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    if input_spikes.ndim == 2:
        input_spikes, desired = input_spikes[None], desired[None] if desired.ndim == 2 else desired
    if input_spikes.shape[1] != params.time_steps or desired.shape[:2] != input_spikes.shape[:2]:
        raise ValueError(f"input {input_spikes.shape} and desired {desired.shape} must be [B, T={params.time_steps}, n]")
    return input_spikes, desired


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
            g.append(params.pseudo_derivative.numpy(v[l], params.threshold))
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
    x, desired = as_batch(input_spikes, desired, params)
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
    x, desired = as_batch(input_spikes, desired, params)
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


def single_sample_figures(layers, input_spikes, label: int, dt, weights, directory, what: str = "digit",
                          batch_size: int = 1) -> None:
    """Figures of one test sample through a microcircuit with its label's target presented: a spike
    raster of every layer (``layers``: per-layer records of one sample) and the weight update it asks
    for — its share ΔW / M of the minibatch step (the records hold the open minibatch's sum)."""
    from brian2 import ms

    from apical.analysis.figures import spike_raster, update_statistics

    names = [f"hidden {l + 1}" for l in range(len(layers) - 1)] + ["output"]
    predicted = int(layers[-1].spikes[0].sum(axis=0).argmax())
    caption = f"test {what} #0: label {label}, decoded {predicted} (target presented)"
    spike_raster(input_spikes, [r.spikes[0] for r in layers], names, float(dt / ms), directory / "spike_raster",
                 title=caption)
    update_statistics([r.weight_change[0] / batch_size for r in layers], weights, directory / "update_statistics",
                      title=f"weight update asked for by {caption}"
                      + (f"\n(its share ΔW / M of the minibatch step, M = {batch_size})" if batch_size > 1 else ""))
