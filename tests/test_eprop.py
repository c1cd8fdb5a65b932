"""e-prop's Brian2 network equals its numpy oracle (circuits/eprop/oracle.py; docs/models/eprop.md).

Float64, tolerance 1e-9 on every weight after a run of two minibatches (the updates themselves
are of order 1e-4 to 1, so a wrong term shows), identical recurrent spikes, equal losses and
readout scores; LIF and ALIF cells, the regression and the classification readout, random and
symmetric feedback, on the runtime device and once compiled (cpp_standalone).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from brian2 import ms

from apical.circuits.eprop import oracle
from apical.circuits.eprop.network import EpropNetwork, EpropSettings, initial_state
from apical.circuits.eprop.numpy_form import NumpyEprop

TOLERANCE = 1e-9
SAMPLES = 4


def small_settings(neuron="lif", loss="mse", feedback="random") -> EpropSettings:
    """20 afferents, 15 recurrent cells, 3 readouts, 30 steps; minibatches of 2."""
    return EpropSettings(sizes=(20, 15, 3), time_steps=30, neuron=neuron, loss=loss, feedback=feedback,
                         tau_m=20 * ms, tau_out=20 * ms, tau_a=200 * ms, beta=0.2, c_reg=30.0, batch_size=2)


def small_inputs(settings: EpropSettings, seed: int = 0):
    """Input rasters at 20 % per step, targets (one class per sample for the classification, a
    small random signal for the regression) and an error window over the last 20 steps."""
    rng = np.random.default_rng(seed)
    n_in, _, K = settings.sizes
    T = settings.time_steps
    spikes = (rng.random((SAMPLES, T, n_in)) < 0.2).astype(float)
    if settings.loss == "cross_entropy":
        targets = np.zeros((SAMPLES, T, K))
        targets[np.arange(SAMPLES), :, rng.integers(0, K, SAMPLES)] = 1.0
    else:
        targets = 0.1 * rng.standard_normal((SAMPLES, T, K))
    window = np.zeros(T)
    window[10:] = 1.0
    return spikes, targets, window


def assert_equal_runs(found, expected, initial, settings):
    np.testing.assert_array_equal(found.spikes, expected.spikes)
    assert expected.spikes.sum() > 20, "too few spikes to test anything"
    for name in ("input_weights", "recurrent_weights", "output_weights"):
        change = np.abs(getattr(expected.state, name) - getattr(initial, name)).max()
        assert change > 1e-4, f"{name} barely learned ({change})"
        np.testing.assert_allclose(getattr(found.state, name), getattr(expected.state, name), rtol=0,
                                   atol=TOLERANCE, err_msg=name)
    np.testing.assert_allclose(found.loss, expected.loss, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(found.scores, expected.scores, rtol=0, atol=TOLERANCE)
    assert np.all(np.diag(found.state.recurrent_weights) == 0.0)


CASES = [("lif", "mse", "random"), ("lif", "cross_entropy", "symmetric"), ("alif", "mse", "symmetric"),
         ("alif", "cross_entropy", "random")]


@pytest.mark.oracle
@pytest.mark.parametrize("neuron,loss,feedback", CASES)
def test_brian2_equals_oracle_runtime(neuron, loss, feedback):
    settings = small_settings(neuron, loss, feedback)
    state = initial_state(settings.sizes, np.random.default_rng(1), feedback)
    spikes, targets, window = small_inputs(settings)
    expected = oracle.run(state, spikes, targets, window, settings, learning_rate=0.05)
    found = EpropNetwork(settings, SAMPLES).run(state, spikes, targets, window, learning_rate=0.05)
    assert_equal_runs(found, expected, state, settings)


@pytest.mark.oracle
@pytest.mark.parametrize("neuron,loss,feedback", CASES)
def test_numpy_form_equals_oracle(neuron, loss, feedback):
    """The batched form (gradients as backward-filtered learning signals, one product per
    pathway) learns what the step-by-step oracle learns."""
    settings = small_settings(neuron, loss, feedback)
    state = initial_state(settings.sizes, np.random.default_rng(1), feedback)
    spikes, targets, window = small_inputs(settings)
    expected = oracle.run(state, spikes, targets, window, settings, learning_rate=0.05)
    found = NumpyEprop(settings).run(state, spikes, targets, window, learning_rate=0.05)
    assert_equal_runs(found, expected, state, settings)



@pytest.mark.oracle
def test_numpy_form_evaluates_as_the_oracle():
    """Without learning the numpy form runs all samples as one block (not minibatches of M), skips
    the sums and leaves the weights: spikes, losses and scores are still the oracle's."""
    settings = small_settings("alif", "cross_entropy", "random")
    state = initial_state(settings.sizes, np.random.default_rng(1), "random")
    spikes, targets, window = small_inputs(settings, seed=4)
    expected = oracle.run(state, spikes, targets, window, settings, learning_rate=0.0)
    found = NumpyEprop(settings).run(state, spikes, targets, window, learning_rate=0.0)
    np.testing.assert_array_equal(found.spikes, expected.spikes)
    assert expected.spikes.sum() > 20
    np.testing.assert_allclose(found.loss, expected.loss, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(found.scores, expected.scores, rtol=0, atol=TOLERANCE)
    for name in ("input_weights", "recurrent_weights", "output_weights"):
        np.testing.assert_array_equal(getattr(found.state, name), getattr(state, name))

@pytest.mark.oracle
@pytest.mark.standalone
def test_brian2_equals_oracle_cpp(tmp_path):
    settings = small_settings("alif", "cross_entropy", "random")
    state = initial_state(settings.sizes, np.random.default_rng(2), "random")
    spikes, targets, window = small_inputs(settings, seed=3)
    expected = oracle.run(state, spikes, targets, window, settings, learning_rate=0.05)
    network = EpropNetwork(settings, SAMPLES, device_name="cpp", build_dir=tmp_path)
    assert_equal_runs(network.run(state, spikes, targets, window, 0.05), expected, state, settings)
    # The same binary, run again from the learned state: the second run starts where the first ended.
    again = oracle.run(expected.state, spikes, targets, window, settings, learning_rate=0.05)
    assert_equal_runs(network.run(expected.state, spikes, targets, window, 0.05), again, expected.state, settings)


def test_without_learning_nothing_changes():
    settings = small_settings("alif", "cross_entropy", "symmetric")
    state = initial_state(settings.sizes, np.random.default_rng(1), "symmetric")
    spikes, targets, window = small_inputs(settings)
    found = EpropNetwork(settings, SAMPLES).run(state, spikes, targets, window, learning_rate=0.1, learn=False)
    for name in ("input_weights", "recurrent_weights", "output_weights"):
        np.testing.assert_array_equal(getattr(found.state, name), getattr(state, name))


def test_bad_inputs_fail_clearly():
    settings = small_settings()
    state = initial_state(settings.sizes, np.random.default_rng(1))
    spikes, targets, window = small_inputs(settings)
    with pytest.raises(ValueError, match="whole minibatches"):
        EpropNetwork(settings, 3).run(state, spikes[:3], targets[:3], window, 0.1)
    with pytest.raises(ValueError, match="whole minibatches"):
        NumpyEprop(settings).run(state, spikes[:3], targets[:3], window, 0.1)
    with pytest.raises(ValueError, match="input_spikes must have shape"):
        EpropNetwork(settings, SAMPLES).run(state, spikes[:, :10], targets, window, 0.1)
    with pytest.raises(ValueError, match="surrogate"):
        replace(settings, surrogate_family="gaussian").surrogate()
