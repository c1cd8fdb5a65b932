"""Silent recurrent cells of an e-prop MNIST checkpoint: the first 512 test digits (Bernoulli code,
seed 0) through the numpy form without learning; how many of the cells fire no spike, the spikes per
digit, and those in the readout window (the last 10 of 20 steps).

    .venv/bin/python docs/figures/eprop-mnist/silent_cells.py CHECKPOINT.npz SURROGATE
    # e.g. results/eprop-mnist-a/checkpoints/checkpoint-0000140800.npz triangular
"""

import sys

import numpy as np
from brian2 import ms

from apical.circuits.eprop.framework import error_window, targets_of
from apical.circuits.eprop.network import EpropSettings, EpropState
from apical.circuits.eprop.numpy_form import NumpyEprop
from apical.runs.datasets import images_to_intensity, load_mnist

if len(sys.argv) != 3:
    sys.exit("usage: silent_cells.py CHECKPOINT.npz SURROGATE (triangular, fast_sigmoid, ...)")
arrays = np.load(sys.argv[1])
state = EpropState(arrays["weights_1"].astype(float), arrays["recurrent_weights_1"].astype(float),
                   arrays["weights_2"].astype(float), None)
H = state.input_weights.shape[0]
settings = EpropSettings(sizes=(784, H, 10), time_steps=20, tau_m=20 * ms, tau_out=5 * ms, threshold=0.03,
                         surrogate_family=sys.argv[2], loss="cross_entropy", feedback="symmetric", c_reg=1.0,
                         target_rate=100.0, batch_size=16)
images, labels = load_mnist("test")
N = 512
intensity = images_to_intensity(images[:N]).reshape(N, -1)
spikes_in = (np.random.default_rng(0).random((N, 20, 784)) < intensity[:, None, :]).astype(np.float32)
result = NumpyEprop(settings, "float32").run(state, spikes_in, targets_of(labels[:N], settings),
                                             error_window(settings, 10), 0.0)
per_cell = result.spikes.sum(axis=(0, 1)) / N
print(f"accuracy on these digits {(result.scores.argmax(1) == labels[:N]).mean():.4f}")
print(f"silent cells {(per_cell == 0).sum()} of {H}; spikes per digit {result.spikes.sum(axis=(1, 2)).mean():.1f}, "
      f"in the readout window {result.spikes[:, 10:].sum(axis=(1, 2)).mean():.1f}")
