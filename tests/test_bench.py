"""``apical bench``: the dry run of every registered framework, through its own bench and through
the generic one, and a framework with no bench of its own. Durations are never asserted: a dry
run only shows that the bench runs and reports its numbers (docs/performance.md)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from apical.circuits import registry
from apical.circuits.framework import Framework, FrameworkSpec
from apical.runs import cli

COMPILE = re.compile(r"compile\s+\d+\.\d+ s")
# "1.23 ms/sample", or a table whose header holds ms/sample above a row of numbers
PER_SAMPLE = re.compile(r"\d+\.\d+ ms/sample|ms/sample.*\n.*\d+\.\d+")


def bench(*args, tmp_path):
    env = dict(os.environ, APICAL_BENCH_JSON=str(tmp_path / "bench.json"))
    return subprocess.run([sys.executable, "-m", "apical.runs.cli", "bench", *args], capture_output=True, text=True,
                          env=env)


def assert_reports_cost(result, tmp_path):
    assert result.returncode == 0, result.stderr
    assert COMPILE.search(result.stdout), result.stdout
    assert PER_SAMPLE.search(result.stdout), result.stdout
    assert json.loads((tmp_path / "bench.json").read_text())["dry_run"] is True


@pytest.mark.parametrize("name", registry.names())
def test_dry_run_of_every_framework(name, tmp_path):
    """Its own bench where it declares one, the generic bench otherwise."""
    assert_reports_cost(bench("--framework", name, "--dry-run", tmp_path=tmp_path), tmp_path)


@pytest.mark.parametrize("name", [name for name, spec in registry.frameworks().items() if spec.bench is not None])
def test_generic_dry_run_of_a_framework_with_its_own_bench(name, tmp_path):
    result = bench("--framework", name, "--generic", "--dry-run", tmp_path=tmp_path)
    assert_reports_cost(result, tmp_path)
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["framework"] == name and report["train"]["ms_per_sample"] > 0
    assert "train ÷ evaluate" in result.stdout
    training, inference = report["events"]["training"], report["events"]["inference"]
    assert training["synaptic_events"]["forward"] > 0 and training["dense_macs"] > inference["dense_macs"]
    assert "events (initial network, first 2 samples)" in result.stdout


# ------------------------------------------------------------------ a framework with no bench of its own
@dataclass(frozen=True)
class PerceptronSettings:
    sizes: tuple[int, ...]


class Perceptron(Framework):
    """Output counts = input spike counts × Wᵀ, trained by the delta rule: no network, only the
    interface."""

    def __init__(self, config, n_in, n_out, chunk, build_dir):
        self.settings = PerceptronSettings((n_in, n_out))
        self.weights = np.zeros((n_out, n_in))

    def evaluate_chunk(self, input_spikes, labels):
        return input_spikes.sum(axis=1) @ self.weights.T

    def train_chunk(self, input_spikes, labels, chunk_index=0, rate_scale=1.0):
        counts = self.evaluate_chunk(input_spikes, labels)
        error = np.eye(self.settings.sizes[-1])[labels] - counts
        self.weights += 1e-4 * rate_scale * error.T @ input_spikes.sum(axis=1)
        return counts

    def state_arrays(self):
        return {"weights_1": self.weights.copy()}

    def load_state_arrays(self, arrays):
        self.weights = np.array(arrays["weights_1"], dtype=np.float64)


@pytest.fixture
def perceptron(tmp_path):
    config = tmp_path / "perceptron.toml"
    config.write_text('[model]\nframework = "perceptron"\nhidden = []\n\n[learning]\nbatch_size = 5\n')
    spec = registry.register(FrameworkSpec(name="perceptron", title="Perceptron", factory=Perceptron,
                                           example_config=config))
    yield spec
    registry.unregister(spec.name)


def test_a_framework_without_a_bench_gets_the_generic_one(perceptron, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("APICAL_BENCH_JSON", str(tmp_path / "bench.json"))
    assert cli.main(["bench", "--framework", "perceptron", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert COMPILE.search(out) and PER_SAMPLE.search(out), out
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["sizes"] == "784-10" and report["batch_size"] == 2 and report["samples"] == 2
    assert set(report) >= {"compile_seconds", "train", "evaluate", "train_over_evaluate", "machine"}
    assert {"load_before", "load_after"} <= set(report["machine"])
    assert report["events"] is None  # no Brian2 network and no count of its own


def test_samples_round_down_to_whole_minibatches(perceptron, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("APICAL_BENCH_JSON", str(tmp_path / "bench.json"))
    assert cli.main(["bench", "--framework", "perceptron", "--samples", "12"]) == 0
    assert json.loads((tmp_path / "bench.json").read_text())["samples"] == 10
    assert cli.main(["bench", "--framework", "perceptron", "--samples", "3"]) == 2
    assert "no whole minibatch" in capsys.readouterr().err


# ------------------------------------------------------------------ what the bench refuses
def refused(argv, capsys) -> str:
    assert cli.main(["bench", *argv]) == 2
    return capsys.readouterr().err


def test_config_of_another_framework_is_refused(capsys):
    config = Path(__file__).resolve().parents[1] / "runs" / "configs" / "mnist-bioleaf.toml"
    message = refused(["--framework", "bp", "--config", str(config), "--dry-run"], capsys)
    assert "--framework bp" in message and "'bioleaf'" in message


def test_widths_belong_to_biograds_own_bench(capsys):
    assert "--widths" in refused(["--framework", "bp", "--widths", "16,32", "--dry-run"], capsys)


def test_numpy_device_needs_the_generic_bench(capsys):
    assert "--generic" in refused(["--framework", "biograd", "--device", "numpy", "--dry-run"], capsys)
