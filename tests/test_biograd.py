"""The Brian2 BioGrad network equals the numpy oracle of docs/models/biograd.md (float64, tolerance 1e-9)."""

from __future__ import annotations

import numpy as np
import pytest

from apical.circuits.biograd.network import (
    BioGradNetwork,
    BioGradSettings,
    BioGradState,
    initial_state,
    run_single_sample,
)
from apical.circuits.biograd.oracle import run_batch, train_sequential
from brian2 import ms

from apical.models.soma import SomaParameters
from apical.models.surrogate import FAMILIES
from tests.forms import assert_layer_records_equal

TOLERANCE = 1e-9
FIELDS = ("spikes", "eligibility", "bias_eligibility", "apical", "apical_error", "weight_change", "bias_change")


def random_case(sizes, time_steps, seed, rate=0.35, gain=3.0, feedback_init="random"):
    """A network active enough that every layer fires and the error neurons spike."""
    rng = np.random.default_rng(seed)
    state = initial_state(sizes, rng, feedback_init)
    state.weights = [gain * w for w in state.weights]
    spikes = (rng.random((time_steps, sizes[0])) < rate).astype(float)
    label = int(rng.integers(sizes[-1]))
    return state, spikes, label


def assert_records_equal(brian_records, oracle_records):
    assert_layer_records_equal(brian_records, oracle_records, FIELDS, TOLERANCE)


def assert_nontrivial(oracle_records):
    """Guard against a vacuous comparison: every layer spikes and learns something."""
    for l, record in enumerate(oracle_records):
        assert record.spikes.sum() > 0, f"layer {l + 1} is silent"
        assert np.abs(record.eligibility).max() > 0, f"layer {l + 1} has no eligibility"
    assert np.abs(oracle_records[-1].apical).max() > 0, "no error spikes reached the output layer"


def assert_run_equals_sequential_oracle(result, state, spikes, labels, settings, learning_rate, batch_size):
    """A training run's output counts, weights and biases equal the sequential oracle's (1e-9);
    returns the oracle's weights and biases."""
    weights, biases, counts = train_sequential(state.weights, state.biases, state.feedback, spikes, labels,
                                               settings.discrete(learning_rate), batch_size=batch_size)
    np.testing.assert_array_equal(result.output_counts, counts)
    for ours, reference in zip(result.state.weights + result.state.biases, weights + biases):
        np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE)
    return weights, biases


SHAPES = [(12, 9, 4), (20, 15, 12, 5), (25, 14, 10, 8, 3)]
TIMINGS = [(8, 2), (12, 5), (10, 0)]


@pytest.mark.parametrize("sizes", SHAPES, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("timing", TIMINGS, ids=lambda t: f"T{t[0]}-t0{t[1]}")
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.oracle
def test_single_sample_equals_oracle_runtime(sizes, timing, seed):
    time_steps, error_start = timing
    settings = BioGradSettings(sizes=sizes, time_steps=time_steps, error_start=error_start)
    state, spikes, label = random_case(sizes, time_steps, seed)
    ours = run_single_sample(state.weights, state.biases, state.feedback, spikes, label, settings, 0.05)
    reference = run_batch(state.weights, state.biases, state.feedback, spikes[None], np.array([label]),
                          settings.discrete(0.05))
    assert_nontrivial(reference)
    assert_records_equal(ours, reference)


@pytest.mark.oracle
@pytest.mark.parametrize("surrogate", [f for f in FAMILIES if f != "rectangular"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_every_surrogate_family_equals_the_oracle_runtime(surrogate, batch_size):
    """One sample's records, then a training run with minibatches, for each non-published g."""
    settings = BioGradSettings(sizes=(20, 15, 12, 5), time_steps=12, error_start=5, batch_size=batch_size,
                               soma=SomaParameters(surrogate=surrogate, window=0.4, gamma=0.8))
    state, spikes, label = random_case(settings.sizes, 12, 0)
    ours = run_single_sample(state.weights, state.biases, state.feedback, spikes, label, settings, 0.05)
    reference = run_batch(state.weights, state.biases, state.feedback, spikes[None], np.array([label]),
                          settings.discrete(0.05))
    assert_nontrivial(reference)
    assert_records_equal(ours, reference)
    rng = np.random.default_rng(3)
    many = (rng.random((6, 12, 20)) < 0.35).astype(float)
    labels = rng.integers(5, size=6)
    result = BioGradNetwork(settings, 6).run(state, many, labels, learning_rate=0.2)
    assert_run_equals_sequential_oracle(result, state, many, labels, settings, 0.2, batch_size)


def test_oracle_matches_a_hand_computed_step():
    """One neuron, one input spike per step: v = 0.6, 0.3·0 + 0.6 ... checks the oracle itself."""
    from apical.circuits.biograd.oracle import DiscreteParameters

    params = DiscreteParameters(leak=0.5, threshold=1.0, window=0.5, gamma=1.0, time_steps=3, error_start=0,
                                learning_rate=1.0)
    weights = [np.array([[0.6]])]
    biases = [np.array([0.0])]
    spikes = np.ones((1, 3, 1))
    record = run_batch(weights, biases, [], spikes, np.array([0]), params)[0]
    # v: 0.6, 0.9, 1.05 (spike at t=2); g: 1 where |v − 1| < 0.5: t=1 (0.9), t=2 (1.05); t=0: |0.6−1|=0.4 → 1
    # ρ: t0: 1 − 0 − 0.6 = 0.4; t1: 1 − 0.9 = 0.1
    # ε: 1, 0.5·0.4·1 + 1 = 1.2, 0.5·0.1·1.2 + 1 = 1.06;  E = 1 + 1.2 + 1.06
    np.testing.assert_allclose(record.spikes[0, :, 0], [0, 0, 1])
    np.testing.assert_allclose(record.eligibility[0, 0, 0], 1 + 1.2 + 1.06, rtol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.oracle
def test_training_run_equals_sequential_oracle_runtime(batch_size):
    """Several samples in one simulation: sample and minibatch boundaries inside the network."""
    sizes, time_steps, error_start, n = (14, 10, 4), 8, 2, 6
    settings = BioGradSettings(sizes=sizes, time_steps=time_steps, error_start=error_start, batch_size=batch_size)
    rng = np.random.default_rng(7)
    state = initial_state(sizes, rng, "random")
    state.weights = [3.0 * w for w in state.weights]
    spikes = (rng.random((n, time_steps, sizes[0])) < 0.35).astype(float)
    labels = rng.integers(sizes[-1], size=n)
    result = BioGradNetwork(settings, n).run(state, spikes, labels, learning_rate=0.2)
    weights, _ = assert_run_equals_sequential_oracle(result, state, spikes, labels, settings, 0.2, batch_size)
    for reference, before in zip(weights, state.weights):
        assert np.abs(reference - before).max() > 1e-3, "weights did not move: vacuous comparison"


@pytest.mark.oracle
def test_boundary_updates_of_neurons_silent_in_part_of_a_minibatch():
    """The sample-end fold and the minibatch-end update reach only synapses whose presynaptic
    neuron spiked (models/soma.py, boundary_events). Inputs that spike in one sample of a
    minibatch and stay silent in the next must still have that sample's change applied, and
    inputs silent throughout must keep their weights: sparse inputs, M = 3, against the oracle."""
    sizes, time_steps, error_start, n, batch_size = (16, 10, 4), 8, 2, 6, 3
    settings = BioGradSettings(sizes=sizes, time_steps=time_steps, error_start=error_start, batch_size=batch_size)
    rng = np.random.default_rng(23)
    state = initial_state(sizes, rng, "random")
    state.weights = [4.0 * w for w in state.weights]
    spikes = np.zeros((n, time_steps, sizes[0]))
    spikes[:, :, :12] = rng.random((n, time_steps, 12)) < 0.3  # inputs 12–15 never spike
    spikes[1:, :, 0] = 0  # input 0 spikes in the first sample of the first minibatch only
    spikes[[0, 2, 3, 4, 5], :, 1] = 0  # input 1 only in the middle sample
    assert spikes[0, :, 0].any() and spikes[1, :, 1].any()
    labels = rng.integers(sizes[-1], size=n)
    result = BioGradNetwork(settings, n).run(state, spikes, labels, learning_rate=0.2)
    weights, _ = assert_run_equals_sequential_oracle(result, state, spikes, labels, settings, 0.2, batch_size)
    moved = np.abs(weights[0] - state.weights[0]).max(axis=0)
    assert moved[0] > 1e-4 and moved[1] > 1e-4, "inputs 0 and 1 must have learned: vacuous comparison"
    np.testing.assert_array_equal(result.state.weights[0][:, 12:], state.weights[0][:, 12:])


def test_evaluation_changes_nothing_whatever_the_learning_rate():
    """learn=False says "evaluate": the state stays, though a learning rate is given, and the
    counts are those the same samples give when learning (the weights change only at the end)."""
    sizes = (10, 6, 3)
    settings = BioGradSettings(sizes=sizes, time_steps=6, error_start=1)
    state, spikes, label = random_case(sizes, 6, 3)
    network = BioGradNetwork(settings, 1)
    tested = network.run(state, spikes[None], np.array([label]), learning_rate=0.5, learn=False)
    for ours, before in zip(tested.state.weights + tested.state.biases, state.weights + state.biases):
        np.testing.assert_array_equal(ours, before)
    learned = network.run(state, spikes[None], np.array([label]), learning_rate=0.5)
    np.testing.assert_array_equal(tested.output_counts, learned.output_counts)
    assert any(np.abs(W - before).max() > 0 for W, before in zip(learned.state.weights, state.weights))


def test_membrane_time_constant_sets_the_discrete_leak():
    soma = SomaParameters.from_leak(0.3)
    assert abs(soma.leak - 0.3) < 1e-15
    assert abs(float(soma.tau_m / ms) - 4.1529) < 1e-3  # docs/models/biograd.md: τ_m ≈ 4.15 ms at dt = 5 ms


def test_bad_shapes_are_refused():
    settings = BioGradSettings(sizes=(5, 3, 2), time_steps=4, error_start=1)
    network = BioGradNetwork(settings, 2)
    state = initial_state(settings.sizes, np.random.default_rng(0))
    with pytest.raises(ValueError, match="input_spikes must have shape"):
        network.run(state, np.zeros((2, 5, 5)), np.zeros(2, int), 0.1)
    with pytest.raises(ValueError, match="error_start"):
        BioGradSettings(sizes=(5, 2), time_steps=4, error_start=4)


@pytest.mark.standalone
@pytest.mark.oracle
def test_cpp_standalone_equals_oracle(tmp_path):
    """One compiled project of two hidden layers (the code of a layer does not depend on the depth;
    the runtime tests above cover three shapes); seeds and labels change only through run arguments."""
    sizes, time_steps, error_start = (20, 15, 12, 5), 12, 3
    settings = BioGradSettings(sizes=sizes, time_steps=time_steps, error_start=error_start, batch_size=2)
    network = BioGradNetwork(settings, 1, device_name="cpp", build_dir=tmp_path / "build", record_all=True, threads=1)
    for seed in (0, 1, 2):
        state, spikes, label = random_case(sizes, time_steps, seed)
        ours = network.run(state, spikes[None], np.array([label]), 0.05).layers
        reference = run_batch(state.weights, state.biases, state.feedback, spikes[None], np.array([label]),
                              settings.discrete(0.05))
        assert_nontrivial(reference)
        assert_records_equal(ours, reference)


@pytest.mark.standalone
@pytest.mark.oracle
def test_cpp_standalone_training_equals_oracle(tmp_path):
    """Minibatches over two chunks, with a g that never vanishes (every trace learns at every step);
    the published g trains on cpp_standalone in the test below and in test_cpp_standalone_equals_oracle."""
    sizes, time_steps, error_start, n = (14, 10, 4), 8, 2, 6
    settings = BioGradSettings(sizes=sizes, time_steps=time_steps, error_start=error_start, batch_size=2,
                               soma=SomaParameters(surrogate="exponential"))
    rng = np.random.default_rng(11)
    state = initial_state(sizes, rng, "forward_product")
    state.weights = [3.0 * w for w in state.weights]
    network = BioGradNetwork(settings, n, device_name="cpp", build_dir=tmp_path / "train", threads=2)
    for _ in range(2):  # two chunks in a row: the state passes through run arguments
        spikes = (rng.random((n, time_steps, sizes[0])) < 0.35).astype(float)
        labels = rng.integers(sizes[-1], size=n)
        result = network.run(state, spikes, labels, learning_rate=0.2)
        weights, biases = assert_run_equals_sequential_oracle(result, state, spikes, labels, settings, 0.2, 2)
        state = BioGradState(weights, biases, state.feedback)


@pytest.mark.standalone
@pytest.mark.oracle
def test_cpp_standalone_stays_exact_past_64_seconds_of_simulated_time(tmp_path):
    """A chunk of 660 samples of T = 20 steps of 5 ms lasts 66 s. From 64 s on, Brian2's standalone
    scheduler compared the sample clock with the step clock to an absolute 1e-14 s and let the
    boundary updates of sample 641 run one step late (circuits/backend.py, relative_clock_match);
    the run must still equal the oracle."""
    sizes, time_steps, error_start, n = (10, 6, 3), 20, 5, 660
    settings = BioGradSettings(sizes=sizes, time_steps=time_steps, error_start=error_start, batch_size=1)
    assert abs(641 * (time_steps * 0.005) - (641 * time_steps) * 0.005) > 1e-14  # the clocks' t differ here
    rng = np.random.default_rng(41)
    state = initial_state(sizes, rng, "random")
    state.weights = [3.0 * w for w in state.weights]
    spikes = (rng.random((n, time_steps, sizes[0])) < 0.3).astype(float)
    labels = rng.integers(sizes[-1], size=n)
    network = BioGradNetwork(settings, n, device_name="cpp", build_dir=tmp_path / "long", threads=1)
    result = network.run(state, spikes, labels, learning_rate=0.05)
    assert_run_equals_sequential_oracle(result, state, spikes, labels, settings, 0.05, batch_size=1)


@pytest.mark.oracle
def test_float32_simulation_stays_close_to_the_oracle():
    """run.precision = float32 (for speed): same decisions, weights within float32 rounding."""
    sizes, time_steps, n = (14, 10, 4), 8, 4
    settings = BioGradSettings(sizes=sizes, time_steps=time_steps, error_start=2)
    rng = np.random.default_rng(5)
    state = initial_state(sizes, rng, "random")
    state.weights = [3.0 * w for w in state.weights]
    spikes = (rng.random((n, time_steps, sizes[0])) < 0.35).astype(float)
    labels = rng.integers(sizes[-1], size=n)
    result = BioGradNetwork(settings, n, precision="float32").run(state, spikes, labels, learning_rate=0.2)
    weights, _, counts = train_sequential(state.weights, state.biases, state.feedback, spikes, labels,
                                          settings.discrete(0.2))
    np.testing.assert_array_equal(result.output_counts, counts)
    for ours, reference in zip(result.state.weights, weights):
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5)
