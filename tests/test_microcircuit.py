"""circuits/microcircuit.py: the references the backprop-equivalence claims of BioLeaF and the SC
microcircuit rest on — :func:`backprop` (spatial backprop of the spiking error) and :func:`bptt`
(BPTT of the same loss) — checked by central differences, and the desired spike trains both the
circuits and their oracles are taught with, checked by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from apical.circuits.microcircuit import DiscreteParameters, MicrocircuitSettings, backprop, bptt, desired_spikes

# A small network with a leak, PSP kernel and γ ≠ 1 so that a dropped factor shows; T = 7, t0 = 2.
PARAMS = DiscreteParameters(leak=0.5, threshold=0.3, window=0.3, gamma=0.8, time_steps=7, error_start=2)
STEP = 1e-5  # central-difference step
# kernel_mse: the relaxed loss is quadratic in each single weight, so the central difference is exact
# up to rounding (≈ ε·E/STEP); measured |reference − numeric| ≤ 5e-10 with |∂E/∂θ| up to 13, both errors.
RTOL, ATOL = 1e-8, 1e-9


def network_activity(weights, biases, x, params):
    """The spiking network, written out from the docs' equations (not circuits/microcircuit.py):
    v[t] = λ·(1 − s[t−1])·v[t−1] + W·pre[t] + b, s[t] = 1[v[t] > θ]. Per layer, the membrane
    before the reset v [B, T, n], the spikes s and the pseudo-derivative g = γ·1[|v − θ| < w]."""
    batch, steps, _ = x.shape
    membrane = [np.zeros((batch, steps, W.shape[0])) for W in weights]
    spikes = [np.zeros((batch, steps, W.shape[0])) for W in weights]
    for t in range(steps):
        pre = x[:, t]
        for l, (W, b) in enumerate(zip(weights, biases)):
            before = membrane[l][:, t - 1] * (1.0 - spikes[l][:, t - 1]) if t else 0.0
            membrane[l][:, t] = params.leak * before + pre @ W.T + b
            spikes[l][:, t] = membrane[l][:, t] > params.threshold
            pre = spikes[l][:, t]
    surrogate = [params.gamma * (np.abs(v - params.threshold) < params.window) for v in membrane]
    return membrane, spikes, surrogate


def step_loss(wanted, own, params):
    """The loss of one step from the desired and own PSP traces [B, n], summed over the batch:
    ½·‖d − o‖², or −(1/κ)·log softmax(κ·o)_y with y the cells whose desired trace has begun."""
    if params.output_error == "kernel_mse":
        return 0.5 * ((wanted - own) ** 2).sum()
    logits = params.error_gain * own
    log_partition = np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    return -((wanted > 0) * (logits - log_partition)).sum() / params.error_gain


def psp_traces(trains, params):
    """A spike train [B, T, n] through the PSP kernel: o[t] = λ_o·o[t−1] + s[t]."""
    traces = np.zeros_like(trains)
    for t in range(trains.shape[1]):
        traces[:, t] = (params.psp_leak * traces[:, t - 1] if t else 0.0) + trains[:, t]
    return traces


def spiking_loss(weights, biases, x, desired, params):
    """E = Σ_{t ≥ t0} step_loss(d[t], o[t]) of the spiking network itself."""
    _, spikes, _ = network_activity(weights, biases, x, params)
    own, wanted = psp_traces(spikes[-1], params), psp_traces(desired, params)
    return sum(step_loss(wanted[:, t], own[:, t], params) for t in range(params.error_start, x.shape[1]))


def relaxed_bptt_loss(weights, biases, x, desired, params, base):
    """The surrogate-relaxed network at ``base`` = (v⁰, s⁰, g⁰) of the spiking network: every spike
    is linearised, s[t] = s⁰[t] + g⁰[t]·(v[t] − v⁰[t]), and the reset factor (1 − s⁰[t−1]) is kept.
    It equals E at the base weights and its gradient there is E's with ∂s/∂v = g and the reset a
    constant — what :func:`bptt` claims to return."""
    v0, s0, g0 = base
    membrane = [0.0] * len(weights)
    own, wanted, loss = 0.0, 0.0, 0.0
    for t in range(x.shape[1]):
        pre = x[:, t]
        for l, (W, b) in enumerate(zip(weights, biases)):
            kept = params.leak * (1.0 - s0[l][:, t - 1]) * membrane[l] if t else 0.0
            membrane[l] = kept + pre @ W.T + b
            pre = s0[l][:, t] + g0[l][:, t] * (membrane[l] - v0[l][:, t])
        own = params.psp_leak * own + pre
        wanted = params.psp_leak * wanted + desired[:, t]
        if t >= params.error_start:
            loss += step_loss(wanted, own, params)
    return loss


def relaxed_spatial_loss(weights, biases, x, desired, params, base):
    """The relaxation whose gradient is spatial backprop: Σ_{t ≥ t0} of the loss of step t in which
    only step t's spikes move (linearised as in :func:`relaxed_bptt_loss`), the earlier spikes and
    output trace stay at the base, and each membrane carries its past under the new W and b but from
    the base's presynaptic spikes (ε: the input since the last spike, ∂v[t]/∂W with the inputs held)."""
    v0, s0, g0 = base
    own0 = psp_traces(s0[-1], params)
    wanted = psp_traces(desired, params)
    base_inputs = [x] + s0[:-1]
    carried = [0.0] * len(weights)  # v[t−1] from base inputs, new W and b
    loss = 0.0
    for t in range(x.shape[1]):
        kept = [params.leak * (1.0 - s0[l][:, t - 1]) * carried[l] if t else 0.0 for l in range(len(weights))]
        if t >= params.error_start:
            pre = x[:, t]
            for l, (W, b) in enumerate(zip(weights, biases)):
                pre = s0[l][:, t] + g0[l][:, t] * (kept[l] + pre @ W.T + b - v0[l][:, t])
            own = (params.psp_leak * own0[:, t - 1] if t else 0.0) + pre
            loss += step_loss(wanted[:, t], own, params)
        carried = [kept[l] + base_inputs[l][:, t] @ W.T + b for l, (W, b) in enumerate(zip(weights, biases))]
    return loss


def central_differences(loss, weights, biases):
    """∂loss/∂θ for every weight and bias, by central differences with step ``STEP``."""
    parameters = [W.copy() for W in weights] + [b.copy() for b in biases]
    gradient = [np.zeros_like(p) for p in parameters]
    for p, grad in zip(parameters, gradient):
        for index in np.ndindex(p.shape):
            original = p[index]
            p[index] = original + STEP
            up = loss(parameters[:len(weights)], parameters[len(weights):])
            p[index] = original - STEP
            down = loss(parameters[:len(weights)], parameters[len(weights):])
            p[index] = original
            grad[index] = (up - down) / (2 * STEP)
    return gradient[:len(weights)], gradient[len(weights):]


def problem(sizes, seed=3, gain=2.5, batch=3):
    """Random weights and biases scaled so that every layer fires and sits in its window, random
    input rasters, labels' desired trains."""
    rng = np.random.default_rng(seed)
    weights = [gain * rng.uniform(-1, 1, size=(n, n_pre)) / np.sqrt(n_pre) for n_pre, n in zip(sizes[:-1], sizes[1:])]
    biases = [rng.uniform(0.0, 0.3, size=n) for n in sizes[1:]]
    x = (rng.random((batch, PARAMS.time_steps, sizes[0])) < 0.5).astype(float)
    desired = desired_spikes(rng.integers(sizes[-1], size=batch), sizes[-1], PARAMS.time_steps, PARAMS.error_start)
    return weights, biases, x, desired


REFERENCES = {"backprop": (backprop, relaxed_spatial_loss), "bptt": (bptt, relaxed_bptt_loss)}


@pytest.mark.parametrize("error", ["kernel_mse", "softmax"])
@pytest.mark.parametrize("sizes", [(5, 4, 3), (5, 4, 4, 3)], ids=["one-hidden", "two-hidden"])
@pytest.mark.parametrize("reference", sorted(REFERENCES))
def test_reference_is_the_gradient_of_its_relaxed_loss(reference, sizes, error):
    """The spikes make E piecewise constant in W, so the references are checked against central
    differences of the surrogate-relaxed network they define (relaxed_bptt_loss,
    relaxed_spatial_loss: the spikes linearised around the network's own activity with slope g,
    the reset a constant), a forward computation written here from the docs' equations: −∂E/∂W and
    −∂E/∂b of every layer to rtol 1e-8 / atol 1e-9, and E itself to 1e-12."""
    params = replace(PARAMS, output_error=error, error_gain=1.7)
    weights, biases, x, desired = problem(sizes)
    gradient_of, relaxed = REFERENCES[reference]
    descent_W, descent_b, loss = gradient_of(weights, biases, x, desired, params)

    base = network_activity(weights, biases, x, params)
    for l, (spikes, surrogate) in enumerate(zip(base[1], base[2])):  # not vacuous: spikes, and g on and off
        assert 0 < spikes.mean() < 1 and 0 < (surrogate > 0).mean() < 1, f"layer {l + 1}: {spikes.mean()}"
    assert loss == pytest.approx(spiking_loss(weights, biases, x, desired, params), rel=1e-12, abs=0)
    assert relaxed(weights, biases, x, desired, params, base) == pytest.approx(loss, rel=1e-12, abs=0)

    numeric_W, numeric_b = central_differences(
        lambda W, b: relaxed(W, b, x, desired, params, base), weights, biases)
    for l, (ours, numeric, ours_b, numeric_b_l) in enumerate(zip(descent_W, numeric_W, descent_b, numeric_b)):
        assert np.abs(numeric).max() > 1e-2, f"layer {l + 1}: no gradient, vacuous comparison"
        np.testing.assert_allclose(ours, -numeric, rtol=RTOL, atol=ATOL, err_msg=f"{reference} W, layer {l + 1}")
        np.testing.assert_allclose(ours_b, -numeric_b_l, rtol=RTOL, atol=ATOL, err_msg=f"{reference} b, layer {l + 1}")


@pytest.mark.parametrize("error", ["kernel_mse", "softmax"])
def test_spatial_backprop_and_bptt_differ_by_the_paths_through_time(error):
    """The two relaxations are not the same function: the check above would tell them apart (each
    reference differs from the other's finite differences far beyond the tolerance)."""
    params = replace(PARAMS, output_error=error, error_gain=1.7)
    weights, biases, x, desired = problem((5, 4, 4, 3))
    spatial, _, _ = backprop(weights, biases, x, desired, params)
    through_time, _, _ = bptt(weights, biases, x, desired, params)
    for l, (a, b) in enumerate(zip(spatial, through_time)):
        assert np.abs(a - b).max() > 1e-2, f"layer {l + 1}: spatial backprop equals BPTT here"


def test_backprop_with_transposed_feedback_is_backprop():
    """``feedback`` B^l = (W^{l+1})ᵀ gives backprop itself; other feedback changes the hidden layers
    only (the output layer's update does not depend on B)."""
    weights, biases, x, desired = problem((5, 4, 4, 3))
    plain_W, plain_b, loss = backprop(weights, biases, x, desired, PARAMS)
    same_W, same_b, same_loss = backprop(weights, biases, x, desired, PARAMS, feedback=[W.T for W in weights[1:]])
    assert same_loss == loss
    for a, b in zip(plain_W + plain_b, same_W + same_b):
        np.testing.assert_array_equal(a, b)
    random = [np.random.default_rng(7).uniform(-1, 1, size=W.T.shape) for W in weights[1:]]
    other_W, _, _ = backprop(weights, biases, x, desired, PARAMS, feedback=random)
    np.testing.assert_array_equal(other_W[-1], plain_W[-1])
    for l in range(len(weights) - 1):
        assert np.abs(other_W[l] - plain_W[l]).max() > 1e-2, f"layer {l + 1} ignores the feedback"


def test_desired_spikes_by_hand():
    """T = 7, t0 = 2: the labelled cell fires on steps 2, 4, 6 (interval 2) or 2..6 (interval 1),
    every other cell never; before t0 nothing fires."""
    every_other = desired_spikes([2, 0], n_out=3, time_steps=7, error_start=2, interval=2)
    expected = np.array([
        [[0, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 1]],  # label 2
        [[0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0]],  # label 0
    ], dtype=float)
    np.testing.assert_array_equal(every_other, expected)

    every_step = desired_spikes(1, n_out=3, time_steps=7, error_start=2)  # a scalar label: a batch of one
    expected = np.array([[[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0]]], dtype=float)
    np.testing.assert_array_equal(every_step, expected)

    # t0 = 1, interval 3: steps 1 and 4 (the next, 7, is past T); the settings pass their own T, t0, interval.
    settings = MicrocircuitSettings(sizes=(4, 2), time_steps=7, error_start=1, desired_interval=3)
    expected = np.array([[[0, 0], [0, 1], [0, 0], [0, 0], [0, 1], [0, 0], [0, 0]]], dtype=float)
    np.testing.assert_array_equal(settings.desired([1]), expected)
