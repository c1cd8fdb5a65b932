"""Faults a long run meets, each ending in one clear line and an exact resume: SIGINT/SIGTERM in a
chunk or an evaluation, a torn checkpoint or metrics file, a full disk, a mismatched resume, an
evaluate beside a running training, two trainings on one directory (docs/reliability.md)."""

from __future__ import annotations

import csv
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from apical.runs.config import load_config
from apical.runs.errors import Interrupted, TrainingError
from apical.runs.evaluate import directory_counts
from apical.runs.train import train
from tests.test_train import final_weights as state_of

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

# Long enough chunks on cpp_standalone that a signal lands inside the compiled program.
CPP = """
[model]
hidden = [100]
time_steps = 20
[biograd]
error_start = 5
[learning]
learning_rate = 0.005
[data]
train_samples = 900
test_samples = 300
[run]
device = "cpp"
eval_every = 300
checkpoint_every = 300
chunk_samples = 300
"""


def write_config(folder: Path, text: str = TINY) -> Path:
    path = folder / "config.toml"
    path.write_text(text)
    return path


def metrics_of(directory: Path) -> list[tuple]:
    """Every metrics row without its timings (what a resumed run must replay)."""
    with open(directory / "metrics.csv", newline="") as handle:
        return [tuple(v for k, v in row.items() if k not in ("wall_seconds", "samples_per_second"))
                for row in csv.DictReader(handle)]


def assert_same_run(ours: Path, reference: Path) -> None:
    expected, found = state_of(reference), state_of(ours)
    assert found.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(found[name], expected[name], err_msg=name)
    assert metrics_of(ours) == metrics_of(reference)


@pytest.fixture(scope="module")
def runtime_reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    config_path = write_config(folder)
    train(load_config(config_path), folder / "run")
    return config_path, folder / "run"


# The driver's faults are the same whatever computes a chunk: BioGrad's numpy form (equal to its
# Brian2 network, tests/test_biograd_batched.py) keeps these tests fast; the compiled program's own
# part in a fault is tested on cpp_standalone below.
# ----------------------------------------------------------------------------- signals
# (method, call that signals, checkpoint kept): the third training chunk; the first evaluation
# after training (test-set calls 3-4, after the two of the evaluation before training); the
# evaluation before training, which stops the run at 0 samples.
WHERE = {"chunk": ("train_chunk", 3, "checkpoint-0000000100.npz"),
         "evaluation": ("evaluate_chunk", 3, "checkpoint-0000000100.npz"),
         "initial-evaluation": ("evaluate_chunk", 1, "checkpoint-0000000000.npz")}


@pytest.mark.parametrize("where", list(WHERE))
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_at_a_chunk_boundary_and_the_resume_is_exact(tmp_path, runtime_reference, monkeypatch,
                                                                   where, number, capsys):
    """The signal arrives inside the third training chunk, inside the first evaluation, or inside
    the evaluation before training; the chunk (and its evaluation) is put back, checkpointed, and
    replayed on --resume, as the line printed when the signal arrives says."""
    from apical.circuits.biograd.framework import BioGradFramework

    config_path, reference = runtime_reference
    calls = {"n": 0}
    method, signalled_call, expected_checkpoint = WHERE[where]
    original = getattr(BioGradFramework, method)

    def signalling(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == signalled_call:
            os.kill(os.getpid(), number)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BioGradFramework, method, signalling)
    out = tmp_path / "run"
    with pytest.raises(Interrupted, match="resume with: apical train") as stopped:
        train(load_config(config_path), out, config_path=str(config_path))
    assert stopped.value.exit_code == 128 + number
    assert (f"{signal.Signals(number).name}: stopping: the chunk or evaluation under way is discarded and the state "
            "before it checkpointed; --resume replays it (again: stop at once)") in capsys.readouterr().err
    kept = sorted((out / "checkpoints").glob("checkpoint-*.npz"))[-1].name
    assert kept == expected_checkpoint, "the checkpoint before the chunk that was signalled"
    monkeypatch.setattr(BioGradFramework, method, original)
    train(load_config(config_path), out, resume=True)
    assert_same_run(out, reference)


def compiled_runs(pid: int) -> list[int]:
    """The process's children that are a compiled standalone program (``./main``) running."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if fields[1] == str(pid) and command.endswith(b"main"):
            found.append(int(stat.parent.name))
    return found


def wait_for_compiled_run(pid: int, nth: int, deadline: float) -> None:
    """Until the process has started its ``nth`` compiled run, counting each once."""
    seen: set[int] = set()
    while time.time() < deadline:
        seen.update(compiled_runs(pid))
        if len(seen) >= nth:
            return
        time.sleep(0.01)
    pytest.fail(f"the training never started compiled run {nth}")


def object_files(builds: Path) -> dict[Path, int]:
    """Every compiled object file under a folder of builds, with its modification time."""
    return {path: path.stat().st_mtime_ns for path in builds.rglob("*.o")}


@pytest.fixture(scope="session")
def cpp_reference(tmp_path_factory):
    """An uninterrupted run, which compiles the project into a shared folder of builds that the
    runs below reuse (``apical train --build-dir``): they compile nothing themselves."""
    folder = tmp_path_factory.mktemp("cpp-reference")
    config_path, run, builds = write_config(folder, CPP), folder / "run", folder / "builds"
    subprocess.run([sys.executable, "-m", "apical.runs.cli", "train", str(config_path), "--out", str(run),
                    "--build-dir", str(builds)], check=True, capture_output=True)
    assert not (run / "build").exists(), "the run compiled into its own folder, not the one it was given"
    compiled = object_files(builds)
    assert compiled, "no compiled project in the shared folder"
    return config_path, run, builds, compiled


@pytest.mark.standalone
@pytest.mark.xdist_group("cpp-faults")
# Compiled runs in order: 1 the evaluation before training, 2 the first training chunk, 3 its
# evaluation, 4 the second training chunk, ...
@pytest.mark.parametrize("nth, what, kept", [(4, "the second training chunk", "checkpoint-0000000300.npz"),
                                             (3, "the first evaluation", "checkpoint-0000000000.npz"),
                                             (1, "the evaluation before training", "checkpoint-0000000000.npz")])
def test_ctrl_c_in_the_compiled_program_then_resume_equals_uninterrupted(tmp_path, cpp_reference, nth, what, kept):
    """Ctrl-C at a terminal reaches Python and the compiled program alike (one process group):
    the program ends its run early, and that partial run must never count."""
    config_path, reference, builds, compiled = cpp_reference
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "apical.runs.cli", "train", str(config_path), "--out",
                                str(out), "--build-dir", str(builds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    wait_for_compiled_run(process.pid, nth, time.time() + 300)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("apical: stopped by SIGINT") and "--resume" in last, f"{what}: {stderr}"
    assert "Traceback" not in stderr
    resumed = subprocess.run([sys.executable, "-m", "apical.runs.cli", "train", str(config_path), "--out", str(out),
                              "--resume", "--build-dir", str(builds)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {kept}" in resumed.stderr, f"{what}: {resumed.stderr}"
    assert_same_run(out, reference)
    assert object_files(builds) == compiled, "a run recompiled the project it was handed"


@pytest.mark.standalone
@pytest.mark.xdist_group("cpp-faults")
def test_evaluate_beside_a_running_training_leaves_it_bit_identical(tmp_path, cpp_reference):
    config_path, reference, builds, compiled = cpp_reference
    out = tmp_path / "run"
    training = subprocess.Popen([sys.executable, "-m", "apical.runs.cli", "train", str(config_path), "--out",
                                 str(out), "--build-dir", str(builds)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list((out / "checkpoints").glob("checkpoint-*.npz")) and time.time() < deadline:
        time.sleep(0.05)
    cache = {**os.environ, "APICAL_BUILD_CACHE": str(tmp_path / "evaluation-builds")}
    evaluation = subprocess.run([sys.executable, "-m", "apical.runs.cli", "evaluate", str(out)], capture_output=True,
                                text=True, env=cache)
    _, stderr = training.communicate(timeout=600)
    assert training.returncode == 0, stderr
    assert evaluation.returncode == 0, evaluation.stderr
    assert evaluation.stdout.startswith("test accuracy: ")
    # The evaluation compiled its own project in its private cache: nothing new in the training's folders.
    assert not (out / "build").exists()
    assert object_files(builds) == compiled
    assert_same_run(out, reference)
    # A second evaluation of the same model reuses the cached project: not one object file rebuilt.
    evaluated = object_files(tmp_path / "evaluation-builds")
    assert evaluated and all(path.is_relative_to(tmp_path / "evaluation-builds" / "slot-0") for path in evaluated)
    again = subprocess.run([sys.executable, "-m", "apical.runs.cli", "evaluate", str(out)], capture_output=True,
                           text=True, env=cache)
    assert again.returncode == 0 and again.stdout.startswith("test accuracy: "), again.stderr
    assert object_files(tmp_path / "evaluation-builds") == evaluated


def test_a_second_training_on_the_same_directory_is_refused(tmp_path):
    config_path = write_config(tmp_path, TINY.replace("train_samples = 300", "train_samples = 3000"))
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "apical.runs.cli", "train", str(config_path), "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (out / ".lock").exists() or not (out / ".lock").read_text().strip():
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "apical.runs.cli", "train", str(config_path), "--out",
                                 str(out), "--resume"], capture_output=True, text=True)
        assert second.returncode == 1
        assert second.stderr.strip() == f"apical: results directory {out} is in use by another run (pid {first.pid})"
    finally:
        first.kill()
        first.wait()


# ----------------------------------------------------------------------------- torn files
def copy_without_summary(reference: Path, destination: Path) -> Path:
    shutil.copytree(reference, destination)
    (destination / "summary.json").unlink()
    return destination


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_a_damaged_newest_checkpoint_is_named_and_the_older_one_resumes_exactly(tmp_path, runtime_reference,
                                                                                 damage, capsys):
    config_path, reference = runtime_reference
    out = copy_without_summary(reference, tmp_path / "run")
    newest = sorted((out / "checkpoints").glob("checkpoint-*.npz"))[-1]
    data = bytearray(newest.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x01
    newest.write_bytes(bytes(data))
    counts, labels, _, used = directory_counts(out)
    assert used.name == "checkpoint-0000000250.npz"
    assert f"skipping checkpoint {newest}" in capsys.readouterr().err
    train(load_config(config_path), out, resume=True)
    assert f"skipping checkpoint {newest}" in capsys.readouterr().err
    assert_same_run(out, reference)


def test_a_torn_metrics_row_and_a_left_over_partial_file_do_not_break_the_resume(tmp_path, runtime_reference):
    """A kill mid-append leaves half a row; a kill mid-rewrite leaves the old file and a hidden
    partial one beside it: the resume keeps the good rows and replays the rest."""
    config_path, reference = runtime_reference
    out = copy_without_summary(reference, tmp_path / "run")
    sorted((out / "checkpoints").glob("checkpoint-*.npz"))[-1].unlink()  # killed before the last checkpoint
    metrics = out / "metrics.csv"
    metrics.write_text(metrics.read_text()[:-20])
    (out / ".metrics.csv.partial").write_text("samples_seen,epoch\n")
    train(load_config(config_path), out, resume=True)
    assert_same_run(out, reference)


@pytest.mark.parametrize("file", ["checkpoint", "metrics"])
def test_a_full_disk_ends_in_one_line_naming_the_file_and_the_resume_is_exact(tmp_path, runtime_reference,
                                                                            monkeypatch, file):
    config_path, reference = runtime_reference
    out = tmp_path / "run"
    real_fsync, written = os.fsync, {"n": 0}

    def full_disk(descriptor):
        target = os.readlink(f"/proc/self/fd/{descriptor}")
        if (file == "checkpoint" and ".checkpoint-0000000200" in target) or (
                file == "metrics" and target.endswith("metrics.csv") and written["n"] == 1):
            raise OSError(errno.ENOSPC, "No space left on device")
        if target.endswith("metrics.csv"):
            written["n"] += 1
        return real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", full_disk)  # every write of runs/files.py and runs/results.py
    with pytest.raises(TrainingError) as failed:
        train(load_config(config_path), out)
    message = str(failed.value)
    assert message.startswith("cannot write ") and message.endswith(": No space left on device")
    assert ("checkpoint-0000000200.npz" if file == "checkpoint" else "metrics.csv") in message
    assert not list(out.rglob("*.partial")), "a partial file was left"
    monkeypatch.setattr(os, "fsync", real_fsync)
    train(load_config(config_path), out, resume=True)
    assert_same_run(out, reference)


# ----------------------------------------------------------------------------- mismatched resume
def test_a_mismatched_resume_names_the_keys_and_keeps_the_config(tmp_path, runtime_reference):
    config_path, reference = runtime_reference
    out = copy_without_summary(reference, tmp_path / "run")
    (out / "config.toml").unlink()  # the checkpoint's own record of the config decides
    other = load_config(config_path, ["model.hidden=[30]", "learning.learning_rate=0.01"])
    with pytest.raises(TrainingError) as refused:
        train(other, out, resume=True)
    assert "learning.learning_rate (run: 0.005, given: 0.01)" in str(refused.value)
    assert "model.hidden (run: [40], given: [30])" in str(refused.value)
    assert not (out / "config.toml").exists(), "a refused resume wrote the config"
    train(load_config(config_path), out, resume=True)
    assert_same_run(out, reference)


# ----------------------------------------------------------------------------- divergence, silent adjustments
def test_divergence_after_a_good_checkpoint_keeps_it_and_the_resume_from_it_is_exact(tmp_path, runtime_reference,
                                                                                     monkeypatch):
    """Weights that grow huge but stay finite in the fourth chunk: the run stops as diverged, no
    state beyond the bound is checkpointed, and the good checkpoints survive the rotation."""
    from apical.circuits.biograd.framework import BioGradFramework

    config_path, reference = runtime_reference
    calls = {"n": 0}
    original = BioGradFramework.train_chunk

    def blowing_up(self, *args, **kwargs):
        counts = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:
            self.state.weights[0] *= 1e6
        return counts

    monkeypatch.setattr(BioGradFramework, "train_chunk", blowing_up)
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"diverged \(\|weights_1\| reached .* > run.max_weight = 1000\) "
                                            r"between samples 150 and 200; last good checkpoint: .*checkpoint-0000000150"):
        train(load_config(config_path), out)
    kept = [p.name for p in sorted((out / "checkpoints").glob("checkpoint-*.npz"))]
    assert kept == ["checkpoint-0000000100.npz", "checkpoint-0000000150.npz"]
    for name in kept:
        with np.load(out / "checkpoints" / name) as stored:
            assert all(np.abs(stored[k]).max() <= 1000 for k in stored.files if k != "progress")
    monkeypatch.setattr(BioGradFramework, "train_chunk", original)
    train(load_config(config_path), out, resume=True)
    assert_same_run(out, reference)


def test_what_was_adjusted_silently_is_an_error_or_a_notice(tmp_path, capsys):
    from apical.runs.config import ConfigError

    config_path = write_config(tmp_path)
    with pytest.raises(ConfigError, match=r"'run.eval_every': 120 is not a multiple of the chunk of 50 samples"):
        train(load_config(config_path, ["run.eval_every=120"]), tmp_path / "a")
    with pytest.raises(ConfigError, match=r"'data.train_samples': 70000 asks for more than the 60000 training"):
        train(load_config(config_path, ["data.train_samples=70000"]), tmp_path / "b")
    with pytest.raises(ConfigError, match=r"'data.test_samples': 20000 asks for more than the 10000 test"):
        train(load_config(config_path, ["data.test_samples=20000"]), tmp_path / "c")
    with pytest.raises(ConfigError, match=r"config file .* is a folder, not a TOML file"):
        load_config(tmp_path)
    train(load_config(config_path, ["run.chunk_samples=80", "run.eval_every=0", "data.train_samples=100"]),
          tmp_path / "d")
    assert ("note: run.chunk_samples = 80 is run as chunks of 50 samples, the largest that divides the 100 "
            "training samples into whole minibatches") in capsys.readouterr().err


# ----------------------------------------------------------------------------- read-only results
def snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(directory.rglob("*"))}


def test_evaluate_and_analyze_only_read_the_results_directory(tmp_path, runtime_reference):
    """An archived or shared run can be scored: evaluate writes nothing into it, and analyze writes
    only where --out says (tests run as root here, so the directory is checked unchanged rather
    than made read-only)."""
    _, reference = runtime_reference
    run = shutil.copytree(reference, tmp_path / "run")
    before = snapshot(run)
    evaluation = subprocess.run([sys.executable, "-m", "apical.runs.cli", "evaluate", str(run)], capture_output=True,
                                text=True)
    assert evaluation.returncode == 0, evaluation.stderr
    analysis = subprocess.run([sys.executable, "-m", "apical.runs.cli", "analyze", str(run), "--out",
                               str(tmp_path / "analysis")], capture_output=True, text=True)
    assert analysis.returncode == 0, analysis.stderr
    assert snapshot(run) == before
    assert (tmp_path / "analysis" / "analysis.json").exists() and (tmp_path / "analysis" / "plausibility.md").exists()
