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

    tiny = {"model": {"hidden": [20, 12], "time_steps": 8},
            "biograd": {"error_start": 2, "sleep": True, "sleep_steps": 10, "sleep_batch": 6, "sleep_learning_rate": 1e-3},
            "learning": {"learning_rate": 0.02, "batch_size": 5},
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
                            config.biograd.feedback_init)
    with np.load(reference / path) as ours, np.load(resumed / path) as again, \
            np.load(tmp_path / "brian2" / path) as expected:
        assert np.abs(ours["weights_3"] - initial.weights[2]).max() > 1e-4, "the run did not learn"
        for name in expected.files:
            if name != "progress":
                np.testing.assert_allclose(ours[name], expected[name], rtol=0, atol=1e-9, err_msg=name)
                np.testing.assert_array_equal(again[name], ours[name], err_msg=name)
        assert np.abs(ours["feedback_1"] - initial.feedback[0]).max() > 1e-4, "sleep did not move B"


# --- learning.optimizer = "adam" on the numpy form --------------------------------------------------


def textbook_adam(parameters, gradients, moments, step, step_size, beta1=0.9, beta2=0.999, eps=1e-8):
    """Kingma & Ba (2015), Algorithm 1, with the bias-corrected moments written out (the trainer
    folds the corrections into the step size: the same numbers up to rounding)."""
    for p, g, (m, v) in zip(parameters, gradients, moments):
        m[...] = beta1 * m + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * g * g
        p -= step_size * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)


@pytest.mark.oracle
def test_adam_steps_the_oracle_gradient_estimate_across_runs():
    """NumpyBioGradNetwork with optimizer "adam" (float64): each minibatch's weights and biases move
    by textbook Adam on the oracle's mean δ·E (its ΔW at η = 1, sign flipped), and the moments carry
    over from one run to the next (two runs of 8 samples, minibatches of 3: a short last one)."""
    from apical.circuits.biograd.network import BioGradSettings, BioGradState
    from apical.circuits.biograd.numpy_form import NumpyBioGradNetwork
    from apical.models.soma import SomaParameters

    sizes = (20, 15, 12, 5)
    weights, biases, feedback, spikes, labels = random_case(sizes, 16, seed=11)
    settings = BioGradSettings(sizes=sizes, soma=SomaParameters(), time_steps=12, error_start=4, batch_size=3)
    network = NumpyBioGradNetwork(settings, 8, precision="float64", optimizer="adam")
    state = BioGradState([w.copy() for w in weights], [b.copy() for b in biases], feedback)
    step_sizes = [2e-3, 1e-3]
    for run, step_size in enumerate(step_sizes):
        state = network.run(state, spikes[8 * run:8 * run + 8], labels[8 * run:8 * run + 8], step_size).state

    expected_w, expected_b = [w.copy() for w in weights], [b.copy() for b in biases]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in expected_w + expected_b]
    step = 0
    for run, step_size in enumerate(step_sizes):
        for start in range(8 * run, 8 * run + 8, 3):
            stop = min(start + 3, 8 * run + 8)
            records = run_batch(expected_w, expected_b, feedback, spikes[start:stop], labels[start:stop],
                                settings.discrete(1.0))
            # the network divides by M even for a short last minibatch (as the Brian2 network: W += ΔW / M)
            gradients = ([-r.weight_change.sum(axis=0) / 3 for r in records]
                         + [-r.bias_change.sum(axis=0) / 3 for r in records])
            step += 1
            textbook_adam(expected_w + expected_b, gradients, moments, step, step_size)
    assert network.adam.step_count == step == 6
    for l in range(3):
        assert np.abs(state.weights[l] - weights[l]).max() > 1e-3, f"layer {l + 1} did not learn"
        np.testing.assert_allclose(state.weights[l], expected_w[l], rtol=0, atol=1e-9)
        np.testing.assert_allclose(state.biases[l], expected_b[l], rtol=0, atol=1e-9)


def test_adam_run_resumes_exactly_and_checkpoints_its_moments(tmp_path):
    """`apical train` with learning.optimizer = "adam" on the numpy form: the checkpoint holds Adam's
    step count and moments, and a run that lost its last checkpoint resumes to the same numbers."""
    from apical.runs.config import config_from_dict
    from tests.test_train import train_then_resume_without_last_checkpoint

    tiny = {"model": {"hidden": [20, 12], "time_steps": 8}, "biograd": {"error_start": 2},
            "learning": {"optimizer": "adam", "learning_rate": 1e-3, "batch_size": 5},
            "data": {"dataset": "mnist", "train_samples": 60, "test_samples": 20},
            "run": {"device": "numpy", "precision": "float64", "eval_every": 40, "checkpoint_every": 20,
                    "chunk_samples": 20}}
    reference, resumed, _ = train_then_resume_without_last_checkpoint(config_from_dict(tiny), tmp_path)
    path = "checkpoints/checkpoint-0000000060.npz"
    with np.load(reference / path) as ours, np.load(resumed / path) as again:
        assert int(ours["optimizer_steps"]) == 12  # 60 samples in minibatches of 5
        assert {f"adam_{k}_{p}_{l}" for k in "mv" for p in ("weights", "biases") for l in (1, 2, 3)} <= set(ours.files)
        assert ours["adam_m_weights_1"].shape == ours["weights_1"].shape == (20, 784)
        assert np.abs(ours["adam_v_weights_3"]).max() > 0
        for name in ours.files:
            if name != "progress":
                np.testing.assert_array_equal(again[name], ours[name], err_msg=name)
    assert 'learning.optimizer = "adam" the numpy form steps each weight' in (reference / "model.md").read_text()
    # scoring takes no step: the Adam-trained weights are scored on the Brian2 network too, with equal counts
    from apical.runs.evaluate import directory_counts

    on_numpy, labels, _, _ = directory_counts(reference)
    on_brian2, same_labels, config, _ = directory_counts(reference, device="runtime")
    assert config.run.device == "runtime" and (on_numpy.sum(axis=1) > 0).mean() > 0.5
    np.testing.assert_array_equal(on_brian2, on_numpy)
    np.testing.assert_array_equal(same_labels, labels)


@pytest.mark.parametrize("framework, device, message", [
    ("biograd", "cpp", "config key 'learning.optimizer': 'adam' is stepped by BioGrad's numpy form only"),
    ("scmicro", "numpy", "config key 'learning.optimizer': SC microcircuit steps with 'sgd', not 'adam'"),
])
def test_adam_where_it_cannot_run_is_refused_with_the_key(framework, device, message):
    from apical.circuits.framework import ConfigError
    from apical.runs.config import config_from_dict

    with pytest.raises(ConfigError) as error:
        config_from_dict({"model": {"framework": framework}, "learning": {"optimizer": "adam"},
                          "run": {"device": device}})
    assert str(error.value).startswith(message)
