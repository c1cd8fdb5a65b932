"""``apical bench --framework bioleaf``: training cost per sample of the BioLeaF network
(docs/performance.md, docs/models/bioleaf.md).

The network of runs/configs/mnist-bioleaf.toml (784-500-10, T = 20, t0 = 5, M = 10, η = 5e-3,
interneuron and mirror plasticity on) and a deeper one (784-500-100-10), trained on the first
``--samples`` MNIST digits (the same rasters as the BioGrad bench), on ``cpp_standalone``: compile
time apart, then two timed training runs from the same state (the faster counts); wall time of
:meth:`BioLeaFNetwork.run` (run arguments, the binary, reading weights back) and the binary's own.
A second, profiled build of the first network splits the binary's time by code object and groups
it by what it does, to show what dominates.

``--dry-run``: 784-16-10 and 784-16-8-10 in one minibatch of 2 samples, on the runtime device
unless ``--device`` says otherwise (the profiled build needs a standalone device).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from apical.analysis.timing import profile_ms_per_sample, timed_runs
from apical.circuits.bench import SizesPlan, bench_sizes

RATES = dict(forward=5e-3, interneuron=5e-3, apical=1e-3, mirror=5e-3)
WEIGHT_SEED = 1  # as the BioGrad bench's
FULL = SizesPlan(networks=((784, 500, 10), (784, 500, 100, 10)), batch_size=10, samples=1000)
DRY_RUN = SizesPlan(networks=((784, 16, 10), (784, 16, 8, 10)), batch_size=2, samples=2)
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


def time_network(sizes, rasters, labels, root: Path, batch_size: int, device_name: str = "cpp", runs: int = 2,
                 profile: bool = False) -> dict:
    """Compile the network once, then ``runs`` timed training runs from the same initial state."""
    from apical.circuits.bioleaf.network import BioLeaFNetwork, BioLeaFSettings, initial_state
    from apical.circuits.bioleaf.oracle import LearningRates

    settings = BioLeaFSettings(sizes=sizes, batch_size=batch_size)
    state = initial_state(sizes, np.random.default_rng(WEIGHT_SEED))
    started = time.perf_counter()
    network = BioLeaFNetwork(settings, len(labels), device_name=device_name, build_dir=root / "-".join(map(str, sizes)),
                             precision="float32", profile=profile)
    compile_seconds = time.perf_counter() - started
    result = timed_runs(lambda: network.run(state, rasters, labels, LearningRates(**RATES)), runs, len(labels),
                        device=network.device)
    result.update(sizes=list(sizes), compile_seconds=compile_seconds)
    if profile:
        result["profile_ms_per_sample"] = profile_ms_per_sample(network.profiling_info(), CATEGORIES, len(labels))
    return result


def main(args) -> int:
    """``args``: device, samples (None: cpp, or runtime with the dry run; the plan's count), dry_run,
    and training_digits(samples, time_steps, seed) (runs/bench.py)."""
    return bench_sizes("BioLeaF", time_network, DRY_RUN if args.dry_run else FULL, args)
