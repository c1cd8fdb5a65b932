"""What a finished run records: summary.json (accuracies, timings, seeds, and the code and packages
it ran with, so a figure can always be traced to its run) and the figures of its results directory.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
from pathlib import Path

from apical.circuits import registry
from apical.runs.config import Config
from apical.runs.datasets import DATASETS, Dataset, encode
from apical.runs.files import write_text_atomically
from apical.runs.results import ResultsDirectory, selected_row

EVENT_SAMPLES = 8  # test samples whose operations summary.json counts (apical.analysis.events)
FIGURE_SAMPLES = 20  # test samples the framework's own figures show


def git_commit() -> str:
    """The commit of the code that runs, with "+dirty" when tracked files differ from it."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, check=True)
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("apical", "brian2", "numpy", "scipy", "matplotlib", "brian2cuda"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions


def framework_package(name: str) -> dict[str, str]:
    """The version of the outside package a framework comes from (entry point), by its name."""
    found = registry.distribution(name)
    return {found[0]: found[1]} if found else {}


def selected_summary(metrics: list[dict]) -> dict:
    row = selected_row(metrics)
    if row is None:
        return {}
    return {"selected": {"samples_seen": int(row["samples_seen"]), "epoch": float(row["epoch"]),
                         "validation_accuracy": float(row["validation_accuracy"]),
                         "test_accuracy": float(row["test_accuracy"]), "checkpoint": "checkpoints/selected.npz"}}


def run_summary(config: Config, config_path, framework, progress: dict, metrics: list[dict],
                wall_seconds: float) -> dict:
    """summary.json's record of a finished run; ``progress`` is the driver's (samples, timings, commits)."""
    seen, commits = progress["samples_seen"], progress["git_commits"]
    return {
        "framework": config.model.framework,
        "final_test_accuracy": float(metrics[-1]["test_accuracy"]),
        "initial_test_accuracy": progress.get("initial_test_accuracy"),  # None: resumed from a run made before it
        "best_test_accuracy": max(float(r["test_accuracy"]) for r in metrics),
        **selected_summary(metrics),
        "samples_seen": seen,
        "epochs": config.run.epochs,
        "network": list(framework.settings.sizes),
        "device": config.run.device,
        "config_file": config_path,
        "git_commit": commits[0],  # the commit the run started from
        "git_commits": commits,  # more than one when it was resumed on other code
        "versions": {**package_versions(), **framework_package(config.model.framework)},
        "seeds": dataclasses.asdict(config.seeds),
        "timings": {
            "compile_seconds": round(framework.compile_seconds, 2),
            "train_seconds": round(progress["train_seconds"], 2),
            "eval_seconds": round(progress["eval_seconds"], 2),
            "wall_seconds": round(wall_seconds, 2),
            "train_ms_per_sample": round(1e3 * progress["train_seconds"] / max(seen, 1), 3),
        },
    }


def finish_run(results: ResultsDirectory, config: Config, framework, dataset: Dataset, summary: dict,
               initial_metrics: dict | None) -> None:
    """The figures of a finished run (``initial_metrics``: the framework's metrics before training) and
    what its samples cost in events, then summary.json, written last: a summary marks a finished run
    (sweeps skip it), figures included."""
    from apical.analysis.events import event_summary
    from apical.analysis.figures import learning_curve
    from apical.analysis.report_figures import alignment_from_metrics

    metrics = results.read_metrics()
    alignment_from_metrics(metrics, initial_metrics, results.figures / "feedback_alignment")
    shown = min(FIGURE_SAMPLES, len(dataset.test_labels))
    test_spikes = encode(dataset.test_inputs[:shown], config.model.time_steps, config.seeds.input, "test", 0)
    # What a training and an inference sample cost in events and energy, on the trained network.
    counted = min(EVENT_SAMPLES, shown)
    events = event_summary(framework, test_spikes[:counted], dataset.test_labels[:counted])
    if events is not None:
        summary["events"] = events
    framework.figures(results.figures, test_spikes, dataset.test_labels[:shown])
    kind = DATASETS[config.data.dataset]
    title = registry.get(config.model.framework).run_title(config)
    learning_curve(metrics, results.figures / "learning_curve", title=f"{title} on {kind.title}, "
                   f"{'-'.join(map(str, framework.settings.sizes))}", initial=summary["initial_test_accuracy"])
    write_text_atomically(results.path / "summary.json", json.dumps(summary, indent=2) + "\n")
