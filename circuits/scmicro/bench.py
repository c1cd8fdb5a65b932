"""``apical bench --framework scmicro``: training cost per sample of the SC microcircuit
(docs/performance.md, docs/models/scmicro.md).

The network of runs/configs/mnist-scmicro.toml (784-500-10, T = 20, t0 = 5, M = 10) and a deeper one
(784-500-100-10), trained on the first ``--samples`` MNIST digits (the same rasters as the BioGrad and
BioLeaF benches), on ``cpp_standalone``, float32, one thread: compile time apart, then two timed
training runs from the same state (the faster counts); wall time of :meth:`SCMicroNetwork.run`
(run arguments, the binary, reading weights back) and the binary's own. A profiled build of the first
network splits the binary's time by what the code objects do.

``--dry-run``: 784-16-10 and 784-16-8-10 in one minibatch of 2 samples, on the runtime device
unless ``--device`` says otherwise (the profiled build needs a standalone device).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from apical.analysis.timing import profile_ms_per_sample, timed_runs
from apical.circuits.bench import SizesPlan, bench_sizes

LEARNING_RATE = 2e-3
WEIGHT_SEED, FEEDBACK_SEED = 1, 5
FULL = SizesPlan(networks=((784, 500, 10), (784, 500, 100, 10)), batch_size=10, samples=1000)
DRY_RUN = SizesPlan(networks=((784, 16, 10), (784, 16, 8, 10)), batch_size=2, samples=2)
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


def time_network(sizes, rasters, labels, root: Path, batch_size: int, device_name: str = "cpp", runs: int = 2,
                 profile: bool = False) -> dict:
    """Compile the network once, then ``runs`` timed training runs from the same initial state."""
    from apical.circuits.scmicro.network import SCMicroNetwork, SCMicroSettings, initial_state

    settings = SCMicroSettings(sizes=sizes, batch_size=batch_size)
    state = initial_state(sizes, np.random.default_rng(WEIGHT_SEED), np.random.default_rng(FEEDBACK_SEED))
    started = time.perf_counter()
    network = SCMicroNetwork(settings, state.connection_types, len(labels), device_name=device_name,
                             build_dir=root / "-".join(map(str, sizes)), precision="float32", profile=profile)
    compile_seconds = time.perf_counter() - started
    result = timed_runs(lambda: network.run(state, rasters, labels, LEARNING_RATE), runs, len(labels),
                        device=network.device)
    result.update(sizes=list(sizes), compile_seconds=compile_seconds)
    if profile:
        result["profile_ms_per_sample"] = profile_ms_per_sample(network.profiling_info(), CATEGORIES, len(labels))
    return result


def main(args) -> int:
    """``args``: device, samples (None: cpp, or runtime with the dry run; the plan's count), dry_run,
    and training_digits(samples, time_steps, seed) (runs/bench.py)."""
    return bench_sizes("SC microcircuit", time_network, DRY_RUN if args.dry_run else FULL, args)
