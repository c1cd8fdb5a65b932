"""e-prop as a training framework: the network of network.py under ``apical train``; ``run.device
= "numpy"`` runs the same learning batched in numpy (numpy_form.py).

Each sample's target is its label's one-hot vector, asked of the softmax readout during the last
``eprop.readout_window`` steps; what a chunk returns per sample is Σ_t m[t]·π_k[t], whose argmax is
the class. Checkpoints hold ``weights_1`` (W^in), ``weights_2`` (W^out), ``recurrent_weights_1``
(W^rec) and, for random feedback, ``feedback_1`` (B, fixed).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from apical.circuits.eprop.network import EpropNetwork, EpropSettings, EpropState, initial_state, state_arrays
from apical.circuits.eprop.numpy_form import NumpyEprop
from apical.circuits.framework import Framework, LocalityCopy
from apical.models.encoders import sample_rng
from apical.models.eprop import GLOBAL_SIGNALS


def eprop_settings(config, n_in: int, n_out: int) -> EpropSettings:
    """The network a config describes: sizes, T and dt from [model], M from [learning], the rest
    from [eprop]; a classification (softmax readout, cross-entropy)."""
    e = config.eprop
    return EpropSettings(sizes=(n_in, config.model.hidden[0], n_out), dt=config.model.dt,
                         time_steps=config.model.time_steps, neuron=e.neuron, tau_m=e.tau_m, tau_out=e.tau_out,
                         tau_a=e.tau_a, beta=e.beta, threshold=e.threshold, surrogate_family=e.surrogate,
                         gamma=e.gamma, width=e.width, scaled_input=e.scaled_input, loss="cross_entropy",
                         feedback=e.feedback, c_reg=e.c_reg, target_rate=e.target_rate,
                         batch_size=config.learning.batch_size)


def targets_of(labels, settings: EpropSettings) -> np.ndarray:
    """One-hot targets on every step [N, T, K]."""
    labels = np.asarray(labels, dtype=int)
    targets = np.zeros((len(labels), settings.time_steps, settings.sizes[2]))
    targets[np.arange(len(labels)), :, labels] = 1.0
    return targets


def error_window(settings: EpropSettings, readout_window: int) -> np.ndarray:
    """m[t]: 1 in the last ``readout_window`` steps of a sample."""
    window = np.zeros(settings.time_steps)
    window[settings.time_steps - readout_window:] = 1.0
    return window


class EpropFramework(Framework):
    def __init__(self, config, n_in: int, n_out: int, chunk: int, build_dir):
        self.config = config
        self.settings = eprop_settings(config, n_in, n_out)
        self.window = error_window(self.settings, config.eprop.readout_window)
        self.state = initial_state(self.settings.sizes, sample_rng(config.seeds.weights, "weights", 0),
                                   config.eprop.feedback, sample_rng(config.seeds.feedback, "feedback", 0))
        self.rates: list[float] = []
        started = time.perf_counter()
        if config.run.device == "numpy":
            self.network = NumpyEprop(self.settings, precision=config.run.precision)
        else:
            self.network = EpropNetwork(self.settings, chunk, device_name=config.run.device, build_dir=build_dir,
                                        threads=config.run.threads, precision=config.run.precision)
        self.compile_seconds = time.perf_counter() - started

    #: Readout scores are sums of softmax values, not counts: rounded to the suite's equality tolerance
    #: (1e-9) so that the Brian2 network and the numpy form, which sum in other orders, report the
    #: same values (a difference of 1e-16 changes a rounded value with odds of about 1e-7).
    SCORE_DECIMALS = 9

    def _run(self, input_spikes, labels, learning_rate: float, learn: bool = True):
        result = self.network.run(self.state, input_spikes, targets_of(labels, self.settings), self.window,
                                  learning_rate, learn=learn)
        duration = self.settings.time_steps * float(self.settings.dt)
        self.rates.append(float(result.spikes.sum(axis=1).mean()) / duration)
        return result

    def train_chunk(self, input_spikes, labels, chunk_index: int = 0, rate_scale: float = 1.0) -> np.ndarray:
        result = self._run(input_spikes, labels, self.config.learning.learning_rate * rate_scale)
        self.state = result.state
        return np.round(result.scores, self.SCORE_DECIMALS)

    def evaluate_chunk(self, input_spikes, labels) -> np.ndarray:
        return np.round(self._run(input_spikes, labels, 0.0, learn=False).scores, self.SCORE_DECIMALS)

    def metrics(self) -> dict[str, float]:
        """The recurrent cells' mean rate (spikes/s) over the runs since the last row."""
        rate = float(np.mean(self.rates)) if self.rates else float("nan")
        self.rates = []
        return {"recurrent_rate_hz": round(rate, 4)}

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {name: array.copy() for name, array in state_arrays(self.state).items()}

    def load_state_arrays(self, arrays) -> None:
        feedback = arrays.get("feedback_1")
        self.state = EpropState(np.array(arrays["weights_1"], dtype=np.float64),
                                np.array(arrays["recurrent_weights_1"], dtype=np.float64),
                                np.array(arrays["weights_2"], dtype=np.float64),
                                None if feedback is None else np.array(feedback, dtype=np.float64))

    def feedback_pairs(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Random e-prop: B against W_outᵀ, what symmetric e-prop (and BPTT) would send."""
        if self.state.feedback is None:
            return []
        return [("B (readout → recurrent)", self.state.feedback.copy(), self.state.output_weights.T.copy())]

    def brian_network(self, input_spikes=None, labels=None) -> dict:
        from apical.circuits.core import as_samples

        spikes, labels = as_samples(input_spikes, labels, self.settings.time_steps, self.settings.sizes[0])
        labels = np.zeros(len(spikes), int) if labels is None else labels
        settings = replace(self.settings, batch_size=1)
        runtime = EpropNetwork(settings, len(spikes))
        values = runtime.run_values(self.state, spikes, targets_of(labels, settings), self.window, 0.0)
        return runtime.runtime_objects(values)

    def locality_copy(self, sizes) -> LocalityCopy:
        small = EpropNetwork(replace(self.settings, sizes=tuple(sizes), batch_size=1), 1)
        return LocalityCopy(small.brian_objects()["network"], GLOBAL_SIGNALS)
