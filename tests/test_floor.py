"""The linear-readout floor (analysis/floor.py) and `apical floor` on recordings the test writes."""

import json

import numpy as np
import pytest

from apical.analysis.floor import fit_softmax_regression, linear_readout_floor
from apical.runs.cli import main
from apical.runs.datasets import nmnist_event_counts


def _blobs(rng, n, n_classes=3, n_features=20, separation=3.0):
    """Classes as Gaussian clouds around random centres: linearly separable at this separation."""
    centres = rng.normal(0, separation, size=(n_classes, n_features))
    labels = rng.integers(0, n_classes, size=n)
    return centres[labels] + rng.normal(size=(n, n_features)), labels


def test_softmax_regression_separates_separable_classes():
    rng = np.random.default_rng(0)
    x, y = _blobs(rng, 400)
    readout = fit_softmax_regression(x[:300], y[:300], 3, penalty=1e-3)
    assert readout.accuracy(x[300:], y[300:]) >= 0.97
    assert readout.weights.shape == (3, 20) and readout.biases.shape == (3,)


def test_softmax_regression_gradient_matches_a_finite_difference():
    # At the optimum the penalised loss's gradient vanishes: a small step either way must not lower it.
    rng = np.random.default_rng(1)
    x, y = _blobs(rng, 60, n_features=4, separation=0.7)
    readout = fit_softmax_regression(x, y, 3, penalty=0.1)
    z = (x - readout.mean) / readout.scale

    def loss(weights, biases):
        scores = z @ weights.T + biases
        scores -= scores.max(axis=1, keepdims=True)
        log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
        return -log_p[np.arange(len(y)), y].mean() + 0.05 * (weights**2).sum()

    best = loss(readout.weights, readout.biases)
    for i, j in [(0, 0), (1, 2), (2, 3)]:
        for step in (1e-3, -1e-3):
            moved = readout.weights.copy()
            moved[i, j] += step
            assert loss(moved, readout.biases) >= best - 1e-9


def test_floor_is_at_chance_when_labels_carry_no_information():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(600, 10))
    y = rng.integers(0, 4, size=600)
    floor = linear_readout_floor(x[:500], y[:500], x[500:], y[500:], 4)
    assert floor.test_accuracy < 0.40  # chance 0.25; 100 test samples
    assert set(floor.validation_accuracy) == {1e-4, 1e-3, 1e-2, 1e-1, 1.0}
    assert floor.n_validation == 50 and floor.n_train == 500 and floor.n_test == 100


def test_floor_chooses_the_penalty_on_validation_only():
    rng = np.random.default_rng(3)
    x, y = _blobs(rng, 300)
    floor = linear_readout_floor(x[:200], y[:200], x[200:], y[200:], 3, penalties=(1e-3, 1e3))
    # An enormous penalty flattens the weights: the validation slice must prefer the small one.
    assert floor.penalty == 1e-3
    assert floor.validation_accuracy[1e-3] > floor.validation_accuracy[1e3]
    assert floor.test_accuracy >= 0.95


def test_floor_bad_input_says_what():
    x, y = np.zeros((10, 3)), np.zeros(10, int)
    with pytest.raises(ValueError, match="labels must lie in"):
        fit_softmax_regression(x, y + 5, 3)
    with pytest.raises(ValueError, match="validation_fraction"):
        linear_readout_floor(x, y, x, y, 3, validation_fraction=1.5)
    with pytest.raises(ValueError, match="one label each"):
        fit_softmax_regression(x, y[:4], 3)


def _encode(events):
    out = bytearray()
    for x, y, p, t in events:
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    return bytes(out)


def _write_recordings(root, split, n, rng):
    """Label k: pixel (k, k) ON fires 3 events within one 5 ms bin, plus 4 events at random pixels."""
    for number in range(1, n + 1):
        label = int(rng.integers(0, 3))
        events = [(label, label, 1, 1000 * (number % 5) + i) for i in range(3)]
        events += [(int(rng.integers(0, 34)), int(rng.integers(0, 34)), int(rng.integers(0, 2)), int(t))
                   for t in np.sort(rng.integers(0, 300_000, size=4))]
        events += [(0, 0, 0, 300_000 + i) for i in range(5)]  # after the window: not counted
        events.sort(key=lambda e: e[3])
        folder = root / "nmnist" / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{number:05d}.bin").write_bytes(_encode(events))


def test_nmnist_event_counts_count_every_event_in_the_window(tmp_path):
    _write_recordings(tmp_path, "Train", 4, np.random.default_rng(4))
    counts, labels = nmnist_event_counts("train", tmp_path, window_us=300_000)
    assert counts.shape == (4, 2312)
    assert counts.sum(axis=1).tolist() == [7] * 4  # 3 + 4 events, the 5 late ones dropped
    on = 34 * 34
    for count, label in zip(counts, labels.astype(int)):
        assert count[on + label * 34 + label] >= 3  # not clipped to one per bin
    with pytest.raises(ValueError, match="window_us"):
        nmnist_event_counts("train", tmp_path, window_us=0)


def test_apical_floor_command_on_written_recordings(tmp_path, capsys):
    rng = np.random.default_rng(5)
    _write_recordings(tmp_path, "Train", 60, rng)
    _write_recordings(tmp_path, "Test", 20, rng)
    out = tmp_path / "floor.json"
    assert main(["floor", "runs/configs/nmnist.toml", "--set", f"data.data_dir={json.dumps(str(tmp_path))}",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "events: test accuracy 100.00%" in printed
    rows = json.loads(out.read_text())["floor"]
    assert rows["events"]["n_train"] == 60 and rows["events"]["n_test"] == 20
    # The label's pixel fires 3 events in one bin: the binned raster (at most one per bin) still reads it.
    assert rows["binned"]["test_accuracy"] == 1.0
