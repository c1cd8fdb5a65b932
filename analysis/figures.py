"""Figures from results directories, in one project style (PNG and PDF, paper column width)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {
    "figure.figsize": (3.4, 2.6),  # one paper column
    "figure.dpi": 150,
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.2,
    "lines.markersize": 3,
}


def save(figure, path: Path) -> list[Path]:
    """Write ``path``.png and ``path``.pdf; returns both paths."""
    path = Path(path)
    written = []
    for suffix in (".png", ".pdf"):
        target = path.with_suffix(suffix)
        figure.savefig(target)
        written.append(target)
    plt.close(figure)
    return written


def _thousands(value, _position) -> str:
    return f"{value / 1000:g}k" if abs(value) >= 1000 else f"{value:g}"


def finish_training_axes(figure, axes, path: Path, title: str, legend_below: bool = False) -> list[Path]:
    """Shared finish of the plots against training samples seen: thousands, grid, legend, save.
    ``legend_below`` puts a long legend (many overlaid runs) under the axes, off the curves."""
    axes.set_xlabel("training samples seen")
    axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_thousands))
    axes.grid(alpha=0.3)
    if legend_below:
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    else:
        axes.legend(loc="best")
    if title:
        axes.set_title(title)
    return save(figure, path)


def learning_curve(metrics: list[dict], path: Path, title: str = "", initial: float | None = None) -> list[Path]:
    """Train (running, while learning) and test accuracy against training samples seen; the test
    curve starts at 0 samples with ``initial``, the untrained network's test accuracy. A run with a
    single evaluation draws its accuracy while learning as one marker, not as a line."""
    seen = [int(r["samples_seen"]) for r in metrics]
    train = [100 * float(r["train_accuracy"]) for r in metrics]
    test = [100 * float(r["test_accuracy"]) for r in metrics]
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots()
        if len(seen) > 1:
            axes.plot(seen, train, "o-", label="train (while learning)")
        else:  # one evaluation: the accuracy while learning is one mean over the run, not a curve
            axes.plot(seen, train, "o", label="train (while learning, mean over the run)")
        if initial is not None:
            axes.plot([0] + seen, [100 * initial] + test, "s-", label="test (0: before training)")
        else:
            axes.plot(seen, test, "s-", label="test")
        axes.set_xlim(left=0)
        held_out = [100 * float(r["validation_accuracy"]) for r in metrics if r.get("validation_accuracy") not in (None, "")]
        if len(held_out) == len(metrics):
            axes.plot(seen, held_out, "^-", label="validation (held out)")
            chosen = max(range(len(held_out)), key=held_out.__getitem__)  # first best, as the summary selects
            axes.plot(seen[chosen], test[chosen], "*", markersize=14, color="black",
                      label=f"selected on validation: test {test[chosen]:.2f}%")
            test = test + held_out
        axes.set_ylabel("accuracy (%)")
        low = min(train + test + ([100 * initial] if initial is not None else []))
        axes.set_ylim(max(0.0, min(low - 2.0, 90.0)), 100.0)
        if axes.get_ylim()[0] < 10.0:
            axes.axhline(10.0, color="0.6", linestyle=":", linewidth=0.8, label="chance (10 classes)")
        return finish_training_axes(figure, axes, path, title)


def accuracy_curves(runs: list[tuple[str, list[dict], float | None]], path: Path, title: str = "",
                lines: list[tuple[float, str]] = ()) -> list[Path]:
    """Test accuracy against epochs for several runs, one curve each (``runs``: label, metrics rows,
    the untrained test accuracy or None), with horizontal reference ``lines`` (accuracy in %, label),
    e.g. a linear-readout floor."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots(figsize=(6.4, 3.6))
        lowest = 100.0
        for label, metrics, initial in runs:
            epochs = [float(r["epoch"]) for r in metrics]
            test = [100 * float(r["test_accuracy"]) for r in metrics]
            if initial is not None:
                epochs, test = [0.0] + epochs, [100 * initial] + test
            axes.plot(epochs, test, ".-", label=label)
            lowest = min(lowest, *test)
        for value, label in lines:
            axes.axhline(value, color="0.3", linestyle="--", linewidth=0.9, label=f"{label} ({value:g} %)")
            lowest = min(lowest, value)
        axes.set_xlim(left=0)
        axes.set_ylim(max(0.0, lowest - 3.0), 100.0)
        axes.set_xlabel("epoch")
        axes.set_ylabel("test accuracy (%)")
        axes.legend(loc="lower right", fontsize="small")
        if title:
            axes.set_title(title)
        return save(figure, path)


def spike_raster(input_spikes, layer_spikes: list, layer_names: list[str], dt_ms: float, path: Path,
                 title: str = "") -> list[Path]:
    """One sample through every layer: a panel per layer, time on a shared axis.

    ``input_spikes`` is [T, n_in], ``layer_spikes`` a list of [T, n] 0/1 rasters.
    """
    rasters = [np.asarray(input_spikes)] + [np.asarray(s) for s in layer_spikes]
    names = ["input"] + list(layer_names)
    heights = [max(1.0, np.log10(r.shape[1] + 1)) for r in rasters]
    with plt.rc_context(STYLE):
        figure, panels = plt.subplots(len(rasters), 1, sharex=True, figsize=(3.4, 0.9 * len(rasters) + 0.6),
                                      gridspec_kw={"height_ratios": heights})
        steps = rasters[0].shape[0]
        for panel, raster, name in zip(panels, rasters, names):
            # One cell per (time bin, neuron): black where the neuron spiked in that bin.
            panel.imshow(raster.T, aspect="auto", origin="lower", cmap="Greys", vmin=0, vmax=1,
                         interpolation="nearest", extent=(0, steps * dt_ms, -0.5, raster.shape[1] - 0.5))
            panel.set_ylabel(f"{name}\n(n={raster.shape[1]})")
            panel.text(1.01, 0.5, f"{raster.mean():.0%}", transform=panel.transAxes, va="center", fontsize=6)
        panels[-1].set_xlabel("time in sample (ms); right: fraction of neuron-bins with a spike")
        if title:
            panels[0].set_title(title)
        return save(figure, path)


def update_statistics(weight_changes: list, weights: list, path: Path, title: str = "") -> list[Path]:
    """Per layer: distribution of the weight change of one sample, relative to the weights."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots()
        for l, (change, weight) in enumerate(zip(weight_changes, weights)):
            change = np.asarray(change).ravel()
            nonzero = np.abs(change[change != 0])
            if not nonzero.size:
                axes.plot([], [], " ", label=f"layer {l + 1}: no change")
            else:
                # Eight decades below the largest change; smaller ones are rounding residue.
                low = max(nonzero.min(), nonzero.max() * 1e-8)
                bins = np.logspace(np.log10(low), np.log10(nonzero.max()) + 1e-9, 40)
                # Each layer as a fraction of its own non-zero changes, so a small layer stays visible.
                axes.hist(nonzero, bins=bins, histtype="step", weights=np.full(nonzero.size, 1.0 / nonzero.size),
                          label=f"layer {l + 1}: {100 * nonzero.size / change.size:.0f}% non-zero, "
                                f"|ΔW|/|W| = {np.linalg.norm(change) / np.linalg.norm(weight):.1e}")
        axes.set_xscale("log")
        axes.set_xlabel("|ΔW| of one sample")
        axes.set_ylabel("fraction of the layer's changes")
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=6, frameon=False)
        if title:
            axes.set_title(title)
        return save(figure, path)
