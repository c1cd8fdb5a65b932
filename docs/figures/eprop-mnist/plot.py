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


with plt.rc_context(STYLE):
    figure, axes = plt.subplots()
    for name, label in RUNS:
        seen, test = read(name)
        axes.plot(seen, test, "s-", markersize=3, label=f"test, {label}")
    axes.set_xlim(left=0)
    axes.set_ylim(85, 100)
    axes.set_ylabel("test accuracy (%)")
    axes.set_xlabel("training samples seen")
    axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_thousands))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")  # below the curves, which end near 97 %
    axes.set_title("e-prop on MNIST, 784-400-10 (numpy form)")
    save(figure, HERE / "learning_curve")
