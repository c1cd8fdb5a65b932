"""`apical curves`: test accuracy per epoch of several results directories in one figure."""

from __future__ import annotations

import json

from apical.runs.cli import main

HEADER = "samples_seen,epoch,train_accuracy,test_accuracy,wall_seconds,samples_per_second\n"


def fake_run(directory, accuracies, initial=None):
    directory.mkdir()
    rows = "".join(f"{100 * (e + 1)},{e + 1},0.5,{a},1.0,100\n" for e, a in enumerate(accuracies))
    (directory / "metrics.csv").write_text(HEADER + rows)
    if initial is not None:
        (directory / "summary.json").write_text(json.dumps({"initial_test_accuracy": initial}))
    return directory


def test_curves_draws_runs_and_reference_lines(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from apical.analysis import figures

    drawn = {}
    original = figures.save

    def keep(figure, path):  # read the curves off the figure before it is saved and closed
        axes = figure.axes[0]
        drawn["curves"] = {line.get_label(): list(line.get_ydata()) for line in axes.get_lines()
                           if line.get_linestyle() == "-"}
        drawn["references"] = [(line.get_label(), line.get_ydata()[0]) for line in axes.get_lines()
                               if line.get_linestyle() == "--"]
        return original(figure, path)

    first = fake_run(tmp_path / "a", [0.5, 0.7], initial=0.1)
    second = fake_run(tmp_path / "b", [0.6, 0.8, 0.9])
    monkeypatch.setattr(figures, "save", keep)
    assert main(["curves", f"{first}=rule A", str(second), "--line", "82=floor", "--out", str(tmp_path / "new" / "cmp")]) == 0
    assert (tmp_path / "new" / "cmp.png").stat().st_size > 0 and (tmp_path / "new" / "cmp.pdf").is_file()
    assert drawn["curves"] == {"rule A": [10.0, 50.0, 70.0], "b": [60.0, 80.0, 90.0]}
    assert drawn["references"] == [("floor (82 %)", 82.0)]
    plt.close("all")


def test_curves_refuses_what_is_not_a_results_directory_or_a_line(tmp_path, capsys):
    run = fake_run(tmp_path / "a", [0.5])
    assert main(["curves", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 1
    assert "has no metrics.csv (not a results directory)" in capsys.readouterr().err
    assert main(["curves", str(run), "--line", "floor", "--out", str(tmp_path / "x")]) == 1
    assert "--line 'floor': give ACCURACY=LABEL" in capsys.readouterr().err
