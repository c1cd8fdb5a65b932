"""The SC microcircuit as a training framework: circuits/scmicro/network.py under `apical train`.

The network (sizes, soma constants λ/θ/w/γ, T, t0 from ``[model]``), its initial weights (W, b ~
U(±1/√fan_in) from the weight seed, as BioGrad's and BioLeaF's), its input rasters and its decoding
(argmax of output spike counts over T) are those of the other frameworks; the ``[scmicro]`` section
adds the apical and PSP time constants, the burst gain, the desired spike trains and the scale of
the random feedback magnitudes (drawn from ``seeds.feedback``). Each connection's type (direct or
PV-relayed) is the sign of its initial weight, fixed for the run; the compiled project is built for
those types. Checkpoints hold W, b, B and the types, so a resumed run continues exactly.
"""

from __future__ import annotations

import time

import numpy as np

from apical.analysis.alignment import angle_degrees, sign_concordance
from apical.circuits.scmicro.network import SCMicroNetwork, SCMicroSettings, SCMicroState, initial_state, run_single_sample
from apical.circuits.scmicro.numpy_form import NumpySCMicroNetwork
from apical.models.encoders import sample_rng
from apical.models.plasticity import SignConstrainedPlasticityEquations
from apical.models.pyramidal import PyramidalEquations, SCPyramidalParameters
from apical.circuits.microcircuit import single_sample_figures
from apical.circuits.framework import ConfigError, Framework, edited_equations


def scmicro_settings(config, n_in: int, n_out: int) -> SCMicroSettings:
    """The network a config describes (what is fixed at build time)."""
    m, c = config.model, config.scmicro
    pyramidal = SCPyramidalParameters(dt=m.dt, tau_m=c.membrane_time_constant(m.dt), theta=c.threshold,
                                    window=c.window, gamma=c.gamma, surrogate=c.surrogate, tau_apical=c.tau_apical, tau_psp=c.tau_psp, burst_gain=c.burst_gain,
                                    nudging=c.nudging, output_error=c.error, error_gain=c.error_gain)
    parts = edited_equations(m.equations, equation_parts())
    return SCMicroSettings(sizes=(n_in, *m.hidden, n_out), pyramidal=pyramidal, time_steps=m.time_steps,
                           error_start=c.error_start, batch_size=config.learning.batch_size,
                           desired_interval=c.desired_interval,
                           pyramidal_equations=parts["pyramidal"], plasticity=parts["plasticity"])


def equation_parts() -> dict:
    """The parts of the circuit's code a config may replace (model.equations: "pyramidal.reset",
    "plasticity.minibatch_end", ...)."""
    return {"pyramidal": PyramidalEquations(), "plasticity": SignConstrainedPlasticityEquations()}


def scmicro_initial_state(config, sizes) -> SCMicroState:
    return initial_state(sizes, sample_rng(config.seeds.weights, "weights", 0),
                         sample_rng(config.seeds.feedback, "feedback", 0), config.scmicro.feedback_scale,
                         config.scmicro.feedback_floor)


class SCMicroFramework(Framework):
    """The SC microcircuit on a compiled Brian2 network."""

    name = "scmicro"

    def __init__(self, config, n_in: int, n_out: int, chunk: int, build_dir):
        self.config = config
        self.settings = scmicro_settings(config, n_in, n_out)
        try:
            self.settings.discrete()
        except ValueError as error:
            raise ConfigError(f"config key 'scmicro.threshold': {error}") from None
        self.state = scmicro_initial_state(config, self.settings.sizes)
        started = time.perf_counter()
        if config.run.device == "numpy":  # the same learning in batched numpy, for sweeps (no Brian2 build)
            self.network = NumpySCMicroNetwork(self.settings, self.state.connection_types, chunk,
                                               precision=config.run.precision,
                                               transposed_feedback=config.scmicro.feedback == "transposed")
        else:
            self.network = SCMicroNetwork(self.settings, self.state.connection_types, chunk,
                                          device_name=config.run.device, build_dir=build_dir,
                                          threads=config.run.threads, precision=config.run.precision)
        self.compile_seconds = time.perf_counter() - started

    def compiled_networks(self) -> dict:
        """The circuit; on the numpy device, the Brian2 circuit its numpy form equals."""
        if self.config.run.device != "numpy":
            return {"circuit": self.network}
        return {"circuit": SCMicroNetwork(self.settings, self.state.connection_types, 1, device_name="runtime")}

    def train_chunk(self, input_spikes: np.ndarray, labels: np.ndarray, chunk_index: int = 0,
                    rate_scale: float = 1.0) -> np.ndarray:
        """Learning over the chunk at η·rate_scale, each label's desired spike train the target
        (the circuit draws no noise, so the chunk's index is not needed)."""
        rate = self.config.learning.learning_rate * rate_scale
        result = self.network.run(self.state, input_spikes, labels, rate, teaching=True)
        self.state = result.state
        return result.output_counts

    def evaluate_chunk(self, input_spikes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Output counts with no target and no plasticity."""
        return self.network.run(self.state, input_spikes, labels, teaching=False, learn=False).output_counts

    def brian_network(self, input_spikes: np.ndarray | None = None, labels: np.ndarray | None = None) -> dict:
        """The circuit's Brian2 objects with the current state and ``input_spikes`` ([N, T, n_in], one
        sample's [T, n_in], or None: one silent sample), built on the runtime device and not yet run:
        add monitors to ``objects["network"]``, then ``objects["network"].run(objects["duration"])``.

        With ``labels`` each label's desired spike train is presented and the weights learn at
        ``learning.learning_rate``, as in :meth:`train_chunk`; without, no target and no learning,
        and the output spikes are those of :meth:`evaluate_chunk`. Keys: ``layers`` (pyramidal,
        output last), ``pv``, ``sst``, ``excitatory_forward``, ``inhibitory_forward``,
        ``excitatory_feedback``, ``inhibitory_feedback``, ``inputs``, ``output_spikes`` (a
        SpikeMonitor), ``network``, ``duration``, and ``read``: after the run, ``objects["read"]()``
        gives the new state and the output spike counts per sample.
        """
        from apical.circuits.core import as_samples

        spikes, labels = as_samples(input_spikes, labels, self.settings.time_steps, self.settings.sizes[0])
        state = self.state.copy()
        network = SCMicroNetwork(self.settings, state.connection_types, len(spikes), device_name="runtime")
        learning_rate, teaching = (0.0, False) if labels is None else (self.config.learning.learning_rate, True)
        objects = network.runtime_objects(network.run_values(state, spikes, labels, learning_rate, teaching))
        objects["read"] = lambda: network.read(objects, state)
        return objects

    def metrics(self) -> dict[str, float]:
        """Per hidden layer l: the angle (degrees) between B^l and the transposed forward weights of
        the layer above, and their sign-concordance on the connections that are not silent; per
        layer, the fraction of silent connections (magnitude held at zero)."""
        row = {}
        carried = [] if self.config.scmicro.feedback == "transposed" else self.state.feedback  # B = Wᵀ: nothing to align
        for l, (B, W_above) in enumerate(zip(carried, self.state.weights[1:])):
            row[f"alignment_angle_{l + 1}"] = round(angle_degrees(B, W_above.T), 3)
            row[f"sign_concordance_{l + 1}"] = round(sign_concordance(B, W_above.T), 6)
        for l, W in enumerate(self.state.weights):
            row[f"silent_fraction_{l + 1}"] = round(float((W == 0).mean()), 5)
        return row

    def figures(self, directory, input_spikes: np.ndarray, labels: np.ndarray) -> None:
        """The first test digit through the trained network (Brian2, runtime device): a spike raster
        of every layer with its label's target presented, and the weight update it asks for."""
        result = run_single_sample(self.state, input_spikes[0], int(labels[0]), self.settings,
                                   self.config.learning.learning_rate)
        single_sample_figures(result.layers, input_spikes[0], int(labels[0]), self.settings.pyramidal.dt,
                              self.state.weights, directory, what="sample", batch_size=self.settings.batch_size)

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for group in SCMicroState.GROUPS:
            for l, array in enumerate(getattr(self.state, group)):
                arrays[f"{group}_{l + 1}"] = array
        return arrays

    def load_state_arrays(self, arrays) -> None:
        state = state_from_arrays(arrays, len(self.settings.sizes) - 1)
        for l, (ours, theirs) in enumerate(zip(self.state.connection_types, state.connection_types)):
            if not np.array_equal(ours, theirs):
                raise ConfigError(f"checkpoint connection_types_{l + 1} differ from those of seeds.weights = "
                                  f"{self.config.seeds.weights}: the checkpoint belongs to another network")
        state.check()
        self.state = state

    def feedback_pairs(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Each feedback matrix B^l against the transposed forward weights of the layer above, what
        spatial backprop would send down (docs/models/scmicro.md); none with
        ``scmicro.feedback = "transposed"``, where Wᵀ itself is sent."""
        from apical.analysis.report import superscript

        if self.config.scmicro.feedback == "transposed":
            return []
        return [(f"B{superscript(l + 1)} → hidden {l + 1}", B, W_above.T)
                for l, (B, W_above) in enumerate(zip(self.state.feedback, self.state.weights[1:]))]

    def traffic_classes(self) -> dict[str, str]:
        """The bursts fed back to apical compartments, directly or relayed by SST cells, carry the
        error; the PV relays belong to the forward pathway (inhibitory forward connections)."""
        return {"excitatory_feedback": "feedback", "inhibitory_feedback": "feedback", "sst_drive": "feedback"}

    def locality_copy(self, sizes: tuple[int, ...]):
        """The circuit at ``sizes`` with this run's constants and error function, on the runtime
        device, its connection types drawn at random (both kinds in every layer)."""
        from dataclasses import replace

        from apical.circuits.framework import LocalityCopy
        from apical.circuits.scmicro.network import GLOBAL_SIGNALS

        rng = np.random.default_rng(0)
        types = [np.where(rng.random((b, a)) < 0.5, 1.0, -1.0) for a, b in zip(sizes[:-1], sizes[1:])]
        circuit = SCMicroNetwork(replace(self.settings, sizes=tuple(sizes)), types, 1, device_name="runtime")
        return LocalityCopy(circuit.brian_objects()["network"], GLOBAL_SIGNALS)


def state_from_arrays(arrays, n_layers: int) -> SCMicroState:
    """The state a checkpoint holds (``weights_1``, ..., ``feedback_1``, ..., ``connection_types_1``, ...)."""
    counts = {"feedback": n_layers - 1}
    return SCMicroState(*[
        [np.array(arrays[f"{group}_{l + 1}"], dtype=np.float64) for l in range(counts.get(group, n_layers))]
        for group in SCMicroState.GROUPS
    ])
