"""The figures of ``apical analyze`` (in the project style of analysis.figures, PNG and PDF):
feedback angle over training, sign-concordance of feedback, update-vs-gradient cosines per layer,
and the distributions of the forward and feedback weights.

Each function takes numbers already computed and a path without suffix, and returns the files
written; the command (runs/analyze.py) and each framework's claims call them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import FuncFormatter, MaxNLocator

from apical.analysis.figures import STYLE, plt, save
from apical.analysis.report import superscript

__all__ = ["alignment_from_metrics", "alignment_series", "figure_alignment", "figure_sign_concordance", "figure_update_cosine", "figure_weight_distributions"]


def _in_thousands(value, _position) -> str:
    return f"{value / 1000:g}k" if abs(value) >= 1000 else f"{value:g}"


def figure_alignment(series: dict, labels: list[str], path: Path) -> list[Path]:
    """Angle between each feedback pathway (``labels``) and what backprop would send, against
    training samples seen; ``series`` holds ``samples_seen``, ``layer_<l>`` and its ``source``."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots()
        seen = series["samples_seen"]
        for l, label in enumerate(labels):
            axes.plot(seen, series[f"layer_{l}"], "o-", label=label)
        axes.axhline(90.0, color="0.6", lw=0.8, ls="--")
        axes.text(seen[-1], 88.0, "orthogonal", ha="right", va="top", fontsize=6, color="0.4")
        axes.set_xlabel("training samples seen")
        axes.set_ylabel("angle between B and forward pathway (°)")
        axes.set_ylim(0.0, 95.0)
        axes.set_yticks([0, 15, 30, 45, 60, 75, 90])
        axes.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        axes.xaxis.set_major_formatter(FuncFormatter(_in_thousands))
        axes.grid(alpha=0.3)
        axes.legend(loc="best", frameon=False)
        first = "initial network and " if seen and seen[0] == 0 else ""
        source = first + ("each evaluation" if series["source"] == "metrics.csv" else "kept checkpoints")
        axes.set_title(f"points: {source}", fontsize=6, color="0.3")
        return save(figure, path)


def alignment_series(metrics: list[dict], initial: dict | None) -> dict | None:
    """Feedback angles per pathway against samples seen from metrics.csv's ``alignment_angle_<l>``
    columns, from ``initial`` (the framework's metrics before training) at 0 samples where given;
    None when the run logs no angle."""
    columns = sorted((k for k in (metrics[0] if metrics else {}) if k.startswith("alignment_angle_")),
                     key=lambda k: int(k.rsplit("_", 1)[1]))
    if not columns:
        return None
    start = initial is not None and all(c in initial for c in columns) and int(metrics[0]["samples_seen"]) > 0
    series = {"source": "metrics.csv", "samples_seen": ([0] if start else []) + [int(r["samples_seen"]) for r in metrics]}
    for l, column in enumerate(columns):
        series[f"layer_{l}"] = ([float(initial[column])] if start else []) + [float(r[column]) for r in metrics]
    return series


def alignment_from_metrics(metrics: list[dict], initial: dict | None, path: Path) -> list[Path]:
    """The feedback-alignment figure of a results directory (``apical train`` draws it; ``apical
    analyze`` draws the same one): nothing when the run logs no angle."""
    series = alignment_series(metrics, initial)
    if series is None:
        return []
    labels = [f"B{superscript(l + 1)} (hidden {l + 1})" for l in range(len(series) - 2)]
    return figure_alignment(series, labels, path)


def figure_update_cosine(labels, weight_cosines, bias_cosines, n_samples, path: Path,
                         ylabel: str = "cosine of the update with −∇L (BPTT)",
                         legend: tuple[str, str] = ("ΔW (weights)", "Δb (biases)")) -> list[Path]:
    """Two bars per layer (``labels``): cosines of two updates or against two gradients; None: n/a."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots()
        x = np.arange(len(labels))
        bar_sets = ((-0.2, weight_cosines, legend[0], "C0"), (0.2, bias_cosines, legend[1], "C1"))
        for offset, values, name, color in bar_sets:
            heights = [np.nan if v is None else v for v in values]
            bars = axes.bar(x + offset, heights, width=0.4, label=name, color=color)
            for bar, v in zip(bars, values):
                y = 0.0 if v is None else v
                axes.annotate("n/a" if v is None else f"{v:.2f}", (bar.get_x() + bar.get_width() / 2, y),
                              xytext=(0, 2 if y >= 0 else -2), textcoords="offset points", ha="center",
                              va="bottom" if y >= 0 else "top", fontsize=6)
        axes.axhline(0.0, color="0.3", lw=0.8)
        axes.set_xticks(x, labels)
        axes.set_xlabel("layer (pre → post neurons)")
        axes.set_ylabel(ylabel)
        low = min([0.0] + [v for v in list(weight_cosines) + list(bias_cosines) if v is not None])
        # headroom above the bars for the legend, so it never covers the values printed on them
        axes.set_ylim(min(-0.1, low - 0.15), 1.4)
        axes.set_yticks([t for t in axes.get_yticks() if t <= 1.0 + 1e-9])
        axes.legend(loc="upper center", frameon=False, ncols=2)
        axes.set_title(f"mean update over {n_samples} test samples", fontsize=6, color="0.3")
        return save(figure, path)


def figure_sign_concordance(fractions, labels: list[str], path: Path) -> list[Path]:
    """Per feedback pathway (``labels``), the fraction of entries with the forward pathway's sign;
    None where no entry is non-zero in both."""
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots()
        x = np.arange(len(fractions))
        percent = [np.nan if f is None else 100 * f for f in fractions]
        bars = axes.bar(x, percent, width=0.5, color="C2")
        for bar, f in zip(bars, fractions):
            y = 0.0 if f is None else 100 * f
            axes.annotate("n/a" if f is None else f"{100 * f:.1f}%", (bar.get_x() + bar.get_width() / 2, y),
                          xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=6)
        axes.axhline(50.0, color="0.5", lw=0.8, ls="--")
        axes.set_xlim(-0.75, len(fractions) - 0.25)
        axes.text(-0.7, 51.0, "chance", ha="left", va="bottom", fontsize=6, color="0.4")
        axes.set_xticks(x, labels)
        axes.set_ylabel("entries with the sign of the\nforward pathway (%)")
        axes.set_ylim(0.0, 108.0)
        axes.set_yticks([0, 25, 50, 75, 100])
        return save(figure, path)


def figure_weight_distributions(weights, feedback_pairs, path: Path) -> list[Path]:
    """Histograms of every forward matrix W (post × pre) and, in a second row, of every feedback
    matrix of ``feedback_pairs`` ((label, B, ...) as Framework.feedback_pairs gives them)."""
    rows = [("W", [(f"W{superscript(l + 1)}: {W.shape[1]} → {W.shape[0]} neurons", W)
                   for l, W in enumerate(weights)])]
    if feedback_pairs:
        rows.append(("B", [(f"{label} ({B.shape[1]} → {B.shape[0]})", B) for label, B, *_ in feedback_pairs]))
    n_columns = max(1, max(len(panels) for _, panels in rows))
    style = {**STYLE, "figure.figsize": (7.0, 1.9 * len(rows))}  # full page width
    with plt.rc_context(style):
        figure, grid = plt.subplots(len(rows), n_columns, squeeze=False, constrained_layout=True)
        for r, (symbol, panels) in enumerate(rows):
            for c in range(n_columns):
                axes = grid[r, c]
                if c >= len(panels):
                    axes.axis("off")
                    continue
                title, matrix = panels[c]
                values = np.ravel(matrix)
                bins = int(np.clip(np.sqrt(values.size), 10, 80))
                axes.hist(values, bins=bins, color="C0" if symbol == "W" else "C3")
                axes.axvline(0.0, color="0.3", lw=0.6)
                axes.set_title(title)
                axes.set_xlabel("weight")
                axes.xaxis.set_major_locator(MaxNLocator(5, symmetric=True))
                if c == 0:
                    axes.set_ylabel("synapses")
        return save(figure, path)
