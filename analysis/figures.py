"""Figures from results directories, in one project style (PNG and PDF, paper column width)."""

from __future__ import annotations

from pathlib import Path

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


def learning_curve(metrics: list[dict], path: Path, title: str = "") -> list[Path]:
    """Train (running, while learning) and test accuracy against training samples seen."""
    seen = [int(r["samples_seen"]) for r in metrics]
    train = [100 * float(r["train_accuracy"]) for r in metrics]
    test = [100 * float(r["test_accuracy"]) for r in metrics]
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots()
        axes.plot(seen, train, "o-", label="train (while learning)")
        axes.plot(seen, test, "s-", label="test")
        axes.set_xlabel("training samples seen")
        axes.set_ylabel("accuracy (%)")
        low = min(train + test)
        axes.set_ylim(max(0.0, min(low - 2.0, 90.0)), 100.0)
        if axes.get_ylim()[0] < 10.0:
            axes.axhline(10.0, color="0.6", linestyle=":", linewidth=0.8, label="chance (10 classes)")
        axes.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_thousands))
        axes.grid(alpha=0.3)
        axes.legend(loc="best")
        if title:
            axes.set_title(title)
        return save(figure, path)
