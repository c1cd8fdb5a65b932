"""What the spike-count readout answered: per-class accuracy, confusion, ties and silence.

Every framework decodes a sample as the output cell with the most spikes, ``argmax(counts)``,
which takes the lowest index when several cells share the maximum. This module measures what
that decoding hides:

- ``confusion[i, j]``: samples of class i decoded as j; per-class accuracy is its diagonal over
  its row sums;
- ties: samples whose maximum count is shared by two or more cells. On those the argmax is a
  rule, not the network's answer; ``accuracy_random_ties`` breaks them uniformly at random (in
  expectation: 1/k for a label among k tied cells) and ``label_among_top`` counts a tie that
  contains the label as right, the most any tie-break could give;
- silence: output cells that fired on no sample (with a pseudo-derivative of bounded support
  they get no learning signal) and samples on which no cell fired (decoded as class 0).

Pure numpy on the counts [N, n_out] and labels [N]; ``apical evaluate DIR --report`` runs it on a
results directory and writes ``evaluation.json``, ``evaluation.md`` and a confusion figure.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["CLASS_NAMES", "readout_report", "readout_markdown", "figure_confusion", "write_readout_report"]

CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "nmnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                      "ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def readout_report(counts, labels) -> dict:
    """Accuracy of the argmax readout and what lies behind it (see the module docstring)."""
    counts = np.asarray(counts)
    labels = np.asarray(labels, dtype=int)
    if counts.ndim != 2 or labels.shape != (counts.shape[0],):
        raise ValueError(f"counts must be [N, n_out] and labels [N], got {counts.shape} and {labels.shape}")
    n, n_out = counts.shape
    if n == 0:
        raise ValueError("no samples to report on")
    if labels.min() < 0 or labels.max() >= n_out:
        raise ValueError(f"labels must lie in 0..{n_out - 1} (one output cell per class)")
    decoded = counts.argmax(axis=1)
    top = counts == counts.max(axis=1, keepdims=True)  # the cells sharing each sample's maximum
    n_top = top.sum(axis=1)
    label_on_top = top[np.arange(n), labels]
    tied = n_top > 1
    confusion = np.zeros((n_out, n_out), dtype=int)
    np.add.at(confusion, (labels, decoded), 1)
    per_class_total = confusion.sum(axis=1)
    per_class = np.where(per_class_total > 0, np.diag(confusion) / np.maximum(per_class_total, 1), np.nan)
    return {
        "samples": int(n),
        "accuracy": float((decoded == labels).mean()),
        "accuracy_random_ties": float(np.mean(label_on_top / n_top)),
        "label_among_top": float(label_on_top.mean()),
        "tied_samples": float(tied.mean()),
        "accuracy_on_tied_samples": float((decoded == labels)[tied].mean()) if tied.any() else None,
        "samples_without_output": float((counts.sum(axis=1) == 0).mean()),
        "silent_outputs": [int(k) for k in np.flatnonzero(counts.sum(axis=0) == 0)],
        "per_class_accuracy": [None if np.isnan(a) else float(a) for a in per_class],
        "per_class_samples": [int(c) for c in per_class_total],
        "confusion": confusion.tolist(),
        "mean_count_of_label_cell": float(counts[np.arange(n), labels].mean()),
    }


def readout_markdown(report: dict, class_names: list[str], title: str) -> str:
    """The report as a short Markdown page: headline numbers, then one row per class."""
    pct = lambda x: "–" if x is None else f"{100 * x:.2f} %"  # noqa: E731
    silent = ", ".join(f"{k} ({class_names[k]})" for k in report["silent_outputs"]) or "none"
    lines = [
        f"# {title}", "",
        f"- samples: {report['samples']}",
        f"- accuracy (argmax, ties to the lowest index): **{pct(report['accuracy'])}**",
        f"- ties broken at random (expected accuracy): {pct(report['accuracy_random_ties'])}",
        f"- label among the cells sharing the maximum (best any tie-break could do): {pct(report['label_among_top'])}",
        f"- samples with a tie for the maximum: {pct(report['tied_samples'])} "
        f"(accuracy on them: {pct(report['accuracy_on_tied_samples'])})",
        f"- samples on which no output cell fired: {pct(report['samples_without_output'])}",
        f"- output cells silent on every sample: {silent}",
        f"- mean spike count of the labelled cell: {report['mean_count_of_label_cell']:.2f}",
        "", "| class | samples | accuracy | most often taken for |", "|---|---:|---:|---|",
    ]
    confusion = np.asarray(report["confusion"])
    for k, name in enumerate(class_names):
        wrong = confusion[k].copy()
        wrong[k] = 0
        confused = f"{class_names[int(wrong.argmax())]} ({wrong.max()})" if wrong.max() > 0 else "–"
        lines.append(f"| {k} {name} | {report['per_class_samples'][k]} | {pct(report['per_class_accuracy'][k])} "
                     f"| {confused} |")
    return "\n".join(lines) + "\n"


def figure_confusion(report: dict, class_names: list[str], title: str, path) -> list:
    """The confusion matrix as row fractions (each true class sums to 1), with per-class accuracy,
    in the project's figure style (one paper column, analysis.figures.STYLE)."""
    from apical.analysis.figures import STYLE, plt, save

    confusion = np.asarray(report["confusion"], dtype=float)
    fractions = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    n = len(class_names)
    with plt.rc_context({**STYLE, "figure.figsize": (3.4, 3.2)}):
        fig, ax = plt.subplots(layout="constrained")
        image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                if fractions[i, j] >= 0.0095:  # cells that print as at least 1 %
                    ax.text(j, i, f"{100 * fractions[i, j]:.0f}", ha="center", va="center", fontsize=5,
                            color="white" if fractions[i, j] > 0.6 else "black")
        long_names = max(len(name) for name in class_names) > 2  # Fashion-MNIST's words, not digits
        ax.set_xticks(range(n), class_names, rotation=45 if long_names else 0, ha="right" if long_names else "center",
                      fontsize=6)
        ax.set_yticks(range(n), [f"{name} ({100 * a:.1f} %)" if a is not None else name
                                 for name, a in zip(class_names, report["per_class_accuracy"])], fontsize=6)
        ax.spines[["top", "right"]].set_visible(True)
        ax.set_xlabel("decoded as (argmax of output spike counts)")
        ax.set_ylabel("true class (its accuracy)")
        ax.set_title(f"{title}\naccuracy {100 * report['accuracy']:.2f} %, ties {100 * report['tied_samples']:.1f} %, "
                     f"no output {100 * report['samples_without_output']:.1f} %", fontsize=7)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class (cells: %)")
        return save(fig, path)


def write_readout_report(directory, counts, labels, dataset_name: str, framework: str, checkpoint) -> list[str]:
    """Write evaluation.json, evaluation.md and figures/confusion.{png,pdf} into a results
    directory; returns the lines to print. ``dataset_name`` is ``data.dataset``; ``framework`` the
    run's title as figures name it elsewhere (the learning curve's: "SC microcircuit")."""
    directory = Path(directory)
    names = CLASS_NAMES.get(dataset_name, [str(k) for k in range(np.asarray(counts).shape[1])])
    report = readout_report(counts, labels)
    report["checkpoint"] = Path(checkpoint).name
    report["dataset"] = dataset_name
    dataset = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "nmnist": "N-MNIST",
               "cifar10": "CIFAR-10"}.get(dataset_name, dataset_name)
    what, where = f"{framework} on {dataset}", f"{directory.name}, {Path(checkpoint).name}"
    title = f"{what} ({where})"
    (directory / "evaluation.json").write_text(json.dumps(report, indent=1) + "\n")
    (directory / "evaluation.md").write_text(readout_markdown(report, names, title))
    (directory / "figures").mkdir(exist_ok=True)
    figures = figure_confusion(report, names, f"{what}\n{where}", directory / "figures" / "confusion")  # one column
    worst = int(np.nanargmin([np.nan if a is None else a for a in report["per_class_accuracy"]]))
    return [
        f"ties for the maximum: {100 * report['tied_samples']:.1f}% of samples; ties at random: "
        f"{100 * report['accuracy_random_ties']:.2f}%; label among the top: {100 * report['label_among_top']:.2f}%",
        f"no output spike: {100 * report['samples_without_output']:.1f}% of samples; silent output cells: "
        + (", ".join(names[k] for k in report["silent_outputs"]) or "none"),
        f"weakest class: {names[worst]} ({100 * report['per_class_accuracy'][worst]:.1f}%)",
        f"wrote {directory / 'evaluation.json'}, {directory / 'evaluation.md'}, {figures[0]}",
    ]
