"""The delta-rule layer (apical_delta.model) assembled on Apical's circuit core: its groups,
its step order as one table, its state. Compiling once, run values and read-back are the core's
(apical.circuits.core)."""

from __future__ import annotations

import numpy as np
from brian2 import NeuronGroup, SpikeMonitor, Synapses

from apical.circuits.core import CompiledNetwork, Dense, Every, Schedule, StateVariable, connect_dense
from apical_delta.model import (CELL_EQUATIONS, CELL_SAMPLE_START, PATHWAY_EQUATIONS, PATHWAY_MINIBATCH_END,
                                PATHWAY_ON_PRE, PATHWAY_SAMPLE_END, DeltaSettings)


class DeltaNetwork(CompiledNetwork):
    """The layer for runs of ``samples`` samples, compiled once on ``cpp``/``cuda``."""

    def __init__(self, settings: DeltaSettings, samples: int, device_name: str = "runtime", build_dir=None,
                 threads: int = 1, precision: str = "float64"):
        self.settings = settings
        super().__init__(samples, settings.time_steps, settings.dt, device_name, build_dir, threads, precision,
                         build_key=("apical_delta", settings))

    def table_widths(self) -> dict[str, int]:
        return {"input_raster": self.settings.sizes[0], "desired_counts": self.settings.sizes[1]}

    def construct(self, tables) -> dict:
        s = self.settings
        constants = {"tau_m": s.tau_m, "theta": s.threshold, "time_steps": s.time_steps, "batch_size": s.batch_size,
                     **tables}
        afferents = NeuronGroup(s.sizes[0], "", threshold="input_raster(t, i) > 0.5", dt=s.dt, namespace=constants,
                                name="input")
        cells = NeuronGroup(s.sizes[1], CELL_EQUATIONS, threshold="v > theta", reset="v = 0\ncount += 1",
                            method="exact", dt=s.dt, namespace=constants, name="output")
        pathway = Synapses(afferents, cells, PATHWAY_EQUATIONS, on_pre=PATHWAY_ON_PRE, dt=s.dt, namespace=constants,
                           name="forward")
        connect_dense(pathway)
        return {"input": afferents, "layers": [cells], "forward": pathway,
                "output_spikes": SpikeMonitor(cells, name="output_spikes")}

    def schedule(self, o: dict) -> Schedule:
        return Schedule([
            ("start", 0, Every(o["forward"], PATHWAY_SAMPLE_END, "forward_sample_end", "sample")),
            ("start", 1, Every(o["forward"], PATHWAY_MINIBATCH_END, "forward_minibatch_end", "minibatch")),
            ("start", 2, Every(o["layers"][0], CELL_SAMPLE_START, "output_sample_start", "sample")),
            ("groups", 0, o["layers"][0].state_updater),  # potentials decay
            ("groups", 1, o["input"].thresholder["spike"]),  # the step's input spikes ...
            ("groups", 2, o["forward"].pre),  # ... reach the cells before their threshold test
        ])

    def state_variables(self) -> list[StateVariable]:
        n_in, n_out = self.settings.sizes
        return [StateVariable("weights_1", lambda o: o["forward"].w, Dense(n_out, n_in)),
                StateVariable("learning_rate", lambda o: o["forward"].learning_rate)]

    def tables(self, input_spikes, labels) -> dict[str, np.ndarray]:
        """The input raster and the desired counts, on every step of each sample (None: silent
        samples of label 0)."""
        n_in, n_out = self.settings.sizes
        if input_spikes is None:
            input_spikes = np.zeros((self.samples_per_run, self.time_steps, n_in))
        spikes = self.check_samples(input_spikes, n_in, "input_spikes")
        labels = np.zeros(self.samples_per_run, int) if labels is None else self.check_labels(labels)
        desired = np.repeat(self.settings.desired(labels)[:, None], self.time_steps, axis=1)
        return {"input_raster": self.table("input_raster", spikes, n_in),
                "desired_counts": self.table("desired_counts", desired, n_out)}

    def run(self, weights, input_spikes, labels, learning_rate: float,
            learn: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The weights after a run of the samples ([N, T, n_in] of 0/1, labels [N]) from ``weights``,
        and the output spike counts [N, n_out]; ``learn=False`` evaluates (η = 0)."""
        values = self.values_of({"weights_1": weights, "learning_rate": learning_rate if learn else 0.0},
                                self.tables(input_spikes, labels))
        objects = self.simulate(values)
        counts = self.spike_rasters(objects["output_spikes"], self.settings.sizes[1]).sum(axis=1)
        return self.read_state(objects, ["weights_1"])["weights_1"], counts

    def brian_objects(self, weights=None, input_spikes=None, labels=None) -> dict:
        """Fresh objects on the runtime device with ``weights`` and the given samples (η = 0), for
        monitors before ``objects["network"].run(objects["duration"])``."""
        if weights is None:
            return super().brian_objects()
        return self.runtime_objects(self.values_of({"weights_1": weights, "learning_rate": 0.0},
                                                   self.tables(input_spikes, labels)))
