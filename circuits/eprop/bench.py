"""``apical bench --framework eprop``: training cost per sample of e-prop's Brian2 network beside its
batched numpy form (docs/models/eprop.md).

The network of runs/configs/eprop-mnist.toml (784-400-10 LIF, T = 20 steps of 1 ms, M = 16) and a
smaller one (784-100-10), trained on the first ``--samples`` MNIST digits: compiled once on
``cpp_standalone`` (compile time apart, two timed runs from the same state, the faster counts), a
profiled build of the first that splits the binary's time by what each code object does, then the
same learning in numpy (numpy_form.py, float32) on the same digits.

``--dry-run``: 784-16-10 and 784-8-10, one minibatch of 2 samples, on the runtime device unless
``--device`` says otherwise.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from brian2 import ms

from apical.analysis.timing import profile_ms_per_sample, timed_runs
from apical.circuits.bench import SizesPlan, bench_sizes

FULL = SizesPlan(networks=((784, 400, 10), (784, 100, 10)), batch_size=16, samples=512)
DRY_RUN = SizesPlan(networks=((784, 16, 10), (784, 8, 10)), batch_size=2, samples=2)
LEARNING_RATE = 5e-2
CATEGORIES = (
    ("input_eligibility", "", "input synapses: eligibility traces, every step"),
    ("recurrent_eligibility", "", "recurrent synapses: eligibility traces, every step"),
    ("readout_gradient", "", "readout synapses: gradient, every step"),
    ("input_pathway", "", "input spike transmission"),
    ("recurrent_pathway", "", "recurrent spike transmission"),
    ("feedback", "", "learning signal (summed over the readout)"),
    ("", "_end", "sample and minibatch boundaries"),
    ("", "", "neurons: state updates, thresholds, resets, readout"),
)


def settings_for(sizes, batch_size: int):
    from apical.circuits.eprop.network import EpropSettings

    return EpropSettings(sizes=tuple(sizes), time_steps=20, tau_m=20 * ms, tau_out=5 * ms, threshold=0.03,
                         surrogate_family="fast_sigmoid", loss="cross_entropy", feedback="symmetric", c_reg=1.0,
                         target_rate=100.0, batch_size=batch_size)


def _inputs(settings, labels):
    from apical.circuits.eprop.framework import error_window, targets_of

    return targets_of(labels, settings), error_window(settings, 10)


def time_network(sizes, rasters, labels, root: Path, batch_size: int, device_name: str = "cpp", runs: int = 2,
                 profile: bool = False) -> dict:
    from apical.circuits.eprop.network import EpropNetwork, initial_state

    settings = settings_for(sizes, batch_size)
    state = initial_state(settings.sizes, np.random.default_rng(1), settings.feedback)
    targets, window = _inputs(settings, labels)
    started = time.perf_counter()
    network = EpropNetwork(settings, len(labels), device_name=device_name,
                           build_dir=root / "-".join(map(str, sizes)), precision="float32")
    if profile and network.standalone:  # a second build whose code objects carry timers
        network = _profiled(settings, len(labels), device_name, root / ("profiled-" + "-".join(map(str, sizes))))
    compile_seconds = time.perf_counter() - started
    result = timed_runs(lambda: network.run(state, rasters, targets, window, LEARNING_RATE), runs, len(labels),
                        device=network.device)
    result.update(sizes=list(sizes), compile_seconds=compile_seconds)
    if profile:
        result["profile_ms_per_sample"] = profile_ms_per_sample(network.profiling_info(), CATEGORIES, len(labels))
    return result


def _profiled(settings, samples, device_name, folder):
    from apical.circuits.core import CompiledNetwork
    from apical.circuits.eprop.network import EpropNetwork

    network = EpropNetwork.__new__(EpropNetwork)
    network.settings = settings
    CompiledNetwork.__init__(network, samples, settings.time_steps, settings.dt, device_name, folder, 1, "float32",
                             build_key=(settings, "profiled"), profile=True)
    return network


def main(args) -> int:
    """The Brian2 network (bench_sizes), then the numpy form on the same digits."""
    from apical.circuits.eprop.network import initial_state
    from apical.circuits.eprop.numpy_form import NumpyEprop

    plan = DRY_RUN if args.dry_run else FULL
    status = bench_sizes("e-prop", time_network, plan, args)
    samples = int(args.samples or plan.samples)
    samples -= samples % plan.batch_size
    rasters, labels = args.training_digits(samples, plan.time_steps, plan.input_seed)
    print("\nthe same learning as batched numpy (float32):")
    for sizes in plan.networks:
        settings = settings_for(sizes, plan.batch_size)
        state = initial_state(settings.sizes, np.random.default_rng(1), settings.feedback)
        targets, window = _inputs(settings, labels)
        form = NumpyEprop(settings, precision="float32")
        result = timed_runs(lambda: form.run(state, rasters, targets, window, LEARNING_RATE), 2, samples)
        print(f"{'-'.join(map(str, sizes)):<18} {result['ms_per_sample']:6.2f} ms/sample   "
              f"runs: {', '.join(f'{s:.2f} s' for s in result['run_seconds'])}")
    return status
