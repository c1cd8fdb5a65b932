"""The training driver: compile once, run in chunks, evaluate, checkpoint, resume.

Samples flow as one stream: epoch e visits the training set in the order of a permutation
drawn from the shuffle seed and e; sample number k of the stream (counted from the start of
training) is rate-coded with the generator keyed by (input seed, "train", k). Test sample i
is always coded with (input seed, "test", i). A run that is killed and resumed from a
checkpoint therefore sees exactly the spikes an uninterrupted run sees.

Results directory (README, "Training"): config.toml, metrics.csv, summary.json, checkpoints/,
figures/, build/ (the compiled project) and a lock file that keeps a second run out.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apical.circuits import registry
from apical.models.encoders import encode_batch, sample_rng
from apical.runs.config import Config, ConfigError, config_to_toml, load_config
from apical.runs.datasets import images_to_intensity, load_cifar10, load_mnist, load_nmnist

METRIC_FIELDS = ["samples_seen", "epoch", "train_accuracy", "test_accuracy", "wall_seconds", "samples_per_second"]


DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "nmnist": "N-MNIST", "cifar10": "CIFAR-10"}


class TrainingError(RuntimeError):
    """Training cannot go on (divergence, a results directory in use, a bad resume)."""


@dataclass
class Dataset:
    train_inputs: np.ndarray  # [N, n_in] intensities in [0, 1], or [N, T, n_in] spike rasters
    train_labels: np.ndarray
    test_inputs: np.ndarray
    test_labels: np.ndarray
    n_classes: int = 10
    validation_inputs: np.ndarray | None = None  # held out from the training set (data.validation_samples)
    validation_labels: np.ndarray | None = None

    @property
    def is_spiking(self) -> bool:
        return self.train_inputs.ndim == 3

    @property
    def n_inputs(self) -> int:
        return self.train_inputs.shape[-1]


def run_title(config: Config) -> str:
    """What trained, for figure titles: the framework, and how when it was not the Brian2 circuit."""
    return registry.get(config.model.framework).run_title(config)


def make_framework(config: Config, n_in: int, n_out: int, chunk: int, build_dir):
    """The registered framework ``model.framework`` names, built for runs of ``chunk`` samples."""
    return registry.get(config.model.framework).factory(config, n_in, n_out, chunk, build_dir)


def load_dataset(config: Config) -> Dataset:
    d = config.data
    data_dir = d.data_dir or None
    if d.dataset == "nmnist" and d.intensity_scale != 1.0:
        raise ConfigError("config key 'data.intensity_scale': N-MNIST is recorded events, not intensities; "
                          "leave it at 1.0")
    if d.dataset in ("mnist", "fashion-mnist"):
        train_images, train_labels = load_mnist("train", data_dir, dataset=d.dataset)
        test_images, test_labels = load_mnist("test", data_dir, dataset=d.dataset)
        train = images_to_intensity(train_images.reshape(len(train_images), -1))
        test = images_to_intensity(test_images.reshape(len(test_images), -1))
    elif d.dataset == "nmnist":
        train, train_labels = load_nmnist("train", data_dir, time_bins=config.model.time_steps)
        test, test_labels = load_nmnist("test", data_dir, time_bins=config.model.time_steps)
    elif d.dataset == "cifar10":  # pixel intensities of the R, G, B planes, rate-coded like MNIST's
        train_images, train_labels = load_cifar10("train", data_dir)
        test_images, test_labels = load_cifar10("test", data_dir)
        train = images_to_intensity(train_images.reshape(len(train_images), -1))
        test = images_to_intensity(test_images.reshape(len(test_images), -1))
    else:  # the config parser admits only the names above
        raise ConfigError(f"config key 'data.dataset': unknown dataset {d.dataset!r}")
    if d.intensity_scale != 1.0:
        train, test = train * d.intensity_scale, test * d.intensity_scale
    validation = validation_labels = None
    if d.validation_samples:
        if d.validation_samples >= len(train_labels):
            raise ConfigError(f"config key 'data.validation_samples': {d.validation_samples} leaves no training "
                              f"samples of the {len(train_labels)} in {d.dataset}")
        validation, validation_labels = train[-d.validation_samples:], np.asarray(train_labels[-d.validation_samples:], int)
        train, train_labels = train[: -d.validation_samples], train_labels[: -d.validation_samples]
    if d.train_samples:
        train, train_labels = train[: d.train_samples], train_labels[: d.train_samples]
    if d.test_samples:
        test, test_labels = test[: d.test_samples], test_labels[: d.test_samples]
    return Dataset(train, np.asarray(train_labels, int), test, np.asarray(test_labels, int),
                   validation_inputs=validation, validation_labels=validation_labels)


def encode(inputs: np.ndarray, time_steps: int, seed: int, purpose: str, first_index: int) -> np.ndarray:
    """Spike rasters [N, T, n_in] for samples first_index, first_index + 1, ... of a stream;
    rate-coded from intensities unless already spikes."""
    if inputs.ndim == 3:
        return inputs
    return encode_batch(inputs, time_steps, seed, first_index, purpose)


def chunk_size(n_train: int, requested: int, batch_size: int) -> int:
    """Largest chunk ≤ ``requested`` that divides the training set and holds whole minibatches,
    so every compiled run is full and no sample is trained twice or skipped."""
    if n_train % batch_size:
        raise ConfigError(
            f"config key 'learning.batch_size': {batch_size} does not divide the {n_train} training samples"
        )
    for size in range(min(requested, n_train), 0, -1):
        if n_train % size == 0 and size % batch_size == 0:
            return size
    raise ConfigError(f"config key 'run.chunk_samples': no chunk ≤ {requested} holds whole minibatches")


def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, check=True)
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("apical", "brian2", "numpy", "scipy", "matplotlib", "brian2cuda"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions


class ResultsDirectory:
    """Files of one run; holds an exclusive lock for as long as the run lives."""

    def __init__(self, path: Path, resume: bool):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.figures = self.path / "figures"
        existing = (self.path / "metrics.csv").exists() or any(self.checkpoints.glob("*.npz"))
        if existing and not resume:
            raise TrainingError(f"results directory {self.path} already holds a run; pass --resume or choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints.mkdir(exist_ok=True)
        self.figures.mkdir(exist_ok=True)
        self._lock = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            raise TrainingError(f"results directory {self.path} is in use by another run (pid {self._lock.read().strip()})") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(str(os.getpid()))
        self._lock.flush()

    def release(self):
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        self._lock.close()

    def latest_checkpoint(self) -> Path | None:
        found = sorted(self.checkpoints.glob("checkpoint-*.npz"))
        return found[-1] if found else None

    def save_checkpoint(self, arrays: dict, progress: dict) -> Path:
        path = self.checkpoints / f"checkpoint-{progress['samples_seen']:010d}.npz"
        # Outside the checkpoint-*.npz pattern: a kill mid-write must not leave a "newest checkpoint".
        temporary = path.with_name(f"partial-{path.name}")
        np.savez(temporary, progress=json.dumps(progress), **arrays)
        os.replace(temporary, path)  # atomic: a kill leaves the old checkpoint or the new one
        for old in sorted(self.checkpoints.glob("checkpoint-*.npz"))[:-2]:
            old.unlink()
        return path

    def save_selected(self, arrays: dict, samples_seen: int) -> Path:
        """The weights of the evaluation with the best validation accuracy (selected.npz)."""
        path = self.checkpoints / "selected.npz"
        temporary = path.with_name("partial-selected.npz")
        np.savez(temporary, progress=json.dumps({"samples_seen": samples_seen}), **arrays)
        os.replace(temporary, path)
        return path

    def append_metrics(self, row: dict):
        """One row: the contract's columns first, then the framework's own (e.g. alignment)."""
        path = self.path / "metrics.csv"
        new = not path.exists()
        fields = list(row)
        if not new:  # a run resumed under a newer version keeps the columns it started with
            with open(path, newline="") as handle:
                fields = next(csv.reader(handle), None) or fields
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields, restval="", extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)

    def truncate_metrics(self, samples_seen: int):
        """Drop rows written after the checkpoint a resumed run starts from."""
        path = self.path / "metrics.csv"
        if not path.exists():
            return
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or METRIC_FIELDS
            rows = [r for r in reader if int(r["samples_seen"]) <= samples_seen]
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)

    def read_metrics(self) -> list[dict]:
        with open(self.path / "metrics.csv", newline="") as handle:
            return list(csv.DictReader(handle))


def selected_row(metrics: list[dict]) -> dict | None:
    """Model selection on held-out training samples: the first evaluation with the highest
    validation accuracy (None when the run holds out none). Its test accuracy is the honest
    figure to report, since the test set took no part in choosing it."""
    rows = [r for r in metrics if r.get("validation_accuracy") not in (None, "")]
    return max(rows, key=lambda r: float(r["validation_accuracy"])) if rows else None


class Progress:
    """One status line per chunk: samples, running accuracy, throughput and time left."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total = total
        self.stream = stream

    def update(self, seen: int, epoch: int, epochs: int, correct: int, counted: int, rate: float):
        remaining = (self.total - seen) / rate if rate > 0 else math.inf
        eta = "?" if math.isinf(remaining) else time.strftime("%H:%M:%S", time.gmtime(remaining))
        accuracy = 100.0 * correct / counted if counted else 0.0
        print(f"epoch {epoch + 1}/{epochs}  {seen:>8d}/{self.total} samples  train acc {accuracy:5.1f}%  "
              f"{rate:7.1f} samples/s  ETA {eta}", file=self.stream, flush=True)


def evaluation_counts(framework, dataset: Dataset, config: Config, chunk: int, split: str = "test") -> np.ndarray:
    """Output spike counts [N, n_out] over the whole test set, or the held-out validation samples
    with split="validation"; no learning."""
    inputs, all_labels = ((dataset.test_inputs, dataset.test_labels) if split == "test"
                          else (dataset.validation_inputs, dataset.validation_labels))
    n_test = len(all_labels)
    counts = []
    for start in range(0, n_test, chunk):
        stop = min(start + chunk, n_test)
        spikes = encode(inputs[start:stop], config.model.time_steps, config.seeds.input, split, start)
        labels = all_labels[start:stop]
        if stop - start < chunk:  # pad the last chunk with silent samples; their outputs are discarded
            pad = chunk - (stop - start)
            spikes = np.concatenate([spikes, np.zeros((pad,) + spikes.shape[1:], spikes.dtype)])
            labels = np.concatenate([labels, np.zeros(pad, int)])
        counts.append(framework.evaluate_chunk(spikes, labels)[: stop - start])
    return np.concatenate(counts)


def evaluate(framework, dataset: Dataset, config: Config, chunk: int, split: str = "test") -> float:
    """Accuracy (argmax of output spike counts) over the test set or the validation samples."""
    labels = dataset.test_labels if split == "test" else dataset.validation_labels
    return float((evaluation_counts(framework, dataset, config, chunk, split).argmax(axis=1) == labels).mean())


def output_silence(counts: np.ndarray) -> dict:
    """What the readout could not answer: the output cells that fired on none of the samples
    (``silent_outputs``; with a pseudo-derivative of bounded support such a cell gets no learning
    signal and seldom recovers) and the fraction of samples on which no output cell fired
    (``samples_without_output``, decoded as class 0 by the argmax)."""
    counts = np.asarray(counts)
    return {"silent_outputs": int((counts.sum(axis=0) == 0).sum()),
            "samples_without_output": round(float((counts.sum(axis=1) == 0).mean()), 6)}


def training_chunk(config: Config, dataset: Dataset, chunk: int, seen: int):
    """The chunk of training that starts after ``seen`` samples: the training-set indices, their
    spike rasters and the arguments of ``framework.train_chunk`` (its index, which keys the sleep
    noise, and the learning-rate schedule's factor). Every seed is keyed by position, so a
    resumed run, or a replay of a checkpoint (runs/compare_forms.py), sees the same chunk."""
    n_train = len(dataset.train_labels)
    epoch, position = divmod(seen, n_train)
    order = sample_rng(config.seeds.shuffle, "shuffle", epoch).permutation(n_train) if config.run.shuffle \
        else np.arange(n_train)
    indices = order[position : position + chunk]
    spikes = encode(dataset.train_inputs[indices], config.model.time_steps, config.seeds.input, "train", seen)
    arguments = {"chunk_index": seen // chunk,
                 "rate_scale": config.learning.rate_scale(seen / n_train, len(indices) / n_train)}
    return indices, spikes, arguments


def train(config: Config, out_dir, resume: bool = False, config_path: str | None = None, build_dir=None) -> dict:
    """Train as the config says and write the results directory; returns the summary.

    ``build_dir`` holds the compiled projects (default: the results directory's build/); a sweep
    passes one folder that all jobs of a worker share, so jobs that differ only in run-time
    values (learning rate, seeds) reuse one build.
    """
    results = ResultsDirectory(Path(out_dir), resume)
    try:
        return _train(config, results, resume, config_path, Path(build_dir) if build_dir else results.path / "build")
    finally:
        results.release()


def _train(config: Config, results: ResultsDirectory, resume: bool, config_path, build_dir: Path) -> dict:
    started = time.perf_counter()
    commit = git_commit()  # the code that runs from here; read now, as the tree may change while it trains
    resolved = config_to_toml(config)
    config_file = results.path / "config.toml"
    if resume and config_file.exists():
        stored = load_config(config_file)
        # A resumed run may only be extended (more epochs); anything else would change its past.
        if dataclasses.replace(stored, run=dataclasses.replace(stored.run, epochs=config.run.epochs)) != config:
            raise TrainingError(f"{config_file} differs from the config given to --resume (only run.epochs may "
                                f"change); resume with the same config")
    config_file.write_text(resolved)

    dataset = load_dataset(config)
    n_train = len(dataset.train_labels)
    chunk = chunk_size(n_train, config.run.chunk_samples, config.learning.batch_size)
    framework = make_framework(config, dataset.n_inputs, dataset.n_classes, chunk, build_dir)
    print(f"built {config.model.framework} network {framework.settings.sizes} on {config.run.device} "
          f"in {framework.compile_seconds:.1f} s; {chunk} samples per run", file=sys.stderr, flush=True)

    total = config.run.epochs * n_train
    eval_every = config.run.eval_every or n_train
    progress = {"samples_seen": 0, "wall_seconds": 0.0, "train_seconds": 0.0, "eval_seconds": 0.0}
    checkpoint = results.latest_checkpoint() if resume else None
    if checkpoint is not None:
        with np.load(checkpoint) as stored:
            progress = json.loads(str(stored["progress"]))
            framework.load_state_arrays({k: stored[k] for k in stored.files if k != "progress"})
        results.truncate_metrics(progress["samples_seen"])
        print(f"resuming from {checkpoint.name} at {progress['samples_seen']} samples", file=sys.stderr)
    elif resume:
        (results.path / "metrics.csv").unlink(missing_ok=True)  # rows of an attempt killed before its first checkpoint
        print("nothing to resume from: starting afresh", file=sys.stderr)
    wall_offset = progress["wall_seconds"] - (time.perf_counter() - started)
    commits = progress.setdefault("git_commits", [])  # every commit that trained part of this run, in order
    if not commits or commits[-1] != commit:
        commits.append(commit)

    display = Progress(total)
    seen = progress["samples_seen"]
    # Running train accuracy since the last evaluation: carried through checkpoints, so a
    # resumed run writes the same metrics rows as an uninterrupted one.
    correct, counted = progress.get("correct", 0), progress.get("counted", 0)
    interval_samples, interval_seconds = 0, 0.0
    last_good = checkpoint
    while seen < total:
        epoch = seen // n_train
        chunk_started = time.perf_counter()
        indices, spikes, chunk_arguments = training_chunk(config, dataset, chunk, seen)
        counts = framework.train_chunk(spikes, dataset.train_labels[indices], **chunk_arguments)
        elapsed = time.perf_counter() - chunk_started
        if not all(np.all(np.isfinite(a)) for a in framework.state_arrays().values()):
            raise TrainingError(
                f"training diverged (non-finite weights) between samples {seen} and {seen + chunk}; "
                f"last good checkpoint: {last_good or 'none'}; lower learning.learning_rate"
            )
        seen += chunk
        progress["train_seconds"] += elapsed
        correct += int((counts.argmax(axis=1) == dataset.train_labels[indices]).sum())
        counted += chunk
        interval_samples += chunk
        interval_seconds += elapsed
        display.update(seen, epoch, config.run.epochs, correct, counted, interval_samples / interval_seconds)

        at_eval = seen % eval_every == 0 or seen == total
        if at_eval:
            eval_started = time.perf_counter()
            test_counts = evaluation_counts(framework, dataset, config, chunk)
            test_accuracy = float((test_counts.argmax(axis=1) == dataset.test_labels).mean())
            silence = output_silence(test_counts)
            held_out = {}
            if dataset.validation_labels is not None:
                held_out["validation_accuracy"] = round(evaluate(framework, dataset, config, chunk, "validation"), 6)
            progress["eval_seconds"] += time.perf_counter() - eval_started
            wall = time.perf_counter() - started + wall_offset
            results.append_metrics({
                "samples_seen": seen, "epoch": round(seen / n_train, 4),
                "train_accuracy": round(correct / counted, 6), "test_accuracy": round(test_accuracy, 6),
                "wall_seconds": round(wall, 2), "samples_per_second": round(interval_samples / interval_seconds, 2),
                **held_out, **silence, **framework.metrics(),
            })
            shown = "".join(f", validation {100 * v:.2f}%" for v in held_out.values())
            print(f"  test accuracy after {seen} samples: {100 * test_accuracy:.2f}%{shown}", file=sys.stderr, flush=True)
            if silence["silent_outputs"]:
                silent = np.flatnonzero(test_counts.sum(axis=0) == 0).tolist()
                print(f"  warning: output cells {silent} fired on no test sample; cells below their "
                      f"depolarisation window get no learning signal (lower learning.learning_rate; "
                      f"docs/results.md, SC microcircuit)", file=sys.stderr, flush=True)
            if held_out and selected_row(results.read_metrics())["samples_seen"] == str(seen):
                # the best evaluation on held-out samples so far: keep its weights apart
                results.save_selected(framework.state_arrays(), seen)
            correct = counted = 0
            interval_samples, interval_seconds = 0, 0.0
        every = config.run.checkpoint_every
        at_epoch_end = seen % n_train == 0
        if at_eval or at_epoch_end or (every and seen % every < chunk):
            progress.update(samples_seen=seen, correct=correct, counted=counted,
                            wall_seconds=time.perf_counter() - started + wall_offset)
            last_good = results.save_checkpoint(framework.state_arrays(), progress)

    metrics = results.read_metrics()
    summary = {
        "framework": config.model.framework,
        "final_test_accuracy": float(metrics[-1]["test_accuracy"]),
        "best_test_accuracy": max(float(r["test_accuracy"]) for r in metrics),
        **selected_summary(metrics),
        "samples_seen": seen,
        "epochs": config.run.epochs,
        "network": list(framework.settings.sizes),
        "device": config.run.device,
        "config_file": config_path,
        "git_commit": commits[0],  # the commit the run started from
        "git_commits": commits,  # more than one when it was resumed on other code
        "versions": package_versions(),
        "seeds": dataclasses.asdict(config.seeds),
        "timings": {
            "compile_seconds": round(framework.compile_seconds, 2),
            "train_seconds": round(progress["train_seconds"], 2),
            "eval_seconds": round(progress["eval_seconds"], 2),
            "wall_seconds": round(time.perf_counter() - started + wall_offset, 2),
            "train_ms_per_sample": round(1e3 * progress["train_seconds"] / max(seen, 1), 3),
        },
    }
    from apical.analysis.figures import alignment_curve, learning_curve

    alignment_curve(metrics, results.figures / "alignment", title="feedback alignment")
    shown = min(20, len(dataset.test_labels))
    test_spikes = encode(dataset.test_inputs[:shown], config.model.time_steps, config.seeds.input, "test", 0)
    framework.figures(results.figures, test_spikes, dataset.test_labels[:shown])
    learning_curve(metrics, results.figures / "learning_curve", title=f"{run_title(config)} on "
                   f"{DATASET_TITLES.get(config.data.dataset, config.data.dataset)}, "
                   f"{'-'.join(map(str, framework.settings.sizes))}")
    # Written last: a summary marks a finished run (sweeps skip it), figures included.
    (results.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def selected_summary(metrics: list[dict]) -> dict:
    row = selected_row(metrics)
    if row is None:
        return {}
    return {"selected": {"samples_seen": int(row["samples_seen"]), "epoch": float(row["epoch"]),
                         "validation_accuracy": float(row["validation_accuracy"]),
                         "test_accuracy": float(row["test_accuracy"]), "checkpoint": "checkpoints/selected.npz"}}


def load_and_train(path, overrides=(), out_dir=None, resume=False, device=None, build_dir=None) -> dict:
    if device:
        overrides = [*overrides, f"run.device={json.dumps(device)}"]
    config = load_config(path, overrides)
    out_dir = out_dir or Path("results") / Path(path).stem
    return train(config, out_dir, resume=resume, config_path=str(path), build_dir=build_dir)


def find_checkpoint(directory: Path, checkpoint: str, purpose: str) -> Path:
    """A results directory's checkpoint file: "latest" (the newest periodic one), "selected" (the
    one chosen on validation) or a file's path; ``purpose`` words the error."""
    if checkpoint == "latest":
        checkpoints = sorted((directory / "checkpoints").glob("checkpoint-*.npz"))
        if not checkpoints:
            raise TrainingError(f"{directory} holds no checkpoint to {purpose}")
        return checkpoints[-1]
    path = directory / "checkpoints" / "selected.npz" if checkpoint == "selected" else Path(checkpoint)
    if not path.exists():
        raise TrainingError(f"no checkpoint {path} to {purpose}"
                            + (" (the run holds out no validation samples)" if checkpoint == "selected" else ""))
    return path


def directory_counts(directory, device: str | None = None, checkpoint: str = "latest"):
    """Output spike counts [N, n_out] of a results directory's checkpoint on its test set, with
    the labels, config and checkpoint used. ``checkpoint``: "latest" (the newest periodic one),
    "selected" (the one chosen on validation) or a file's path."""
    directory = Path(directory)
    overrides = [f"run.device={json.dumps(device)}"] if device else []
    config = load_config(directory / "config.toml", overrides)
    path = find_checkpoint(directory, checkpoint, "evaluate")
    dataset = load_dataset(config)
    chunk = chunk_size(len(dataset.train_labels), config.run.chunk_samples, config.learning.batch_size)
    framework = make_framework(config, dataset.n_inputs, dataset.n_classes, chunk, directory / "build")
    with np.load(path) as stored:
        framework.load_state_arrays({k: stored[k] for k in stored.files if k != "progress"})
    return evaluation_counts(framework, dataset, config, chunk), dataset.test_labels, config, path
