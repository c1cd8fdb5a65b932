"""The batched numpy BioGrad trainer equals the oracle of docs/models/biograd.md (float64, tolerance 1e-9)."""

from __future__ import annotations

import numpy as np
import pytest

from apical.circuits.biograd.network import initial_state
from apical.circuits.biograd.numpy_form import BatchedBioGrad
from apical.circuits.biograd.oracle import DiscreteParameters, run_batch, train_sequential
from apical.models.surrogate import FAMILIES

TOLERANCE = 1e-9
SHAPES = [(20, 15, 12, 5), (25, 14, 10, 8, 3)]  # two and three hidden layers
METHODS = ["forward", "forward_every_input", "kernel"]


def random_case(sizes, samples, seed, time_steps=12, rate=0.35, gain=3.0):
    """Weights ×3 so that every layer fires and the error neurons spike (as tests/test_biograd.py)."""
    rng = np.random.default_rng(seed)
    state = initial_state(sizes, rng, "random")
    weights = [gain * w for w in state.weights]
    spikes = (rng.random((samples, time_steps, sizes[0])) < rate).astype(np.uint8)
    labels = rng.integers(sizes[-1], size=samples)
    return weights, state.biases, state.feedback, spikes, labels


def trainer(sizes, params, case, batch_size, dtype=np.float64, **options):
    weights, biases, feedback = case[:3]
    return BatchedBioGrad(sizes, params, batch_size, dtype, weights=weights, biases=biases, feedback=feedback,
                          **options)


def assert_nontrivial(records):
    for l, record in enumerate(records):
        assert record.spikes.sum() > 0, f"layer {l + 1} is silent"
        assert np.abs(record.weight_change).max() > 1e-3, f"layer {l + 1} does not learn"


@pytest.mark.parametrize("sizes", SHAPES, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("block_size", [1, 4])
@pytest.mark.parametrize("surrogate", FAMILIES)
@pytest.mark.oracle
def test_wake_equals_oracle_float64(sizes, method, block_size, surrogate):
    params = DiscreteParameters(time_steps=12, error_start=4, learning_rate=0.5, gamma=0.7, surrogate=surrogate)
    case = random_case(sizes, 6, seed=1)
    records = run_batch(*case, params)
    assert_nontrivial(records)
    model = trainer(sizes, params, case, 6, eligibility=method, block_size=block_size)
    result = model.wake(*case[3:], record_spikes=True)
    np.testing.assert_array_equal(result.output_counts, records[-1].spikes.sum(axis=1))
    for l, record in enumerate(records):
        np.testing.assert_array_equal(result.spikes[l], record.spikes, err_msg=f"layer {l + 1} spikes")
        np.testing.assert_allclose(result.apical_error[l], record.apical_error, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(result.weight_change[l], record.weight_change.mean(axis=0), rtol=0, atol=TOLERANCE,
                                   err_msg=f"layer {l + 1} ΔW")
        np.testing.assert_allclose(result.bias_change[l], record.bias_change.mean(axis=0), rtol=0, atol=TOLERANCE,
                                   err_msg=f"layer {l + 1} Δb")


@pytest.mark.parametrize("sizes", SHAPES, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("surrogate", FAMILIES)
@pytest.mark.oracle
def test_training_equals_sequential_oracle_float64(sizes, method, surrogate):
    """Three minibatches of 4, the last one short (its sum is still divided by M = 4)."""
    params = DiscreteParameters(time_steps=10, error_start=3, learning_rate=0.3, surrogate=surrogate)
    case = random_case(sizes, 10, seed=2, time_steps=10)
    weights, biases, counts = train_sequential(*case, params, batch_size=4)
    model = trainer(sizes, params, case, 4, eligibility=method, block_size=3)
    np.testing.assert_array_equal(model.train(*case[3:]), counts)
    for ours, reference, before in zip(model.weights, weights, case[0]):
        assert np.abs(reference - before).max() > 1e-3, "weights did not move: vacuous comparison"
        np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE)
    for ours, reference in zip(model.biases, biases):
        np.testing.assert_allclose(ours, reference, rtol=0, atol=TOLERANCE)


@pytest.mark.oracle
def test_predict_equals_oracle_counts():
    sizes = SHAPES[0]
    params = DiscreteParameters(time_steps=12, error_start=4)
    case = random_case(sizes, 7, seed=3)
    counts = run_batch(*case, params)[-1].spikes.sum(axis=1)
    np.testing.assert_array_equal(trainer(sizes, params, case, 3).predict(case[3]), counts)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.oracle
def test_float32_agrees_with_oracle(method):
    """float32 gives the same spikes here; a threshold flip (|v − θ| or ||v − θ| − w| below
    ~1e-7) is possible in general, so the weight change is compared with a relative tolerance."""
    sizes = SHAPES[1]
    params = DiscreteParameters(time_steps=12, error_start=4, learning_rate=0.5)
    case = random_case(sizes, 8, seed=4)
    records = run_batch(*case, params)
    assert_nontrivial(records)
    result = trainer(sizes, params, case, 8, np.float32, eligibility=method).wake(*case[3:], record_spikes=True)
    for l, record in enumerate(records):
        np.testing.assert_array_equal(result.spikes[l], record.spikes, err_msg=f"layer {l + 1} spikes")
        reference = record.weight_change.mean(axis=0)
        assert result.weight_change[l].dtype == np.float32
        np.testing.assert_allclose(result.weight_change[l], reference, rtol=0, atol=1e-5 * np.abs(reference).max())


def test_learning_rate_zero_changes_nothing():
    sizes = SHAPES[0]
    params = DiscreteParameters(time_steps=12, error_start=4, learning_rate=0.0)
    case = random_case(sizes, 5, seed=5)
    model = trainer(sizes, params, case, 5)
    model.train(*case[3:])
    for ours, before in zip(model.weights + model.biases, case[0] + case[1]):
        np.testing.assert_array_equal(ours, before)


def test_bad_arguments_fail_clearly():
    sizes = SHAPES[0]
    params = DiscreteParameters(time_steps=12, error_start=4)
    case = random_case(sizes, 5, seed=6)
    with pytest.raises(ValueError, match="dtype"):
        trainer(sizes, params, case, 2, np.float16)
    with pytest.raises(ValueError, match="eligibility"):
        trainer(sizes, params, case, 2, eligibility="dense")
    with pytest.raises(ValueError, match="weights must have shapes"):
        BatchedBioGrad(sizes, params, 2, weights=case[0][::-1], biases=case[1], feedback=case[2])
    model = trainer(sizes, params, case, 2)
    with pytest.raises(ValueError, match="input_spikes"):
        model.train_batch(case[3], case[4])  # 5 samples > batch_size 2
    with pytest.raises(ValueError, match="labels"):
        model.train_batch(case[3][:2], [0, sizes[-1]])


# --- run.device = "numpy" for BioGrad (NumpyBioGradNetwork under apical train) ----------------------


@pytest.mark.oracle
def test_numpy_device_equals_the_brian2_network_through_apical_train(tmp_path):
    """`apical train` with run.device = "numpy" (float64, minibatches of 5 inside chunks of 20, two
    hidden layers, a sleep phase after every chunk) ends with the weights and feedback of the same
    run on the Brian2 network (runtime, float64) and resumes exactly after losing its last checkpoint."""
    from apical.models.encoders import sample_rng
    from apical.runs.config import config_from_dict
    from apical.runs.train import train
    from tests.test_train import train_then_resume_without_last_checkpoint

    tiny = {"model": {"hidden": [20, 12], "time_steps": 8, "error_start": 2},
            "learning": {"learning_rate": 0.02, "batch_size": 5, "sleep": True, "sleep_steps": 10, "sleep_batch": 6,
                         "sleep_learning_rate": 1e-3},
            "data": {"dataset": "mnist", "train_samples": 60, "test_samples": 20},
            "run": {"device": "numpy", "precision": "float64", "eval_every": 40, "checkpoint_every": 20,
                    "chunk_samples": 20}}
    reference, resumed, summary = train_then_resume_without_last_checkpoint(config_from_dict(tiny), tmp_path)
    assert summary["device"] == "numpy"
    path = "checkpoints/checkpoint-0000000060.npz"
    brian = train(config_from_dict({**tiny, "run": {**tiny["run"], "device": "runtime"}}), tmp_path / "brian2")
    assert brian["final_test_accuracy"] == summary["final_test_accuracy"]
    config = config_from_dict(tiny)
    initial = initial_state((784, 20, 12, 10), sample_rng(config.seeds.weights, "weights", 0),
                            config.model.feedback_init)
    with np.load(reference / path) as ours, np.load(resumed / path) as again, \
            np.load(tmp_path / "brian2" / path) as expected:
        assert np.abs(ours["weights_3"] - initial.weights[2]).max() > 1e-4, "the run did not learn"
        for name in expected.files:
            if name != "progress":
                np.testing.assert_allclose(ours[name], expected[name], rtol=0, atol=1e-9, err_msg=name)
                np.testing.assert_array_equal(again[name], ours[name], err_msg=name)
        assert np.abs(ours["feedback_1"] - initial.feedback[0]).max() > 1e-4, "sleep did not move B"
