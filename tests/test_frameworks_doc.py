"""The two-layer rule of docs/frameworks.md, run as the page shows it: the block between its
``two-layer`` markers is executed as a module, built on the circuit core, and checked against a
numpy transcription of the equations its docstring states (float64)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "frameworks.md"


@pytest.fixture(scope="module")
def two_layer():
    """The page's code block as the module ``two_layer``."""
    found = re.search(r"<!-- two-layer:begin -->\n```python\n(.*?)```\n<!-- two-layer:end -->", PAGE.read_text(), re.S)
    assert found, "docs/frameworks.md has no two-layer code block between its markers"
    module = types.ModuleType("two_layer")
    sys.modules["two_layer"] = module  # dataclasses look their module up while building the settings
    try:
        exec(compile(found.group(1), str(PAGE), "exec"), module.__dict__)
        yield module
    finally:
        del sys.modules["two_layer"]


def reference(state, spikes, labels, s, learning_rate):
    """The docstring's equations, step by step: weights after the samples and output counts."""
    W1, W2, B = (np.array(state[key], dtype=np.float64) for key in ("weights_1", "weights_2", "feedback_1"))
    leak = float(np.exp(-float(s.dt / s.tau_m)))
    changes = [np.zeros_like(W1), np.zeros_like(W2)]
    counts = np.zeros((len(spikes), len(W2)))
    for k, sample in enumerate(spikes):
        v = [np.zeros(len(W1)), np.zeros(len(W2))]
        traces = [np.zeros(W1.shape[1]), np.zeros(len(W1))]  # x_j, one per presynaptic cell
        eligibility = [np.zeros_like(W1), np.zeros_like(W2)]
        pre = None
        for t in range(s.time_steps):
            pre = sample[t]
            for l, W in enumerate((W1, W2)):
                v[l] *= leak
                traces[l] = s.trace_decay * traces[l] + pre
                v[l] += W @ pre
                psi = (np.abs(v[l] - s.threshold) < s.window).astype(float)
                fired = v[l] > s.threshold
                v[l][fired] = 0.0
                eligibility[l] += np.outer(psi, traces[l])
                pre = fired.astype(float)
            counts[k] += pre
        desired = np.zeros(len(W2))
        desired[labels[k]] = s.target_rate
        output_error = counts[k] / s.time_steps - desired
        for l, modulator in enumerate((B @ output_error, output_error)):
            changes[l] += -modulator[:, None] * eligibility[l] / s.time_steps
        if (k + 1) % s.batch_size == 0:
            for W, change in zip((W1, W2), changes):
                W += learning_rate * change / s.batch_size
                change[:] = 0.0
    return W1, W2, counts


@pytest.mark.oracle
def test_two_layer_rule_of_the_page_equals_its_equations(two_layer):
    """Two minibatches of two samples through 12-6-3 cells: same output spikes, same weights."""
    settings = two_layer.TwoLayerSettings(sizes=(12, 6, 3), time_steps=8, batch_size=2)
    rng = np.random.default_rng(0)
    state = {"weights_1": rng.uniform(0.0, 1.2, (6, 12)), "weights_2": rng.uniform(0.0, 0.8, (3, 6)),
             "feedback_1": rng.standard_normal((6, 3))}
    spikes = (rng.random((4, 8, 12)) < 0.3).astype(float)
    labels = np.array([0, 2, 1, 0])
    learned, counts = two_layer.TwoLayerNetwork(settings, 4).run(state, spikes, labels, learning_rate=0.5)
    W1, W2, expected_counts = reference(state, spikes, labels, settings, 0.5)
    np.testing.assert_array_equal(counts, expected_counts)
    assert 0 < counts.sum() < counts.size * settings.time_steps  # neither silent nor saturated
    np.testing.assert_allclose(learned["weights_1"], W1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(learned["weights_2"], W2, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(learned["feedback_1"], state["feedback_1"])  # B is fixed
    for name in ("weights_1", "weights_2"):
        assert np.abs(learned[name] - state[name]).max() > 1e-2  # the rule moved every layer
