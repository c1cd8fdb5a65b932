"""``apical bench --framework scmicro``: training cost per sample of the SC microcircuit.

The network of runs/configs/mnist-scmicro.toml (784-500-10, T = 20, t0 = 5, M = 10) and a deeper one
(784-500-100-10), trained on the first ``--samples`` MNIST digits (the same rasters as the BioGrad and
BioLeaF benches), on ``cpp_standalone``, float32, one thread: compile time apart, then two timed
training runs from the same state (the faster counts); wall time of :meth:`SCMicroNetwork.run`
(run arguments, the binary, reading weights back) and the binary's own. A profiled build of the first
network splits the binary's time by what the code objects do.
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

from runs.bench_bioleaf import BATCH, INPUT_SEED, SIZES, WEIGHT_SEED, load_average

LEARNING_RATE, FEEDBACK_SEED = 2e-3, 5
#: What each code object does, by the first matching part of its name.
CATEGORIES = (
    ("excitatory_forward_", "_plasticity", "W⁺ trace update, per step (active afferents/cells)"),
    ("inhibitory_forward_", "_plasticity", "W⁻ trace update, per step (active PV relays)"),
    ("excitatory_forward_", "_pre", "W⁺ spike transmission (on_pre)"),
    ("inhibitory_forward_", "_pre", "W⁻ spike transmission (on_pre)"),
    ("pv_", "", "PV relays and their drive"),
    ("sst_", "", "SST relays and their drive"),
    ("excitatory_feedback_", "", "feedback bursts"),
    ("inhibitory_feedback_", "", "feedback bursts"),
    ("", "_end", "sample and minibatch boundaries"),
    ("", "", "pyramidal cells: state updates, thresholds, resets, readout"),
)


def category(name: str) -> str:
    for prefix, part, label in CATEGORIES:
        if name.startswith(prefix) and part in name:
            return label
    return CATEGORIES[-1][2]


def time_network(sizes, rasters, labels, build_root: Path, runs: int = 2, profile: bool = False) -> dict:
    from circuits.scmicro import SCMicroNetwork, SCMicroSettings, initial_state

    settings = SCMicroSettings(sizes=sizes, batch_size=BATCH)
    state = initial_state(sizes, np.random.default_rng(WEIGHT_SEED), np.random.default_rng(FEEDBACK_SEED))
    started = time.perf_counter()
    network = SCMicroNetwork(settings, state.connection_types, len(labels), device_name="cpp",
                             build_dir=build_root / "-".join(map(str, sizes)), precision="float32", profile=profile)
    compile_seconds = time.perf_counter() - started
    walls, binaries = [], []
    for _ in range(runs):
        started = time.perf_counter()
        network.run(state, rasters, labels, LEARNING_RATE)
        walls.append(time.perf_counter() - started)
        binaries.append(network.device.timers.get("run_binary"))
    best = int(np.argmin(walls))
    result = {"sizes": list(sizes), "samples": len(labels), "compile_seconds": compile_seconds, "run_seconds": walls,
              "ms_per_sample": 1e3 * walls[best] / len(labels),
              "binary_ms_per_sample": None if binaries[best] is None else 1e3 * binaries[best] / len(labels)}
    if profile:
        shares = defaultdict(float)
        for name, seconds in network.profiling_info():
            shares[category(name)] += seconds
        result["profile_ms_per_sample"] = {k: 1e3 * v / len(labels) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}
    return result


def main(args) -> int:
    from models.encoders import encode_batch
    from runs.datasets import images_to_intensity, load_mnist

    samples = int(args.samples) - int(args.samples) % BATCH
    keep = os.environ.get("APICAL_BENCH_BUILD_DIR")
    build_root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="apical-bench-scmicro-"))
    report = {"samples": samples, "load_before": load_average()}
    print(f"apical bench: SC microcircuit, T = 20, M = {BATCH}, float32, cpp_standalone, one thread, {samples} MNIST "
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
