"""What the two reconstructed microcircuits (BioLeaF, the SC microcircuit) share: figures of one
sample through the circuit. Neither microcircuit imports the other; both import this module.
"""

from __future__ import annotations


def single_sample_figures(layers, input_spikes, label: int, dt, weights, directory, what: str = "digit",
                          batch_size: int = 1) -> None:
    """Figures of one test sample through a microcircuit with its label's target presented: a spike
    raster of every layer (``layers``: per-layer records of one sample) and the weight update it asks
    for — its share ΔW / M of the minibatch step (the records hold the open minibatch's sum)."""
    from brian2 import ms

    from apical.analysis.figures import spike_raster, update_statistics

    names = [f"hidden {l + 1}" for l in range(len(layers) - 1)] + ["output"]
    predicted = int(layers[-1].spikes[0].sum(axis=0).argmax())
    caption = f"test {what} #0: label {label}, decoded {predicted} (target presented)"
    spike_raster(input_spikes, [r.spikes[0] for r in layers], names, float(dt / ms), directory / "spike_raster",
                 title=caption)
    update_statistics([r.weight_change[0] / batch_size for r in layers], weights, directory / "update_statistics",
                      title=f"weight update asked for by {caption}"
                      + (f"\n(its share ΔW / M of the minibatch step, M = {batch_size})" if batch_size > 1 else ""))
