"""The contract every registered framework keeps with the training driver and the tools.

Parametrised over ``registry.frameworks()``: a framework added to apical.circuits, installed with
an entry point of the group ``apical.frameworks``, gets these tests without writing any
(tests/test_delta_rule.py runs them on the outside example of docs/examples/delta_rule). Each
starts from the framework's ``example_config`` (the core defaults where it declares none) shrunk
to a tiny network — one hidden layer of a few cells where the example has hidden layers,
minibatches of two, chunks of a few MNIST digits, the runtime device where the framework runs on it
— and checks what the driver relies on: a chunk trains and tests; the state's named arrays load
back into a fresh build and give the same outputs; a run resumed from them continues exactly; the
config, its ``[section]`` included, writes and reads back equal; a numpy form equals the Brian2
network; ``apical analyze`` and ``apical bench --dry-run`` run through the command line; on cpp the
compiled network trains as the runtime one does (marked ``standalone``: one build per framework).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from apical.circuits import registry
from apical.runs.config import apply_overrides, config_from_dict, config_to_toml, load_config
from apical.runs.train import encode, load_dataset, train, training_chunk

FRAMEWORKS = list(registry.frameworks())
WITH_NUMPY_FORM = list(registry.numpy_forms())
ON_CPP = [name for name, spec in registry.frameworks().items() if "cpp" in spec.devices]
CHUNK = 8  # samples per run: four minibatches of two
HIDDEN = 12  # cells of the one hidden layer (where the example has hidden layers)
N_OUT = 10
SHORT_SLEEP = {"sleep_batch": 2, "sleep_steps": 5}  # a sleep phase of a few short noise samples


def short_sleep(spec) -> dict[str, int]:
    """A short sleep phase, for a framework whose own section has one (BioGrad's): key → value."""
    own = spec.section
    return {key: value for key, value in SHORT_SLEEP.items() if own is not None and f"{own.name}.{key}" in own.keys()}


def tiny_config(name: str, device: str | None = None):
    """The framework's example config shrunk to a tiny network: two chunks of training digits, one
    of test digits, run on ``device`` (default: runtime where the framework runs on it)."""
    spec = registry.get(name)
    if spec.example_config is None:
        data = {"model": {"framework": name}}
    else:
        with open(spec.example_config, "rb") as handle:
            data = tomllib.load(handle)
    if device is None:
        device = "runtime" if "runtime" in spec.devices else spec.devices[0]
    hidden = f"[{HIDDEN}]" if data.get("model", {}).get("hidden", [1]) else "[]"
    overrides = [
        f"model.hidden={hidden}", "learning.batch_size=2",
        *(f"{spec.section.name}.{key}={value}" for key, value in short_sleep(spec).items()),
        f"data.train_samples={2 * CHUNK}", f"data.test_samples={CHUNK}", "data.validation_samples=0",
        f"run.device={json.dumps(device)}", f"run.chunk_samples={CHUNK}", "run.epochs=1", "run.eval_every=0",
        "run.checkpoint_every=0", 'run.precision="float64"', "run.threads=1",
    ]
    config = config_from_dict(apply_overrides(data, overrides))
    assert config.model.framework == name, f"{spec.example_config} trains {config.model.framework!r}, not {name!r}"
    return config


@pytest.fixture(scope="module")
def dataset():
    """The tiny configs' digits: every example trains on MNIST at these sizes."""
    return load_dataset(tiny_config(FRAMEWORKS[0]))


def build(config, dataset, build_dir: Path):
    """The framework's network for runs of CHUNK digits; ``build_dir`` holds compiled projects, as
    the driver's results directory does."""
    return registry.get(config.model.framework).factory(config, dataset.n_inputs, N_OUT, CHUNK, build_dir)


def train_chunks(framework, config, dataset, first: int, count: int) -> list[np.ndarray]:
    """Train chunks ``first`` ... as the driver does (same rasters, chunk index and rate factor);
    returns each chunk's output counts."""
    counts = []
    for k in range(first, first + count):
        indices, spikes, arguments = training_chunk(config, dataset, CHUNK, k * CHUNK)
        counts.append(framework.train_chunk(spikes, dataset.train_labels[indices], **arguments))
    return counts


def first_test_chunk(dataset, config) -> tuple[np.ndarray, np.ndarray]:
    """The first CHUNK test digits, coded as evaluations code them, and their labels."""
    spikes = encode(dataset.test_inputs[:CHUNK], config.model.time_steps, config.seeds.input, "test", 0)
    return spikes, dataset.test_labels[:CHUNK]


def copied(arrays) -> dict[str, np.ndarray]:
    return {name: np.array(values, copy=True) for name, values in arrays.items()}


def assert_same_arrays(found: dict, expected: dict, tolerance: float = 0.0) -> None:
    assert sorted(found) == sorted(expected)
    for name in expected:
        assert np.shape(found[name]) == np.shape(expected[name]), name
        np.testing.assert_allclose(found[name], expected[name], rtol=0, atol=tolerance, err_msg=name)


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """``apical ...`` in a fresh process; it inherits the environment, so it finds the frameworks
    this one found (an outside package's entry point on PYTHONPATH included)."""
    return subprocess.run([sys.executable, "-m", "apical.runs.cli", *args], capture_output=True, text=True, cwd=cwd)


# ----------------------------------------------------------------------------------- in process
@pytest.mark.parametrize("name", FRAMEWORKS)
def test_example_config_loads_and_round_trips(name, tmp_path):
    """The example config loads as is; the tiny config, the framework's section included, writes
    to TOML and reads back equal."""
    spec = registry.get(name)
    config = tiny_config(name)
    if spec.example_config is not None:
        example = load_config(spec.example_config)
        assert example.model.framework == name
        # shrinking touches no framework's own section but for a shorter sleep phase
        if short_sleep(spec):
            own = dataclasses.replace(example.sections[spec.section.name], **short_sleep(spec))
            example = dataclasses.replace(example, sections={**example.sections, spec.section.name: own})
        assert example.sections == config.sections
    text = config_to_toml(config)
    if spec.section is not None:
        assert f"[{spec.section.name}]" in text.splitlines()
    path = tmp_path / "resolved.toml"
    path.write_text(text)
    assert load_config(path) == config


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_a_chunk_trains_and_tests(name, dataset, tmp_path):
    """train_chunk learns and returns [N, n_out] counts; evaluate_chunk returns counts and learns nothing."""
    config = tiny_config(name)
    framework = build(config, dataset, tmp_path)
    assert framework.settings.sizes[0] == dataset.n_inputs and framework.settings.sizes[-1] == N_OUT
    initial = copied(framework.state_arrays())
    assert initial
    [counts] = train_chunks(framework, config, dataset, 0, 1)
    assert counts.shape == (CHUNK, N_OUT) and np.all(counts >= 0)
    trained = copied(framework.state_arrays())
    assert sorted(trained) == sorted(initial)
    assert all(np.all(np.isfinite(values)) for values in trained.values())
    assert any(not np.array_equal(trained[key], initial[key]) for key in initial), "a trained chunk changed nothing"
    spikes, labels = first_test_chunk(dataset, config)
    tested = framework.evaluate_chunk(spikes, labels)
    assert tested.shape == (CHUNK, N_OUT) and np.all(tested >= 0)
    assert_same_arrays(framework.state_arrays(), trained)
    assert [W.ndim for W in framework.layer_weights()] == [2] * (len(framework.settings.sizes) - 1)


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_state_round_trip_and_resume(name, dataset, tmp_path):
    """The state after a chunk, saved as a checkpoint and loaded into a fresh build, holds the same
    arrays and tests the same; training on from it equals training two chunks without a stop."""
    config = tiny_config(name)
    uninterrupted = build(config, dataset, tmp_path / "uninterrupted")
    counts = train_chunks(uninterrupted, config, dataset, 0, 2)

    first = build(config, dataset, tmp_path / "first")
    train_chunks(first, config, dataset, 0, 1)
    np.savez(tmp_path / "checkpoint.npz", **first.state_arrays())
    resumed = build(config, dataset, tmp_path / "resumed")
    with np.load(tmp_path / "checkpoint.npz") as stored:
        resumed.load_state_arrays({key: stored[key] for key in stored.files})
    assert_same_arrays(resumed.state_arrays(), first.state_arrays())
    spikes, labels = first_test_chunk(dataset, config)
    np.testing.assert_array_equal(resumed.evaluate_chunk(spikes, labels), first.evaluate_chunk(spikes, labels))

    [resumed_counts] = train_chunks(resumed, config, dataset, 1, 1)
    np.testing.assert_array_equal(resumed_counts, counts[1])
    assert_same_arrays(resumed.state_arrays(), uninterrupted.state_arrays())


@pytest.mark.parametrize("name", WITH_NUMPY_FORM)
@pytest.mark.oracle
def test_numpy_form_equals_brian2(name, dataset, tmp_path):
    """run.device = "numpy" learns what the Brian2 network learns (float64, 1e-9)."""
    brian_config = tiny_config(name, device="runtime")
    numpy_config = dataclasses.replace(brian_config, run=dataclasses.replace(brian_config.run, device="numpy"))
    brian = build(brian_config, dataset, tmp_path / "brian")
    numpy_form = build(numpy_config, dataset, tmp_path / "numpy")
    assert_same_arrays(numpy_form.state_arrays(), brian.state_arrays())
    for brian_counts, numpy_counts in zip(train_chunks(brian, brian_config, dataset, 0, 2),
                                          train_chunks(numpy_form, numpy_config, dataset, 0, 2)):
        np.testing.assert_array_equal(numpy_counts, brian_counts)
    assert_same_arrays(numpy_form.state_arrays(), brian.state_arrays(), tolerance=1e-9)


# A build per framework (5 s for delta, 30-60 s for the others): under -m slow, since each built-in
# framework's cpp_standalone equality with its oracle already runs by default in its own test file.
@pytest.mark.slow
@pytest.mark.standalone
@pytest.mark.parametrize("name", ON_CPP)
def test_cpp_trains_as_runtime(name, dataset, tmp_path):
    """The compiled network (built once, run twice) learns what the runtime one learns (float64, 1e-9)."""
    runtime_config = tiny_config(name, device="runtime")
    cpp_config = dataclasses.replace(runtime_config, run=dataclasses.replace(runtime_config.run, device="cpp"))
    # The runtime network trains to the end before the cpp build selects its device for the process.
    runtime = build(runtime_config, dataset, tmp_path / "runtime")
    runtime_counts = train_chunks(runtime, runtime_config, dataset, 0, 2)
    runtime_state = copied(runtime.state_arrays())
    cpp = build(cpp_config, dataset, tmp_path / "cpp")
    for expected, found in zip(runtime_counts, train_chunks(cpp, cpp_config, dataset, 0, 2)):
        np.testing.assert_array_equal(found, expected)
    assert_same_arrays(cpp.state_arrays(), runtime_state, tolerance=1e-9)


# ------------------------------------------------------------------------------ the command line
@pytest.mark.parametrize("name", FRAMEWORKS)
def test_analyze_a_tiny_run(name, tmp_path):
    """``apical analyze`` reads a tiny run of the framework and writes its report."""
    out = tmp_path / "run"
    train(tiny_config(name), out)
    done = cli("analyze", str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "analysis.json").exists() and (out / "plausibility.md").exists()
    assert json.loads((out / "analysis.json").read_text())


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_bench_dry_run(name, tmp_path):
    """``apical bench --framework NAME --dry-run`` times a tiny network of the framework."""
    done = cli("bench", "--framework", name, "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("apical bench")
