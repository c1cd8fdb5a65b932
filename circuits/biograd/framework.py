"""BioGrad as a training framework: the wake network (and, with ``biograd.sleep``, the sleep
network) of this package under ``apical train``; ``run.device = "numpy"`` runs the same learning
in batched numpy (numpy_form.py), equal to the Brian2 networks.

The network's sizes and T come from ``[model]``, its soma constants, error window and sleep phase
from ``[biograd]``, η and M from ``[learning]``; checkpoints hold ``weights_<l>``, ``biases_<l>``
and ``feedback_<l>`` (with ``learning.optimizer = "adam"``, numpy form only, also Adam's
``optimizer_steps`` and moments, named as the BP baseline's).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from brian2 import ms

from apical.analysis.alignment import feedback_alignment
from apical.circuits.biograd.network import (BioGradNetwork, BioGradSettings, BioGradState, initial_state,
                                             run_single_sample, state_arrays)
from apical.circuits.biograd.numpy_form import NumpyBioGradNetwork, NumpyBioGradSleep
from apical.circuits.biograd.oracle import SleepParameters, run_batch
from apical.circuits.biograd.sleep import BioGradSleepNetwork
from apical.circuits.framework import ConfigError, Framework, edited_equations
from apical.models.encoders import sample_rng
from apical.models.eligibility import EligibilityEquations
from apical.models.soma import SomaEquations, SomaParameters


def equation_parts() -> dict:
    """The parts of BioGrad's code a config may replace (model.equations: "soma.reset", ...)."""
    return {"soma": SomaEquations(), "plasticity": EligibilityEquations()}


def biograd_settings(config, n_in: int, n_out: int) -> BioGradSettings:
    """The network a config describes (what is fixed at build time)."""
    m, b = config.model, config.biograd
    soma = SomaParameters(dt=m.dt, tau_m=b.membrane_time_constant(m.dt), theta=b.threshold, window=b.window,
                          gamma=b.gamma, surrogate=b.surrogate)
    parts = edited_equations(m.equations, equation_parts())
    return BioGradSettings(
        soma_equations=parts["soma"],
        plasticity=parts["plasticity"],
        sizes=(n_in, *m.hidden, n_out),
        soma=soma,
        time_steps=m.time_steps,
        error_start=b.error_start,
        batch_size=config.learning.batch_size,
    )


class BioGradFramework(Framework):
    """BioGrad's wake phase on a compiled Brian2 network (one build for training and testing)."""

    name = "biograd"

    def __init__(self, config, n_in: int, n_out: int, chunk: int, build_dir):
        self.config = config
        self.settings = biograd_settings(config, n_in, n_out)
        self.state = initial_state(
            self.settings.sizes, sample_rng(config.seeds.weights, "weights", 0), config.biograd.feedback_init
        )
        started = time.perf_counter()
        if config.run.device == "numpy":  # the same learning in batched numpy, for sweeps (no Brian2 build)
            self.network = NumpyBioGradNetwork(self.settings, chunk, precision=config.run.precision,
                                               optimizer=config.learning.optimizer)
        else:
            self.network = BioGradNetwork(
                self.settings, chunk, device_name=config.run.device, build_dir=build_dir,
                threads=config.run.threads, precision=config.run.precision,
            )
        self.sleep_network = None
        if config.biograd.sleep:
            if len(self.settings.sizes) < 3:
                raise ConfigError("config key 'biograd.sleep': sleep aligns hidden-layer feedback; model.hidden is empty")
            b = config.biograd
            sleep = SleepParameters(steps=b.sleep_steps, batch_size=b.sleep_batch,
                                    learning_rate=b.sleep_learning_rate, decay_power=b.sleep_decay)
            if config.run.device == "numpy":  # the numpy oracle of the sleep phase
                self.sleep_network = NumpyBioGradSleep(self.settings, sleep)
            else:
                self.sleep_network = BioGradSleepNetwork(self.settings, sleep, device_name=config.run.device,
                                                         build_dir=Path(build_dir) / "sleep" if build_dir else None,
                                                         threads=config.run.threads)
        self.compile_seconds = time.perf_counter() - started

    def train_chunk(self, input_spikes: np.ndarray, labels: np.ndarray, chunk_index: int,
                    rate_scale: float = 1.0) -> np.ndarray:
        """Wake learning over the chunk at η·rate_scale (the schedule's factor), then (if
        configured) one sleep phase, whose noise is keyed by the chunk's index so that a resumed
        run replays it exactly."""
        learning_rate = self.config.learning.learning_rate * rate_scale
        result = self.network.run(self.state, input_spikes, labels, learning_rate)
        self.state = result.state
        if self.sleep_network is not None:
            noise = self.sleep_network.draw_noise(sample_rng(self.config.seeds.sleep, "sleep", chunk_index))
            self.state.feedback = self.sleep_network.run(self.state.weights, self.state.biases, self.state.feedback,
                                                         noise)
        return result.output_counts

    def figures(self, directory: Path, input_spikes: np.ndarray, labels: np.ndarray) -> None:
        """A test digit through the trained network (Brian2, runtime device): a spike raster of
        every layer and the weight update it asks for. The digit shown is the first of those
        given whose output still carries an error (a digit learnt perfectly asks for no update)."""
        from apical.analysis.figures import spike_raster, update_statistics

        learning_rate = self.config.learning.learning_rate
        oracle = run_batch(self.state.weights, self.state.biases, self.state.feedback, input_spikes, labels,
                           self.settings.discrete(learning_rate))
        asks = [n for n in range(len(labels)) if np.abs(oracle[-1].weight_change[n]).max() > 0]
        n = asks[0] if asks else 0
        layers = run_single_sample(self.state.weights, self.state.biases, self.state.feedback, input_spikes[n],
                                   int(labels[n]), self.settings, learning_rate, device_name="runtime")
        predicted = int(layers[-1].spikes[0].sum(axis=0).argmax())
        names = [f"hidden {l + 1}" for l in range(len(layers) - 1)] + ["output"]
        dt_ms = float(self.settings.soma.dt / ms)
        what = "image" if self.config.data.dataset in ("fashion-mnist", "cifar10") else "digit"
        caption = f"test {what} #{n}: label {int(labels[n])}, decoded {predicted}"
        spike_raster(input_spikes[n], [r.spikes[0] for r in layers], names, dt_ms, directory / "spike_raster",
                     title=caption)
        # The network sums a minibatch's changes and applies ΔW / M; show this sample's share.
        batch = self.settings.batch_size
        update_statistics([r.weight_change[0] / batch for r in layers], self.state.weights,
                          directory / "update_statistics",
                          title=f"weight update asked for by {caption}\n(η = {learning_rate:g}"
                          + (f", its share ΔW / M of the minibatch step, M = {batch})" if batch > 1 else ")"))

    def metrics(self) -> dict[str, float]:
        """Feedback alignment per hidden layer: angle (degrees) and norm ratio of B^l against
        the transposed product of the forward weights above layer l."""
        row = {}
        for entry in feedback_alignment(self.state.weights, self.state.feedback):
            row[f"alignment_angle_{entry['layer'] + 1}"] = round(float(entry["angle"]), 3)
            row[f"alignment_norm_ratio_{entry['layer'] + 1}"] = round(float(entry["norm_ratio"]), 5)
        return row

    def evaluate_chunk(self, input_spikes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return self.network.run(self.state, input_spikes, labels, 0.0, learn=False).output_counts

    def compiled_networks(self) -> dict:
        """The wake (and sleep) networks; on the numpy device, the Brian2 networks it equals."""
        if self.config.run.device != "numpy":
            networks = {"wake": self.network}
            if self.sleep_network is not None:
                networks["sleep"] = self.sleep_network
            return networks
        networks = {"wake": BioGradNetwork(self.settings, 1, device_name="runtime")}
        if self.sleep_network is not None:
            networks["sleep"] = BioGradSleepNetwork(self.settings, self.sleep_network.sleep, device_name="runtime")
        return networks

    def brian_network(self, input_spikes: np.ndarray | None = None, labels: np.ndarray | None = None) -> dict:
        """The wake network's Brian2 objects with the current state and ``input_spikes`` ([N, T, n_in],
        one sample's [T, n_in], or None: one silent sample), built on the runtime device and not yet
        run: add monitors to ``objects["network"]``, then ``objects["network"].run(objects["duration"])``.

        With ``labels`` the error neurons read their one-hot targets and the weights learn at
        ``learning.learning_rate``, as in :meth:`train_chunk`; without, no target and no learning, and
        the output spikes are those of :meth:`evaluate_chunk`. Keys: ``layers``, ``pathways``,
        ``errors``, ``feedback``, ``output_feedback``, ``inputs``, ``output_spikes`` (a SpikeMonitor),
        ``network``, ``duration``, and ``read``: after the run, ``objects["read"]()`` gives the new
        state and the output spike counts per sample.
        """
        from apical.circuits.core import as_samples

        spikes, labels = as_samples(input_spikes, labels, self.settings.time_steps, self.settings.sizes[0])
        network = BioGradNetwork(self.settings, len(spikes), device_name="runtime")
        learning_rate = 0.0 if labels is None else self.config.learning.learning_rate
        objects = network.runtime_objects(network.run_values(self.state.copy(), spikes, labels, learning_rate))
        objects["read"] = lambda: network.read(objects)
        return objects

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = state_arrays(self.state)
        if isinstance(self.network, NumpyBioGradNetwork):
            arrays.update(self.network.adam_arrays())  # learning.optimizer = "adam": its moments
        return arrays

    def load_state_arrays(self, arrays) -> None:
        n_layers = len(self.settings.sizes) - 1
        self.state = BioGradState(
            [np.array(arrays[f"weights_{l + 1}"]) for l in range(n_layers)],
            [np.array(arrays[f"biases_{l + 1}"]) for l in range(n_layers)],
            [np.array(arrays[f"feedback_{l + 1}"]) for l in range(n_layers - 1)],
        )
        if isinstance(self.network, NumpyBioGradNetwork):
            self.network.load_adam_arrays(arrays)

    def feedback_pairs(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Each direct feedback matrix B^l against the transposed product of the forward matrices
        above hidden layer l, what exact backprop would send (docs/models/biograd.md)."""
        from apical.analysis.alignment import forward_pathway
        from apical.analysis.report import superscript

        return [(f"B{superscript(l + 1)} → hidden {l + 1}", B, forward_pathway(self.state.weights, l))
                for l, B in enumerate(self.state.feedback)]

    def traffic_classes(self) -> dict[str, str]:
        """Error spikes reach the apical compartments through B (feedback_<l>, feedback_output)."""
        return {"feedback": "feedback"}

    def operation_counts(self, input_spikes: np.ndarray, labels: np.ndarray) -> dict | None:
        """With sleep, the wake network's operations (apical.analysis.events, on brian_network) plus,
        per training sample, a share of one sleep phase per ``run.chunk_samples`` samples (the
        sleep network on the runtime device, its noise drawn from seeds.sleep, chunk 0): every
        sleep pathway is learning traffic. Without sleep, None: the generic count."""
        if self.sleep_network is None:
            return None
        from apical.analysis.events import combined, count_network

        declared = self.traffic_classes()
        found = {phase: count_network(self.brian_network(input_spikes, given), len(input_spikes), phase, declared)
                 for phase, given in (("training", labels), ("inference", None))}
        sleep = BioGradSleepNetwork(self.settings, self.sleep_network.sleep, device_name="runtime")
        noise = sleep.draw_noise(sample_rng(self.config.seeds.sleep, "sleep", 0))
        objects = sleep.runtime_objects(sleep.run_values(self.state.weights, self.state.biases, self.state.feedback,
                                                         noise))
        sleeping = count_network(objects, self.config.run.chunk_samples, "training", {"sleep_": "learning"})
        found["training"] = combined(found["training"], sleeping,
                                     f"sleep phase (one per {self.config.run.chunk_samples} samples)")
        return found

    def locality_copy(self, sizes: tuple[int, ...]):
        """The wake network at ``sizes`` with this run's constants, on the runtime device. Its
        global signals: the learning rate (0 while testing), the length of the error window, the
        clock's step counter with the sample timing it is read against (which steps carry an
        error), and the minibatch size."""
        from dataclasses import replace

        from apical.circuits.framework import LocalityCopy

        circuit = BioGradNetwork(replace(self.settings, sizes=tuple(sizes)), 1, device_name="runtime")
        return LocalityCopy(circuit.brian_objects()["network"],
                            ("learning_rate", "error_steps", "batch_size", "t_in_timesteps", "sample_steps",
                             "error_start"))
