"""Plumbing shared by the microcircuits (BioLeaF, the SC microcircuit) that run a fixed number of
samples in one simulation: samples follow each other, T steps each, and a run of N samples lasts
N·T + 1 steps (the extra step is the boundary that folds the last sample's update).

Per-sample arrays ([N, T, n]) become the [N·T + 1, n] tables a TimedArray reads; spike monitors and
state monitors are cut back into [N, T, n] per-sample records; inputs and targets are checked
against the network's shape.
"""

from __future__ import annotations

import numpy as np
from brian2 import NeuronGroup, SpikeMonitor


class SampleRuns:
    """Mixin: ``self.settings`` (sizes, time_steps, pyramidal.dt, desired()), ``self.samples_per_run``
    and ``self.steps`` = samples_per_run·T + 1 are set by the network."""

    def _raster(self, samples, n: int) -> np.ndarray:
        """[N, T, n] per-sample values → the [N·T + 1, n] table a TimedArray reads."""
        values = np.zeros((self.steps, n))
        if samples is not None:
            values[: self.steps - 1] = np.asarray(samples, dtype=np.float64).reshape(-1, n)
        return values

    def _inputs_and_targets(self, input_spikes, labels, desired) -> tuple[np.ndarray, np.ndarray]:
        """The run's input spikes [N, T, n_in] and desired spike trains [N, T, n_out] (from ``labels``
        [N] unless ``desired`` is given), checked; no labels and no desired: label 0 everywhere."""
        s, N = self.settings, self.samples_per_run
        input_spikes = np.asarray(input_spikes)
        expected = (N, s.time_steps, s.sizes[0])
        if input_spikes.shape != expected:
            raise ValueError(f"input_spikes must have shape {expected}, got {input_spikes.shape}")
        if desired is None:
            labels = np.zeros(N, int) if labels is None else np.asarray(labels, dtype=int)
            if labels.shape != (N,):
                raise ValueError(f"labels must have shape ({N},), got {labels.shape}")
            desired = s.desired(labels)
        desired = np.asarray(desired, dtype=np.float64)
        if desired.shape != (N, s.time_steps, s.sizes[-1]):
            raise ValueError(f"desired must have shape {(N, s.time_steps, s.sizes[-1])}")
        return input_spikes, desired

    def _spike_rasters(self, monitor: SpikeMonitor, n: int) -> np.ndarray:
        """[N, T, n] 0/1 spikes per sample; the trailing boundary step is dropped."""
        T, N = self.settings.time_steps, self.samples_per_run
        steps = np.round(np.asarray(monitor.t / self.settings.pyramidal.dt)).astype(int)
        keep = steps < N * T
        raster = np.zeros((N * T, n))
        raster[steps[keep], np.asarray(monitor.i[:], dtype=int)[keep]] = 1.0
        return raster.reshape(N, T, n)

    def _per_sample(self, values) -> np.ndarray:
        """StateMonitor values [n, N·T + 1] → [N, T, n]."""
        N, T = self.samples_per_run, self.settings.time_steps
        return np.asarray(values)[:, : N * T].T.reshape(N, T, -1)


class Schedule:
    """Where each object runs within a step (``when``/``order``), and the boundary operations a
    circuit adds: ``at(obj, when, order)`` places an object; ``every(group, code, dt, order, name)``
    adds a ``run_regularly`` at the start of every ``dt`` (sample and minibatch boundaries)."""

    def __init__(self):
        self.runners = []

    @staticmethod
    def at(obj, when: str, order: int) -> None:
        obj.when, obj.order = when, order

    def every(self, group, code: str, dt, order: int, name: str) -> None:
        self.runners.append(group.run_regularly(code, dt=dt, when="start", order=order, name=name))

    def afferents(self, inputs, read_input, sample_dt) -> None:
        """The input layer first in every step: read the raster (0), emit spikes (1), flag the
        afferents that have spiked in the sample (2); its spike counts restart with each sample."""
        self.at(read_input, "groups", 0)
        self.at(inputs.thresholder["spike"], "groups", 1)
        self.at(inputs.thresholder["active"], "groups", 2)
        self.every(inputs, "spike_count = 0", sample_dt, 1, "input_sample_end")


def make_afferents(n: int, input_raster, active_condition: str, dt):
    """Sensory afferents that replay ``input_raster`` (0/1 per step): the group and its reader."""
    inputs = NeuronGroup(n, "spiked : 1\nspike_count : 1", threshold="spiked > 0.5", reset="",
                         events={"active": active_condition}, namespace={"input_raster": input_raster}, dt=dt,
                         name="input")
    read_input = inputs.run_regularly("spiked = input_raster(t, i)\nspike_count += spiked", name="input_read")
    return inputs, read_input
