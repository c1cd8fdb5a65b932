"""Record a hidden layer's membrane and apical potentials for one test digit of a trained run, and
plot them with the layer's spikes (docs/notebook.md).

    python docs/examples/membrane_and_apical.py results/mnist-quick docs/figures/notebook/membrane_and_apical

The run's newest checkpoint is loaded with its config; the digit is coded as the run's evaluations
code it; its label is presented, so the error neurons fire and the apical compartments integrate the
feedback (the weights in this copy of the network learn; the run's files are not touched).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from brian2 import SpikeMonitor, StateMonitor, ms

from apical.analysis.figures import plt, save
from apical.runs.notebook import load_run

CELLS = 4  # hidden cells shown: those whose apical compartment receives the most feedback


def record(directory, sample: int | None = None):
    """Membrane and apical potentials [cells, steps] of the first hidden layer, its spikes, and the
    digit's label and decoded class. ``sample``: a test sample's index; None: the first test digit
    that leaves an output error (a digit answered with certainty sends no error spikes)."""
    run = load_run(directory)
    for index in ([sample] if sample is not None else range(100)):
        found = record_sample(run, index)
        if sample is not None or np.abs(found["apical"]).max() > 0:
            return found
    return found


def record_sample(run, sample: int) -> dict:
    spikes, labels = run.test_samples(1, first=sample)
    objects = run.framework().brian_network(spikes, labels)
    hidden = objects["layers"][0]
    # after every group's update of the step and before the resets: v as the threshold saw it
    potentials = StateMonitor(hidden, ["v", "apical"], record=True, when="after_groups", order=100)
    hidden_spikes = SpikeMonitor(hidden)
    objects["network"].add(potentials, hidden_spikes)
    objects["network"].run(objects["duration"])
    counts = objects["read"]().output_counts
    dt = float(run.config.model.dt / ms)
    return {"t_ms": np.asarray(potentials.t / ms), "v": np.asarray(potentials.v), "apical": np.asarray(potentials.apical),
            "spike_i": np.asarray(hidden_spikes.i), "spike_t_ms": np.asarray(hidden_spikes.t / ms), "dt_ms": dt,
            "label": int(labels[0]), "decoded": int(np.asarray(counts)[0].argmax()),
            "threshold": run.config.biograd.threshold, "error_start": run.config.biograd.error_start,
            "steps": run.config.model.time_steps, "title": run.spec.run_title(run.config), "sample": sample}


def plot(recorded: dict, path: Path) -> list[Path]:
    counts = np.bincount(recorded["spike_i"], minlength=recorded["v"].shape[0])
    cells = np.argsort(-np.abs(recorded["apical"]).max(axis=1), kind="stable")[:CELLS]
    steps_ms = recorded["steps"] * recorded["dt_ms"]
    figure, (membrane, apical) = plt.subplots(2, 1, figsize=(8.4, 4.6), sharex=True)
    for colour, cell in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], cells):
        keep = recorded["t_ms"] < steps_ms
        membrane.step(recorded["t_ms"][keep], recorded["v"][cell][keep], where="post", color=colour,
                      label=f"cell {cell} ({counts[cell]} spikes)")
        fired = recorded["spike_t_ms"][recorded["spike_i"] == cell]
        membrane.plot(fired, np.full(len(fired), 1.05 * max(1.0, recorded["v"][cells].max())), "|", color=colour,
                      markersize=8)
        apical.step(recorded["t_ms"][keep], recorded["apical"][cell][keep], where="post", color=colour)
    membrane.axhline(recorded["threshold"], color="0.4", linestyle="--", linewidth=0.8, label="threshold θ")
    membrane.set_ylabel("membrane v (1)")
    membrane.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    apical.axvline(recorded["error_start"] * recorded["dt_ms"], color="0.4", linestyle=":", linewidth=0.8)
    apical.text(recorded["error_start"] * recorded["dt_ms"], 0.98, " error window opens (t0)", fontsize=7,
                transform=apical.get_xaxis_transform(), va="top")
    apical.set_ylabel("apical a (1)")
    apical.set_xlabel("time in the sample (ms)")
    membrane.set_title(f"{recorded['title']}: hidden layer 1, test digit #{recorded['sample']} (label {recorded['label']}, "
                       f"decoded {recorded['decoded']}), target presented", fontsize=9)
    figure.subplots_adjust(right=0.80)
    return save(figure, path)


if __name__ == "__main__":
    written = plot(record(sys.argv[1]), Path(sys.argv[2]))
    print("wrote", ", ".join(map(str, written)))
