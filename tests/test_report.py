"""apical report: mean ± s.d. over seeds per grid point, figures, and tables put into docs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from apical.runs.report import put_into, report

ACCURACY = {("false", 0): 0.90, ("false", 1): 0.92, ("false", 2): 0.94, ("true", 0): 0.80, ("true", 1): 0.84}


def fake_sweep(directory: Path) -> Path:
    """A sweep over biograd.sleep with 3 seeds: five jobs finished, one (sleep=true, seed 2) not."""
    (directory / "sweep.json").parent.mkdir(parents=True, exist_ok=True)
    (directory / "sweep.json").write_text(json.dumps({
        "config_file": "runs/configs/mnist-quick.toml", "set": ["data.train_samples=100"],
        "grid": {"biograd.sleep": ["false", "true"]}, "seeds": 3, "seed_rule": "replicate s: every seed + 1000*s"}))
    for sleep in ("false", "true"):
        for seed in range(3):
            job = directory / f"biograd.sleep={sleep}" / f"seed-{seed}"
            job.mkdir(parents=True)
            accuracy = ACCURACY.get((sleep, seed), 0.5)
            rows = [{"samples_seen": n, "epoch": n / 100, "train_accuracy": 0.5, "test_accuracy": accuracy * n / 100,
                     "wall_seconds": n, "samples_per_second": 10, "alignment_angle_1": 40 + seed,
                     "alignment_norm_ratio_1": 1.0} for n in (50, 100)]
            with open(job / "metrics.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows[: 2 if (sleep, seed) in ACCURACY else 1])
            if (sleep, seed) in ACCURACY:
                (job / "summary.json").write_text(json.dumps({
                    "final_test_accuracy": accuracy, "samples_seen": 100, "timings": {"train_seconds": 4.0 + seed}}))
    return directory


def test_table_is_mean_and_sd_over_seeds(tmp_path):
    sweep = fake_sweep(tmp_path / "sweep")
    written = report(sweep)
    assert written["finished"] == 5 and written["jobs"] == 6
    with open(sweep / "report.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["biograd.sleep"] for r in rows] == ["false", "true"]
    assert (rows[0]["seeds_finished"], rows[1]["seeds_finished"], rows[1]["seeds"]) == ("3", "2", "3")
    assert float(rows[0]["test_accuracy_mean"]) == pytest.approx(92.0)
    assert float(rows[0]["test_accuracy_sd"]) == pytest.approx(2.0)  # s.d. with n - 1
    assert float(rows[1]["test_accuracy_mean"]) == pytest.approx(82.0)
    assert float(rows[0]["alignment_angle_1_mean"]) == pytest.approx(41.0)
    assert float(rows[0]["samples_per_second_mean"]) == pytest.approx((25 + 20 + 100 / 6) / 3, rel=1e-5)
    table = (sweep / "report.md").read_text()
    assert "| false | 3 | 92.00 ± 2.00 | 41.0 ± 1.0 |" in table
    assert "| true | 2/3 | 82.00 ± 2.83 |" in table
    assert "data.train_samples=100" in table and "3 seed replicates" in table
    with open(sweep / "report-jobs.csv") as handle:
        jobs = list(csv.DictReader(handle))
    assert len(jobs) == 6 and jobs[-1]["finished"] == "0" and jobs[-1]["test_accuracy"] == ""


def test_figures(tmp_path):
    sweep = fake_sweep(tmp_path / "sweep")
    report(sweep)
    for name in ("accuracy_vs_biograd.sleep", "learning_curves", "alignment_curves_1"):
        for suffix in (".png", ".pdf"):
            assert (sweep / "figures" / (name + suffix)).stat().st_size > 1000, name + suffix


def test_table_goes_between_markers(tmp_path):
    document = tmp_path / "results.md"
    document.write_text("# Results\n\nbefore\n\n<!-- report:sleep -->\nold table\n<!-- /report:sleep -->\n\nafter\n")
    put_into(document, "sleep", "| new |\n")
    put_into(document, "sleep", "| newer |\n")
    assert document.read_text() == ("# Results\n\nbefore\n\n<!-- report:sleep -->\n| newer |\n"
                                    "<!-- /report:sleep -->\n\nafter\n")
    put_into(document, "other", "| other |")
    assert document.read_text().endswith("after\n\n<!-- report:other -->\n| other |\n<!-- /report:other -->\n")


def test_cli_report_into_a_document(tmp_path):
    sweep = fake_sweep(tmp_path / "sweep")
    document = tmp_path / "results.md"
    document.write_text("# Results\n")
    result = subprocess.run([sys.executable, "-m", "apical.runs.cli", "report", str(sweep), "--into", str(document),
                             "--section", "sleep"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = document.read_text()
    assert "<!-- report:sleep -->" in text and "92.00 ± 2.00" in text
    missing = subprocess.run([sys.executable, "-m", "apical.runs.cli", "report", str(tmp_path)], capture_output=True,
                             text=True)
    assert missing.returncode == 1 and "not a sweep directory" in missing.stderr


def test_learning_curves_start_at_the_evaluation_before_training():
    from apical.runs.report import JobResult, initial_point

    job = JobResult("p/seed-0", "p", {}, 0, summary={"initial_test_accuracy": 0.1, "final_test_accuracy": 0.9})
    assert initial_point(job, "test_accuracy", 100.0) == {0: pytest.approx(10.0)}
    assert initial_point(job, "alignment_angle_1", 1.0) == {}  # no angle was measured before training
    assert initial_point(JobResult("p/seed-1", "p", {}, 1, summary={"final_test_accuracy": 0.9}),
                         "test_accuracy", 100.0) == {}  # a run made before the evaluation at 0 samples
