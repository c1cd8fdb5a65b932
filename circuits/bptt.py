"""Backprop through time in the discrete LIF network of BioGrad (docs/models/biograd.md, "The discrete form"):
the reference gradient BioGrad's claims compare its update with, and the gradient the BP baseline
(circuits/bp/) trains with. A core module, since two frameworks use it and neither imports the other.

The network is the one BioGrad trains (Tang et al. 2021, arXiv 2110.14092), in discrete
time with one step per time bin; layers l = 1..L, W^l is (post × pre):

    v^l[t] = λ·v^l[t-1]·(1 − s^l[t-1]) + W^l·s^{l-1}[t] + b^l,   s^l[t] = 1[v^l[t] > θ]

with s^0 the input raster and layer l+1 seeing layer l's spikes of the same step. The
output is the spike count C = Σ_t s^L[t]; the loss is the cross-entropy of softmax(C)
with the one-hot label, averaged over the batch. Backprop through time with the
pseudo-derivative g[t] = γ·1[|v[t] − θ| < w] (or another family of models/surrogate.py,
``LIFParams.surrogate``, the same definition the networks use) gives, per layer and going backwards in time,

    ∂L/∂v[t] = g[t]·D[t] + λ·ρ[t]·∂L/∂v[t+1],    ρ[t] = 1 − s[t] − v[t]·g[t]

where D[t] is the error arriving through the spikes of step t (∂L/∂C at the output,
W^{l+1}ᵀ·∂L/∂v^{l+1}[t] below it). The term −v[t]·g[t] is the gradient through the reset
factor (1 − s[t]); ``detach_reset=True`` drops it (ρ = 1 − s). Then
∂L/∂W^l = Σ_t ∂L/∂v^l[t] ⊗ s^{l-1}[t] and ∂L/∂b^l = Σ_t ∂L/∂v^l[t]. ρ is the same reset
factor that BioGrad's eligibility traces carry forward in time.

For gradient checking, ``surrogate="smooth"`` replaces the Heaviside step by
σ(β(v − θ)) in the forward pass and uses its exact derivative β·σ·(1 − σ) as g, so the
analytic gradient is the true gradient of a differentiable loss.

Everything is vectorised over a batch; each layer's input currents for all steps come
from one matrix product, leaving only element-wise work inside the time loops.
"""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from apical.models.surrogate import FAMILIES, Surrogate

__all__ = [
    "LIFParams",
    "LayerTrace",
    "check_surrogate",
    "init_weights",
    "forward",
    "loss",
    "bptt_gradients",
]

SURROGATES = FAMILIES + ("smooth",)


@dataclass(frozen=True)
class LIFParams:
    """Discrete LIF constants of BioGrad's released code (docs/models/biograd.md, "The discrete form")."""

    leak: float = 0.3  # λ, membrane decay per time bin
    threshold: float = 0.3  # θ, spike when v > θ (strict)
    window: float = 0.3  # w, half-width of the pseudo-derivative
    gamma: float = 1.0  # γ, height of the pseudo-derivative
    surrogate: str = "rectangular"  # family of the pseudo-derivative (models/surrogate.py)


class LayerTrace(NamedTuple):
    """One layer's history, both arrays shaped [T, batch, n]."""

    v: np.ndarray  # membrane potential after the input of step t
    s: np.ndarray  # spikes of step t (0/1, or σ(β(v−θ)) for the smooth surrogate)


def init_weights(sizes, rng, dtype=np.float64):
    """W^l (post × pre) and b^l drawn from U(±1/√fan_in) for layer sizes [n_in, ..., n_out]."""
    if len(sizes) < 2:
        raise ValueError(f"need at least an input and an output size, got {sizes!r}")
    weights, biases = [], []
    for n_pre, n_post in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(n_pre)
        weights.append(rng.uniform(-bound, bound, size=(n_post, n_pre)).astype(dtype))
        biases.append(rng.uniform(-bound, bound, size=n_post).astype(dtype))
    return weights, biases


def _check_network(weights, biases, raster):
    if len(weights) != len(biases) or not weights:
        raise ValueError(f"got {len(weights)} weight matrices and {len(biases)} bias vectors")
    for l, (W, b) in enumerate(zip(weights, biases)):
        if W.ndim != 2 or b.shape != (W.shape[0],):
            raise ValueError(f"layer {l}: weights {W.shape} and bias {b.shape} do not match")
        if l and W.shape[1] != weights[l - 1].shape[0]:
            raise ValueError(
                f"layer {l}: weights take {W.shape[1]} inputs, layer {l - 1} has "
                f"{weights[l - 1].shape[0]} neurons"
            )
    raster = np.asarray(raster)
    if raster.ndim != 3 or raster.shape[2] != weights[0].shape[1]:
        raise ValueError(
            f"raster must be [batch, T, {weights[0].shape[1]}], got shape {raster.shape}"
        )


def check_surrogate(surrogate, beta):
    """Refuse a pseudo-derivative this module does not know, or a smooth one without β > 0."""
    if surrogate is not None and surrogate not in SURROGATES:
        raise ValueError(f"surrogate must be one of {SURROGATES}, got {surrogate!r}")
    if surrogate == "smooth" and not beta > 0:
        raise ValueError(f"the smooth surrogate needs beta > 0, got {beta!r}")


def _spike(v, params, surrogate, beta, out):
    """s = 1[v > θ], or σ(β(v − θ)) for the smooth variant, written into ``out``."""
    if surrogate != "smooth":
        np.greater(v, params.threshold, out=out)
    else:
        np.subtract(params.threshold, v, out=out)
        out *= beta
        np.exp(out, out=out)
        out += 1.0
        np.reciprocal(out, out=out)
    return out


def _pseudo_derivative(v, s, params, surrogate, beta):
    """g of the family ``surrogate`` (None: ``params.surrogate``), or the exact β·σ·(1 − σ) of
    the smooth variant."""
    if surrogate == "smooth":
        return beta * s * (1.0 - s)
    family = Surrogate(surrogate or params.surrogate, params.window, params.gamma)
    return family.numpy(v, params.threshold).astype(v.dtype)


def forward(
    weights,
    biases,
    raster,
    params=LIFParams(),
    *,
    surrogate=None,
    beta=10.0,
    reset_spikes=None,
):
    """Run the network on a batch of input rasters [batch, T, n_in] (0/1).

    Returns one `LayerTrace` (v and s, each [T, batch, n]) per layer. The arithmetic is done
    in the dtype of the weights. ``reset_spikes`` (one [T, batch, n] array per layer) makes
    the reset factor (1 − s[t-1]) use those spikes instead of the layer's own: with the
    spikes of an unperturbed run, finite differences then see the reset as a constant,
    which is what ``detach_reset`` assumes.
    """
    return _run(weights, biases, raster, params, surrogate, beta, reset_spikes)[1]


def _run(weights, biases, raster, params, surrogate, beta, reset_spikes=None):
    """The input raster as [T, batch, n_in] in the weights' dtype, and the layer traces."""
    _check_network(weights, biases, raster)
    check_surrogate(surrogate, beta)
    inputs = np.ascontiguousarray(np.swapaxes(np.asarray(raster, dtype=weights[0].dtype), 0, 1))
    n_steps, batch = inputs.shape[:2]
    traces = []
    layer_input = inputs
    for l, (W, b) in enumerate(zip(weights, biases)):
        # all steps' input currents W·s_pre[t] + b in one product; v starts from them
        v = layer_input.reshape(n_steps * batch, -1) @ W.T
        v += b
        v = v.reshape(n_steps, batch, -1)
        s = np.empty_like(v)
        resets = s if reset_spikes is None else reset_spikes[l]
        carry = np.empty_like(v[0])
        for t in range(n_steps):
            if t:
                # v[t] += λ·v[t-1]·(1 − s[t-1])
                np.subtract(1.0, resets[t - 1], out=carry)
                carry *= v[t - 1]
                carry *= params.leak
                v[t] += carry
            _spike(v[t], params, surrogate, beta, out=s[t])
        traces.append(LayerTrace(v, s))
        layer_input = s
    return inputs, traces


def _cross_entropy(counts, labels):
    """Mean cross-entropy of softmax(counts) and its gradient with respect to counts."""
    shifted = counts - counts.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    log_p = shifted - log_z
    batch = counts.shape[0]
    rows = np.arange(batch)
    value = -log_p[rows, labels].mean()
    grad = np.exp(log_p)
    grad[rows, labels] -= 1.0
    grad /= batch
    return float(value), grad


def _check_labels(labels, batch, n_out):
    labels = np.asarray(labels)
    if labels.shape != (batch,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {batch} integers, got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() >= n_out:
        raise ValueError(f"labels must lie in [0, {n_out}), got {labels.min()}..{labels.max()}")
    return labels


def loss(weights, biases, raster, labels, params=LIFParams(), **forward_options):
    """Cross-entropy of softmax(output spike counts), mean over the batch."""
    traces = forward(weights, biases, raster, params, **forward_options)
    counts = traces[-1].s.sum(axis=0)
    labels = _check_labels(labels, counts.shape[0], counts.shape[1])
    return _cross_entropy(counts, labels)[0]


def bptt_gradients(
    weights,
    biases,
    raster,
    labels,
    params=LIFParams(),
    *,
    surrogate=None,
    beta=10.0,
    detach_reset=False,
):
    """Loss and its BPTT gradients: returns (loss, [∂L/∂W^l], [∂L/∂b^l])."""
    inputs, traces = _run(weights, biases, raster, params, surrogate, beta)
    counts = traces[-1].s.sum(axis=0)
    labels = _check_labels(labels, counts.shape[0], counts.shape[1])
    value, count_grad = _cross_entropy(counts, labels)
    n_steps, batch = inputs.shape[:2]

    grad_W = [None] * len(weights)
    grad_b = [None] * len(weights)
    spike_error = count_grad  # D[t]: the count's gradient reaches every output step alike
    for l in range(len(weights) - 1, -1, -1):
        v, s = traces[l]
        g = _pseudo_derivative(v, s, params, surrogate, beta)
        # λ·ρ[t] with ρ = 1 − s − v·g; the v·g term is the gradient through the reset
        carried = 1.0 - s
        if not detach_reset:
            carried -= v * g
        carried *= params.leak
        grad_v = np.multiply(g, spike_error, out=g)
        for t in range(n_steps - 2, -1, -1):
            grad_v[t] += carried[t] * grad_v[t + 1]
        pre = inputs if l == 0 else traces[l - 1].s
        flat_grad_v = grad_v.reshape(n_steps * batch, -1)
        grad_W[l] = flat_grad_v.T @ pre.reshape(n_steps * batch, -1)
        grad_b[l] = flat_grad_v.sum(axis=0)
        if l:
            spike_error = (flat_grad_v @ weights[l]).reshape(n_steps, batch, -1)
    return value, grad_W, grad_b
