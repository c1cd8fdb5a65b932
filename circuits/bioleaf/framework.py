"""BioLeaF as a training framework: the microcircuit of circuits/bioleaf/network.py under `apical train`.

The network (sizes, soma constants λ/θ/w/γ, T, t0 from ``[model]``), its initial weights (W, b ~
U(±1/√fan_in) from the weight seed, as BioGrad's), its input rasters and its decoding (argmax of
output spike counts over T) are the same as BioGrad's and the BP baseline's; BioLeaF adds the
``[bioleaf]`` section (apical and PSP time constants, burst gain, nudging, desired spike trains,
interneuron initialisation and learning rates). Training presents the desired spike train of each
sample's label to the output cells' apical compartments; testing presents none.

The compiled project is built once per run (chunk-sized runs for training and testing alike);
every learned array, interneurons included, goes into the checkpoints, so a resumed run
continues exactly.
"""

from __future__ import annotations

import time

import numpy as np

from apical.analysis.alignment import angle_degrees
from apical.circuits.bioleaf.network import (BioLeaFNetwork, BioLeaFSettings, initial_state, run_single_sample,
                                             state_arrays, state_from_arrays)
from apical.circuits.bioleaf.oracle import LearningRates
from apical.circuits.microcircuit import single_sample_figures
from apical.models.encoders import sample_rng
from apical.models.plasticity import ForwardPlasticityEquations
from apical.models.pyramidal import PyramidalEquations, PyramidalParameters
from apical.circuits.framework import Framework, edited_equations


def bioleaf_settings(config, n_in: int, n_out: int) -> BioLeaFSettings:
    """The network a config describes (what is fixed at build time)."""
    m, b = config.model, config.bioleaf
    pyramidal = PyramidalParameters(
        dt=m.dt, tau_m=b.membrane_time_constant(m.dt), theta=b.threshold, window=b.window, gamma=b.gamma,
        surrogate=b.surrogate, tau_apical=b.tau_apical, tau_psp=b.tau_psp, burst_gain=b.burst_gain, nudging=b.nudging,
    )
    parts = edited_equations(m.equations, equation_parts())
    return BioLeaFSettings(sizes=(n_in, *m.hidden, n_out), pyramidal=pyramidal, time_steps=m.time_steps,
                           error_start=b.error_start, batch_size=config.learning.batch_size,
                           desired_interval=b.desired_interval,
                           pyramidal_equations=parts["pyramidal"], plasticity=parts["plasticity"])


def equation_parts() -> dict:
    """The parts of the circuit's code a config may replace (model.equations: "pyramidal.reset",
    "plasticity.minibatch_end", ...)."""
    return {"pyramidal": PyramidalEquations(), "plasticity": ForwardPlasticityEquations()}


class BioLeaFFramework(Framework):
    """The BioLeaF microcircuit on a compiled Brian2 network."""

    name = "bioleaf"

    def __init__(self, config, n_in: int, n_out: int, chunk: int, build_dir):
        self.config = config
        self.settings = bioleaf_settings(config, n_in, n_out)
        self.state = initial_state(self.settings.sizes, sample_rng(config.seeds.weights, "weights", 0),
                                   config.bioleaf.feedback_init, config.bioleaf.interneuron_init)
        started = time.perf_counter()
        self.network = BioLeaFNetwork(self.settings, chunk, device_name=config.run.device, build_dir=build_dir,
                                      threads=config.run.threads, precision=config.run.precision)
        self.compile_seconds = time.perf_counter() - started

    def compiled_networks(self) -> dict:
        return {"circuit": self.network}

    def rates(self, rate_scale: float = 1.0) -> LearningRates:
        b = self.config.bioleaf
        forward = self.config.learning.learning_rate * rate_scale
        return LearningRates(forward=forward, interneuron=b.interneuron_learning_rate * rate_scale,
                             apical=b.apical_learning_rate * rate_scale,
                             mirror=forward if b.mirror_plasticity else 0.0)

    def train_chunk(self, input_spikes: np.ndarray, labels: np.ndarray, chunk_index: int = 0,
                    rate_scale: float = 1.0) -> np.ndarray:
        """Learning over the chunk with each label's desired spike train as the target (the
        circuit draws no noise, so the chunk's index is not needed)."""
        result = self.network.run(self.state, input_spikes, labels, self.rates(rate_scale), teaching=True)
        self.state = result.state
        return result.output_counts

    def evaluate_chunk(self, input_spikes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Output counts with no target and no plasticity."""
        return self.network.run(self.state, input_spikes, labels, teaching=False, learn=False).output_counts

    def brian_network(self, input_spikes: np.ndarray | None = None, labels: np.ndarray | None = None) -> dict:
        """The microcircuit's Brian2 objects with the current state and ``input_spikes`` ([N, T, n_in],
        one sample's [T, n_in], or None: one silent sample), built on the runtime device and not yet
        run: add monitors to ``objects["network"]``, then ``objects["network"].run(objects["duration"])``.

        With ``labels`` each label's desired spike train is presented and the circuit learns at the
        config's rates, as in :meth:`train_chunk`; without, no target and no plasticity, and the
        output spikes are those of :meth:`evaluate_chunk`. Keys: ``layers`` (pyramidal, output last),
        ``interneurons``, ``forward``, ``top_down``, ``teaching``, ``interneuron_input``,
        ``interneuron_apical``, ``inputs``, ``output_spikes`` (a SpikeMonitor), ``network``,
        ``duration``, and ``read``: after the run, ``objects["read"]()`` gives the new state and the
        output spike counts per sample.
        """
        from apical.circuits.core import as_samples

        spikes, labels = as_samples(input_spikes, labels, self.settings.time_steps, self.settings.sizes[0])
        network = BioLeaFNetwork(self.settings, len(spikes), device_name="runtime")
        if labels is None:
            values = network.run_values(self.state.copy(), spikes, None, LearningRates(), teaching=False)
        else:
            values = network.run_values(self.state.copy(), spikes, labels, self.rates(), teaching=True)
        objects = network.runtime_objects(values)
        objects["read"] = lambda: network.read(objects)
        return objects

    def metrics(self) -> dict[str, float]:
        """Per hidden layer l: the angle (degrees) between the top-down weights B^l and the
        transposed forward weights of the layer above (0 in the special circumstance), and between
        the interneurons' input weights W_IP^l and those forward weights (0 when self-predicting)."""
        row = {}
        for l, (B, W_above, W_ip) in enumerate(zip(self.state.feedback, self.state.weights[1:],
                                                   self.state.interneuron_weights)):
            row[f"alignment_angle_{l + 1}"] = round(angle_degrees(B, W_above.T), 3)
            row[f"interneuron_angle_{l + 1}"] = round(angle_degrees(W_ip, W_above), 3)
        return row

    def figures(self, directory, input_spikes: np.ndarray, labels: np.ndarray) -> None:
        """The first test digit through the trained network (Brian2, runtime device): a spike raster
        of every layer with its label's target presented, and the weight update it asks for."""
        result = run_single_sample(self.state, input_spikes[0], int(labels[0]), self.settings, self.rates())
        single_sample_figures(result.layers, input_spikes[0], int(labels[0]), self.settings.pyramidal.dt,
                              self.state.weights, directory, batch_size=self.settings.batch_size)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return state_arrays(self.state)

    def load_state_arrays(self, arrays) -> None:
        self.state = state_from_arrays(arrays, len(self.settings.sizes) - 1)

    def feedback_pairs(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Each top-down matrix B^l against the transposed forward weights of the layer above, what
        spatial backprop would send down (docs/models/bioleaf.md)."""
        from apical.analysis.report import superscript

        return [(f"B{superscript(l + 1)} → hidden {l + 1}", B, W_above.T)
                for l, (B, W_above) in enumerate(zip(self.state.feedback, self.state.weights[1:]))]

    def traffic_classes(self) -> dict[str, str]:
        """Top-down spikes and bursts, the teaching input and the SST interneurons (their input from
        pyramidal cells and their apical inhibition) carry the error circuit, not the forward signal."""
        return {"top_down": "feedback", "teaching": "feedback", "interneuron_input": "feedback",
                "interneuron_apical": "feedback"}

    def locality_copy(self, sizes: tuple[int, ...]):
        """The microcircuit at ``sizes`` with this run's constants, on the runtime device, with the
        signals it broadcasts (learning rates, the teaching flag, the sample timing)."""
        from dataclasses import replace

        from apical.circuits.bioleaf.network import GLOBAL_SIGNALS
        from apical.circuits.framework import LocalityCopy

        circuit = BioLeaFNetwork(replace(self.settings, sizes=tuple(sizes)), 1, device_name="runtime")
        return LocalityCopy(circuit.brian_objects()["network"], GLOBAL_SIGNALS)
