"""The training driver: results directory contract, resume after kill -9, locks, divergence."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from apical.runs.config import ConfigError, load_config
from apical.runs.train import ResultsDirectory, TrainingError, chunk_size, output_silence, train

TINY = """
[model]
hidden = [40]
time_steps = 8
[biograd]
error_start = 2
[learning]
learning_rate = 0.005
[data]
train_samples = 300
test_samples = 100
[run]
device = "numpy"
eval_every = 150
checkpoint_every = 50
chunk_samples = 50
"""


def write_config(tmp_path: Path, text: str = TINY) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def final_weights(directory: Path) -> dict:
    newest = sorted((directory / "checkpoints").glob("checkpoint-*.npz"))[-1]
    with np.load(newest) as stored:
        return {k: stored[k] for k in stored.files if k != "progress"}


def train_then_resume_without_last_checkpoint(config, tmp_path: Path):
    """An uninterrupted run in ``reference``, and a copy of it in ``resumed`` that lost its last
    checkpoint and summary (as if killed just before them) and was then resumed.
    Returns (reference, resumed, the uninterrupted run's summary)."""
    import shutil

    reference = tmp_path / "reference"
    summary = train(config, reference)
    resumed = tmp_path / "resumed"
    shutil.copytree(reference, resumed)
    sorted((resumed / "checkpoints").glob("checkpoint-*.npz"))[-1].unlink()
    (resumed / "summary.json").unlink()
    train(config, resumed, resume=True)
    return reference, resumed, summary


def test_results_directory_contract(tmp_path):
    out = tmp_path / "run"
    summary = train(load_config(write_config(tmp_path)), out)
    assert (out / "config.toml").exists() and (out / "figures" / "learning_curve.png").exists()
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["samples_seen", "epoch", "train_accuracy", "test_accuracy", "wall_seconds",
                             "samples_per_second", "silent_outputs", "samples_without_output",
                             "alignment_angle_1", "alignment_norm_ratio_1"]
    assert all(0 <= int(r["silent_outputs"]) <= 10 and 0 <= float(r["samples_without_output"]) <= 1 for r in rows)
    assert [int(r["samples_seen"]) for r in rows] == [150, 300]
    stored = json.loads((out / "summary.json").read_text())
    assert stored["final_test_accuracy"] == float(rows[-1]["test_accuracy"]) == summary["final_test_accuracy"]
    assert stored["versions"]["brian2"] == "2.10.1"
    assert set(stored["seeds"]) == {"weights", "input", "sleep", "shuffle", "feedback"}
    assert stored["git_commit"] and stored["git_commits"] == [stored["git_commit"]]
    assert summary["final_test_accuracy"] > 0.3, "a tiny network on 300 digits still beats chance (10 %)"
    assert load_config(out / "config.toml") == load_config(write_config(tmp_path))  # resolved config loads back
    # model.md gives a constant with a unit (a 0-d Quantity) as its value, not as an array
    model = (out / "model.md").read_text()
    assert re.search(r"`tau_m` = \d+(\.\d*)? ms\b", model) and "array of shape ()" not in model


def test_existing_directory_needs_resume(tmp_path):
    out = tmp_path / "run"
    config = load_config(write_config(tmp_path), ["data.train_samples=100", "run.eval_every=0"])
    train(config, out)
    with pytest.raises(TrainingError, match="already holds a run"):
        train(config, out)


def test_two_runs_cannot_share_a_directory(tmp_path):
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(TrainingError, match="in use by another run"):
            train(load_config(write_config(tmp_path)), out)


def test_kill_9_then_resume_equals_uninterrupted_run(tmp_path):
    config_path = write_config(tmp_path)
    reference = tmp_path / "uninterrupted"
    train(load_config(config_path), reference)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "apical.runs.cli", "train", str(config_path), "--out", str(interrupted)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((interrupted / "checkpoints").glob("checkpoint-*.npz")):
        assert time.time() < deadline and process.poll() is None, "no checkpoint appeared before the kill"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (interrupted / "summary.json").exists(), "the run finished before it could be killed"
    kept = sorted((interrupted / "checkpoints").glob("checkpoint-*.npz"))[-1]

    loaded = []
    original = ResultsDirectory.newest_good_checkpoint

    def recording(self, log=None):
        found = original(self, log)
        loaded.append(found[0] if found else None)
        return found

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ResultsDirectory, "newest_good_checkpoint", recording)
        train(load_config(config_path), interrupted, resume=True)
    assert loaded == [kept], "the resume did not start from the checkpoint the killed run left"
    ours, expected = final_weights(interrupted), final_weights(reference)
    assert ours.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(ours[name], expected[name], err_msg=name)
    with open(interrupted / "metrics.csv") as handle, open(reference / "metrics.csv") as expected_handle:
        rows, expected_rows = list(csv.DictReader(handle)), list(csv.DictReader(expected_handle))
    assert [int(r["samples_seen"]) for r in rows] == [150, 300]
    for row, expected_row in zip(rows, expected_rows):  # everything but the timings is replayed
        assert (row["train_accuracy"], row["test_accuracy"]) == (expected_row["train_accuracy"],
                                                                  expected_row["test_accuracy"])


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path):
    out = tmp_path / "run"
    config = load_config(write_config(tmp_path), ["learning.learning_rate=1e300", "biograd.gamma=1e300"])
    with pytest.raises(TrainingError, match="diverged"):
        train(config, out)
    for path in (out / "checkpoints").glob("checkpoint-*.npz"):
        with np.load(path) as stored:
            assert all(np.isfinite(stored[k]).all() for k in stored.files if k != "progress")


def test_divergence_bound_reads_learned_values_not_step_counters():
    """An optimizer's step count passes run.max_weight (Adam past 1,000 minibatches); a learned
    value beyond it, or a non-finite one, still stops the run, naming the array."""
    from apical.runs.train import check_divergence

    check_divergence({"optimizer_steps": np.array(5000), "weights_1": np.full(3, 999.0)}, 1000, 0, 10, None)
    with pytest.raises(TrainingError, match=r"\|weights_1\| reached 1\.5e\+03 > run.max_weight = 1000"):
        check_divergence({"optimizer_steps": np.array(5), "weights_1": np.array([1.0, -1500.0])}, 1000, 0, 10, None)
    with pytest.raises(TrainingError, match="non-finite values in biases_2"):
        check_divergence({"biases_2": np.array([np.nan], dtype=np.float32)}, 0, 0, 10, None)


def test_chunk_size_divides_the_training_set():
    assert chunk_size(60000, 1000, 1) == 1000
    assert chunk_size(1234, 1000, 1) == 617
    assert chunk_size(600, 256, 8) == 200
    with pytest.raises(ConfigError, match="learning.batch_size"):
        chunk_size(100, 50, 3)


def test_resume_with_sleep_replays_the_same_noise(tmp_path):
    """Wake + sleep: a run resumed from a mid-run checkpoint ends with the same B and W."""
    config = load_config(write_config(tmp_path), [
        "model.hidden=[20, 12]", "biograd.feedback_init='random'", "biograd.sleep=true", "biograd.sleep_steps=10",
        "biograd.sleep_batch=4", "biograd.sleep_learning_rate=1e-3", "data.train_samples=100",
        "run.eval_every=100", "run.chunk_samples=25", "run.checkpoint_every=25",
    ])
    reference, resumed, _ = train_then_resume_without_last_checkpoint(config, tmp_path)
    ours, expected = final_weights(resumed), final_weights(reference)
    for name in expected:
        np.testing.assert_array_equal(ours[name], expected[name], err_msg=name)
    with np.load(sorted((reference / "checkpoints").glob("*.npz"))[-1]) as stored:
        assert "feedback_2" in stored.files
    with open(reference / "metrics.csv") as handle:
        row = next(csv.DictReader(handle))
    assert 0.0 <= float(row["alignment_angle_1"]) <= 180.0 and float(row["alignment_norm_ratio_2"]) > 0


def test_checkpoint_every_zero_checkpoints_at_evaluations(tmp_path):
    out = tmp_path / "run"
    train(load_config(write_config(tmp_path), ["run.checkpoint_every=0", "data.train_samples=100",
                                               "run.eval_every=50"]), out)
    assert [p.name for p in sorted((out / "checkpoints").glob("*.npz"))] == [
        "checkpoint-0000000050.npz", "checkpoint-0000000100.npz"]


def test_resume_may_extend_epochs_but_not_change_the_model(tmp_path, monkeypatch):
    out = tmp_path / "run"
    config_path = write_config(tmp_path)
    monkeypatch.setattr("apical.runs.train.git_commit", lambda: "first-commit")
    train(load_config(config_path, ["data.train_samples=100", "run.eval_every=0"]), out)
    with pytest.raises(TrainingError, match="only run.epochs may change"):
        train(load_config(config_path, ["data.train_samples=100", "run.eval_every=0", "learning.learning_rate=0.1"]),
              out, resume=True)
    monkeypatch.setattr("apical.runs.train.git_commit", lambda: "later-commit")  # the code changed in between
    summary = train(load_config(config_path, ["data.train_samples=100", "run.eval_every=0", "run.epochs=2"]), out,
                    resume=True)
    assert summary["samples_seen"] == 200
    assert summary["git_commit"] == "first-commit", "the summary names the commit the run started from"
    assert summary["git_commits"] == ["first-commit", "later-commit"]
    with open(out / "metrics.csv") as handle:
        assert [int(r["samples_seen"]) for r in csv.DictReader(handle)] == [100, 200]


def test_learning_rate_decays_by_epoch(tmp_path, monkeypatch):
    """The driver hands each chunk the schedule's factor, and BioGrad learns at η·factor."""
    from apical.circuits.biograd.network import BioGradNetwork

    rates = []
    original = BioGradNetwork.run

    def recording_run(self, state, input_spikes, labels, learning_rate, learn=True):
        if learn:  # evaluations say so (learn=False)
            rates.append(learning_rate)
        return original(self, state, input_spikes, labels, learning_rate, learn=learn)

    monkeypatch.setattr(BioGradNetwork, "run", recording_run)
    train(load_config(write_config(tmp_path), ["data.train_samples=100", "data.test_samples=10", "run.epochs=3",
                                               "learning.decay=0.5", "run.eval_every=0", "run.device='runtime'"]),
          tmp_path / "run")
    # (the figures' single-sample run afterwards shows the update asked for at the base rate)
    assert rates[:6] == pytest.approx([0.005] * 2 + [0.0025] * 2 + [0.00125] * 2)


def test_resume_without_a_checkpoint_drops_the_killed_attempts_rows(tmp_path):
    """An attempt killed after its first metrics row but before its first checkpoint."""
    out = tmp_path / "run"
    config = load_config(write_config(tmp_path), ["data.train_samples=100", "run.eval_every=0"])
    out.mkdir()
    (out / "metrics.csv").write_text("samples_seen,epoch,train_accuracy,test_accuracy,wall_seconds,"
                                     "samples_per_second\n100,1.0,0.5,0.5,1.0,100.0\n")
    train(config, out, resume=True)
    with open(out / "metrics.csv") as handle:
        assert [int(r["samples_seen"]) for r in csv.DictReader(handle)] == [100]
    assert (out / "summary.json").exists() and (out / "figures" / "learning_curve.png").exists()


def test_a_checkpoint_killed_mid_write_is_never_the_newest(tmp_path, monkeypatch):
    """The writer itself is stopped half-way through the archive (as by kill -9): what it leaves
    is a hidden partial file that no reader takes for a checkpoint."""
    import apical.runs.train as driver
    from apical.runs.results import find_checkpoint

    results = ResultsDirectory(tmp_path / "run", resume=False)
    kept = results.save_checkpoint({"w": np.ones(3)}, {"samples_seen": 50})

    def killed_mid_write(handle, **arrays):
        handle.write(b"PK\x03\x04 the first bytes of an archive")
        raise KeyboardInterrupt  # no handler of the writer runs after a kill: nothing cleans up

    monkeypatch.setattr(driver.np, "savez", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        results.save_checkpoint({"w": np.zeros(3)}, {"samples_seen": 100})
    assert (results.checkpoints / ".checkpoint-0000000100.npz.partial").exists()
    assert find_checkpoint(results.path, "latest", "evaluate") == kept
    assert results.newest_good_checkpoint()[0] == kept
    results.release()


def test_validation_samples_are_held_out_and_select_the_reported_evaluation(tmp_path, monkeypatch):
    """data.validation_samples takes the last N training digits out of training; each evaluation
    scores them, and the summary reports the test accuracy of the best validation evaluation."""
    from apical.runs.train import load_dataset, selected_row

    config = load_config(write_config(tmp_path), ["data.train_samples=0", "data.validation_samples=59800",
                                                  "run.eval_every=100"])
    full = load_dataset(load_config(write_config(tmp_path), ["data.train_samples=0"]))
    held = load_dataset(config)
    assert len(held.train_labels) == 200 and len(held.validation_labels) == 59800
    np.testing.assert_array_equal(held.validation_labels, full.train_labels[200:])
    np.testing.assert_array_equal(held.train_inputs, full.train_inputs[:200])

    small = load_config(write_config(tmp_path), ["data.train_samples=200", "data.validation_samples=100",
                                                 "run.eval_every=100"])
    # 100 validation digits, taken from the end of the 60,000 before train_samples picks the first 200
    out = tmp_path / "run"
    summary = train(small, out)
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:7] == ["samples_seen", "epoch", "train_accuracy", "test_accuracy", "wall_seconds",
                                 "samples_per_second", "validation_accuracy"]
    assert [int(r["samples_seen"]) for r in rows] == [100, 200]
    chosen = selected_row(rows)
    best = max(float(r["validation_accuracy"]) for r in rows)
    assert float(chosen["validation_accuracy"]) == best
    assert summary["selected"]["test_accuracy"] == float(chosen["test_accuracy"])
    assert summary["selected"]["samples_seen"] == int(chosen["samples_seen"])
    with np.load(out / "checkpoints" / "selected.npz") as stored:
        assert json.loads(str(stored["progress"]))["samples_seen"] == int(chosen["samples_seen"])
        if int(chosen["samples_seen"]) == 200:  # the final weights were selected
            final = final_weights(out)
            for name, values in final.items():
                np.testing.assert_array_equal(stored[name], values)
    assert selected_row([{"samples_seen": "1", "validation_accuracy": "0.5"},
                         {"samples_seen": "2", "validation_accuracy": "0.7"},
                         {"samples_seen": "3", "validation_accuracy": "0.7"}])["samples_seen"] == "2"

    with pytest.raises(ConfigError, match="data.validation_samples"):
        load_dataset(load_config(write_config(tmp_path), ["data.validation_samples=60000"]))


def test_output_silence_counts_silent_cells_and_unanswered_samples():
    counts = np.array([[0, 3, 0, 0], [0, 0, 0, 0], [1, 2, 0, 0], [0, 0, 0, 0]])
    assert output_silence(counts) == {"silent_outputs": 2, "samples_without_output": 0.5}
    assert output_silence(np.ones((5, 3))) == {"silent_outputs": 0, "samples_without_output": 0.0}


def test_metrics_rows_keep_the_columns_the_run_started_with(tmp_path):
    """A run started by an older version and resumed by a newer one (with more columns) keeps its
    header; every row stays aligned with it."""
    (tmp_path / "metrics.csv").write_text("samples_seen,epoch,test_accuracy\n10,0.5,0.25\n")
    results = ResultsDirectory(tmp_path, resume=True)
    results.append_metrics({"samples_seen": 20, "epoch": 1.0, "silent_outputs": 3, "test_accuracy": 0.5})
    with open(tmp_path / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"samples_seen": "10", "epoch": "0.5", "test_accuracy": "0.25"},
                    {"samples_seen": "20", "epoch": "1.0", "test_accuracy": "0.5"}]


def test_intensity_scale_multiplies_every_split_and_rejects_what_it_cannot_mean(tmp_path):
    """data.intensity_scale is the rate code's gain: train, validation and test intensities are
    the pixel values / 255 times the scale; it must lie in (0, 1] and has no meaning for N-MNIST."""
    from apical.runs.train import load_dataset

    overrides = ["data.train_samples=50", "data.test_samples=40", "data.validation_samples=30"]
    plain = load_dataset(load_config(write_config(tmp_path), overrides))
    scaled = load_dataset(load_config(write_config(tmp_path), [*overrides, "data.intensity_scale=0.5"]))
    for name in ("train_inputs", "validation_inputs", "test_inputs"):
        np.testing.assert_array_equal(getattr(scaled, name), 0.5 * getattr(plain, name))
    assert plain.train_inputs.max() == 1.0 and scaled.train_inputs.max() == 0.5
    for bad in ("0", "1.5"):
        with pytest.raises(ConfigError, match="data.intensity_scale"):
            load_config(write_config(tmp_path), [f"data.intensity_scale={bad}"])
    with pytest.raises(ConfigError, match="data.intensity_scale"):
        load_dataset(load_config(write_config(tmp_path), ["data.dataset=nmnist", "data.intensity_scale=0.5"]))


def test_update_figure_shows_one_samples_share_of_a_minibatch_step(tmp_path, monkeypatch):
    """With minibatches of M the network applies ΔW / M for each sample; the figure of the update a
    test digit asks for shows that share, not the M-times larger sum it reads from the open minibatch."""
    from apical.analysis import figures
    from apical.circuits.biograd import framework as biograd_framework

    records, shown = [], {}
    original_single = biograd_framework.run_single_sample

    def recording_single(*args, **kwargs):
        layers = original_single(*args, **kwargs)
        records.append([np.array(r.weight_change[0]) for r in layers])
        return layers

    def recording_figure(changes, weights, path, title=""):
        shown.update(changes=[np.array(c) for c in changes], title=title)
        return []

    monkeypatch.setattr(biograd_framework, "run_single_sample", recording_single)
    monkeypatch.setattr(figures, "update_statistics", recording_figure)
    train(load_config(write_config(tmp_path), ["data.train_samples=100", "data.test_samples=20",
                                               "learning.batch_size=4", "run.eval_every=0"]), tmp_path / "run")
    (asked,) = records
    assert any(np.abs(change).max() > 0 for change in asked)
    for change, share in zip(asked, shown["changes"]):
        np.testing.assert_allclose(share, change / 4, rtol=0, atol=0)
    assert "M = 4" in shown["title"]


def test_microcircuit_update_figure_divides_the_open_minibatch_by_m(tmp_path, monkeypatch):
    """BioLeaF and the SC microcircuit apply their summed minibatch change / M, so the figure of one
    sample's update shows ΔW / M (circuits/microcircuit.py, single_sample_figures, used by both)."""
    from types import SimpleNamespace

    from brian2 import ms

    from apical.analysis import figures
    from apical.circuits.microcircuit import single_sample_figures

    shown = {}
    monkeypatch.setattr(figures, "spike_raster", lambda *a, **k: [])
    monkeypatch.setattr(figures, "update_statistics",
                        lambda changes, weights, path, title="": shown.update(changes=changes, title=title))
    rng = np.random.default_rng(0)
    layers = [SimpleNamespace(spikes=rng.random((1, 4, n)) < 0.5, weight_change=rng.normal(size=(1, n, m)))
              for n, m in ((6, 8), (3, 6))]
    single_sample_figures(layers, np.zeros((4, 8)), 1, 1 * ms, [np.ones((6, 8)), np.ones((3, 6))], tmp_path,
                          batch_size=5)
    for layer, change in zip(layers, shown["changes"]):
        np.testing.assert_array_equal(change, layer.weight_change[0] / 5)
    assert "M = 5" in shown["title"]


def test_shifted_training_samples_are_keyed_by_position_and_resume_exactly(tmp_path):
    """data.shift_pixels: a chunk's training inputs are the unshifted ones moved by
    runs.datasets.shift_samples under seeds.input and the stream position (the chunk a resume
    replays is the same), the run learns from them and resumes exactly; test samples are never
    moved; a dataset without a geometry is refused with the key."""
    from apical.runs.datasets import shift_samples
    from apical.runs.train import encode, load_dataset, training_chunk

    config = load_config(write_config(tmp_path), ["data.shift_pixels=2"])
    plain = load_config(write_config(tmp_path))
    dataset = load_dataset(config)
    indices, spikes, _ = training_chunk(config, dataset, 150, 450)  # epoch 2, second chunk
    same_indices, plain_spikes, _ = training_chunk(plain, dataset, 150, 450)
    np.testing.assert_array_equal(indices, same_indices)
    moved = shift_samples(dataset.train_inputs[indices], (1, 28, 28), 2, config.seeds.input, 450)
    assert np.abs(moved - dataset.train_inputs[indices]).max() > 0.5
    np.testing.assert_array_equal(spikes, encode(moved, 8, config.seeds.input, "train", 450))
    assert not np.array_equal(spikes, plain_spikes)
    reference, resumed, _ = train_then_resume_without_last_checkpoint(config, tmp_path)
    train(plain, tmp_path / "plain")
    assert np.abs(final_weights(reference)["weights_1"] - final_weights(tmp_path / "plain")["weights_1"]).max() > 1e-3
    for name, values in final_weights(reference).items():
        np.testing.assert_array_equal(final_weights(resumed)[name], values, err_msg=name)
    with pytest.raises(ConfigError, match=r"config key 'data.shift_pixels': shifts are defined for mnist"):
        load_config(write_config(tmp_path), ["data.shift_pixels=1", "data.dataset=cifar10"])
