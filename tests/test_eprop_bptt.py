"""BPTT of e-prop's network (circuits/eprop/bptt.py), and e-prop against it (docs/models/eprop.md).

- The adjoint code is checked by central finite differences on the smooth version of the network
  (σ in place of the step, its derivative as ψ), where E is differentiable: relative 1e-6, or 1e-7
  of the largest entry (the difference quotient's own error at a step of 1e-6).
- Without recurrent weights and with symmetric feedback, e-prop is exact (Bellec et al. 2020: the
  eligibility trace carries every path within a cell, the adaptive threshold's included): its
  update equals −η·∂E/∂W of BPTT to 1e-10, for LIF and ALIF cells and both losses.
- With recurrent weights it drops the paths through other cells: the cosine is below 1 but the
  update still points downhill.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from brian2 import ms

from apical.circuits.eprop.bptt import bptt_gradients, forward_loss
from apical.circuits.eprop.claims import eprop_gradients
from apical.circuits.eprop.network import EpropSettings, EpropState, initial_state


def settings(neuron="alif", loss="cross_entropy", feedback="symmetric", sizes=(6, 5, 3)) -> EpropSettings:
    return EpropSettings(sizes=sizes, time_steps=12, neuron=neuron, loss=loss, feedback=feedback, tau_m=10 * ms,
                         tau_out=5 * ms, tau_a=50 * ms, beta=0.3, threshold=0.5, c_reg=0.0, batch_size=1)


def inputs(s: EpropSettings, samples=3, seed=0):
    rng = np.random.default_rng(seed)
    spikes = (rng.random((samples, s.time_steps, s.sizes[0])) < 0.4).astype(float)
    targets = np.zeros((samples, s.time_steps, s.sizes[2]))
    targets[np.arange(samples), :, rng.integers(0, s.sizes[2], samples)] = 1.0
    window = np.zeros(s.time_steps)
    window[4:] = 1.0
    return spikes, targets, window


def strong_state(s, seed=1, recurrent=True) -> EpropState:
    state = initial_state(s.sizes, np.random.default_rng(seed), s.feedback)
    state.input_weights *= 8.0
    state.output_weights *= 4.0
    state.recurrent_weights *= 3.0 if recurrent else 0.0
    return state


@pytest.mark.parametrize("neuron", ["lif", "alif"])
def test_bptt_matches_finite_differences(neuron):
    s = settings(neuron)
    state = strong_state(s)
    spikes, targets, window = inputs(s)
    analytic = bptt_gradients(state, spikes, targets, window, s, through_reset=True, soft=True)
    step = 1e-6
    for index, name in enumerate(("input_weights", "recurrent_weights", "output_weights")):
        numeric = np.zeros_like(analytic[index])
        for position in np.ndindex(numeric.shape):
            if name == "recurrent_weights" and position[0] == position[1]:
                continue
            values = []
            for sign in (1, -1):
                shifted = EpropState(state.input_weights.copy(), state.recurrent_weights.copy(),
                                     state.output_weights.copy(), state.feedback)
                getattr(shifted, name)[position] += sign * step
                values.append(forward_loss(shifted, spikes, targets, window, s, soft=True))
            numeric[position] = (values[0] - values[1]) / (2 * step)
        assert np.abs(numeric).max() > 1e-3, name
        np.testing.assert_allclose(analytic[index], numeric, rtol=1e-6, atol=1e-7 * np.abs(numeric).max(),
                                   err_msg=name)


@pytest.mark.oracle
@pytest.mark.parametrize("neuron,loss", [("lif", "cross_entropy"), ("alif", "cross_entropy"), ("alif", "mse")])
def test_eprop_is_exact_without_recurrence(neuron, loss):
    s = settings(neuron, loss)
    state = strong_state(s, recurrent=False)
    spikes, targets, window = inputs(s)
    exact = bptt_gradients(state, spikes, targets, window, s)
    found = eprop_gradients(state, spikes, targets, window, s)
    for name, g_eprop, g_bptt in zip(("in", "rec", "out"), found, exact):
        if name != "rec":
            assert np.abs(g_bptt).max() > 1e-3, name
        np.testing.assert_allclose(g_eprop, g_bptt, rtol=0, atol=1e-10 * max(np.abs(g_bptt).max(), 1.0), err_msg=name)


def test_eprop_approximates_bptt_with_recurrence():
    s = settings("alif", sizes=(10, 12, 3))
    state = strong_state(s)
    spikes, targets, window = inputs(s, samples=6)
    exact = bptt_gradients(state, spikes, targets, window, s)
    found = eprop_gradients(state, spikes, targets, window, s)
    cosine = [float(np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(found, exact)]
    assert cosine[2] == pytest.approx(1.0, abs=1e-12)  # the readout's gradient is exact
    assert 0.3 < cosine[0] < 1 - 1e-6 and 0.3 < cosine[1] < 1 - 1e-6, cosine


def test_rate_regulariser_is_not_in_the_comparison():
    with pytest.raises(ValueError, match="c_reg"):
        s = replace(settings(), c_reg=1.0)
        eprop_gradients(strong_state(s), *inputs(s), s)
