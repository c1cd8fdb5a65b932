"""The BP baseline as a training framework: the same LIF network, trained by BPTT.

docs/models/biograd.md: "the BP baseline is the same LIF network trained by BPTT with the same surrogate,
Adam lr 1e-4, cross-entropy on output spike counts". The network, its constants (λ, θ, w, γ,
from ``[bp]``, T from ``[model]``), its initialisation (W, b ~ U(±1/√fan_in) from the same weight seed and
generator as BioGrad, so both start from the same network), its input rasters and its
decoding (argmax of output counts) are BioGrad's; only the learning rule differs:
``apical.circuits.bptt`` computes the exact BPTT gradient with the configured pseudo-derivative,
and Adam (``learning.optimizer = "adam"``) or plain gradient descent (``"sgd"``) steps with
``bp.learning_rate`` once per minibatch of ``learning.batch_size`` samples.

Arithmetic is float32 (as the authors' PyTorch code): it halves memory traffic, and the
network is the same up to rounding. The checkpointed state holds the Adam moments and step
count besides the weights, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apical.circuits.bptt import LIFParams, bptt_gradients, forward, init_weights
from apical.circuits.optimizers import Adam, GradientDescent
from apical.models.encoders import sample_rng
from apical.circuits.framework import Framework

DTYPE = np.float32
EVALUATION_BATCH = 250  # samples per forward pass when evaluating (bounds memory, not results)


@dataclass(frozen=True)
class BPSettings:
    """What the network is: sizes and the discrete LIF constants."""

    sizes: tuple[int, ...]  # (n_in, hidden..., n_out)
    params: LIFParams  # λ, θ, w, γ
    time_steps: int  # T
    batch_size: int  # samples per gradient step


def bp_settings(config, n_in: int, n_out: int) -> BPSettings:
    m, b = config.model, config.bp
    params = LIFParams(leak=b.leak_per_step(m.dt), threshold=b.threshold, window=b.window, gamma=b.gamma,
                       surrogate=b.surrogate)
    return BPSettings((n_in, *m.hidden, n_out), params, m.time_steps, config.learning.batch_size)


class BPFramework(Framework):
    """BPTT through the discrete LIF network (numpy, float32), minibatches inside each chunk."""

    name = "bp"
    compile_seconds = 0.0  # nothing to build

    def __init__(self, config, n_in: int, n_out: int, chunk: int, build_dir):
        self.config = config
        self.settings = bp_settings(config, n_in, n_out)
        # float64 draws from BioGrad's generator, then rounded: the same initial network as BioGrad
        weights, biases = init_weights(self.settings.sizes, sample_rng(config.seeds.weights, "weights", 0))
        self._set_parameters([W.astype(DTYPE) for W in weights], [b.astype(DTYPE) for b in biases])

    @property
    def n_layers(self) -> int:
        return len(self.settings.sizes) - 1

    def _parameter_names(self) -> list[str]:
        """The checkpoint's names of the optimizer's parameters, in its order (weights, then biases)."""
        return [f"weights_{l + 1}" for l in range(self.n_layers)] + [f"biases_{l + 1}" for l in range(self.n_layers)]

    def _set_parameters(self, weights, biases):
        self.weights, self.biases = weights, biases
        lr = self.config.bp.learning_rate
        if self.config.learning.optimizer == "adam":
            self.optimizer = Adam(self.weights + self.biases, lr=lr)
        else:
            self.optimizer = GradientDescent(self.weights + self.biases, lr=lr)

    def _output_counts(self, input_spikes: np.ndarray) -> np.ndarray:
        traces = forward(self.weights, self.biases, input_spikes, self.settings.params)
        return traces[-1].s.sum(axis=0)

    def train_chunk(self, input_spikes: np.ndarray, labels: np.ndarray, chunk_index: int = 0,
                    rate_scale: float = 1.0) -> np.ndarray:
        """One gradient step per minibatch at the schedule's rate; returns each sample's output
        counts before its step. (BPTT draws no noise, so the chunk's index is not needed.)"""
        self.optimizer.lr = self.config.bp.learning_rate * rate_scale
        batch = self.settings.batch_size
        counts = []
        for start in range(0, len(labels), batch):
            raster = input_spikes[start : start + batch]
            counts.append(self._output_counts(raster))
            _, grad_W, grad_b = bptt_gradients(
                self.weights, self.biases, raster, labels[start : start + batch], self.settings.params
            )
            self.optimizer.step(grad_W + grad_b)
        return np.concatenate(counts)

    def operation_counts(self, input_spikes: np.ndarray, labels: np.ndarray) -> dict:
        """Operations per training and inference sample (apical.analysis.events): the forward pass's
        spikes counted on these samples; BPTT's backward pass as dense arithmetic (Adam: about 10
        operations per parameter and step; gradient descent: 2)."""
        from apical.analysis.events import backprop_counts

        traces = forward(self.weights, self.biases, input_spikes.astype(DTYPE), self.settings.params)
        spikes = [float(input_spikes.sum())] + [float(trace.s.sum()) for trace in traces]
        per_parameter = 10 if self.config.learning.optimizer == "adam" else 2
        return backprop_counts(self.settings.sizes, spikes, self.settings.time_steps, len(input_spikes),
                               self.settings.batch_size, per_parameter)

    def metrics(self) -> dict[str, float]:
        """No framework-specific columns for metrics.csv: BP has no feedback weights to align."""
        return {}

    def evaluate_chunk(self, input_spikes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return np.concatenate([
            self._output_counts(input_spikes[start : start + EVALUATION_BATCH])
            for start in range(0, len(input_spikes), EVALUATION_BATCH)
        ])

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = {}
        for l in range(self.n_layers):
            arrays[f"weights_{l + 1}"] = self.weights[l]
            arrays[f"biases_{l + 1}"] = self.biases[l]
        arrays.update(self.optimizer.state_arrays(self._parameter_names()))
        return arrays

    def load_state_arrays(self, arrays) -> None:
        layers = range(1, self.n_layers + 1)
        self._set_parameters([np.array(arrays[f"weights_{l}"], dtype=DTYPE) for l in layers],
                             [np.array(arrays[f"biases_{l}"], dtype=DTYPE) for l in layers])
        self.optimizer.load_state_arrays(arrays, self._parameter_names(), DTYPE)
