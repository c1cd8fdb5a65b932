"""Readout diagnostics (analysis/readout.py, `apical evaluate --report`) against hand counts."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from apical.analysis.readout import CLASS_NAMES, readout_markdown, readout_report

# Four samples, three output cells (cell 2 never fires):
#   0: label 0, counts (3, 1, 0) -> right, no tie
#   1: label 1, counts (2, 2, 0) -> tie of cells 0 and 1, argmax says 0: wrong; at random 1/2
#   2: label 1, counts (0, 0, 0) -> no output, all three tied, decoded 0: wrong; at random 1/3
#   3: label 2, counts (0, 4, 0) -> wrong, no tie
COUNTS = np.array([[3, 1, 0], [2, 2, 0], [0, 0, 0], [0, 4, 0]])
LABELS = np.array([0, 1, 1, 2])


def test_report_matches_hand_counts():
    report = readout_report(COUNTS, LABELS)
    assert report["samples"] == 4
    assert report["accuracy"] == pytest.approx(1 / 4)
    assert report["accuracy_random_ties"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    assert report["label_among_top"] == pytest.approx(3 / 4)
    assert report["tied_samples"] == pytest.approx(2 / 4)
    assert report["accuracy_on_tied_samples"] == pytest.approx(0.0)
    assert report["samples_without_output"] == pytest.approx(1 / 4)
    assert report["silent_outputs"] == [2]
    assert report["confusion"] == [[1, 0, 0], [2, 0, 0], [0, 1, 0]]
    assert report["per_class_accuracy"] == [1.0, 0.0, 0.0]
    assert report["per_class_samples"] == [1, 2, 1]
    assert report["mean_count_of_label_cell"] == pytest.approx((3 + 2 + 0 + 0) / 4)


def test_report_agrees_with_the_argmax_on_random_counts():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 6, size=(500, 10))
    labels = rng.integers(0, 10, size=500)
    report = readout_report(counts, labels)
    assert report["accuracy"] == pytest.approx(np.mean(counts.argmax(1) == labels))
    assert np.trace(np.array(report["confusion"])) == int(np.sum(counts.argmax(1) == labels))
    assert report["accuracy"] <= report["label_among_top"] and report["accuracy_random_ties"] <= report["label_among_top"]
    text = readout_markdown(report, CLASS_NAMES["fashion-mnist"], "random")
    assert text.count("\n| ") == 11 and "ankle boot" in text


def test_bad_shapes_and_labels_are_refused():
    with pytest.raises(ValueError, match="counts must be"):
        readout_report(COUNTS, LABELS[:3])
    with pytest.raises(ValueError, match="labels must lie"):
        readout_report(COUNTS, np.array([0, 1, 3, 0]))


def test_evaluate_report_writes_json_markdown_and_figure(tmp_path):
    from apical.runs.config import load_config
    from apical.runs.train import train

    config_path = tmp_path / "tiny.toml"
    config_path.write_text('[model]\nhidden = [20]\ntime_steps = 6\n[biograd]\nerror_start = 2\n'
                           '[data]\ntrain_samples = 60\ntest_samples = 50\nvalidation_samples = 20\n'
                           '[run]\ndevice = "runtime"\nchunk_samples = 30\n')
    out = tmp_path / "run"
    train(load_config(config_path), out)
    result = subprocess.run([sys.executable, "-m", "apical.runs.cli", "evaluate", str(out), "--checkpoint", "selected",
                             "--report"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "(selected.npz)" in result.stdout and "ties for the maximum" in result.stdout
    report = json.loads((out / "evaluation.json").read_text())
    assert report["checkpoint"] == "selected.npz" and report["samples"] == 50
    assert sum(report["per_class_samples"]) == 50
    assert f"test accuracy: {100 * report['accuracy']:.2f}%" in result.stdout
    assert (out / "evaluation.md").read_text().startswith("# BioGrad on MNIST (")  # the figures' names
    assert (out / "figures" / "confusion.png").stat().st_size > 10_000
