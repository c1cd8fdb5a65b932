"""The sleep phase: Brian2 equals the numpy oracle, and sleep alone aligns B with the forward pathway."""

from __future__ import annotations

import numpy as np
import pytest

from apical.analysis.alignment import angle_degrees, forward_pathway
from apical.circuits.biograd.network import BioGradSettings, initial_state
from apical.circuits.biograd.oracle import SleepParameters, sleep_noise, sleep_update
from apical.circuits.biograd.sleep import BioGradSleepNetwork

TOLERANCE = 1e-9


def active_case(sizes, seed):
    rng = np.random.default_rng(seed)
    state = initial_state(sizes, rng, "random")
    state.weights = [3.0 * w for w in state.weights]
    return state, rng


@pytest.mark.parametrize("sizes", [(12, 10, 4), (12, 10, 8, 4)], ids=["1-hidden", "2-hidden"])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.oracle
def test_sleep_equals_oracle_runtime(sizes, seed):
    state, rng = active_case(sizes, seed)
    settings = BioGradSettings(sizes=sizes)
    sleep = SleepParameters(steps=10, batch_size=4, learning_rate=0.01)
    network = BioGradSleepNetwork(settings, sleep)
    noise = network.draw_noise(rng)
    ours = network.run(state.weights, state.biases, state.feedback, noise)
    reference = sleep_update(state.weights, state.biases, state.feedback, noise, settings.discrete(0.0), sleep)
    for l, (a, b, before) in enumerate(zip(ours, reference, state.feedback)):
        assert np.abs(b - before).max() > 1e-3, f"B^{l + 1} did not change: vacuous comparison"
        np.testing.assert_allclose(a, b, rtol=0, atol=TOLERANCE, err_msg=f"B^{l + 1}")


def test_noise_is_zero_mean_and_signed():
    noise = sleep_noise(np.random.default_rng(3), 64, 50, 100)
    assert set(np.unique(noise)) <= {-1.0, 0.0, 1.0}
    assert abs(noise.mean()) < 0.01


def test_sleep_alone_aligns_random_feedback():
    """From random B (~90°) to well below 45°, with the forward weights fixed."""
    sizes = (50, 40, 30, 10)
    rng = np.random.default_rng(0)
    state = initial_state(sizes, rng, "random")
    state.biases = [np.zeros_like(b) for b in state.biases]
    settings = BioGradSettings(sizes=sizes, time_steps=50, error_start=0)
    sleep = SleepParameters(steps=50, batch_size=32, learning_rate=3e-4)
    feedback = state.feedback
    angles = lambda B: [angle_degrees(b, forward_pathway(state.weights, l)) for l, b in enumerate(B)]  # noqa: E731
    assert min(angles(feedback)) > 75.0
    for _ in range(100):
        noise = [sleep_noise(rng, sleep.batch_size, sleep.steps, n) for n in sizes[1:-1]]
        feedback = sleep_update(state.weights, state.biases, feedback, noise, settings.discrete(0.0), sleep)
    assert max(angles(feedback)) < 45.0


@pytest.mark.standalone
@pytest.mark.oracle
def test_sleep_equals_oracle_cpp_standalone(tmp_path):
    sizes = (12, 10, 8, 4)
    settings = BioGradSettings(sizes=sizes)
    sleep = SleepParameters(steps=10, batch_size=4, learning_rate=0.01)
    network = BioGradSleepNetwork(settings, sleep, "cpp", build_dir=tmp_path / "sleep", threads=1)
    for seed in (0, 1):
        state, rng = active_case(sizes, seed)
        noise = network.draw_noise(rng)
        ours = network.run(state.weights, state.biases, state.feedback, noise)
        reference = sleep_update(state.weights, state.biases, state.feedback, noise, settings.discrete(0.0), sleep)
        for a, b in zip(ours, reference):
            np.testing.assert_allclose(a, b, rtol=0, atol=TOLERANCE)
