"""The delta-rule example (docs/examples/delta_rule): a framework kept outside the Apical package.

Its Brian2 network against the rule's equations and against its numpy form; its ``[delta]``
section's checks; registration from a notebook (``registry.register``) and from an installed
package (the entry point its pyproject.toml declares), the latter in fresh processes that see a
``dist-info`` folder on PYTHONPATH as pip would leave it, running ``apical train/evaluate/analyze/
bench`` and the contract tests (tests/test_contract.py) on it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from brian2 import ms

from apical.circuits import registry
from apical.runs.config import ConfigError, config_from_dict, load_config

REPOSITORY = Path(__file__).resolve().parents[1]
EXAMPLE = REPOSITORY / "docs" / "examples" / "delta_rule"


def installed_environment(tmp_path: Path) -> dict[str, str]:
    """The environment of a process in which the example looks installed: a ``dist-info`` folder
    with the entry points its pyproject.toml declares, beside the example's source, on PYTHONPATH."""
    with open(EXAMPLE / "pyproject.toml", "rb") as handle:
        project = tomllib.load(handle)["project"]
    site = tmp_path / "site-packages"
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = [f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items())
             for group, entries in project["entry-points"].items()]
    (info / "entry_points.txt").write_text("\n".join(lines))
    environment = os.environ.copy()
    paths = [str(site), str(EXAMPLE), *filter(None, [environment.get("PYTHONPATH")])]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


def run(command: list[str], environment: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, env=environment, cwd=cwd)


@pytest.fixture
def delta(monkeypatch):
    """The example's FrameworkSpec, registered for this test as a notebook would register it."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import apical_delta

    added = "delta" not in registry.frameworks()  # already there when the example is pip-installed
    if added:
        registry.register(apical_delta.FRAMEWORK)
    yield apical_delta.FRAMEWORK
    if added:
        registry.unregister("delta")


def delta_config(**sections):
    """A config of the delta rule: T = 10 steps, 5 spikes asked, runtime, with ``sections`` over that."""
    data = {"model": {"framework": "delta", "hidden": [], "time_steps": 10}, "delta": {"target_count": 5.0},
            "run": {"device": "runtime"}}
    for name, table in sections.items():
        data.setdefault(name, {}).update(table)
    return config_from_dict(data)


def raster(samples: int, time_steps: int, n_in: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.random((samples, time_steps, n_in)) < 0.3).astype(float), rng.integers(0, 10, samples)


# ----------------------------------------------------------------------------- the network itself
def test_brian2_update_is_the_delta_rule(delta):
    """One minibatch of three samples on the Brian2 network: W changes by η/M·Σ (d − n) ⊗ m / T, with
    n the counts it returns and m the afferents' spikes (the rule of apical_delta.model)."""
    from apical_delta.framework import delta_settings
    from apical_delta.model import initial_weights
    from apical_delta.network import DeltaNetwork

    settings = delta_settings(delta_config(learning={"batch_size": 3}, delta={"target_count": 4.0}), 12, 10)
    spikes, labels = raster(3, settings.time_steps, 12)
    weights = 4 * initial_weights(settings.sizes, np.random.default_rng(1))
    learned, counts = DeltaNetwork(settings, 3).run(weights, spikes, labels, learning_rate=0.1)
    assert 0 < counts.sum() and np.all(counts <= settings.time_steps)
    desired = np.zeros((3, 10))
    desired[np.arange(3), labels] = 4.0
    expected = weights + 0.1 / 3 * (desired - counts).T @ (spikes.sum(axis=1) / settings.time_steps)
    np.testing.assert_allclose(learned, expected, rtol=0, atol=1e-12)
    _, tested = DeltaNetwork(settings, 3).run(weights, spikes, labels, learning_rate=0.0)
    np.testing.assert_array_equal(tested, counts)


@pytest.mark.oracle
def test_numpy_form_equals_brian2(delta):
    """Four minibatches of two, cells driven hard: the numpy form learns what Brian2 learns (float64, 1e-9)."""
    from apical_delta.framework import DeltaFramework

    config = delta_config(learning={"batch_size": 2, "learning_rate": 0.05})
    numpy_config = delta_config(learning={"batch_size": 2, "learning_rate": 0.05}, run={"device": "numpy"})
    spikes, labels = raster(8, 10, 20, seed=3)
    brian, numpy_form = DeltaFramework(config, 20, 10, 8, None), DeltaFramework(numpy_config, 20, 10, 8, None)
    brian.weights = numpy_form.weights = 5 * brian.weights
    for _ in range(2):
        np.testing.assert_array_equal(numpy_form.train_chunk(spikes, labels), brian.train_chunk(spikes, labels))
    np.testing.assert_allclose(numpy_form.weights, brian.weights, rtol=0, atol=1e-9)
    assert np.abs(brian.weights - 5 * DeltaFramework(config, 20, 10, 8, None).weights).max() > 1e-3


@pytest.mark.standalone
@pytest.mark.oracle
def test_cpp_compiled_once_equals_numpy_form(delta, tmp_path):
    """cpp_standalone, built once and run for two chunks, learns what the numpy form learns."""
    from apical_delta.framework import DeltaFramework

    config = delta_config(learning={"batch_size": 2, "learning_rate": 0.05}, run={"device": "cpp"})
    numpy_config = delta_config(learning={"batch_size": 2, "learning_rate": 0.05}, run={"device": "numpy"})
    spikes, labels = raster(8, 10, 20, seed=4)
    cpp, numpy_form = DeltaFramework(config, 20, 10, 8, tmp_path), DeltaFramework(numpy_config, 20, 10, 8, None)
    cpp.weights = numpy_form.weights = 5 * cpp.weights
    for _ in range(2):
        np.testing.assert_array_equal(cpp.train_chunk(spikes, labels), numpy_form.train_chunk(spikes, labels))
    np.testing.assert_allclose(cpp.weights, numpy_form.weights, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(cpp.evaluate_chunk(spikes, labels), numpy_form.evaluate_chunk(spikes, labels))


# ------------------------------------------------------------------------- its config, its registration
@pytest.mark.parametrize("table, key", [
    ({"model": {"hidden": [20]}}, "model.hidden"),
    ({"delta": {"target_count": 11.0}}, "delta.target_count"),  # more spikes than the 10 steps
    ({"delta": {"target_count": 0.0}}, "delta.target_count"),
    ({"delta": {"tau_m": "5*mV"}}, "delta.tau_m"),
    ({"delta": {"threshold": -1.0}}, "delta.threshold"),
    ({"delta": {"treshold": 1.0}}, "delta.treshold"),
])
def test_bad_delta_configs_name_the_key(delta, table, key):
    with pytest.raises(ConfigError, match=re.escape(key)):
        delta_config(**table)


def test_register_from_a_notebook(monkeypatch):
    """registry.register makes ``model.framework = "delta"`` and its ``[delta]`` table known to this
    process; a second framework of that name is refused; unregistered, the name is unknown again."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import apical_delta

    installed = "delta" in registry.frameworks()  # found through its entry point when pip-installed
    if not installed:
        registry.register(apical_delta.FRAMEWORK)
    try:
        assert registry.get("delta") is apical_delta.FRAMEWORK
        assert delta_config(delta={"tau_m": "10*ms"}).delta.tau_m == 10 * ms
        with pytest.raises(ConfigError, match="already registered"):
            registry.register(apical_delta.FRAMEWORK)
    finally:
        if not installed:
            registry.unregister("delta")
    if not installed:
        with pytest.raises(ConfigError, match=r"'model\.framework'.*\bdelta\b"):
            delta_config()


# ---------------------------------------------------------------------------- as an installed package
def test_apical_commands_on_the_installed_example(tmp_path, delta):
    """With only its entry point to go by: train (1,000 digits, runtime), evaluate, analyze and the
    bench's dry run succeed, and the run learns well above chance (10 %)."""
    environment = installed_environment(tmp_path)
    out = tmp_path / "delta"
    budget = ["data.train_samples=1000", "data.test_samples=500", "run.eval_every=500", "run.checkpoint_every=0",
              "run.chunk_samples=250"]
    trained = run(["-m", "apical.runs.cli", "train", str(EXAMPLE / "delta.toml"), "--out", str(out), "--device",
                   "runtime", *(f"--set={override}" for override in budget)], environment, tmp_path)
    assert trained.returncode == 0, trained.stderr

    resolved = load_config(out / "config.toml")
    assert resolved.model.framework == "delta" and "[delta]" in (out / "config.toml").read_text().splitlines()
    assert resolved.delta == load_config(EXAMPLE / "delta.toml").delta
    with open(out / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["samples_seen"]) for row in rows] == [500, 1000]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["framework"] == "delta" and summary["network"] == [784, 10]
    assert summary["final_test_accuracy"] > 0.6  # chance: 0.1
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*.npz"))
    assert checkpoints and checkpoints[-1].name == "checkpoint-0000001000.npz"
    with np.load(checkpoints[-1]) as stored:
        assert stored["weights_1"].shape == (10, 784)

    evaluated = run(["-m", "apical.runs.cli", "evaluate", str(out)], environment, tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"test accuracy: {100 * summary['final_test_accuracy']:.2f}%" in evaluated.stdout

    analyzed = run(["-m", "apical.runs.cli", "analyze", str(out)], environment, tmp_path)
    assert analyzed.returncode == 0, analyzed.stderr
    report = (out / "plausibility.md").read_text()
    assert "| Learning uses only local information |" in report and "not claimed by the delta rule" in report
    assert re.search(r"\| Learning uses only local information \|[^\n]*\| pass \|", report)

    benched = run(["-m", "apical.runs.cli", "bench", "--framework", "delta", "--dry-run"], environment, tmp_path)
    assert benched.returncode == 0, benched.stderr
    assert "Delta rule" in benched.stdout


def test_contract_tests_cover_the_installed_example(tmp_path):
    """tests/test_contract.py, run where the example is installed, holds for it too (cpp apart:
    test_cpp_compiled_once_equals_numpy_form builds it)."""
    environment = installed_environment(tmp_path)
    done = run(["-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "not standalone and not slow and not cuda",
                "-k", "delta", str(REPOSITORY / "tests" / "test_contract.py")], environment, REPOSITORY)
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"\b6 passed\b", done.stdout), done.stdout[-1000:]
