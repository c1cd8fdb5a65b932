"""The figure of docs/results.md, "e-prop": test accuracy of runs/configs/eprop-mnist.toml (fast-sigmoid ψ)
and of the same config with the triangular ψ, from the runs' metrics.csv (copied beside this file).

    .venv/bin/python docs/figures/eprop-mnist/plot.py
"""

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from apical.analysis.figures import STYLE, _thousands, save  # noqa: E402

HERE = Path(__file__).parent
RUNS = (("metrics.csv", "fast-sigmoid ψ (the config)"), ("metrics-triangular.csv", "triangular ψ (stopped)"))


def read(name):
    """Training samples seen and test accuracy (%) of each evaluation."""
    with open(HERE / name) as f:
        rows = list(csv.DictReader(f))
    return [int(r["samples_seen"]) for r in rows], [100 * float(r["test_accuracy"]) for r in rows]


# The evaluation before training (summary.json initial_test_accuracy of results/eprop-mnist): ψ does
# not enter the forward pass, so the triangular-ψ run, with the same seeds, starts there too.
INITIAL = 11.04

with plt.rc_context(STYLE):
    figure, axes = plt.subplots()
    inset = axes.inset_axes([0.38, 0.12, 0.58, 0.5])  # the last points, where the curves part
    for name, label in RUNS:
        seen, test = read(name)
        seen, test = [0] + seen, [INITIAL] + test
        (line,) = axes.plot(seen, test, "s-", markersize=3, label=f"test, {label}")
        inset.plot(seen[1:], test[1:], "s-", markersize=2, color=line.get_color())
    axes.axhline(10, color="grey", linestyle=":", linewidth=0.8, label="chance (10 classes)")
    axes.set_xlim(left=0)
    axes.set_ylim(0, 100)
    inset.set_ylim(88, 98)
    inset.set_xlim(left=0)
    inset.tick_params(labelsize=6)
    inset.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_thousands))
    inset.grid(alpha=0.3)
    axes.set_ylabel("test accuracy (%)")
    axes.set_xlabel("training samples seen")
    axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_thousands))
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(0.0, 0.9), fontsize=6)
    axes.set_title("e-prop on MNIST, 784-400-10 (numpy form)")
    save(figure, HERE / "learning_curve")
