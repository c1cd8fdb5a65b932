"""``apical bench --framework scmicro``: training cost per sample of the SC microcircuit.

The network of runs/configs/mnist-scmicro.toml (784-500-10, T = 20, t0 = 5, M = 10) and a deeper one
(784-500-100-10), trained on the first ``--samples`` MNIST digits (the same rasters as the BioGrad and
BioLeaF benches), on ``cpp_standalone``, float32, one thread: compile time apart, then two timed
training runs from the same state (the faster counts); wall time of :meth:`SCMicroNetwork.run`
(run arguments, the binary, reading weights back) and the binary's own. A profiled build of the first
network splits the binary's time by what the code objects do.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from apical.circuits.bioleaf.bench import BATCH, WEIGHT_SEED, run_bench, timed_runs

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


def time_network(sizes, rasters, labels, build_root: Path, runs: int = 2, profile: bool = False) -> dict:
    from apical.circuits.scmicro.network import SCMicroNetwork, SCMicroSettings, initial_state

    settings = SCMicroSettings(sizes=sizes, batch_size=BATCH)
    state = initial_state(sizes, np.random.default_rng(WEIGHT_SEED), np.random.default_rng(FEEDBACK_SEED))
    started = time.perf_counter()
    network = SCMicroNetwork(settings, state.connection_types, len(labels), device_name="cpp",
                             build_dir=build_root / "-".join(map(str, sizes)), precision="float32", profile=profile)
    return timed_runs(network, lambda: network.run(state, rasters, labels, LEARNING_RATE), sizes, len(labels),
                      time.perf_counter() - started, runs, profile, CATEGORIES)


def main(args) -> int:
    return run_bench(args, "SC microcircuit", time_network)
