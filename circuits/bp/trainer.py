"""The BP baseline outside the training driver: the discrete LIF network trained by BPTT
(apical.circuits.bptt) and Adam on the batches it is given, for tests and notebooks. The driver's
form, with checkpoints and a learning-rate schedule, is :class:`~apical.circuits.bp.framework.BPFramework`.
"""

from __future__ import annotations

import numpy as np

from apical.circuits.bptt import LIFParams, bptt_gradients, check_surrogate, forward, init_weights
from apical.circuits.optimizers import Adam

__all__ = ["BPTrainer"]


class BPTrainer:
    """The BP baseline: the LIF network trained by BPTT and Adam, decoded by argmax of counts."""

    def __init__(
        self,
        weights,
        biases,
        params=LIFParams(),
        lr=1e-4,
        *,
        surrogate=None,
        beta=10.0,
        detach_reset=False,
    ):
        check_surrogate(surrogate, beta)
        self.weights = list(weights)
        self.biases = list(biases)
        self.params = params
        self.surrogate = surrogate
        self.beta = beta
        self.detach_reset = detach_reset
        self.optimizer = Adam(self.weights + self.biases, lr=lr)

    @classmethod
    def from_sizes(cls, sizes, rng, dtype=np.float64, **options):
        """A trainer for a fresh network with layer sizes [n_in, ..., n_out]."""
        weights, biases = init_weights(sizes, rng, dtype=dtype)
        return cls(weights, biases, **options)

    def train_batch(self, raster, labels):
        """One Adam step on a batch; returns the batch loss before the step."""
        value, grad_W, grad_b = bptt_gradients(
            self.weights,
            self.biases,
            raster,
            labels,
            self.params,
            surrogate=self.surrogate,
            beta=self.beta,
            detach_reset=self.detach_reset,
        )
        self.optimizer.step(grad_W + grad_b)
        return value

    def output_counts(self, raster):
        """Output spike counts over all T steps, [batch, n_out]."""
        traces = forward(
            self.weights, self.biases, raster, self.params, surrogate=self.surrogate, beta=self.beta
        )
        return traces[-1].s.sum(axis=0)

    def predict(self, raster):
        """Class per sample: argmax of output spike counts (ties go to the lowest index)."""
        return self.output_counts(raster).argmax(axis=1)

    def accuracy(self, raster, labels):
        return float(np.mean(self.predict(raster) == np.asarray(labels)))
