"""Sweeps on Dask: grid × seeds expansion, a 2 × 2 × 2 sweep on a local cluster of 2 workers
that completes although a worker is killed mid-job, shares one build per worker, and does no
work when run again."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from apical.runs.config import ConfigError, load_config
from apical.runs.sweep import SEED_STRIDE, SweepError, expand, job_state, parse_grid, record_spec, split_values
from tests.test_train import final_weights

# One xdist worker runs this whole file, so its sweep is run once (.ci/run).
pytestmark = pytest.mark.xdist_group("test_sweep")

# Run-time values only (learning rate, initial B): every job of a worker reuses one build.
TINY = """
[model]
hidden = [8]
time_steps = 8
[biograd]
error_start = 2
[learning]
learning_rate = 0.005
[data]
train_samples = 40
test_samples = 20
[run]
device = "cpp"
eval_every = 40
checkpoint_every = 10
chunk_samples = 10
"""
GRID = ["learning.learning_rate=0.005,1e-2", "biograd.feedback_init=random,'forward_product'"]
POINTS = ["learning.learning_rate=0.005,biograd.feedback_init=random",
          "learning.learning_rate=0.005,biograd.feedback_init=forward_product",
          "learning.learning_rate=0.01,biograd.feedback_init=random",
          "learning.learning_rate=0.01,biograd.feedback_init=forward_product"]
JOBS = [f"{point}/seed-{s}" for s in range(2) for point in POINTS]


def write_config(directory: Path) -> Path:
    path = directory / "tiny.toml"
    path.write_text(TINY)
    return path


def apical(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "apical.runs.cli", *map(str, args)], **kwargs)


def attempts(job_dir: Path) -> list[str]:
    """The job's log, one entry per time a worker started it."""
    return (job_dir / "train.log").read_text().split("--- ")[1:]


# ------------------------------------------------------------------------------------------
# expansion (no cluster)


def test_grid_values_split_at_top_level_commas():
    assert split_values("[500,100],[200, 50]") == ["[500,100]", "[200, 50]"]
    assert split_values('"a,b",c') == ['"a,b"', "c"]
    assert parse_grid(["biograd.sleep=false,true"]) == {"biograd.sleep": ["false", "true"]}
    with pytest.raises(ConfigError, match="biograd.sleep"):
        parse_grid(["biograd.sleep=true", "biograd.sleep=false"])
    with pytest.raises(ConfigError, match="empty value"):
        parse_grid(["biograd.sleep=true,"])


def test_expansion_names_seeds_and_order(tmp_path):
    config_path = write_config(tmp_path)
    jobs = expand(config_path, parse_grid(GRID), seeds=2)
    assert [job.name for job in jobs] == JOBS
    base = load_config(config_path)
    first, replicate = jobs[0], jobs[4]
    assert first.config.learning.learning_rate == 0.005 and first.config.biograd.feedback_init == "random"
    assert first.config.seeds == base.seeds  # replicate 0: the config's own seeds
    assert replicate.point == first.point
    assert dataclasses.asdict(replicate.config.seeds) == {
        name: value + SEED_STRIDE for name, value in dataclasses.asdict(base.seeds).items()}
    assert [job.name for job in expand(config_path, {}, seeds=1)] == ["base/seed-0"]
    named = expand(config_path, parse_grid(["model.hidden=[8, 4],[6]", 'model.dt="2*ms"']), seeds=1)
    assert [job.point for job in named] == ["model.hidden=8-4,model.dt=2_ms", "model.hidden=6,model.dt=2_ms"]


def test_bad_grid_key_or_value_is_named(tmp_path):
    config_path = write_config(tmp_path)
    with pytest.raises(ConfigError, match="learning.sleeep"):
        expand(config_path, parse_grid(["learning.sleeep=true,false"]), seeds=1)
    with pytest.raises(ConfigError, match="learning.learning_rate"):
        expand(config_path, parse_grid(["learning.learning_rate=0.1,-1"]), seeds=1)
    with pytest.raises(ConfigError, match="--seeds"):
        expand(config_path, {}, seeds=0)


def test_sweep_directory_refuses_another_sweep(tmp_path):
    config_path = write_config(tmp_path)
    record_spec(tmp_path / "sweep", config_path, [], {"biograd.sleep": ["false"]}, 2)
    spec = record_spec(tmp_path / "sweep", config_path, [], {"biograd.sleep": ["true"]}, 1)
    assert spec["grid"] == {"biograd.sleep": ["false", "true"]} and spec["seeds"] == 2  # grown, not replaced
    with pytest.raises(SweepError, match="holds a sweep over biograd.sleep"):
        record_spec(tmp_path / "sweep", config_path, [], {"model.time_steps": ["8"]}, 1)
    job = expand(config_path, {}, seeds=1)[0]
    (tmp_path / "sweep" / job.name).mkdir(parents=True)
    (tmp_path / "sweep" / job.name / "config.toml").write_text(TINY.replace("0.005", "0.5"))
    with pytest.raises(SweepError, match="another config"):
        job_state(tmp_path / "sweep", job)


def test_cli_names_a_bad_grid_key(tmp_path):
    result = subprocess.run([sys.executable, "-m", "apical.runs.cli", "sweep", str(write_config(tmp_path)), "--grid",
                             "model.hiden=[4],[8]", "--out", str(tmp_path / "sweep")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "model.hiden" in result.stderr and "model.hidden" in result.stderr


# ------------------------------------------------------------------------------------------
# one sweep on a local cluster of two workers, with a worker killed mid-job


def kill_a_worker_mid_job(sweep: Path, deadline: float) -> str | None:
    """Wait for a job that has checkpointed but not finished, then SIGKILL the Dask worker
    that runs it (the parent of the job's process, whose pid is in the job's .lock)."""
    while time.time() < deadline:
        for lock in sweep.glob("*/seed-*/.lock"):
            job = lock.parent
            pid = lock.read_text().strip()
            if not pid or (job / "summary.json").exists() or not list((job / "checkpoints").glob("*.npz")):
                continue
            try:
                worker = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                os.kill(worker, signal.SIGKILL)
            except (OSError, IndexError, ValueError):
                continue  # the job ended between the look and the kill
            if (job / "summary.json").exists():
                pytest.fail("the job finished before its worker could be killed")
            return str(job.relative_to(sweep))
        time.sleep(0.02)
    return None


@pytest.fixture(scope="session")
def swept(tmp_path_factory):
    """The sweep, run by the command line; one of its workers killed while it runs a job."""
    directory = tmp_path_factory.mktemp("sweep")
    sweep = directory / "sweep"
    log = directory / "sweep.log"
    with open(log, "w") as handle:
        process = apical("sweep", write_config(directory), *(f"--grid={g}" for g in GRID), "--seeds", 2,
                         "--workers", 2, "--out", sweep, stdout=handle, stderr=subprocess.STDOUT)
        killed = kill_a_worker_mid_job(sweep, deadline=time.time() + 300)
        returncode = process.wait(timeout=600)
    return {"dir": sweep, "killed": killed, "returncode": returncode, "log": log.read_text(),
            "config": directory / "tiny.toml"}


@pytest.mark.standalone
def test_sweep_completes_with_one_build_per_worker(swept):
    assert swept["returncode"] == 0, swept["log"]
    sweep = swept["dir"]
    assert sorted(str(p.parent.relative_to(sweep)) for p in sweep.glob("*/seed-*/summary.json")) == sorted(JOBS)
    assert "[8/8 done" in swept["log"]
    spec = json.loads((sweep / "sweep.json").read_text())
    assert spec["seeds"] == 2 and list(spec["grid"]) == ["learning.learning_rate", "biograd.feedback_init"]
    # Eight jobs, two workers, one compiled project per worker (all jobs differ in run-time values only).
    projects = [p for p in sweep.glob("builds/*/slot-*/*") if p.is_dir()]
    assert len(projects) == 2, projects
    assert {p.parent.parent.name for p in projects} == {"0", "1"}


@pytest.mark.standalone
def test_killed_worker_loses_nothing(swept):
    """The job whose worker was killed resumed from its checkpoint (on a worker of the sweep)
    and ended with the weights of an uninterrupted run; every other job ran once, uninterrupted."""
    assert swept["returncode"] == 0, swept["log"]
    sweep, killed = swept["dir"], swept["killed"]
    assert killed, "no job was caught between its first checkpoint and its end"
    log = attempts(sweep / killed)
    assert len(log) == 2 and "resuming from checkpoint-" in log[1], log
    for name in JOBS:
        if name != killed:
            assert len(attempts(sweep / name)) == 1 and "starting afresh" in attempts(sweep / name)[0]

    reference = sweep.parent / "uninterrupted"
    run = subprocess.run([sys.executable, "-m", "apical.runs.sweep", reference, sweep / "builds" / "0", swept["config"]],
                         input=(sweep / killed / "config.toml").read_text(), text=True, capture_output=True,
                         env={**os.environ, "PYTHONHASHSEED": "0"})
    assert run.returncode == 0, run.stderr
    assert "resuming" not in run.stderr
    ours, expected = final_weights(sweep / killed), final_weights(reference)
    assert ours.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(ours[name], expected[name], err_msg=name)
    assert json.loads((sweep / killed / "summary.json").read_text())["final_test_accuracy"] == \
        json.loads((reference / "summary.json").read_text())["final_test_accuracy"]


@pytest.mark.standalone
def test_rerun_does_no_work(swept):
    """A second `apical sweep` over a finished sweep schedules nothing and touches no file but its
    own sweep.json: no job restarts, no project is built or written (the work is counted, not timed)."""
    sweep = swept["dir"]
    before = {p: p.stat().st_mtime_ns for p in sweep.rglob("*") if p.is_file()}
    result = apical("sweep", swept["config"], *(f"--grid={g}" for g in GRID), "--seeds", 2, "--workers", 2,
                    "--out", sweep, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = result.communicate(timeout=120)
    assert result.returncode == 0, err
    assert "8 jobs, 8 finished before, 0 to run" in err and "running on" not in err
    after = {p: p.stat().st_mtime_ns for p in sweep.rglob("*") if p.is_file()}
    changed = [p for p in after if before.get(p) != after[p] and p.name != "sweep.json"]
    assert not changed, changed  # a new file (a build, a checkpoint) counts as changed too
