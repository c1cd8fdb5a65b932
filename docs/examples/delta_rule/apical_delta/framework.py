"""The delta rule as an Apical framework: what ``apical train`` builds and runs.

Built once per run for chunks of ``chunk`` samples: the Brian2 network (apical_delta.network) on
``cpp``, ``cuda`` or ``runtime``, or its numpy form on ``numpy``. The state is one array,
``weights_1`` (n_out × n_in); the rule draws no noise, so a run resumed from it continues exactly.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from apical.circuits.framework import Framework, LocalityCopy
from apical.models.encoders import sample_rng
from apical_delta.model import GLOBAL_SIGNALS, DeltaSettings, initial_weights
from apical_delta.network import DeltaNetwork
from apical_delta.numpy_form import NumpyDeltaLayer


def delta_settings(config, n_in: int, n_out: int) -> DeltaSettings:
    """The network a config describes: the clock and T from [model], M from [learning], the
    cells and the target from [delta]."""
    d = config.delta
    return DeltaSettings(sizes=(n_in, n_out), dt=config.model.dt, time_steps=config.model.time_steps,
                         tau_m=d.tau_m, threshold=d.threshold, target_count=d.target_count,
                         batch_size=config.learning.batch_size)


class DeltaFramework(Framework):
    def __init__(self, config, n_in: int, n_out: int, chunk: int, build_dir):
        self.config = config
        self.settings = delta_settings(config, n_in, n_out)
        self.weights = initial_weights(self.settings.sizes, sample_rng(config.seeds.weights, "weights", 0))
        started = time.perf_counter()
        if config.run.device == "numpy":
            self.network = NumpyDeltaLayer(self.settings)
        else:
            self.network = DeltaNetwork(self.settings, chunk, device_name=config.run.device, build_dir=build_dir,
                                        threads=config.run.threads, precision=config.run.precision)
        self.compile_seconds = time.perf_counter() - started

    def train_chunk(self, input_spikes: np.ndarray, labels: np.ndarray, chunk_index: int = 0,
                    rate_scale: float = 1.0) -> np.ndarray:
        learning_rate = self.config.learning.learning_rate * rate_scale
        self.weights, counts = self.network.run(self.weights, input_spikes, labels, learning_rate)
        return counts

    def evaluate_chunk(self, input_spikes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return self.network.run(self.weights, input_spikes, labels, 0.0, learn=False)[1]

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {"weights_1": self.weights.copy()}

    def load_state_arrays(self, arrays) -> None:
        self.weights = np.array(arrays["weights_1"], dtype=np.float64)

    def brian_network(self, input_spikes=None, labels=None) -> dict:
        runtime = DeltaNetwork(self.settings, 1 if input_spikes is None else len(input_spikes))
        return runtime.brian_objects(self.weights, input_spikes, labels)

    def locality_copy(self, sizes) -> LocalityCopy:
        small = DeltaNetwork(replace(self.settings, sizes=tuple(sizes)), 1)
        return LocalityCopy(small.brian_objects(initial_weights(tuple(sizes), np.random.default_rng(0)))["network"],
                            GLOBAL_SIGNALS)
