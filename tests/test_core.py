"""The compiled-network core (circuits/core.py): tables and variable values in, per-sample records
out, the same on the runtime device and in a compiled project; and each Brian2 framework's
``brian_network``, which hands a notebook user the network with the framework's state."""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import NeuronGroup, SpikeMonitor, StateMonitor, ms

from apical.circuits.biograd.framework import BioGradFramework
from apical.circuits.biograd.network import BioGradNetwork, BioGradSettings, initial_state
from apical.circuits.bioleaf.framework import BioLeaFFramework
from apical.circuits.core import CompiledNetwork, Every, RunValues, Schedule, StateVariable, as_samples
from apical.circuits.scmicro.framework import SCMicroFramework
from apical.runs.config import config_from_dict

TOLERANCE = 1e-9


class Counters(CompiledNetwork):
    """The smallest circuit: n cells replay a 0/1 table ``drive`` as spikes and sum ``gain`` per
    spike into ``total`` (never reset), so every value a run reads back is known in advance."""

    def __init__(self, n: int, samples: int, time_steps: int, **device):
        self.n = n
        super().__init__(samples, time_steps, 1 * ms, build_key=(n, samples, time_steps), **device)

    def table_widths(self):
        return {"drive": self.n}

    def construct(self, tables):
        cells = NeuronGroup(self.n, "spiked : 1\ngain : 1\ntotal : 1", threshold="spiked > 0.5", reset="",
                            namespace={"drive": tables["drive"]}, dt=self.dt, name="cells")
        return {"cells": cells, "spikes": SpikeMonitor(cells, name="cells_spikes"),
                "totals": StateMonitor(cells, "total", record=True, name="cells_totals"),
                "at_ends": self.sample_end_monitor(cells, "total", "cells_total_at_end")}

    def schedule(self, o):
        return Schedule([("groups", 0, Every(o["cells"], "spiked = drive(t, i)\ntotal += gain * spiked", "cells_read")),
                         ("end", 0, o["totals"])])

    def state_variables(self):
        return [StateVariable("gain", lambda o: o["cells"].gain)]

    def run_values(self, drive, gain) -> RunValues:
        drive = self.check_samples(drive, self.n, "drive")
        return self.values_of({"gain": gain}, {"drive": self.table("drive", drive, self.n)})

    def run(self, drive, gain) -> dict:
        """Spikes [N, T, n], totals after every step [N, T, n] and after every sample [N, n]."""
        o = self.simulate(self.run_values(drive, gain))
        return {"spikes": self.spike_rasters(o["spikes"], self.n), "totals": self.per_sample(o["totals"].total),
                "at_ends": self.at_sample_ends(o["at_ends"].total)}


def counters_case(seed, samples=3, time_steps=4, n=5):
    rng = np.random.default_rng(seed)
    drive = (rng.random((samples, time_steps, n)) < 0.5).astype(float)
    gain = rng.uniform(0.5, 2.0, size=n)
    running = np.cumsum(gain * drive.reshape(-1, n), axis=0)  # total after each step
    expected = {"spikes": drive, "totals": running.reshape(samples, time_steps, n),
                "at_ends": running.reshape(samples, time_steps, n)[:, -1]}
    return drive, gain, expected


def assert_results_equal(ours, expected, what=""):
    for key in expected:
        np.testing.assert_allclose(ours[key], expected[key], rtol=0, atol=TOLERANCE, err_msg=f"{what} {key}")


def test_runtime_core_reads_back_what_the_tables_and_values_say():
    network = Counters(5, samples=3, time_steps=4)
    assert network.steps == 13 and not network.standalone
    for seed in (0, 1):  # fresh objects every run: nothing carries over
        drive, gain, expected = counters_case(seed)
        assert_results_equal(network.run(drive, gain), expected, f"seed {seed}")


def test_runtime_objects_hold_the_values_and_take_monitors():
    network = Counters(5, samples=3, time_steps=4)
    replayed, gains, expected = counters_case(2)  # (names apart from the circuit's: Brian2 reads the caller's too)
    objects = network.runtime_objects(network.run_values(replayed, gains))
    np.testing.assert_array_equal(objects["cells"].gain[:], gains)
    assert float(objects["cells"].total[:].max()) == 0.0, "the objects must not have run yet"
    watch = StateMonitor(objects["cells"], "spiked", record=True, when="end")
    objects["network"].add(watch)
    objects["network"].run(objects["duration"])
    assert watch.spiked.shape == (5, network.steps)
    np.testing.assert_array_equal(network.per_sample(watch.spiked), expected["spikes"])
    assert not watch.spiked[:, -1].any(), "the boundary step reads a silent table"


def test_bad_tables_and_shapes_are_refused():
    network = Counters(5, samples=3, time_steps=4)
    drive, gain, _ = counters_case(0)
    with pytest.raises(ValueError, match=r"drive must have shape \(3, 4, 5\)"):
        network.run(drive[:2], gain)
    with pytest.raises(ValueError, match="reads no table named noise"):
        network.runtime_objects(RunValues({"noise": np.zeros((13, 5))}))
    with pytest.raises(ValueError, match="labels must have shape"):
        network.check_labels([0, 1])
    spikes, labels = as_samples(np.ones((4, 5)), 2, time_steps=4, n_in=5)
    assert spikes.shape == (1, 4, 5) and labels.tolist() == [2]
    with pytest.raises(ValueError, match="input_spikes must have shape"):
        as_samples(np.ones((4, 6)), None, time_steps=4, n_in=5)


@pytest.mark.standalone
def test_compiled_core_equals_runtime_and_profiles(tmp_path):
    """One compiled project, two runs with other tables and values (run arguments only)."""
    network = Counters(5, samples=3, time_steps=4, device_name="cpp", build_dir=tmp_path, profile=True)
    assert network.standalone and network.brian_objects()["network"] is network.brian_objects()["network"]
    runtime = Counters(5, samples=3, time_steps=4)
    for seed in (0, 1):
        drive, gain, expected = counters_case(seed)
        compiled = network.run(drive, gain)
        assert_results_equal(compiled, expected, f"seed {seed}")
        assert_results_equal(compiled, runtime.run(drive, gain), f"runtime, seed {seed}")
    assert {name for name, _ in network.profiling_info()} >= {"cells_read_codeobject"}
    with pytest.raises(RuntimeError, match="runtime device"):
        network.runtime_objects(network.run_values(drive, gain))

    # What the compiled program leaves incomplete is refused, never read back as whole.
    from pathlib import Path

    from apical.circuits.backend import DeviceError

    results = Path(network.device.results_dir)
    written = sorted(results.glob("_array_*"), key=lambda path: path.stat().st_size)[-1]
    written.write_bytes(written.read_bytes()[:-8])  # one value missing, as on a full disk
    with pytest.raises(DeviceError, match=rf"wrote {written} short .*no space left on the device\?"):
        network.check_results()
    network.run(drive, gain)  # a new run writes whole results again
    spikes_t = next(results.glob("_dynamic_array_cells_spikes_t_*"))
    spikes_t.write_bytes(spikes_t.read_bytes()[:-8])  # the monitor's times one spike short of its indices
    with pytest.raises(DeviceError, match=r"records of cells_spikes .* differ in length"):
        network.check_results()
    network.device._last_run_completed_fraction = 0.5  # as when a signal reaches the program alone
    with pytest.raises(DeviceError, match=r"stopped after 50.0 % of its run"):
        network.check_results()
    network.run(drive, gain)  # a new run writes whole results again


@pytest.mark.slow  # tests/test_biograd.py holds the compiled network equal to the oracle by default
@pytest.mark.standalone
def test_compiled_biograd_equals_runtime(tmp_path):
    """The wake network at a tiny size, two training chunks in a row: the compiled project and the
    runtime device give the same outputs and weights."""
    sizes, time_steps, n = (10, 6, 3), 6, 4
    settings = BioGradSettings(sizes=sizes, time_steps=time_steps, error_start=2, batch_size=2)
    rng = np.random.default_rng(7)
    start = initial_state(sizes, rng, "random")
    start.weights = [3.0 * W for W in start.weights]
    chunks = [((rng.random((n, time_steps, sizes[0])) < 0.35).astype(float), rng.integers(sizes[-1], size=n))
              for _ in range(2)]
    results = {}
    for device in ("cpp", "runtime"):
        network = BioGradNetwork(settings, n, device_name=device, build_dir=tmp_path)
        state, results[device] = start.copy(), []
        for spikes, labels in chunks:
            result = network.run(state, spikes, labels, 0.2)
            state = result.state
            results[device].append(result)
    assert sum(r.output_counts.sum() for r in results["cpp"]) > 0, "silent network: vacuous comparison"
    assert np.abs(results["cpp"][-1].state.weights[0] - start.weights[0]).max() > 1e-4, "nothing learnt"
    for compiled, runtime in zip(results["cpp"], results["runtime"]):
        np.testing.assert_array_equal(compiled.output_counts, runtime.output_counts)
        for a, b in zip(compiled.state.weights + compiled.state.biases, runtime.state.weights + runtime.state.biases):
            np.testing.assert_allclose(a, b, rtol=0, atol=TOLERANCE)


# --------------------------------------------------------------------------- brian_network
N_IN, N_OUT, SAMPLES, STEPS = 12, 3, 2, 8
TINY = {"model": {"hidden": [8], "time_steps": STEPS},
        "learning": {"learning_rate": 0.05, "batch_size": 2}, "run": {"device": "runtime"},
        **{name: {"error_start": 2, "threshold": 0.2} for name in ("biograd", "bioleaf", "scmicro")}}
FRAMEWORKS = {"biograd": BioGradFramework, "bioleaf": BioLeaFFramework, "scmicro": SCMicroFramework}


def tiny_framework(name):
    framework = FRAMEWORKS[name](config_from_dict({**TINY, "model": {**TINY["model"], "framework": name}}),
                                 N_IN, N_OUT, SAMPLES, None)
    framework.state.weights = [3.0 * W for W in framework.state.weights]  # active enough to spike (signs kept)
    return framework


def inputs(seed=3):
    rng = np.random.default_rng(seed)
    return (rng.random((SAMPLES, STEPS, N_IN)) < 0.4).astype(float), rng.integers(N_OUT, size=SAMPLES)


@pytest.mark.parametrize("name", sorted(FRAMEWORKS))
def test_brian_network_takes_monitors_and_equals_evaluate_chunk(name):
    framework = tiny_framework(name)
    spikes, labels = inputs()
    objects = framework.brian_network(spikes)
    hidden, output = objects["layers"][0], objects["layers"][-1]
    membrane = StateMonitor(hidden, ["v", "apical"], record=True)
    output_spikes = SpikeMonitor(output)
    objects["network"].add(membrane, output_spikes)
    objects["network"].run(objects["duration"])
    steps = SAMPLES * STEPS + 1
    assert membrane.v.shape == (len(hidden), steps)
    step = np.round(np.asarray(output_spikes.t / framework.network.dt)).astype(int)
    counts = np.zeros((SAMPLES, N_OUT))
    for k, i in zip(step, np.asarray(output_spikes.i)):
        if k < SAMPLES * STEPS:  # the boundary step after the last sample is no sample's
            counts[k // STEPS, i] += 1
    expected = framework.evaluate_chunk(spikes, labels)
    assert expected.sum() > 0, "silent output: vacuous comparison"
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(objects["read"]().output_counts, expected)


@pytest.mark.parametrize("name", sorted(FRAMEWORKS))
def test_brian_network_with_labels_learns_as_train_chunk(name):
    framework = tiny_framework(name)
    spikes, labels = inputs(4)
    before = [W.copy() for W in framework.state.weights]
    objects = framework.brian_network(spikes, labels)
    objects["network"].run(objects["duration"])
    ours = objects["read"]()
    counts = framework.train_chunk(spikes, labels, 0)
    np.testing.assert_array_equal(ours.output_counts, counts)
    trained = framework.state_arrays()
    assert any(np.abs(W - trained[f"weights_{l + 1}"]).max() > 1e-6 for l, W in enumerate(before)), "nothing learnt"
    for l, W in enumerate(ours.state.weights):
        np.testing.assert_allclose(W, trained[f"weights_{l + 1}"], rtol=0, atol=TOLERANCE, err_msg=f"weights_{l + 1}")


def test_a_schedule_row_names_a_brian2_slot_and_a_known_period():
    """A row in a slot Brian2 does not have, or an Every with an unknown period, is refused in one
    line naming the row; the Brian2 slots and their before_/after_ forms are accepted."""
    cells = NeuronGroup(2, "v : 1", threshold="v > 1", name="row_cells")
    Schedule([("after_groups", 3, cells.thresholder["spike"]), ("start", 0, Every(cells, "v = 0", "restart", "sample"))])
    with pytest.raises(ValueError, match=r"schedule row 'row_cells_spike_thresholder': 'middle' is not a Brian2 slot"):
        Schedule([("middle", 0, cells.thresholder["spike"])])
    with pytest.raises(ValueError, match=r"schedule row 'restart': period 'epoch' is none of step, sample, minibatch"):
        Schedule([("start", 0, Every(cells, "v = 0", "restart", "epoch"))])
