"""`apical compare`: configs trained on a shared budget through the sweep machinery, results
directories read and analysed, one table (markdown and CSV) whose numbers are those of each run's
summary.json and analysis.json, and one figure."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from apical.runs.cli import main as cli
from apical.runs.config import config_to_toml, load_config

pytestmark = pytest.mark.xdist_group("test_compare")

TINY = {
    "biograd": ['model.framework="biograd"', "model.hidden=[12]", "model.time_steps=8", "biograd.error_start=2",
                'run.device="runtime"', "learning.batch_size=10", "biograd.sleep=false"],
    "bp": ['model.framework="bp"', "model.hidden=[12]", "model.time_steps=8",
           'run.device="runtime"', "learning.batch_size=10"],
}


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """Two tiny configs (BioGrad and its BPTT baseline) trained on a shared budget of 40 training
    and 20 test digits, compared into a markdown file's section."""
    root = tmp_path_factory.mktemp("compare")
    configs = []
    for name, overrides in TINY.items():
        path = root / f"tiny-{name}.toml"
        path.write_text(config_to_toml(load_config("runs/configs/mnist-quick.toml", overrides)))
        configs.append(path)
    document = root / "results.md"
    document.write_text("# Results\n\n<!-- report:table -->\nstale table\n<!-- /report:table -->\n\nafter\n")
    out = root / "out"
    assert cli(["compare", *map(str, configs), "--train-samples", "40", "--test-samples", "20", "--out", str(out),
                "--into", str(document), "--section", "table"]) == 0
    return out, document


def test_each_config_trains_on_the_shared_budget(compared):
    out, _ = compared
    for name in TINY:
        summary = json.loads((out / f"tiny-{name}" / "summary.json").read_text())
        config = load_config(out / f"tiny-{name}" / "config.toml")
        assert summary["samples_seen"] == 40 and config.data.test_samples == 20
        assert config.data.validation_samples == 0 and config.run.epochs == 1
        assert (out / f"tiny-{name}" / "analysis.json").exists()


def test_the_csv_holds_each_runs_own_numbers(compared):
    out, _ = compared
    with open(out / "compare.csv", newline="") as handle:
        rows = {row["framework_name"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(TINY)
    for name, row in rows.items():
        summary = json.loads((out / f"tiny-{name}" / "summary.json").read_text())
        analysis = json.loads((out / f"tiny-{name}" / "analysis.json").read_text())
        assert float(row["test_accuracy"]) == pytest.approx(100 * summary["final_test_accuracy"], rel=1e-5)
        assert float(row["train_ms_per_sample"]) == pytest.approx(summary["timings"]["train_ms_per_sample"], rel=1e-5)
        training = summary["events"]["training"]
        assert float(row["synaptic_events_per_training_sample"]) == pytest.approx(training["total_synaptic_events"],
                                                                                 rel=1e-5)
        assert float(row["dense_nJ_per_training_sample"]) == pytest.approx(training["energy"]["dense_nJ"], rel=1e-5)
        assert row["network"] == "784-12-10" and row["dataset"] == "MNIST"
        for key, claim in analysis["claims"].items():
            mark = {"pass": "✓", "fail": "✗", "info": "info", "n/a": "N/A"}[claim["verdict"]]
            assert row[key] == mark + ("*" if claim["verdict"] != "n/a" and not claim["claimed"] else "")
    assert rows["biograd"]["locality"] == "✓" and rows["bp"]["locality"] == "✗*"
    assert rows["bp"]["chip_nJ_per_training_sample"] == ""  # BPTT has no event-based training
    assert float(rows["biograd"]["chip_nJ_per_training_sample"]) > 0
    assert rows["biograd"]["paper"].startswith("98.13")


def test_the_table_goes_into_the_document_and_names_the_budget(compared):
    out, document = compared
    text = document.read_text()
    assert "stale table" not in text and text.endswith("after\n")
    table = (out / "compare.md").read_text()
    assert table.strip() in text
    assert "Shared budget: 40 training samples × 1 epoch, tested on 20 test samples" in table
    assert table.count("| BioGrad") == 1 and "apical train" in table


def test_the_figure_is_written(compared):
    out, _ = compared
    for suffix in (".png", ".pdf"):
        path = out / "figures" / f"accuracy_vs_energy{suffix}"
        assert path.stat().st_size > 5000


def test_finished_configs_are_not_trained_again(compared, capsys):
    out, _ = compared
    before = (out / "tiny-bp" / "summary.json").stat().st_mtime
    configs = [str(out.parent / f"tiny-{name}.toml") for name in TINY]
    assert cli(["compare", *configs, "--train-samples", "40", "--test-samples", "20", "--out", str(out)]) == 0
    assert "2 trained before, 0 to train" in capsys.readouterr().err
    assert (out / "tiny-bp" / "summary.json").stat().st_mtime == before


def test_directories_compare_without_training(compared, tmp_path):
    out, _ = compared
    assert cli(["compare", str(out / "tiny-bp"), "--out", str(tmp_path)]) == 0
    assert "from finished results directories" in (tmp_path / "compare.md").read_text()


def test_bad_sources_are_one_line(tmp_path, capsys):
    assert cli(["compare", str(tmp_path / "missing")]) == 2
    assert "neither a results directory nor a config file" in capsys.readouterr().err
    assert cli(["compare", "runs/configs/mnist-quick.toml"]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    assert cli(["compare", str(tmp_path)]) == 2  # a folder without summary.json
    assert "no summary.json" in capsys.readouterr().err


def test_configs_train_on_dask_when_asked(compared, tmp_path):
    out, _ = compared
    config = str(out.parent / "tiny-bp.toml")
    assert cli(["compare", config, "--train-samples", "40", "--test-samples", "20", "--workers", "1",
                "--out", str(tmp_path), "--no-analyze"]) == 0
    log = (tmp_path / "tiny-bp" / "train.log").read_text()
    assert "on worker" in log  # the sweep's job runner wrote it, on a Dask worker
    summary = json.loads((tmp_path / "tiny-bp" / "summary.json").read_text())
    reference = json.loads((out / "tiny-bp" / "summary.json").read_text())
    assert summary["final_test_accuracy"] == reference["final_test_accuracy"]  # same config, same seeds
    assert "| BPTT baseline |" in (tmp_path / "compare.md").read_text()


def test_a_device_override_applies_where_the_framework_offers_it():
    """``--set run.device=numpy`` runs each framework's numpy form where it has one and leaves the
    others on their config's own device (BioLeaF has no numpy form); other overrides apply to all."""
    from apical.runs.compare import overrides_for

    overrides = ["data.train_samples=640", "run.device=numpy"]
    assert overrides_for(Path("runs/configs/mnist-sleep.toml"), overrides) == overrides
    assert overrides_for(Path("runs/configs/mnist-scmicro.toml"), ['run.device="numpy"']) == ['run.device="numpy"']
    assert overrides_for(Path("runs/configs/mnist-bioleaf.toml"), overrides) == ["data.train_samples=640"]
    assert overrides_for(Path("runs/configs/mnist-bioleaf.toml"), ["run.device=runtime"]) == ["run.device=runtime"]


def test_a_learning_curve_of_one_evaluation_draws_no_line_for_training(monkeypatch, tmp_path):
    """A run evaluated once (compare's shared budget without run.eval_every) has one accuracy while
    learning: a marker, not a line; the test curve still starts at the evaluation before training."""
    import apical.analysis.figures as figures

    drawn = {}
    monkeypatch.setattr(figures, "save", lambda figure, path: drawn.setdefault("axes", figure.axes[0]) and [])
    figures.learning_curve([{"samples_seen": 640, "train_accuracy": 0.5, "test_accuracy": 0.6}], tmp_path / "c",
                           initial=0.1)
    lines = {line.get_label(): line for line in drawn["axes"].get_lines()}
    train = lines["train (while learning, mean over the run)"]
    assert train.get_linestyle() == "None" and list(train.get_xdata()) == [640]
    test = lines["test (0: before training)"]
    assert list(test.get_xdata()) == [0, 640] and list(test.get_ydata()) == [10.0, 60.0]


def test_a_key_set_on_the_command_replaces_the_budgets_own(tmp_path, monkeypatch):
    """``--set run.eval_every=...`` replaces the budget's ``run.eval_every=0`` (one evaluation per
    epoch), so the command recorded for each row names the key once, with the value that ran."""
    import apical.runs.compare as compare_module

    seen = {}

    def train_configs(configs, overrides, out, workers, scheduler, stream=None):
        seen["overrides"] = overrides
        raise SystemExit(0)

    monkeypatch.setattr(compare_module, "train_configs", train_configs)
    with pytest.raises(SystemExit):
        cli(["compare", "runs/configs/mnist-sleep.toml", "--train-samples", "640", "--set", "run.eval_every=320",
             "--out", str(tmp_path)])
    assert [o for o in seen["overrides"] if o.startswith("run.eval_every")] == ["run.eval_every=320"]
    assert "data.train_samples=640" in seen["overrides"]
