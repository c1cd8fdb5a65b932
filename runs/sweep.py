"""Sweeps: a grid of config values × seed replicates, trained as jobs on a Dask cluster.

    apical sweep CONFIG --grid biograd.sleep=false,true --seeds 3 --out results/sweep-sleep

Every job is an ordinary results directory (the contract of ``apical train``) at
``DIR/<grid point>/seed-<s>``, e.g. ``DIR/biograd.sleep=true/seed-1``, so a sweep is resumable job
by job: a job with a summary.json for its config is skipped, any other one resumes from its newest
checkpoint. The jobs run on dask.distributed, an existing engine, rather than a home-made runner:
a LocalCluster on this machine by default, or the scheduler whose address is given. A job whose
worker dies is handed to another worker by the scheduler and resumes from its checkpoint.

Seed replicates: replicate s adds 1000·s to every seed of the job's config ([seeds] weights,
input, sleep, shuffle, feedback), so replicate 0 is the config's own seeds and replicates never
share a stream of random numbers (each stream is keyed by seed *and* purpose).

Each job trains in a child process of its worker, for two reasons. A second network built in one
process gets other object names than the first (Brian2 keeps earlier devices and their objects),
hence other code and a fresh compile; a new process generates the very same code
(runs/builds.py), and the compiled project in the worker's build folder is reused
(``DIR/builds/<worker>/slot-<k>/``, one project per model under it; a file lock keeps any second
process out of a slot). And a child in a session of its own can be ended with
everything it started (compiler, simulation binary) when its worker dies: it watches its parent
and ends its whole process group if the parent goes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

from apical.runs.builds import HASH_SEED, claim_slot, hold_lock
from apical.runs.config import Config, ConfigError, config_from_dict, config_to_toml, load_config

SEED_STRIDE = 1000  # replicate s uses every seed + SEED_STRIDE·s
JOB_RETRIES = 2  # a job that fails (an error, not a dead worker) is tried again, resuming
ALLOWED_WORKER_DEATHS = 3  # a job on this many dead workers is given up (local cluster)
SPEC_FILE = "sweep.json"


class SweepError(RuntimeError):
    """A sweep cannot run as asked (its directory holds another sweep, a job's config changed)."""


# ------------------------------------------------------------------------------------------
# the grid


def split_values(text: str) -> list[str]:
    """Comma-separated TOML values; commas inside brackets or quotes belong to the value,
    so ``[500,100],[200]`` is two values."""
    values, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
        elif char == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += char
    values.append(current.strip())
    if any(not v for v in values):
        raise ConfigError(f"grid values {text!r} hold an empty value")
    return values


def parse_grid(specs: list[str]) -> dict[str, list[str]]:
    """``["biograd.sleep=false,true", ...]`` → ``{"biograd.sleep": ["false", "true"]}``; the
    values stay TOML text, as for ``--set``; keys and values are checked by :func:`expand`."""
    grid: dict[str, list[str]] = {}
    for spec in specs:
        if "=" not in spec:
            raise ConfigError(f"grid {spec!r} must look like section.key=value1,value2,...")
        key, values = (part.strip() for part in spec.split("=", 1))
        if key in grid:
            raise ConfigError(f"grid key {key!r} is given twice; list all its values in one --grid")
        grid[key] = split_values(values)
    return grid


def value_label(text: str) -> str:
    """A grid value as tables and directory names show it: its TOML parsed and written back
    plainly (1e-3 → 0.001, [500, 100] → 500-100, "5*ms" → 5*ms)."""
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word, as --set accepts
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "-".join(str(v) for v in value)
    return str(value)


def grid_points(grid: dict[str, list[str]]) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every grid point as (directory name, ((key, TOML text), ...)), the first key varying
    slowest; the name is "key=label,key=label" with anything outside [A-Za-z0-9._+-=,] as '_',
    or "base" for an empty grid."""
    points: list[tuple[tuple[str, str], ...]] = [()]
    for key, values in grid.items():
        points = [(*point, (key, value)) for point in points for value in values]
    named: dict[str, tuple] = {}
    for point in points:
        name = ",".join(f"{key}={re.sub(r'[^A-Za-z0-9._+-]', '_', value_label(value))}" for key, value in point)
        name = name or "base"
        if name in named:
            raise ConfigError(f"grid values {named[name]} and {point} give the same job name {name!r}")
        named[name] = point
    return list(named.items())


@dataclass(frozen=True)
class Job:
    """One training run of a sweep: a grid point and a seed replicate."""

    point: str  # the grid point's directory name, e.g. "biograd.sleep=true" ("base" without a grid)
    values: tuple[tuple[str, str], ...]  # (key, TOML text) of the grid point
    replicate: int
    config: Config

    @property
    def name(self) -> str:
        return f"{self.point}/seed-{self.replicate}"


def replicate_seeds(config: Config, replicate: int) -> Config:
    """The config of seed replicate ``replicate``: every seed + SEED_STRIDE·replicate."""
    shifted = {name: value + SEED_STRIDE * replicate for name, value in dataclasses.asdict(config.seeds).items()}
    return dataclasses.replace(config, seeds=type(config.seeds)(**shifted))


def expand(config_path, grid: dict[str, list[str]], seeds: int, overrides=()) -> list[Job]:
    """Every job of grid × seeds, replicate-major (all grid points of seed 0 first, so early
    results already span the grid). Each job's config is validated: a bad key or value raises
    the ConfigError of load_config, naming it."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    points = grid_points(grid)
    configs = {name: load_config(config_path, [*overrides, *(f"{k}={v}" for k, v in point)]) for name, point in points}
    return [Job(name, point, s, replicate_seeds(configs[name], s)) for s in range(seeds) for name, point in points]


# ------------------------------------------------------------------------------------------
# the sweep directory


def job_state(directory: Path, job: Job) -> str:
    """"new", "finished" (summary.json of this very config) or "unfinished"; a job directory
    trained with another config (other than more epochs) is an error, not something to resume."""
    path = directory / job.name
    if not (path / "config.toml").exists():
        return "new"
    stored = load_config(path / "config.toml")
    epochs_only = dataclasses.replace(stored, run=dataclasses.replace(stored.run, epochs=job.config.run.epochs))
    if epochs_only != job.config:
        raise SweepError(f"{path} was trained with another config than this sweep gives it (only run.epochs may "
                         f"change); choose another --out")
    return "finished" if stored == job.config and (path / "summary.json").exists() else "unfinished"


def record_spec(directory: Path, config_path, overrides, grid: dict[str, list[str]], seeds: int) -> dict:
    """Write DIR/sweep.json (what apical report reads), merged with a sweep already there: a
    re-run may add grid values or seeds, but must vary the same keys."""
    path = directory / SPEC_FILE
    spec = {"config_file": str(config_path), "set": list(overrides), "grid": grid, "seeds": seeds,
            "seed_rule": f"replicate s: every seed + {SEED_STRIDE}*s"}
    if path.exists():
        old = json.loads(path.read_text())
        if list(old["grid"]) != list(grid):
            raise SweepError(f"{directory} holds a sweep over {', '.join(old['grid']) or 'no grid'}, not over "
                             f"{', '.join(grid) or 'no grid'}; choose another --out")
        spec["grid"] = {key: old["grid"][key] + [v for v in values if v not in old["grid"][key]]
                        for key, values in grid.items()}
        spec["seeds"] = max(seeds, old["seeds"])
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=2) + "\n")
    return spec


# ------------------------------------------------------------------------------------------
# one job, on a worker


def run_job(directory: str, name: str, config_text: str, config_path: str) -> dict:
    """Train one job to the end (resuming it if it was begun); runs on a Dask worker.

    The training runs in a child process (see the module's docstring) whose output goes to the
    job's train.log; returns the job's summary, wall time and worker."""
    from distributed import get_worker

    worker = re.sub(r"[^A-Za-z0-9._-]", "_", str(get_worker().name))
    job_dir = Path(directory) / name
    job_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(job_dir / "train.log", "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} on worker {worker}\n".encode())
        log.flush()
        child = subprocess.run(
            [sys.executable, "-m", "apical.runs.sweep", str(job_dir), str(Path(directory) / "builds" / worker), config_path],
            input=config_text.encode(), stdout=log, stderr=log, start_new_session=True,
            env={**os.environ, "PYTHONHASHSEED": HASH_SEED},  # runs/builds.py: HASH_SEED
        )
    if child.returncode != 0:
        lines = (job_dir / "train.log").read_text(errors="replace").strip().splitlines()
        raise SweepError(f"job {name} failed (exit {child.returncode}): {lines[-1] if lines else 'no output'}")
    summary = json.loads((job_dir / "summary.json").read_text())
    return {"name": name, "summary": summary, "seconds": time.perf_counter() - started, "worker": worker}


def _end_with_parent() -> None:
    """End this process group (this job, its compiler and simulation binary) when the worker
    that started it dies, so a retried job never meets a leftover writing its files."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, daemon=True).start()


def _job_main(job_dir: str, worker_builds: str, config_path: str) -> int:
    """The child: train the job whose resolved config comes on standard input."""
    from apical.runs.train import train

    _end_with_parent()
    # A worker that died a moment ago may leave a job process that is still being ended.
    previous = hold_lock(Path(job_dir) / ".lock", wait=60.0)
    if previous is not None:
        previous.close()
    # The first build slot of this worker that no other process uses (one, unless the
    # worker runs several jobs at once).
    slot, held = claim_slot(Path(worker_builds))
    config = config_from_dict(tomllib.loads(sys.stdin.read()))
    try:
        train(config, job_dir, resume=True, config_path=config_path, build_dir=slot)
    finally:
        held.close()
    return 0


# ------------------------------------------------------------------------------------------
# the sweep, from the client


class SweepProgress:
    """One line per finished (or failed) job: jobs done, running and left, the job's test
    accuracy and an estimate of the time left from the mean time of the jobs run so far."""

    def __init__(self, total: int, done: int, workers: int, stream=sys.stderr):
        self.total, self.done, self.workers, self.stream = total, done, max(workers, 1), stream
        self.failed = 0
        self.durations: list[float] = []

    def finished(self, result: dict, running: int):
        self.done += 1
        self.durations.append(result["seconds"])
        accuracy = 100 * result["summary"]["final_test_accuracy"]
        self._line(f"{result['name']}: test {accuracy:.2f} % in {result['seconds']:.0f} s on worker "
                   f"{result['worker']}", running)

    def failed_job(self, name: str, error: BaseException, running: int):
        self.failed += 1
        self._line(f"{name} FAILED: {error}", running)

    def _line(self, text: str, running: int):
        left = self.total - self.done - self.failed
        if self.durations and left:
            seconds = left * (sum(self.durations) / len(self.durations)) / self.workers
            eta = time.strftime("%H:%M:%S", time.gmtime(seconds))
        else:
            eta = "?" if left else "00:00:00"
        print(f"[{self.done}/{self.total} done, {running} running] {text}  ETA {eta}", file=self.stream, flush=True)


def _client(scheduler: str | None, workers: int | None):
    """A Dask client: on the scheduler at ``scheduler``, else on a new LocalCluster of
    ``workers`` processes with one thread each (a job is one process at a time)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler)
    # A worker holds only the job it runs (the rest wait at the scheduler), so a dead worker
    # takes one job with it and the count of running jobs is exact.
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_WORKER_DEATHS,
                          "distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    return Client(cluster)


def run_sweep(config_path, grid_specs: list[str], seeds: int, out, overrides=(), scheduler: str | None = None,
              workers: int | None = None, stream=sys.stderr) -> dict:
    """Expand, skip finished jobs, run the others on Dask; returns {"finished": [...], "failed": [...]}."""
    directory = Path(out)
    grid = parse_grid(grid_specs)
    jobs = expand(config_path, grid, seeds, overrides)
    states = {job.name: job_state(directory, job) for job in jobs}
    record_spec(directory, config_path, overrides, grid, seeds)
    todo = [job for job in jobs if states[job.name] != "finished"]
    resumed = sum(states[job.name] == "unfinished" for job in todo)
    print(f"sweep {directory}: {len(jobs)} jobs, {len(jobs) - len(todo)} finished before, {len(todo)} to run "
          f"({resumed} to resume)", file=stream, flush=True)
    if not todo:
        return {"finished": [job.name for job in jobs], "failed": []}

    from distributed import as_completed

    with _client(scheduler, workers) as client:
        n_workers = len(client.nthreads())
        where = scheduler or f"a local cluster of {n_workers} workers"
        print(f"running on {where}; each job logs to DIR/<job>/train.log", file=stream, flush=True)
        where_to = str(directory.resolve())  # also in the task keys: two sweeps may share a scheduler
        futures = {client.submit(run_job, where_to, job.name, config_to_toml(job.config), str(config_path),
                                 key=f"apical-job-{where_to}/{job.name}", retries=JOB_RETRIES, pure=False): job
                   for job in todo}
        progress = SweepProgress(len(jobs), len(jobs) - len(todo), n_workers, stream)
        failed = []
        for future in as_completed(futures):
            running = min(sum(client.nthreads().values()), sum(map(len, client.processing().values())))
            if future.status == "finished":
                progress.finished(future.result(), running)
            else:
                failed.append(futures[future].name)
                progress.failed_job(futures[future].name, future.exception(), running)
    return {"finished": [job.name for job in jobs if job.name not in failed], "failed": failed}


def register(commands) -> None:
    """``apical sweep``."""
    parser = commands.add_parser("sweep", help="train a grid of config values x seeds as jobs on a Dask cluster")
    parser.add_argument("config", help="a TOML file, e.g. runs/configs/mnist-quick.toml")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="values of a config key to sweep, in TOML like --set (repeatable: the grid is their "
                             "product)")
    parser.add_argument("--seeds", type=int, default=1, help="seed replicates per grid point (replicate s: every "
                                                             "seed + 1000*s)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key for every job")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://10.0.0.1:8786 "
                        "(default: a local cluster)")
    parser.add_argument("--workers", type=int, help="worker processes of the local cluster (default: one per core)")
    parser.add_argument("--out", required=True, help="sweep directory: one results directory per job")
    parser.set_defaults(handler=main)


def main(args) -> int:
    """``apical sweep``."""
    if args.scheduler and args.workers:
        raise ConfigError("--workers sizes the local cluster; with --scheduler the cluster has its own workers")
    try:
        outcome = run_sweep(args.config, args.grid, args.seeds, args.out, args.set, args.scheduler, args.workers)
    except KeyboardInterrupt:
        print("apical: sweep interrupted; the same command resumes it", file=sys.stderr)
        return 130
    if outcome["failed"]:
        print(f"apical: {len(outcome['failed'])} jobs failed: {', '.join(outcome['failed'])} (see their train.log; "
              f"run the sweep again to retry them)", file=sys.stderr)
        return 1
    print(f"all {len(outcome['finished'])} jobs finished; tables and figures: apical report {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(_job_main(*sys.argv[1:4]))
