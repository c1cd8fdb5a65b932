"""The BP baseline trained through the training driver (`apical train` with framework = "bp")."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from apical.circuits.biograd.network import initial_state
from apical.models.encoders import sample_rng
from apical.circuits.bp.framework import BPFramework
from apical.circuits.bptt import bptt_gradients
from apical.runs.config import config_from_dict
from apical.runs.train import train

TINY = {
    "model": {"framework": "bp", "hidden": [20], "time_steps": 8},
    "learning": {"optimizer": "adam", "batch_size": 10},
    "bp": {"learning_rate": 3e-3},
    "data": {"dataset": "mnist", "train_samples": 200, "test_samples": 100},
    "run": {"device": "runtime", "epochs": 5, "eval_every": 500, "checkpoint_every": 50, "chunk_samples": 50},
}


def tiny_config(**sections):
    merged = {name: {**TINY.get(name, {}), **sections.get(name, {})} for name in {*TINY, *sections}}
    return config_from_dict(merged)


def newest_checkpoint(directory):
    path = sorted((directory / "checkpoints").glob("checkpoint-*.npz"))[-1]
    with np.load(path) as stored:
        return {k: stored[k] for k in stored.files}


def test_bp_trains_through_the_driver_and_beats_chance(tmp_path):
    out = tmp_path / "bp"
    summary = train(tiny_config(), out)
    assert summary["framework"] == "bp"
    assert summary["network"] == [784, 20, 10]
    assert summary["timings"]["compile_seconds"] == 0
    assert (out / "config.toml").exists() and (out / "figures" / "learning_curve.png").exists()
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["samples_seen"]) for r in rows] == [500, 1000]
    assert json.loads((out / "summary.json").read_text())["final_test_accuracy"] == summary["final_test_accuracy"]
    assert summary["final_test_accuracy"] > 0.3, "20 hidden neurons trained on 200 digits beat chance (10 %)"
    state = newest_checkpoint(out)
    assert state["weights_1"].dtype == np.float32 and state["weights_1"].shape == (20, 784)
    assert {"biases_2", "adam_m_weights_2", "adam_v_biases_1", "optimizer_steps"} <= set(state)
    assert int(state["optimizer_steps"]) == 5 * 200 // 10  # one Adam step per minibatch


def test_resume_after_a_stop_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    config = tiny_config(run={"epochs": 1})
    train(config, tmp_path / "uninterrupted")

    original = BPFramework.train_chunk
    calls = []

    def stop_after_two_chunks(self, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the run were stopped at the third chunk
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BPFramework, "train_chunk", stop_after_two_chunks)
    interrupted = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train(config, interrupted)
    assert int(newest_checkpoint(interrupted)["optimizer_steps"]) == 2 * 50 // 10
    monkeypatch.setattr(BPFramework, "train_chunk", original)
    train(config, interrupted, resume=True)

    ours, expected = newest_checkpoint(interrupted), newest_checkpoint(tmp_path / "uninterrupted")
    assert ours.keys() == expected.keys()
    for name in expected:
        if name != "progress":
            np.testing.assert_array_equal(ours[name], expected[name], err_msg=name)


def test_starts_from_biograds_initial_network():
    config = tiny_config()
    bp = BPFramework(config, 784, 10, 50, None)
    biograd = initial_state((784, 20, 10), sample_rng(config.seeds.weights, "weights", 0))
    for ours, theirs in zip(bp.weights + bp.biases, biograd.weights + biograd.biases):
        np.testing.assert_array_equal(ours, theirs.astype(np.float32))


def test_lif_constants_come_from_the_bp_section():
    config = tiny_config(bp={"leak": 0.5, "threshold": 0.4, "window": 0.2, "gamma": 2.0})
    params = BPFramework(config, 784, 10, 50, None).settings.params
    assert (params.leak, params.threshold, params.window, params.gamma) == (0.5, 0.4, 0.2, 2.0)


def test_sgd_takes_plain_gradient_steps():
    config = tiny_config(learning={"optimizer": "sgd"}, bp={"learning_rate": 0.1})
    framework = BPFramework(config, 784, 10, 10, None)
    rng = np.random.default_rng(0)
    spikes = (rng.random((10, 8, 784)) < 0.3).astype(np.uint8)
    labels = rng.integers(0, 10, size=10)
    before = [w.copy() for w in framework.weights]
    _, grads, _ = bptt_gradients(framework.weights, framework.biases, spikes, labels, framework.settings.params)
    framework.train_chunk(spikes, labels)
    for W0, W1, grad in zip(before, framework.weights, grads):
        np.testing.assert_allclose(W1, W0 - 0.1 * grad, rtol=0, atol=1e-6)
    assert "adam_m_weights_1" not in framework.state_arrays()
