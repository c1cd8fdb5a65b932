"""apical compare-forms: a checkpoint replayed on Brian2 and on the numpy form agrees in float64."""

from __future__ import annotations

import numpy as np
import pytest

from apical.analysis.alignment import feedback_alignment
from apical.runs.cli import main
from apical.runs.compare_forms import compare_forms
from apical.runs.config import ConfigError, load_config
from apical.runs.train import train

SMALL_WITH_SLEEP = """
[model]
hidden = [20, 12]
time_steps = 8
[biograd]
error_start = 2
feedback_init = "random"
sleep = true
sleep_steps = 10
sleep_batch = 4
sleep_learning_rate = 1e-3
[learning]
learning_rate = 0.02
batch_size = 5
[data]
train_samples = 60
test_samples = 20
[run]
device = "numpy"
precision = "float64"
epochs = 1
eval_every = 60
checkpoint_every = 20
chunk_samples = 20
"""


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    path = root / "small.toml"
    path.write_text(SMALL_WITH_SLEEP)
    out = root / "run"
    train(load_config(path), out)
    return out


def test_replay_on_brian2_and_numpy_agrees_in_float64(trained_run):
    """From the checkpoint after 40 samples: the last chunk of the run's one epoch and two chunks
    past it (as --resume with more epochs would go on; three sleep phases), wake and sleep on
    Brian2 (runtime) against the numpy form: every weight, bias and feedback entry to 1e-9, every
    output count equal; and the first replayed chunk is the run's own (its checkpoint at 60)."""
    rows = compare_forms(trained_run, chunks=3, checkpoint=str(trained_run / "checkpoints" / "checkpoint-0000000040.npz"),
                         device="runtime")
    assert [row["samples_seen"] for row in rows] == [60, 80, 100]
    for row in rows:
        assert row["output_counts_equal"] == 1.0
        assert set(row["max_difference"]) == {"weights_1", "weights_2", "weights_3", "biases_1", "biases_2",
                                              "biases_3", "feedback_1", "feedback_2"}
        assert max(row["max_difference"].values()) < 1e-9, row["max_difference"]
        for name, value in row["numpy_metrics"].items():
            assert row["brian2_metrics"][name] == pytest.approx(value, abs=1e-6), name
    # The replay trains the chunks the run trained: its state after the first chunk is the run's
    # checkpoint at 60 samples, whose alignment differs from the starting checkpoint's.
    def angles(name):
        with np.load(trained_run / "checkpoints" / name) as stored:
            weights = [stored[f"weights_{l}"] for l in (1, 2, 3)]
            return [entry["angle"] for entry in feedback_alignment(weights, [stored["feedback_1"], stored["feedback_2"]])]

    replayed = [rows[0]["numpy_metrics"][f"alignment_angle_{l}"] for l in (1, 2)]
    assert replayed == pytest.approx(angles("checkpoint-0000000060.npz"), abs=1e-3)
    assert replayed != pytest.approx(angles("checkpoint-0000000040.npz"), abs=1e-2)


def test_frameworks_without_a_numpy_form_are_refused(tmp_path, capsys):
    out = tmp_path / "bp"
    out.mkdir()
    (out / "config.toml").write_text('[model]\nframework = "bioleaf"\nhidden = [10]\n')
    with pytest.raises(ConfigError, match="model.framework"):
        compare_forms(out)
    assert main(["compare-forms", str(out)]) == 2
    assert "no numpy form" in capsys.readouterr().err
