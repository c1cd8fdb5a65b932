"""``apical bench --framework bioleaf``: training cost per sample of the BioLeaF network.

The network of runs/configs/mnist-bioleaf.toml (784-500-10, T = 20, t0 = 5, M = 10, η = 5e-3,
interneuron and mirror plasticity on) and a deeper one (784-500-100-10), trained on the first
``--samples`` MNIST digits (the same rasters as the BioGrad bench), on ``cpp_standalone``: compile
time apart, then two timed training runs from the same state (the faster counts); wall time of
:meth:`BioLeaFNetwork.run` (run arguments, the binary, reading weights back) and the binary's own.
A second, profiled build of the first network splits the binary's time by code object and groups
it by what it does, to show what dominates.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

SIZES = ((784, 500, 10), (784, 500, 100, 10))
RATES = dict(forward=5e-3, interneuron=5e-3, apical=1e-3, mirror=5e-3)
BATCH = 10
INPUT_SEED, WEIGHT_SEED = 0, 1  # as the BioGrad bench (runs/bench.py)
#: What each code object does, by the first matching part of its name.
CATEGORIES = (
    ("forward_", "_plasticity", "W_PP trace update, per step (active inputs)"),
    ("interneuron_input_", "_plasticity", "W_IP trace update, per step"),
    ("top_down_", "_mirror", "mirror STDP of B, per step"),
    ("interneuron_apical_", "_mirror", "mirror STDP of W_PI, per step"),
    ("forward_", "_pre", "W_PP spike transmission (on_pre)"),
    ("top_down_", "", "top-down spikes and bursts, mirror traces"),
    ("interneuron_", "", "interneurons and their synapses"),
    ("teaching_", "", "teaching synapses"),
    ("", "_end", "sample and minibatch boundaries"),
    ("", "", "neurons: state updates, thresholds, resets, readout"),
)


def category(name: str, categories=CATEGORIES) -> str:
    for prefix, part, label in categories:
        if name.startswith(prefix) and part in name:
            return label
    return categories[-1][2]


def time_network(sizes, rasters, labels, build_root: Path, runs: int = 2, profile: bool = False) -> dict:
    from apical.circuits.bioleaf.network import BioLeaFNetwork, BioLeaFSettings, initial_state
    from apical.circuits.bioleaf.oracle import LearningRates

    settings = BioLeaFSettings(sizes=sizes, batch_size=BATCH)
    state = initial_state(sizes, np.random.default_rng(WEIGHT_SEED))
    started = time.perf_counter()
    network = BioLeaFNetwork(settings, len(labels), device_name="cpp", build_dir=build_root / "-".join(map(str, sizes)),
                             precision="float32", profile=profile)
    return timed_runs(network, lambda: network.run(state, rasters, labels, LearningRates(**RATES)), sizes, len(labels),
                      time.perf_counter() - started, runs, profile, CATEGORIES)


def timed_runs(network, train, sizes, samples: int, compile_seconds: float, runs: int, profile: bool,
               categories) -> dict:
    """Wall time of ``train()`` (the faster of ``runs``) and the binary's own; with ``profile`` the
    binary's time per sample grouped by ``categories`` of code objects."""
    walls, binaries = [], []
    for _ in range(runs):
        started = time.perf_counter()
        train()
        walls.append(time.perf_counter() - started)
        binaries.append(network.device.timers.get("run_binary"))
    best = int(np.argmin(walls))
    result = {"sizes": list(sizes), "samples": samples, "compile_seconds": compile_seconds, "run_seconds": walls,
              "ms_per_sample": 1e3 * walls[best] / samples,
              "binary_ms_per_sample": None if binaries[best] is None else 1e3 * binaries[best] / samples}
    if profile:
        shares = defaultdict(float)
        for name, seconds in network.profiling_info():
            shares[category(name, categories)] += seconds
        result["profile_ms_per_sample"] = {k: 1e3 * v / samples for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}
    return result


def load_average() -> str:
    return "load average {:.2f} {:.2f} {:.2f} on {} cores".format(*os.getloadavg(), os.cpu_count())


def main(args) -> int:
    return run_bench(args, "BioLeaF", time_network)


def run_bench(args, title: str, time_network) -> int:
    """Time ``time_network(sizes, rasters, labels, build_root, runs=2, profile=False)`` on each of
    SIZES, then a profiled build of the first; print the table and write $APICAL_BENCH_JSON."""
    from apical.models.encoders import encode_batch
    from apical.runs.datasets import images_to_intensity, load_mnist

    samples = int(args.samples) - int(args.samples) % BATCH
    keep = os.environ.get("APICAL_BENCH_BUILD_DIR")
    build_root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="apical-bench-"))
    report = {"samples": samples, "load_before": load_average()}
    print(f"apical bench: {title}, T = 20, M = {BATCH}, float32, cpp_standalone, one thread, {samples} MNIST "
          f"training samples; {report['load_before']}")
    try:
        images, labels = load_mnist("train")
        rasters = encode_batch(images_to_intensity(images[:samples].reshape(samples, -1)), 20, INPUT_SEED, 0)
        labels = np.asarray(labels[:samples], dtype=int)
        report["networks"] = [time_network(sizes, rasters, labels, build_root) for sizes in SIZES]
        for r in report["networks"]:
            print(f"{'-'.join(map(str, r['sizes'])):<18} compile {r['compile_seconds']:6.1f} s   "
                  f"{r['ms_per_sample']:6.2f} ms/sample (binary {r['binary_ms_per_sample']:.2f})   "
                  f"runs: {', '.join(f'{s:.2f} s' for s in r['run_seconds'])}")
        profiled = time_network(SIZES[0], rasters, labels, build_root / "profiled", runs=1, profile=True)
        report["profile"] = profiled
        total = sum(profiled["profile_ms_per_sample"].values())
        print(f"\nwhere the binary's time goes ({'-'.join(map(str, SIZES[0]))}, profiled build, "
              f"{total:.2f} ms/sample in code objects):")
        for label, ms in profiled["profile_ms_per_sample"].items():
            print(f"  {ms:6.2f} ms/sample  {100 * ms / total:5.1f} %  {label}")
        report["load_after"] = load_average()
        print(report["load_after"])
    finally:
        if not keep:
            shutil.rmtree(build_root, ignore_errors=True)
    path = os.environ.get("APICAL_BENCH_JSON")
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
        print(f"results written to {path}")
    return 0
