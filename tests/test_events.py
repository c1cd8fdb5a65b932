"""Event accounting (apical.analysis.events) against counts made by hand on a tiny network whose
every spike is given: synaptic events per traffic class, plasticity updates, analog updates,
neuron updates, dense multiply-accumulates and the energy priced from them."""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import Network, NeuronGroup, SpikeGeneratorGroup, Synapses, TimedArray, ms, prefs, start_scope

from apical.analysis.events import (
    CHIP,
    DENSE,
    backprop_counts,
    count_framework,
    count_network,
    default_traffic_class,
    energy,
)
from apical.circuits import registry

STEPS, SAMPLES = 4, 2  # two samples of four 1-ms steps: the run lasts 8 steps


def tiny_network() -> dict:
    """Three afferents → two cells (5 synapses, a plastic pathway with an on_post trace reset and
    a run_regularly update once per sample), the cells → one apical cell (feedback, 2 synapses)
    and a summed (analog) coupling of the cells' v onto it.

    Afferent spikes (step): a0 at 0, 2, 7; a1 at 1; a2 at 5. Cell spikes, given by a raster:
    c0 at 1 and 6; c1 at 3. Fan-out: a0 → c0, c1; a1 → c1; a2 → c0, c1. Fan-in: c0 ← a0, a2;
    c1 ← a0, a1, a2."""
    start_scope()
    prefs.codegen.target = "numpy"
    afferents = SpikeGeneratorGroup(3, [0, 1, 0, 2, 0], [0, 1, 2, 5, 7] * ms, dt=1 * ms, name="afferents")
    raster = np.zeros((STEPS * SAMPLES, 2))
    raster[[1, 6], 0] = 1
    raster[3, 1] = 1
    cell_raster = TimedArray(raster, dt=1 * ms)
    cells = NeuronGroup(2, "v : 1", threshold="cell_raster(t, i) > 0.5", reset="", dt=1 * ms, name="cells",
                        namespace={"cell_raster": cell_raster})
    apical = NeuronGroup(1, "a : 1\nx : 1", dt=1 * ms, name="apical")
    forward = Synapses(afferents, cells, "w : 1\ntrace : 1", on_pre={"pre": "v_post += w\ntrace += 1"},
                       on_post={"post": "trace = 0"}, dt=1 * ms, name="forward")
    forward.connect(i=[0, 0, 1, 2, 2], j=[0, 1, 1, 0, 1])
    update = forward.run_regularly("w += 0.1 * trace", dt=STEPS * ms, name="forward_sample_end")
    feedback = Synapses(cells, apical, on_pre="a_post += 1", dt=1 * ms, name="error_feedback")
    feedback.connect()
    coupling = Synapses(cells, apical, "x_post = v_pre : 1 (summed)", dt=1 * ms, name="coupling")
    coupling.connect()
    network = Network(afferents, cells, apical, forward, update, feedback, coupling)
    return {"network": network, "duration": STEPS * SAMPLES * ms}


DECLARED = {"error_feedback": "feedback"}


def test_training_counts_equal_the_hand_count():
    counts = count_network(tiny_network(), SAMPLES, "training", DECLARED)
    # forward: a0 3 spikes × 2 + a1 1 × 1 + a2 1 × 2 = 9; learning (on_post): c0 2 × fan-in 2 +
    # c1 1 × 3 = 7; feedback: 3 cell spikes × 1 apical cell = 3; all per sample (÷ 2)
    assert counts.synaptic_events == {"forward": 4.5, "feedback": 1.5, "learning": 3.5}
    assert counts.total_synaptic_events == 9.5
    # plasticity: 9 pre events and 7 post events write `trace`, run_regularly 2 runs × 5 synapses
    assert counts.plasticity_updates == 13.0
    assert counts.spike_operations == 6.0  # 9 forward + 3 feedback delivered as spikes
    assert counts.analog_updates == 8.0  # 2 synapses × 8 steps
    assert counts.neuron_updates == 12.0  # cells (2) and apical (1) × 8 steps; afferents are inputs
    # dense: forward 5 × 8 (W·s) + 5 × 8 (trace) + 10 (run_regularly) + feedback 2 × 8 + summed 2 × 8
    # + neurons 24 = 146
    assert counts.dense_macs == 73.0
    by_name = {p["name"]: p for p in counts.pathways}
    assert by_name["forward_pre"]["traffic"] == "forward" and by_name["forward_pre"]["events"] == 4.5
    assert by_name["forward_post"]["traffic"] == "learning" and by_name["forward_post"]["source_spikes"] == 1.5
    assert by_name["error_feedback_pre"]["traffic"] == "feedback"


def test_inference_leaves_learning_out():
    counts = count_network(tiny_network(), SAMPLES, "inference", DECLARED)
    assert counts.synaptic_events == {"forward": 4.5, "feedback": 1.5, "learning": 0.0}
    assert counts.plasticity_updates == 0.0
    assert counts.neuron_updates == 12.0 and counts.analog_updates == 8.0
    assert counts.dense_macs == 48.0  # (40 + 16 + 16 + 24) / 2


def test_energy_prices_the_counts_at_the_stated_costs():
    counts = count_network(tiny_network(), SAMPLES, "training", DECLARED)
    priced = energy(counts)
    expected_pJ = (6.0 + 8.0) * 23.6 + 13.0 * 120.0 + 12.0 * 52.0  # Davies et al. 2018, Table 2
    assert (CHIP["synaptic_event_pJ"], CHIP["plasticity_update_pJ"], CHIP["neuron_update_pJ"]) == (23.6, 120.0, 52.0)
    assert priced["chip_nJ"] == pytest.approx(expected_pJ / 1000, rel=1e-12)
    assert priced["dense_nJ"] == pytest.approx(73.0 * DENSE["mac_pJ"] / 1000, rel=1e-12)
    assert "Davies" in priced["chip_costs"]["source"] and "Horowitz" in priced["dense_costs"]["source"]


def test_undeclared_pathways_are_classed_by_what_they_write():
    assert default_traffic_class("pre", "v_post += w\ntrace += 1") == "forward"
    assert default_traffic_class("pre", "trace += 1\nw = clip(w, 0, 1)") == "learning"
    assert default_traffic_class("post", "trace = 0") == "learning"
    assert default_traffic_class("post", "apical_pre += w") == "forward"
    counts = count_network(tiny_network(), SAMPLES, "training", {})
    assert counts.synaptic_events == {"forward": 6.0, "feedback": 0.0, "learning": 3.5}


def test_an_unknown_declared_class_is_refused():
    with pytest.raises(ValueError, match="traffic class 'error'"):
        count_network(tiny_network(), SAMPLES, "training", {"error_feedback": "error"})


def test_backprop_counts_by_hand():
    # 4-3-2, T = 5, 2 samples: input 10 spikes, hidden 6, output 4 (totals over the samples)
    found = backprop_counts((4, 3, 2), [10.0, 6.0, 4.0], 5, 2, batch_size=2, optimizer_ops_per_parameter=10)
    inference, training = found["inference"], found["training"]
    assert inference.synaptic_events["forward"] == (10 * 3 + 6 * 2) / 2
    assert inference.neuron_updates == 5 * 5
    assert inference.dense_macs == 5 * (12 + 6 + 5)
    assert training.plasticity_updates is None and not training.event_based
    # + backward 5 × (2 × 18 + 5) + Adam 10 × (18 weights + 5 biases) / batch 2
    assert training.dense_macs == 5 * (18 + 5) + 5 * (2 * 18 + 5) + 10 * 23 / 2
    assert energy(training)["chip_nJ"] is None and energy(inference)["chip_nJ"] is not None


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_framework_is_counted(name, tmp_path):
    """The counts of a tiny copy of each framework's example config: forward events > 0 in both
    phases, learning only in training, and the training sample costs at least the inference one."""
    from apical.runs.config import load_config
    from apical.runs.train import encode, load_dataset

    spec = registry.get(name)
    if spec.example_config is None:
        pytest.skip(f"{name} declares no example config")
    config = load_config(spec.example_config)
    hidden = ", ".join(["12"] * len(config.model.hidden))
    device = "runtime" if "runtime" in spec.devices else spec.devices[0]
    config = load_config(spec.example_config, [f"model.hidden=[{hidden}]", f'run.device="{device}"',
                                               "learning.batch_size=2"])
    dataset = load_dataset(config)
    framework = spec.factory(config, dataset.n_inputs, dataset.n_classes, 2, tmp_path)
    spikes = encode(dataset.test_inputs[:2], config.model.time_steps, config.seeds.input, "test", 0)
    counted = count_framework(framework, spikes, dataset.test_labels[:2])
    assert counted is not None
    training, inference = counted["training"], counted["inference"]
    assert training.synaptic_events["forward"] > 0 and inference.synaptic_events["forward"] > 0
    assert inference.synaptic_events["learning"] == 0.0
    assert training.dense_macs > inference.dense_macs
    assert training.neuron_updates >= inference.neuron_updates > 0  # a sleep phase adds its neurons
    if config.biograd.sleep:  # BioGrad's sleep phase, one per run.chunk_samples samples, counts as learning
        slept = [p for p in training.pathways if p.get("phase", "").startswith("sleep phase")]
        assert slept and all(p["traffic"] == "learning" for p in slept)
        assert training.neuron_updates > inference.neuron_updates
