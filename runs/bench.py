"""``apical bench``: what a framework's network costs per training and per test sample
(docs/performance.md).

The generic bench times any registered framework through the Framework interface alone. It
builds the network of a config (``--config``, default the framework's example config, with
``--set`` overrides as ``apical train`` takes them) for runs of ``--samples`` samples, the first
training samples of the config's dataset rate-coded as training codes them, then times
``train_chunk`` twice from the same initial state (the state is put back between the runs) and
``evaluate_chunk`` twice, in one process so that the ratios compare like with like. The fastest
run of each counts. Compile time (building the framework, before its first sample) is reported
apart, with the CPU time of the runs (this process and the standalone binaries) and the
machine's load before and after. Then, untimed, the operations and energy of a training and an
inference sample are counted on the first samples (apical.analysis.events) from the initial state.

A framework that declares a bench of its own (``FrameworkSpec.bench``) runs that one instead,
unless ``--generic``, ``--config`` or ``--set`` ask for this one: BioGrad's times its Brian2
network beside batched numpy (circuits/biograd/bench.py), BioLeaF's and the SC microcircuit's two
depths and a profiled build. Such a bench receives the parsed arguments (``device``, ``samples``,
``threads`` are None when not given; ``widths``; ``dry_run``) and ``args.training_digits(samples,
time_steps, seed)``, the first MNIST training digits as spike rasters, so that it loads data
without importing apical.runs. With ``dry_run`` it times a tiny network on a handful of samples
on the runtime device (seconds, numbers not worth reading): the check the tests run for every
framework.

Results are printed; ``APICAL_BENCH_JSON=path`` also writes them as JSON, and
``APICAL_BENCH_BUILD_DIR=dir`` keeps the standalone projects there (apical.analysis.timing).
"""

from __future__ import annotations

import json
import time

import numpy as np

from apical.analysis.events import event_summary, summary_line
from apical.analysis.timing import build_root, machine_load, machine, timed_runs, write_report
from apical.circuits import registry
from apical.circuits.framework import FrameworkSpec
from apical.models.encoders import encode_batch
from apical.runs.config import DEFAULT_FRAMEWORK, Config, ConfigError, load_config
from apical.runs.datasets import encode, images_to_intensity, load_dataset, load_mnist

RUNS = 2  # timed runs of each call; the fastest counts
EVENT_SAMPLES = 8  # samples whose operations are counted (apical.analysis.events), untimed
DEFAULT_SAMPLES = 1000
N_CLASSES = 10  # every dataset Apical loads has ten classes
#: The dry run: every hidden layer this wide, minibatches of at most this many, this many samples,
#: a sleep phase (where the framework's section has one that is on: biograd.sleep) of a few short noise
#: samples, on the first of these devices the framework runs on.
DRY_RUN_WIDTH, DRY_RUN_BATCH, DRY_RUN_SAMPLES = 16, 2, 2
DRY_RUN_SLEEP = {"sleep_batch": 2, "sleep_steps": 5}
DRY_RUN_DEVICES = ("runtime", "cpp")


def training_digits(samples: int, time_steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` MNIST training digits as spike rasters [N, T, 784] (Bernoulli rate code,
    sample i drawn with the input seed ``seed`` and index i) and their labels."""
    images, labels = load_mnist("train")
    if not 1 <= samples <= len(images):
        raise ConfigError(f"--samples must lie in [1, {len(images)}], got {samples}")
    intensity = images_to_intensity(images[:samples].reshape(samples, -1))
    return encode_batch(intensity, time_steps, seed, 0), np.asarray(labels[:samples], dtype=int)


def bench_inputs(config: Config, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``samples`` training samples of the config's dataset, coded as training codes
    sample k of its stream (input seed, "train", k)."""
    d = config.data
    if d.dataset in ("mnist", "fashion-mnist"):  # only the timed images become intensities
        images, labels = load_mnist("train", d.data_dir or None, dataset=d.dataset)
        inputs = images_to_intensity(images[:samples].reshape(len(images[:samples]), -1)) * d.intensity_scale
    else:
        dataset = load_dataset(config)
        inputs, labels = dataset.train_inputs[:samples], dataset.train_labels
    if len(inputs) < samples:
        raise ConfigError(f"--samples {samples}: the training set of {d.dataset} holds {len(inputs)}")
    return encode(inputs, config.model.time_steps, config.seeds.input, "train", 0), np.asarray(labels[:samples], int)


def framework_name(args) -> str:
    """--framework; with --config, the framework the config trains (model.framework); otherwise
    the default one (model.framework's default)."""
    if args.config:
        named = load_config(args.config, args.set).model.framework
        if args.framework and args.framework != named:
            raise ConfigError(f"--framework {args.framework}, but {args.config} trains {named!r} (model.framework)")
        return named
    return args.framework or DEFAULT_FRAMEWORK


def bench_config(spec: FrameworkSpec, args) -> tuple[Config, str, list[str]]:
    """The config the generic bench builds, its file and the overrides applied to it: the dry run's
    shrinking first, then --set, then --device and --threads."""
    path = args.config or spec.example_config
    if path is None:
        raise ConfigError(f"{spec.name} declares no example config; name one with --config")
    config = load_config(path, args.set)
    if config.model.framework != spec.name:
        raise ConfigError(f"{path} trains {config.model.framework!r} (model.framework), not {spec.name!r}")
    shrink = []
    if args.dry_run:
        widths = ", ".join([str(DRY_RUN_WIDTH)] * len(config.model.hidden))
        shrink = [f"model.hidden=[{widths}]", f"learning.batch_size={min(config.learning.batch_size, DRY_RUN_BATCH)}"]
        own = config.sections.get(spec.section.name) if spec.section is not None else None
        if getattr(own, "sleep", False):
            shrink += [f"{spec.section.name}.{key}={value}" for key, value in DRY_RUN_SLEEP.items()]
    device = args.device
    if device is None and args.dry_run:
        device = next((name for name in DRY_RUN_DEVICES if name in spec.devices), spec.devices[0])
    flags = [f"run.device={json.dumps(device)}"] if device else []
    if args.threads is not None:
        flags.append(f"run.threads={args.threads}")
    overrides = [*shrink, *args.set, *flags]
    return load_config(path, overrides), str(path), overrides


def generic_bench(spec: FrameworkSpec, args) -> int:
    if args.widths:
        raise ConfigError("--widths belongs to BioGrad's own bench (--device cuda), not the generic one")
    config, path, overrides = bench_config(spec, args)
    batch = config.learning.batch_size
    requested = args.samples or (DRY_RUN_SAMPLES if args.dry_run else DEFAULT_SAMPLES)
    samples = requested - requested % batch
    if samples < 1:
        raise ConfigError(f"--samples {requested} holds no whole minibatch of learning.batch_size = {batch}")
    run = config.run
    report = {"framework": spec.name, "title": spec.run_title(config), "config": path, "overrides": overrides,
              "dry_run": bool(args.dry_run), "device": run.device, "precision": run.precision,
              "threads": run.threads, "batch_size": batch, "samples": samples, "machine": machine()}
    rasters, labels = bench_inputs(config, samples)
    sizes = "-".join(map(str, (rasters.shape[-1], *config.model.hidden, N_CLASSES)))
    report["sizes"] = sizes
    print(f"apical bench: {report['title']} ({spec.name}{', dry run' if args.dry_run else ''}), {sizes}, "
          f"T = {config.model.time_steps}, M = {batch}, {run.device}, {run.precision}, {run.threads} thread(s), "
          f"{samples} {config.data.dataset} training samples; {report['machine']['load_before']}")
    print(f"config: {path}" + (f" with {' '.join(overrides)}" if overrides else ""))
    with build_root() as root:
        print(f"building for runs of {samples} samples ...", flush=True)
        started = time.perf_counter()
        framework = spec.factory(config, rasters.shape[-1], N_CLASSES, samples, root / spec.name)
        report["compile_seconds"] = time.perf_counter() - started
        report["framework_compile_seconds"] = float(framework.compile_seconds)
        initial = {name: np.array(values, copy=True) for name, values in framework.state_arrays().items()}
        print(f"training and testing {RUNS}× ...", flush=True)
        report["train"] = timed_runs(lambda: framework.train_chunk(rasters, labels, 0, 1.0), RUNS, samples,
                                     reset=lambda: framework.load_state_arrays(initial))
        report["evaluate"] = timed_runs(lambda: framework.evaluate_chunk(rasters, labels), RUNS, samples)
        framework.load_state_arrays(initial)
        counted = min(EVENT_SAMPLES, samples)
        report["events"] = event_summary(framework, rasters[:counted], labels[:counted], split="train")
    report["train_over_evaluate"] = report["train"]["ms_per_sample"] / report["evaluate"]["ms_per_sample"]
    report["machine"]["load_after"] = machine_load()
    print_generic(report)
    write_report(report)
    return 0


def print_generic(report: dict) -> None:
    print(f"\n{'':<10} {'ms/sample':>10} {'samples/s':>10} {'cpu ms/sample':>14}   runs of {report['samples']} samples")
    for phase in ("train", "evaluate"):
        r = report[phase]
        runs = ", ".join(f"{s:.3f} s" for s in r["run_seconds"])
        print(f"{phase:<10} {r['ms_per_sample']:>10.3f} {r['samples_per_second']:>10.1f} "
              f"{r['cpu_ms_per_sample']:>14.3f}   {runs}")
    print(f"train ÷ evaluate: {report['train_over_evaluate']:.3g} (ms/sample, same invocation)")
    print(f"compile {report['compile_seconds']:.2f} s (building the framework, before its first sample; "
          f"its own count {report['framework_compile_seconds']:.2f} s), apart from the runs above")
    if report.get("events"):
        print(f"events (initial network, first {report['events']['samples']['first']} samples): "
              + summary_line(report["events"]))
    print(report["machine"]["load_after"])


def register(commands) -> None:
    """``apical bench``."""
    from apical.circuits.backend import DEVICES

    names = registry.names()
    parser = commands.add_parser("bench", help="cost per training and test sample of a framework's network, "
                                               "compile time apart (BioGrad's own bench: its Brian2 network beside "
                                               "batched numpy)")
    parser.add_argument("--framework", choices=names,
                        help=f"whose network (default: the model.framework of --config, else {names[0]}); a framework "
                             "with a bench of its own runs that one, every other the generic bench")
    parser.add_argument("--config", help="time this config's network with the generic bench (default: the framework's "
                                         "example config)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key as for apical train (repeatable; selects the generic bench)")
    parser.add_argument("--generic", action="store_true",
                        help="the generic bench even for a framework with a bench of its own")
    parser.add_argument("--device", choices=list(DEVICES),
                        help="default: cpp for a framework's own bench, run.device for the generic one; runtime with "
                             "--dry-run (numpy: the generic bench of a framework with a numpy form)")
    parser.add_argument("--samples", type=int, help="training samples per timed run (default 1000; a handful with "
                                                     "--dry-run)")
    parser.add_argument("--threads", type=int, help="OpenMP threads for cpp (0 = all cores; default 1, or run.threads "
                                                     "of the generic bench's config)")
    parser.add_argument("--widths", help="BioGrad's bench with --device cuda: first hidden layer widths, e.g. "
                                         "500,2000,8000")
    parser.add_argument("--dry-run", action="store_true",
                        help="a tiny network on a handful of samples, in seconds: checks that the bench runs (its "
                             "numbers say nothing about the real network)")
    parser.set_defaults(handler=main)


def main(args) -> int:
    spec = registry.get(framework_name(args))
    args.training_digits = training_digits
    if spec.bench is None or args.generic or args.config or args.set:
        return generic_bench(spec, args)
    if args.device == "numpy":
        raise ConfigError(f"--device numpy: {spec.title}'s own bench times Brian2 devices; add --generic to time "
                          "the numpy form through the generic bench")
    return spec.bench(args)
