"""The training driver: compile once, run in chunks, evaluate, checkpoint, resume.

Samples flow as one stream: epoch e visits the training set in the order of a permutation
drawn from the shuffle seed and e; sample number k of the stream (counted from the start of
training) is rate-coded with the generator keyed by (input seed, "train", k). Test sample i
is always coded with (input seed, "test", i). A run that is killed and resumed from a
checkpoint therefore sees exactly the spikes an uninterrupted run sees.

Results directory (README, "Training"): config.toml, metrics.csv, summary.json, checkpoints/,
figures/, build/ (the compiled project) and a lock file that keeps a second run out. Its files
are written by runs/results.py (checkpoints, metrics) and runs/summary.py (summary, figures);
signals are caught by runs/processes.py.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
import tomllib
from pathlib import Path
from typing import NoReturn

import numpy as np

from apical.circuits import registry
from apical.circuits.backend import DEVICES
from apical.models.encoders import sample_rng
from apical.runs.config import Config, ConfigError, config_from_resolved, config_to_toml, load_config
from apical.runs.datasets import SAMPLE_GEOMETRY, Dataset, encode, load_dataset, shift_samples
from apical.runs.errors import Interrupted, TrainingError
from apical.runs.files import write_text_atomically
from apical.runs.processes import StopSignals
from apical.runs.results import ResultsDirectory, checkpoint_name, selected_row
from apical.runs.summary import finish_run, git_commit, run_summary


def make_framework(config: Config, n_in: int, n_out: int, chunk: int, build_dir):
    """The registered framework ``model.framework`` names, built for runs of ``chunk`` samples."""
    return registry.get(config.model.framework).factory(config, n_in, n_out, chunk, build_dir)


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


def run_chunk_size(config: Config, n_train: int) -> int:
    """:func:`chunk_size` for a training run, with a note when it is not run.chunk_samples;
    run.eval_every must fall on chunk boundaries."""
    chunk = chunk_size(n_train, config.run.chunk_samples, config.learning.batch_size)
    if chunk != config.run.chunk_samples:
        print(f"note: run.chunk_samples = {config.run.chunk_samples} is run as chunks of {chunk} samples, the largest "
              f"that divides the {n_train} training samples into whole minibatches", file=sys.stderr, flush=True)
    if config.run.eval_every % chunk:
        raise ConfigError(f"config key 'run.eval_every': {config.run.eval_every} is not a multiple of the chunk of "
                          f"{chunk} samples (evaluations fall between chunks); use a multiple of {chunk}, or 0 "
                          "for once per epoch")
    return chunk


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


def check_resumable(config: Config, results: ResultsDirectory, newest) -> None:
    """A resumed run may only be extended (more epochs); anything else would change its past. The
    checkpoint's own record of the config decides; config.toml is consulted for older checkpoints."""
    config_file = results.path / "config.toml"
    recorded = newest[2].get("config") if newest else None
    if recorded is None and config_file.exists():
        recorded = config_file.read_text()
    if recorded is None:
        return
    try:
        stored = config_from_resolved(recorded)  # older keys in their new places
    except (ConfigError, tomllib.TOMLDecodeError) as error:
        raise TrainingError(f"the run's recorded config cannot be read ({error})") from None
    differences = config_differences(stored, config)
    if differences:
        raise TrainingError("the config given to --resume differs from the run's in "
                            + "; ".join(differences) + " (only run.epochs may change)")


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
    compared = record.as_recorded_for(previous) if previous is not None else record
    if previous is not None and previous.digests != compared.digests:
        changed = sorted({f"{b.owner} {b.role}" for b in compared.blocks if b.digest not in previous.digests}
                         | {f"{b.owner} {b.role}" for b in previous.blocks if b.digest not in compared.digests})
        raise TrainingError("the network's equations differ from those the run was built with (model.md), in "
                            + ", ".join(changed[:4]) + (" and more" if len(changed) > 4 else "")
                            + ": resume it with the code it ran, or start a new run")
    write_record(directory, record, spec.run_title(config), write_text_atomically)


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


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class TrainingLoop:
    """A run from its first (or resumed) sample to its last: a chunk of training, an evaluation when
    one is due, a checkpoint when one is due.

    A signal (runs/processes.py) puts back the chunk or the evaluation it arrives in: the state from
    before it is checkpointed and the run stops, so that no chunk stopped part-way (the compiled
    program also ends a run early on SIGINT) and no partial evaluation is ever taken as done; the
    resumed run replays it. :meth:`guarded` is the one place that decides this.
    """

    def __init__(self, config: Config, results: ResultsDirectory, framework, dataset: Dataset, chunk: int,
                 started: float):
        self.config, self.results, self.framework, self.dataset, self.chunk = config, results, framework, dataset, chunk
        self.resolved = config_to_toml(config)  # recorded in every checkpoint
        self.started = started
        self.n_train = len(dataset.train_labels)
        self.total = config.run.epochs * self.n_train
        self.eval_every = config.run.eval_every or self.n_train
        self.display = Progress(self.total)
        self.progress = {"samples_seen": 0, "wall_seconds": 0.0, "train_seconds": 0.0, "eval_seconds": 0.0}
        self.last_good: Path | None = None  # the newest checkpoint written or resumed from
        self.interval_samples, self.interval_seconds = 0, 0.0  # throughput since the last evaluation
        self.stop: StopSignals | None = None
        self.resume_command = ""

    def start(self, newest, resume: bool, commit: str) -> None:
        """Continue from ``newest`` (a checkpoint's path, state and progress) or from the start."""
        if newest is not None:
            self.last_good, state, progress = newest
            self.progress = {k: v for k, v in progress.items() if k not in ("config", "state_digest")}
            self.framework.load_state_arrays(state)
            self.results.truncate_metrics(self.progress["samples_seen"])
            say(f"resuming from {self.last_good.name} at {self.progress['samples_seen']} samples")
        elif resume:
            (self.results.path / "metrics.csv").unlink(missing_ok=True)  # rows of an attempt killed before its first checkpoint
            say("nothing to resume from: starting afresh")
        self.wall_offset = self.progress["wall_seconds"] - (time.perf_counter() - self.started)
        commits = self.progress.setdefault("git_commits", [])  # every commit that trained part of this run, in order
        if not commits or commits[-1] != commit:
            commits.append(commit)
        self.seen = self.progress["samples_seen"]
        # Running train accuracy since the last evaluation: carried through checkpoints, so a
        # resumed run writes the same metrics rows as an uninterrupted one.
        self.correct, self.counted = self.progress.get("correct", 0), self.progress.get("counted", 0)

    def wall(self) -> float:
        return time.perf_counter() - self.started + self.wall_offset

    def run(self, stop: StopSignals, resume_command: str) -> None:
        self.stop, self.resume_command = stop, resume_command
        if self.seen == 0 and "initial_test_accuracy" not in self.progress:
            self.evaluate_untrained()
        while self.seen < self.total:
            self.train_one_chunk()
        self.progress["samples_seen"] = self.seen

    def snapshot(self) -> tuple[dict, dict]:
        """The run as it is now (state arrays, copied, and progress): what a signal puts back."""
        state = {name: np.array(array) for name, array in self.framework.state_arrays().items()}
        return state, dict(self.progress, samples_seen=self.seen, correct=self.correct, counted=self.counted)

    def guarded(self, before: tuple[dict, dict], step):
        """``step()``'s result, unless a signal arrives before it is complete: then :meth:`halt` at
        ``before``. A compiled program that the signal ended early raises; that is the signal's doing."""
        try:
            result = step()
        except RuntimeError:
            if self.stop.received is None:
                raise
            self.halt(before)
        self.halt_if_signalled(before)
        return result

    def halt_if_signalled(self, before: tuple[dict, dict]) -> None:
        if self.stop.received is not None:
            self.halt(before)

    def halt(self, before: tuple[dict, dict]) -> NoReturn:
        """Put the state ``before`` holds back, checkpoint it (unless the newest checkpoint is that
        state) and stop."""
        state, kept = before
        self.framework.load_state_arrays(state)
        kept["wall_seconds"] = self.wall()
        if self.last_good is None or self.last_good.name != checkpoint_name(kept["samples_seen"]):
            self.last_good = self.results.save_checkpoint(state, kept, self.resolved)
        number = self.stop.received
        raise Interrupted(f"stopped by {signal.Signals(number).name} after {kept['samples_seen']} training "
                          f"samples (checkpoint {self.last_good.name}); resume with: {self.resume_command}", number)

    def evaluate_untrained(self) -> None:
        """The untrained network on the test set: every learning curve starts at 0 samples. A signal
        during it stops the run at 0 samples; the resume evaluates again."""
        before = self.snapshot()
        started = time.perf_counter()
        counts = self.guarded(before, lambda: evaluation_counts(self.framework, self.dataset, self.config, self.chunk))
        accuracy = round(float((counts.argmax(axis=1) == self.dataset.test_labels).mean()), 6)
        self.progress["initial_test_accuracy"] = accuracy
        self.progress["initial_metrics"] = self.framework.metrics()  # e.g. the feedback angles before training
        self.progress["eval_seconds"] += time.perf_counter() - started
        say(f"  test accuracy before training: {100 * accuracy:.2f}%")

    def train_one_chunk(self) -> None:
        before = self.snapshot()
        self.halt_if_signalled(before)  # arrived after the last chunk was complete
        epoch = self.seen // self.n_train
        started = time.perf_counter()
        indices, spikes, arguments = training_chunk(self.config, self.dataset, self.chunk, self.seen)
        labels = self.dataset.train_labels[indices]
        counts = self.guarded(before, lambda: self.framework.train_chunk(spikes, labels, **arguments))
        elapsed = time.perf_counter() - started
        check_divergence(self.framework.state_arrays(), self.config.run.max_weight, self.seen,
                         self.seen + self.chunk, self.last_good)
        self.seen += self.chunk
        self.progress["train_seconds"] += elapsed
        self.correct += int((counts.argmax(axis=1) == labels).sum())
        self.counted += self.chunk
        self.interval_samples += self.chunk
        self.interval_seconds += elapsed
        self.display.update(self.seen, epoch, self.config.run.epochs, self.correct, self.counted,
                            self.interval_samples / self.interval_seconds)
        at_eval = self.seen % self.eval_every == 0 or self.seen == self.total
        if at_eval:
            self.evaluate_and_record(before)
        self.halt_if_signalled(before)
        every = self.config.run.checkpoint_every
        if at_eval or self.seen % self.n_train == 0 or (every and self.seen % every < self.chunk):
            self.progress.update(samples_seen=self.seen, correct=self.correct, counted=self.counted,
                                 wall_seconds=self.wall())
            self.last_good = self.results.save_checkpoint(self.framework.state_arrays(), self.progress, self.resolved)

    def evaluation(self) -> tuple[np.ndarray, dict]:
        """Output spike counts on the test set, and the accuracy on the validation samples if any."""
        test_counts = evaluation_counts(self.framework, self.dataset, self.config, self.chunk)
        held_out = {}
        if self.dataset.validation_labels is not None:
            held_out["validation_accuracy"] = round(evaluate(self.framework, self.dataset, self.config, self.chunk,
                                                             "validation"), 6)
        return test_counts, held_out

    def evaluate_and_record(self, before: tuple[dict, dict]) -> None:
        """An evaluation after the chunk: its row of metrics.csv, its line, and selected.npz when it
        is the best on the validation samples so far."""
        started = time.perf_counter()
        test_counts, held_out = self.guarded(before, self.evaluation)
        test_accuracy = float((test_counts.argmax(axis=1) == self.dataset.test_labels).mean())
        silence = output_silence(test_counts)
        self.progress["eval_seconds"] += time.perf_counter() - started
        self.results.append_metrics({
            "samples_seen": self.seen, "epoch": round(self.seen / self.n_train, 4),
            "train_accuracy": round(self.correct / self.counted, 6), "test_accuracy": round(test_accuracy, 6),
            "wall_seconds": round(self.wall(), 2),
            "samples_per_second": round(self.interval_samples / self.interval_seconds, 2),
            **held_out, **silence, **self.framework.metrics(),
        })
        shown = "".join(f", validation {100 * v:.2f}%" for v in held_out.values())
        say(f"  test accuracy after {self.seen} samples: {100 * test_accuracy:.2f}%{shown}")
        if silence["silent_outputs"]:
            silent = np.flatnonzero(test_counts.sum(axis=0) == 0).tolist()
            say(f"  warning: output cells {silent} fired on no test sample; cells below their depolarisation "
                f"window get no learning signal (lower learning.learning_rate; docs/results.md, SC microcircuit)")
        if held_out and selected_row(self.results.read_metrics())["samples_seen"] == str(self.seen):
            # the best evaluation on held-out samples so far: keep its weights apart
            self.results.save_selected(self.framework.state_arrays(), self.seen)
        self.correct = self.counted = 0
        self.interval_samples, self.interval_seconds = 0, 0.0


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
    newest = results.newest_good_checkpoint() if resume else None
    if resume:
        check_resumable(config, results, newest)
    write_text_atomically(results.path / "config.toml", config_to_toml(config))  # only once the resume is accepted
    dataset = load_dataset(config)
    chunk = run_chunk_size(config, len(dataset.train_labels))
    framework = make_framework(config, dataset.n_inputs, dataset.n_classes, chunk, build_dir)
    say(f"built {config.model.framework} network {framework.settings.sizes} on {config.run.device} "
        f"in {framework.compile_seconds:.1f} s; {chunk} samples per run")
    record_equations(config, framework, results.path, resumed=newest is not None)
    loop = TrainingLoop(config, results, framework, dataset, chunk, started)
    loop.start(newest, resume, commit)
    with StopSignals() as stop:
        loop.run(stop, resume_command=f"apical train {config_path or 'CONFIG'} --out {results.path} --resume")
    summary = run_summary(config, config_path, framework, loop.progress, results.read_metrics(), loop.wall())
    finish_run(results, config, framework, dataset, summary, loop.progress.get("initial_metrics"))
    return summary


def load_and_train(path, overrides=(), out_dir=None, resume=False, device=None, build_dir=None) -> dict:
    if device:
        overrides = [*overrides, f"run.device={json.dumps(device)}"]
    config = load_config(path, overrides)
    out_dir = out_dir or Path("results") / Path(path).stem
    return train(config, out_dir, resume=resume, config_path=str(path), build_dir=build_dir)


def register(commands) -> None:
    """``apical train``."""
    with_numpy = ", ".join(registry.numpy_forms())
    parser = commands.add_parser("train", help="train a network as a TOML config describes")
    parser.add_argument("config", help="a TOML file, e.g. runs/configs/mnist-quick.toml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set learning.learning_rate=5e-4 (repeatable)")
    parser.add_argument("--device", choices=list(DEVICES),
                        help=f"overrides run.device (numpy: the batched numpy form of {with_numpy}, for sweeps)")
    parser.add_argument("--out", help="results directory (default: results/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    parser.add_argument("--build-dir", metavar="DIR",
                        help="keep compiled projects in DIR and reuse those that earlier runs of the same model left "
                             "there (cpp, cuda; default: a build/ folder of the results directory)")
    parser.set_defaults(handler=command)


def command(args) -> int:
    if args.build_dir is None:
        summary = load_and_train(args.config, args.set, args.out, args.resume, args.device)
    else:
        from apical.runs.builds import claim_slot

        slot, held = claim_slot(Path(args.build_dir))
        try:
            summary = load_and_train(args.config, args.set, args.out, args.resume, args.device, build_dir=slot)
        finally:
            held.close()
    timings = summary["timings"]
    print(f"final test accuracy: {100 * summary['final_test_accuracy']:.2f}%  ({summary['samples_seen']} training "
          f"samples, {timings['wall_seconds']:.0f} s wall, {timings['train_ms_per_sample']:.2f} ms per training sample)")
    if "selected" in summary:
        chosen = summary["selected"]
        print(f"selected on validation ({100 * chosen['validation_accuracy']:.2f}%) after {chosen['samples_seen']} "
              f"samples: test accuracy {100 * chosen['test_accuracy']:.2f}%  ({chosen['checkpoint']})")
    return 0
