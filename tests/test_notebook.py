"""The notebook API: a results directory loaded in one call, its network's Brian2 objects in a
second, ready for monitors; and the documented example (docs/notebook.md) run on a tiny run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from brian2 import SpikeMonitor, StateMonitor

from apical.runs.config import load_config
from apical.runs.notebook import load_run
from apical.runs.datasets import encode, load_dataset
from apical.runs.evaluate import directory_counts
from apical.runs.train import train

ROOT = Path(__file__).resolve().parents[1]
TINY = """
[model]
hidden = [30]
time_steps = 8
[biograd]
error_start = 2
[learning]
learning_rate = 0.005
[data]
train_samples = 100
test_samples = 40
[run]
device = "runtime"
checkpoint_every = 50
chunk_samples = 50
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook")
    (folder / "tiny.toml").write_text(TINY)
    train(load_config(folder / "tiny.toml"), folder / "run")
    return folder / "run"


def test_load_run_gives_config_state_and_the_evaluations_inputs(trained):
    run = load_run(trained)
    assert run.spec.name == "biograd" and run.config.model.hidden == (30,)
    assert sorted(run.state) == ["biases_1", "biases_2", "feedback_1", "weights_1", "weights_2"]
    assert run.progress["samples_seen"] == 100 and run.checkpoint.name == "checkpoint-0000000100.npz"
    spikes, labels = run.test_samples(3, first=5)
    dataset = load_dataset(run.config)
    np.testing.assert_array_equal(spikes, encode(dataset.test_inputs[5:8], 8, run.config.seeds.input, "test", 5))
    np.testing.assert_array_equal(labels, dataset.test_labels[5:8])


def test_the_brian2_objects_take_monitors_and_answer_as_evaluate_does(trained):
    run = load_run(trained)
    spikes, labels = run.test_samples(40)
    objects = run.framework().brian_network(spikes)
    potentials = StateMonitor(objects["layers"][0], ["v", "apical"], record=[0, 1])
    output = SpikeMonitor(objects["layers"][-1])
    objects["network"].add(potentials, output)
    objects["network"].run(objects["duration"])
    assert potentials.v.shape == (2, 40 * 8 + 1)
    counts = objects["read"]().output_counts
    assert output.num_spikes == counts.sum() > 0
    expected, _, _, _ = directory_counts(trained)
    np.testing.assert_array_equal(counts, expected)


def test_the_documented_example_records_and_plots(trained, tmp_path):
    spec = importlib.util.spec_from_file_location("membrane_and_apical", ROOT / "docs/examples/membrane_and_apical.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    recorded = example.record(trained)
    assert recorded["v"].shape == recorded["apical"].shape == (30, 8 + 1)
    assert np.abs(recorded["apical"]).max() > 0, "the example picks a digit whose error reaches the apical compartments"
    assert np.all(recorded["apical"][:, : recorded["error_start"]] == 0), "no feedback before t0"
    written = example.plot(recorded, tmp_path / "figure")
    assert all(path.stat().st_size > 0 for path in written)
