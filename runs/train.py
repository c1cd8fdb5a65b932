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
import hashlib
import io
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apical.circuits import registry
from apical.models.encoders import encode_batch, sample_rng
from apical.runs.config import Config, ConfigError, config_from_resolved, config_to_toml, load_config
from apical.runs.datasets import (SAMPLE_GEOMETRY, images_to_intensity, load_cifar10, load_mnist, load_nmnist,
                                  nmnist_bin_width_us, shift_samples)

METRIC_FIELDS = ["samples_seen", "epoch", "train_accuracy", "test_accuracy", "wall_seconds", "samples_per_second"]


EVENT_SAMPLES = 8  # test samples whose operations summary.json counts (apical.analysis.events)
DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "nmnist": "N-MNIST", "cifar10": "CIFAR-10"}


class TrainingError(RuntimeError):
    """Training cannot go on (divergence, a results directory in use, a bad resume)."""


class CheckpointError(TrainingError):
    """A checkpoint file cannot be used (truncated, damaged, not a checkpoint)."""


class Interrupted(TrainingError):
    """SIGINT or SIGTERM stopped a run at a chunk boundary, its state checkpointed."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_code = 128 + signal_number


def checkpoint_name(samples_seen: int) -> str:
    return f"checkpoint-{samples_seen:010d}.npz"


def write_atomically(path: Path, write) -> None:
    """Write a file whole or not at all: ``write(handle)`` fills a hidden temporary file beside
    ``path``, which is flushed to disk and renamed over ``path``; a kill leaves the old file or the
    new one. A full or read-only disk ends in one line naming the file, with nothing partial left."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        with open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError as error:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        raise TrainingError(f"cannot write {path}: {error.strerror or error}") from None


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def state_digest(arrays: dict) -> str:
    """SHA-256 of named arrays (names, dtypes, shapes and bytes), to recognise a damaged checkpoint."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    """A checkpoint's state (named arrays) and progress, verified: a truncated or damaged file, or one
    whose arrays no longer match the digest written with them, raises CheckpointError naming it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as stored:
            state = {name: stored[name] for name in stored.files if name != "progress"}
            progress = json.loads(str(stored["progress"])) if "progress" in stored.files else {}
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as error:  # zipfile.BadZipFile, EOFError, ValueError, OSError, a CRC error...
        raise CheckpointError(f"checkpoint {path} is damaged or not a checkpoint "
                              f"({type(error).__name__}: {error})") from None
    expected = progress.get("state_digest")
    if expected is not None and expected != state_digest(state):
        raise CheckpointError(f"checkpoint {path} is damaged (its arrays do not match the digest written with them)")
    return state, progress


def config_differences(stored: Config, given: Config, ignore=("run.epochs",)) -> list[str]:
    """``key (run: value, given: value)`` for every resolved key in which two configs differ."""
    def values(config):
        found, section = {}, ""
        for line in config_to_toml(config).splitlines():
            if line.startswith("["):
                section = line.strip("[]")
            elif " = " in line and not line.startswith("#"):
                key, value = line.split(" = ", 1)
                found[f"{section}.{key}"] = value
            elif line.startswith("# ") and " not set " in line:
                found[f"{section}.{line[2:].split()[0]}"] = "(not set)"
        return found

    before, after = values(stored), values(given)
    return [f"{key} (run: {before.get(key, '(absent)')}, given: {after.get(key, '(absent)')})"
            for key in sorted(set(before) | set(after)) if key not in ignore and before.get(key) != after.get(key)]


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
        bins = {"time_bins": config.model.time_steps, "bin_width_us": nmnist_bin_width_us(config.model.dt)}
        train, train_labels = load_nmnist("train", data_dir, **bins)
        test, test_labels = load_nmnist("test", data_dir, **bins)
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
    if d.train_samples > len(train_labels):
        raise ConfigError(f"config key 'data.train_samples': {d.train_samples} asks for more than the "
                          f"{len(train_labels)} training samples of {d.dataset}"
                          + (f" left after data.validation_samples = {d.validation_samples}" if d.validation_samples else "")
                          + " (0 = all)")
    if d.test_samples > len(test_labels):
        raise ConfigError(f"config key 'data.test_samples': {d.test_samples} asks for more than the "
                          f"{len(test_labels)} test samples of {d.dataset} (0 = all)")
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


def record_equations(config: Config, framework, directory: Path, resumed: bool) -> None:
    """Write what the network was built with (model.md, model.json, source.diff: runs/equations.py);
    refuse the numpy form for equations its references do not implement, and a resume whose
    equations differ from the run's."""
    from brian2.utils.logger import BrianLogger

    from apical.runs.equations import read_record, record_for, refuse_unless_referenced, write_record

    BrianLogger.suppress_name("unused_brian_object")  # objects built only to be described, never run
    spec = registry.get(config.model.framework)
    record = record_for(spec, config, framework)
    if config.run.device == "numpy":
        refuse_unless_referenced(config, record, 'config key \'run.device\' = "numpy": the numpy form')
    previous = read_record(directory) if resumed else None
    if previous is not None and previous.digests != record.digests:
        changed = sorted({f"{b.owner} {b.role}" for b in record.blocks if b.digest not in previous.digests}
                         | {f"{b.owner} {b.role}" for b in previous.blocks if b.digest not in record.digests})
        raise TrainingError("the network's equations differ from those the run was built with (model.md), in "
                            + ", ".join(changed[:4]) + (" and more" if len(changed) > 4 else "")
                            + ": resume it with the code it ran, or start a new run")
    write_record(directory, record, spec.run_title(config), write_text_atomically)


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


def framework_package(name: str) -> dict[str, str]:
    """The version of the outside package a framework comes from (entry point), by its name."""
    found = registry.distribution(name)
    return {found[0]: found[1]} if found else {}


class ResultsDirectory:
    """Files of one run; holds an exclusive lock for as long as the run lives."""

    def __init__(self, path: Path, resume: bool):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.figures = self.path / "figures"
        existing = (self.path / "metrics.csv").exists() or any(self.checkpoints.glob("*.npz"))
        if existing and not resume:
            raise TrainingError(f"results directory {self.path} already holds a run; pass --resume or choose another --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self.checkpoints.mkdir(exist_ok=True)
            self.figures.mkdir(exist_ok=True)
            self._lock = open(self.path / ".lock", "a+")
        except OSError as error:
            raise TrainingError(f"cannot write into the results directory {self.path} "
                                f"({error.strerror or error}); choose another --out") from None
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

    def newest_good_checkpoint(self, log=None) -> tuple[Path, dict, dict] | None:
        return self.newest_good_in(self.checkpoints, log)

    @staticmethod
    def newest_good_in(folder: Path, log=None) -> tuple[Path, dict, dict] | None:
        """The newest checkpoint in ``folder`` that reads back whole and matches its digest, with its
        state and progress; damaged newer ones are named on ``log`` and skipped (None: there is none)."""
        damaged = 0
        for path in sorted(folder.glob("checkpoint-*.npz"), reverse=True):
            try:
                state, progress = read_checkpoint(path)
            except CheckpointError as error:
                if path.exists():  # else rotated away by a training beside us since the listing
                    damaged += 1
                    print(f"skipping {error}", file=log or sys.stderr, flush=True)
                continue
            return path, state, progress
        if damaged:
            raise TrainingError(f"no checkpoint in {folder} can be read ({damaged} damaged); "
                                "start afresh in another --out")
        return None

    def save_checkpoint(self, arrays: dict, progress: dict, config_text: str | None = None) -> Path:
        """Write a checkpoint whole (temporary file, fsync, rename) with the resolved config and a
        digest of its arrays in its progress record; keep the two newest."""
        path = self.checkpoints / checkpoint_name(progress["samples_seen"])
        record = {**progress, "state_digest": state_digest(arrays)}
        if config_text is not None:
            record["config"] = config_text
        write_atomically(path, lambda handle: np.savez(handle, progress=json.dumps(record), **arrays))
        for old in sorted(self.checkpoints.glob("checkpoint-*.npz"))[:-2]:
            old.unlink()
        return path

    def save_selected(self, arrays: dict, samples_seen: int) -> Path:
        """The weights of the evaluation with the best validation accuracy (selected.npz)."""
        path = self.checkpoints / "selected.npz"
        record = {"samples_seen": samples_seen, "state_digest": state_digest(arrays)}
        write_atomically(path, lambda handle: np.savez(handle, progress=json.dumps(record), **arrays))
        return path

    def append_metrics(self, row: dict):
        """One row: the contract's columns first, then the framework's own (e.g. alignment)."""
        path = self.path / "metrics.csv"
        new = not path.exists()
        fields = list(row)
        if not new:  # a run resumed under a newer version keeps the columns it started with
            with open(path, newline="") as handle:
                fields = next(csv.reader(handle), None) or fields
        try:
            with open(path, "a", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields, restval="", extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow(row)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            raise TrainingError(f"cannot write {path}: {error.strerror or error}") from None

    def truncate_metrics(self, samples_seen: int):
        """Drop rows written after the checkpoint a resumed run starts from, and a row torn by a kill
        mid-append; the file is rewritten whole (temporary file and rename), never emptied."""
        path = self.path / "metrics.csv"
        if not path.exists():
            return
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames
            rows = []
            for row in reader:
                try:
                    complete = None not in row and None not in row.values()
                    if complete and int(row["samples_seen"]) <= samples_seen:
                        rows.append(row)
                except (TypeError, ValueError):
                    continue  # a torn row
        if not fields or "samples_seen" not in fields:
            path.unlink()  # no header: nothing was kept; the next row writes a new one
            return

        def write(handle):
            text = io.StringIO(newline="")
            writer = csv.DictWriter(text, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
            handle.write(text.getvalue().encode("utf-8"))

        write_atomically(path, write)

    def read_metrics(self) -> list[dict]:
        return read_metrics(self.path)


def read_metrics(directory: Path) -> list[dict]:
    """The rows of a results directory's metrics.csv (none when it has none yet)."""
    path = Path(directory) / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
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
    inputs = dataset.train_inputs[indices]
    if config.data.shift_pixels:  # a new offset for every position in the training stream
        inputs = shift_samples(inputs, SAMPLE_GEOMETRY[config.data.dataset], config.data.shift_pixels,
                               config.seeds.input, seen)
    spikes = encode(inputs, config.model.time_steps, config.seeds.input, "train", seen)
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


def check_divergence(arrays: dict, bound: float, start: int, stop: int, last_good: Path | None) -> None:
    """Stop as diverged when a learned array holds a non-finite value or one beyond ± ``bound``
    (run.max_weight; 0: no bound): such a state is never checkpointed, so rotation keeps the good ones.
    Integer arrays are counters (an optimizer's step count), not learned values, and are not checked."""
    for name, array in arrays.items():
        values = np.asarray(array)
        if not np.issubdtype(values.dtype, np.floating):
            continue
        largest = float(np.abs(values).max()) if values.size else 0.0
        if not np.isfinite(largest):
            what = f"non-finite values in {name}"
        elif bound and largest > bound:
            what = f"|{name}| reached {largest:.3g} > run.max_weight = {bound:g}"
        else:
            continue
        raise TrainingError(f"training diverged ({what}) between samples {start} and {stop}; last good "
                            f"checkpoint: {last_good or 'none'}; lower learning.learning_rate")


class StopSignals:
    """SIGINT and SIGTERM during training: the first asks the run to stop at the next chunk boundary
    (the driver checkpoints and exits non-zero), a second stops it at once (the compiled program
    running the chunk is ended too, so nothing keeps computing after Python has gone)."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.getsignal(number)
            signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number, frame):
        if self.received is None:
            self.received = number
            print(f"\n{signal.Signals(number).name}: stopping at the end of this chunk (again: at once)",
                  file=sys.stderr, flush=True)
            return
        self.__exit__()
        end_child_processes()
        raise KeyboardInterrupt(f"second {signal.Signals(number).name}")


def end_child_processes() -> None:
    """Send SIGTERM to this process's children (the compiled program of a standalone run)."""
    me = str(os.getpid())
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:
            try:
                os.kill(int(entry.parent.name), signal.SIGTERM)
            except OSError:
                pass


def _train(config: Config, results: ResultsDirectory, resume: bool, config_path, build_dir: Path) -> dict:
    started = time.perf_counter()
    commit = git_commit()  # the code that runs from here; read now, as the tree may change while it trains
    resolved = config_to_toml(config)
    config_file = results.path / "config.toml"
    newest = results.newest_good_checkpoint() if resume else None
    if resume:
        # A resumed run may only be extended (more epochs); anything else would change its past. The
        # checkpoint's own record of the config decides; config.toml is consulted for older checkpoints.
        recorded = newest[2].get("config") if newest else None
        if recorded is None and config_file.exists():
            recorded = config_file.read_text()
        if recorded is not None:
            try:
                stored = config_from_resolved(recorded)  # older keys in their new places
            except (ConfigError, tomllib.TOMLDecodeError) as error:
                raise TrainingError(f"the run's recorded config cannot be read ({error})") from None
            differences = config_differences(stored, config)
            if differences:
                raise TrainingError("the config given to --resume differs from the run's in "
                                    + "; ".join(differences) + " (only run.epochs may change)")
    write_text_atomically(config_file, resolved)  # only once the resume is accepted

    dataset = load_dataset(config)
    n_train = len(dataset.train_labels)
    chunk = chunk_size(n_train, config.run.chunk_samples, config.learning.batch_size)
    if chunk != config.run.chunk_samples:
        print(f"note: run.chunk_samples = {config.run.chunk_samples} is run as chunks of {chunk} samples, the largest "
              f"that divides the {n_train} training samples into whole minibatches", file=sys.stderr, flush=True)
    if config.run.eval_every % chunk:
        raise ConfigError(f"config key 'run.eval_every': {config.run.eval_every} is not a multiple of the chunk of "
                          f"{chunk} samples (evaluations fall between chunks); use a multiple of {chunk}, or 0 "
                          "for once per epoch")
    framework = make_framework(config, dataset.n_inputs, dataset.n_classes, chunk, build_dir)
    print(f"built {config.model.framework} network {framework.settings.sizes} on {config.run.device} "
          f"in {framework.compile_seconds:.1f} s; {chunk} samples per run", file=sys.stderr, flush=True)
    record_equations(config, framework, results.path, resumed=newest is not None)

    total = config.run.epochs * n_train
    eval_every = config.run.eval_every or n_train
    progress = {"samples_seen": 0, "wall_seconds": 0.0, "train_seconds": 0.0, "eval_seconds": 0.0}
    checkpoint = None
    if newest is not None:
        checkpoint, state, progress = newest
        progress = {k: v for k, v in progress.items() if k not in ("config", "state_digest")}
        framework.load_state_arrays(state)
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
    resume_command = (f"apical train {config_path or 'CONFIG'} --out {results.path} --resume")

    def halt(before, signal_number):
        """Checkpoint the state ``before`` holds (unless the newest checkpoint is that state) and stop."""
        nonlocal last_good
        state, kept = before
        framework.load_state_arrays(state)
        kept["wall_seconds"] = time.perf_counter() - started + wall_offset
        if last_good is None or last_good.name != checkpoint_name(kept["samples_seen"]):
            last_good = results.save_checkpoint(state, kept, resolved)
        raise Interrupted(f"stopped by {signal.Signals(signal_number).name} after {kept['samples_seen']} training "
                          f"samples (checkpoint {last_good.name}); resume with: {resume_command}", signal_number)

    with StopSignals() as stop:
        if seen == 0 and "initial_test_accuracy" not in progress:
            # The untrained network on the test set: every learning curve starts at 0 samples. A
            # signal during it stops the run at 0 samples; the resume evaluates again.
            before = ({name: np.array(array) for name, array in framework.state_arrays().items()},
                      dict(progress, samples_seen=0, correct=0, counted=0))
            eval_started = time.perf_counter()
            try:
                initial = evaluation_counts(framework, dataset, config, chunk)
            except RuntimeError:
                if stop.received is None:
                    raise
                halt(before, stop.received)
            if stop.received is not None:
                halt(before, stop.received)
            progress["initial_test_accuracy"] = round(float((initial.argmax(axis=1) == dataset.test_labels).mean()), 6)
            progress["initial_metrics"] = framework.metrics()  # e.g. the feedback angles before training
            progress["eval_seconds"] += time.perf_counter() - eval_started
            print(f"  test accuracy before training: {100 * progress['initial_test_accuracy']:.2f}%",
                  file=sys.stderr, flush=True)
        while seen < total:
            # What the run was before this chunk: a signal during the chunk or its evaluation puts it
            # back, so that no chunk stopped part-way (the compiled program also ends a run early on
            # SIGINT) and no partial evaluation is ever taken as done; the resumed run replays it.
            before = ({name: np.array(array) for name, array in framework.state_arrays().items()},
                      dict(progress, samples_seen=seen, correct=correct, counted=counted))
            if stop.received is not None:  # arrived after the last chunk was complete
                halt(before, stop.received)
            epoch = seen // n_train
            chunk_started = time.perf_counter()
            indices, spikes, chunk_arguments = training_chunk(config, dataset, chunk, seen)
            try:
                counts = framework.train_chunk(spikes, dataset.train_labels[indices], **chunk_arguments)
            except RuntimeError:
                if stop.received is None:
                    raise
                halt(before, stop.received)  # the signal also ended the compiled program
            elapsed = time.perf_counter() - chunk_started
            if stop.received is None:
                check_divergence(framework.state_arrays(), config.run.max_weight, seen, seen + chunk, last_good)
            if stop.received is None:
                seen += chunk
                progress["train_seconds"] += elapsed
                correct += int((counts.argmax(axis=1) == dataset.train_labels[indices]).sum())
                counted += chunk
                interval_samples += chunk
                interval_seconds += elapsed
                display.update(seen, epoch, config.run.epochs, correct, counted, interval_samples / interval_seconds)

            at_eval = stop.received is None and (seen % eval_every == 0 or seen == total)
            if at_eval:
                eval_started = time.perf_counter()
                try:
                    test_counts = evaluation_counts(framework, dataset, config, chunk)
                    held_out = {}
                    if dataset.validation_labels is not None:
                        held_out["validation_accuracy"] = round(evaluate(framework, dataset, config, chunk,
                                                                         "validation"), 6)
                except RuntimeError:
                    if stop.received is None:
                        raise
                    halt(before, stop.received)
                test_accuracy = float((test_counts.argmax(axis=1) == dataset.test_labels).mean())
                silence = output_silence(test_counts)
                progress["eval_seconds"] += time.perf_counter() - eval_started
            if stop.received is not None:
                halt(before, stop.received)
            if at_eval:
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
                last_good = results.save_checkpoint(framework.state_arrays(), progress, resolved)

    metrics = results.read_metrics()
    summary = {
        "framework": config.model.framework,
        "final_test_accuracy": float(metrics[-1]["test_accuracy"]),
        "initial_test_accuracy": progress.get("initial_test_accuracy"),  # None: resumed from a run made before it
        "best_test_accuracy": max(float(r["test_accuracy"]) for r in metrics),
        **selected_summary(metrics),
        "samples_seen": seen,
        "epochs": config.run.epochs,
        "network": list(framework.settings.sizes),
        "device": config.run.device,
        "config_file": config_path,
        "git_commit": commits[0],  # the commit the run started from
        "git_commits": commits,  # more than one when it was resumed on other code
        "versions": {**package_versions(), **framework_package(config.model.framework)},
        "seeds": dataclasses.asdict(config.seeds),
        "timings": {
            "compile_seconds": round(framework.compile_seconds, 2),
            "train_seconds": round(progress["train_seconds"], 2),
            "eval_seconds": round(progress["eval_seconds"], 2),
            "wall_seconds": round(time.perf_counter() - started + wall_offset, 2),
            "train_ms_per_sample": round(1e3 * progress["train_seconds"] / max(seen, 1), 3),
        },
    }
    from apical.analysis.figures import learning_curve
    from apical.analysis.report_figures import alignment_from_metrics

    alignment_from_metrics(metrics, progress.get("initial_metrics"), results.figures / "feedback_alignment")
    shown = min(20, len(dataset.test_labels))
    test_spikes = encode(dataset.test_inputs[:shown], config.model.time_steps, config.seeds.input, "test", 0)
    from apical.analysis.events import event_summary

    # What a training and an inference sample cost in events and energy, on the trained network.
    counted = min(EVENT_SAMPLES, shown)
    events = event_summary(framework, test_spikes[:counted], dataset.test_labels[:counted])
    if events is not None:
        summary["events"] = events
    framework.figures(results.figures, test_spikes, dataset.test_labels[:shown])
    learning_curve(metrics, results.figures / "learning_curve", title=f"{run_title(config)} on "
                   f"{DATASET_TITLES.get(config.data.dataset, config.data.dataset)}, "
                   f"{'-'.join(map(str, framework.settings.sizes))}", initial=summary["initial_test_accuracy"])
    # Written last: a summary marks a finished run (sweeps skip it), figures included.
    write_text_atomically(results.path / "summary.json", json.dumps(summary, indent=2) + "\n")
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


def load_checkpoint(directory: Path, checkpoint: str, purpose: str, log=None) -> tuple[Path, dict, dict]:
    """The checkpoint ``find_checkpoint`` names, read and verified, with its state and progress. For
    "latest", a checkpoint that a training beside us rotates away is replaced by the next newest, and
    a damaged one is named and skipped for the newest good one; a file the caller named must be good."""
    directory = Path(directory)
    if checkpoint != "latest":
        path = find_checkpoint(directory, checkpoint, purpose)
        return (path, *read_checkpoint(path))
    for _ in range(5):  # a training may rotate every listed checkpoint away while we read
        find_checkpoint(directory, checkpoint, purpose)  # one line when there is none at all
        found = ResultsDirectory.newest_good_in(directory / "checkpoints", log)
        if found is not None:
            return found
    raise TrainingError(f"the checkpoints of {directory} keep changing under us; try again")


def directory_counts(directory, device: str | None = None, checkpoint: str = "latest"):
    """Output spike counts [N, n_out] of a results directory's checkpoint on its test set, with
    the labels, config and checkpoint used. ``checkpoint``: "latest" (the newest periodic one),
    "selected" (the one chosen on validation) or a file's path.

    Nothing is written into the directory: the network is compiled in a private temporary folder,
    so a training running in it is left alone and a read-only (archived, shared) run can be scored."""
    directory = Path(directory)
    # Scoring takes no learning step, so the run's optimizer does not matter; plain steps are what every
    # framework's networks accept on every device (BioGrad's Adam runs on its numpy form only).
    overrides = [f"run.device={json.dumps(device)}", 'learning.optimizer="sgd"'] if device else []
    config = load_config(directory / "config.toml", overrides)
    path, state, _ = load_checkpoint(directory, checkpoint, "evaluate")
    dataset = load_dataset(config)
    chunk = chunk_size(len(dataset.train_labels), config.run.chunk_samples, config.learning.batch_size)
    with tempfile.TemporaryDirectory(prefix="apical-evaluate-") as build_dir:
        framework = make_framework(config, dataset.n_inputs, dataset.n_classes, chunk, Path(build_dir))
        framework.load_state_arrays(state)
        counts = evaluation_counts(framework, dataset, config, chunk)
    return counts, dataset.test_labels, config, path
