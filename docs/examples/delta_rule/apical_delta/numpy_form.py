"""The delta-rule layer of apical_delta.model in numpy, a minibatch at a time.

The same discrete dynamics as the Brian2 network (its module docstring), step by step for the M
samples of a minibatch at once — they are independent, since potentials and counts restart with
every sample and the weights change only at the minibatch's end:

    v ← exp(−dt/τ_m)·v + W·s[t];   spike where v > θ, there v ← 0 and n += 1
    W ← W + η/M · Σ_samples (d − n) ⊗ m / T

Equal to the Brian2 network up to rounding (float64; tests/test_delta_rule.py).
"""

from __future__ import annotations

import numpy as np

from apical_delta.model import DeltaSettings


class NumpyDeltaLayer:
    """Runs of any number of whole minibatches, with the interface of DeltaNetwork."""

    def __init__(self, settings: DeltaSettings):
        self.settings = settings

    def run(self, weights: np.ndarray, input_spikes, labels, learning_rate: float,
            learn: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The weights after the samples ([N, T, n_in] of 0/1, labels [N]) and the output spike
        counts [N, n_out]; ``learn=False`` leaves the weights as they are."""
        s = self.settings
        M, T = s.batch_size, s.time_steps
        input_spikes = np.asarray(input_spikes, dtype=np.float64)
        if len(input_spikes) % M:
            raise ValueError(f"{len(input_spikes)} samples are not whole minibatches of {M}")
        weights = np.array(weights, dtype=np.float64)
        desired = s.desired(labels)
        counts = np.zeros((len(input_spikes), s.sizes[1]))
        for start in range(0, len(input_spikes), M):
            spikes = input_spikes[start : start + M]
            v = np.zeros((len(spikes), s.sizes[1]))
            for t in range(T):
                v = v * s.decay + spikes[:, t] @ weights.T
                fired = v > s.threshold
                counts[start : start + M] += fired
                v[fired] = 0.0
            error = desired[start : start + M] - counts[start : start + M]  # d − n
            weight_change = error.T @ (spikes.sum(axis=1) / T)  # Σ_samples (d − n) ⊗ m / T
            if learn:
                weights += learning_rate * weight_change / M
        return weights, counts
