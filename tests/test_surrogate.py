"""The pseudo-derivative families of models/surrogate.py: their Brian2 expressions (runtime and
C++) equal their numpy forms, their values are those of their formulas, and bad names are refused."""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import NeuronGroup, Network, defaultclock, device, ms, set_device

from apical.circuits.bptt import LIFParams, _pseudo_derivative
from apical.models.surrogate import FAMILIES, Surrogate
from apical.runs.config import ConfigError, config_from_dict

THRESHOLD, WIDTH, HEIGHT = 0.3, 0.25, 0.8
# Potentials on both sides of θ, on the window's edges and far outside it.
POTENTIALS = np.array([-1.0, 0.0, 0.05, 0.049999, 0.050001, 0.2, 0.3, 0.42, 0.55, 0.550001, 0.9, 3.0])


def evaluate_in_brian(families, potentials) -> dict[str, np.ndarray]:
    """g of each family computed by a NeuronGroup in one run (on the current device)."""
    groups = {}
    for family in families:
        group = NeuronGroup(len(potentials), "v : 1\ng : 1", namespace={
            "theta": THRESHOLD, "window": WIDTH, "gamma": HEIGHT}, name=f"surrogate_{family}")
        group.v = potentials
        group.run_regularly(f"g = {Surrogate(family, WIDTH, HEIGHT).brian()}", when="start")
        groups[family] = group
    network = Network(*groups.values())
    network.run(defaultclock.dt)
    return {family: np.asarray(group.g[:]) for family, group in groups.items()}


def test_brian2_runtime_equals_numpy_for_every_family():
    set_device("runtime")  # a standalone test earlier on this worker may have left its device selected
    found = evaluate_in_brian(FAMILIES, POTENTIALS)
    for family in FAMILIES:
        expected = Surrogate(family, WIDTH, HEIGHT).numpy(POTENTIALS, THRESHOLD)
        np.testing.assert_allclose(found[family], expected, rtol=0, atol=1e-15, err_msg=family)


@pytest.mark.standalone
def test_brian2_cpp_equals_numpy_for_every_family(tmp_path):
    set_device("cpp_standalone", directory=str(tmp_path / "build"), build_on_run=True)
    try:
        found = evaluate_in_brian(FAMILIES, POTENTIALS)
    finally:
        device.reinit()
        device.activate()
        set_device("runtime")
    for family in FAMILIES:
        expected = Surrogate(family, WIDTH, HEIGHT).numpy(POTENTIALS, THRESHOLD)
        np.testing.assert_allclose(found[family], expected, rtol=0, atol=1e-15, err_msg=family)


def test_values_are_those_of_the_formulas():
    """Checked by hand at x = |v − θ| = 0, w/2 and w (and beyond)."""
    at = THRESHOLD + np.array([0.0, WIDTH / 2, WIDTH, 2 * WIDTH])
    g = {family: Surrogate(family, WIDTH, HEIGHT).numpy(at, THRESHOLD) for family in FAMILIES}
    np.testing.assert_allclose(g["rectangular"], [HEIGHT, HEIGHT, 0.0, 0.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(g["triangular"], [HEIGHT, HEIGHT / 2, 0.0, 0.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(g["exponential"], HEIGHT * np.exp([0.0, -0.5, -1.0, -2.0]), rtol=1e-15)
    np.testing.assert_allclose(g["fast_sigmoid"], HEIGHT / np.array([1.0, 2.25, 4.0, 9.0]), rtol=1e-15)
    assert [f for f in FAMILIES if Surrogate(f).compact] == ["rectangular", "triangular"]
    below = THRESHOLD - np.array([0.1, 0.2])  # symmetric about θ (to the rounding of θ ± x)
    above = THRESHOLD + np.array([0.1, 0.2])
    for family in FAMILIES:
        surrogate = Surrogate(family, WIDTH, HEIGHT)
        np.testing.assert_allclose(surrogate.numpy(below, THRESHOLD), surrogate.numpy(above, THRESHOLD), atol=1e-15)


def test_the_bptt_reference_uses_the_same_definition():
    v = (THRESHOLD + np.linspace(-0.6, 0.6, 25)).reshape(5, 5)
    for family in FAMILIES:
        params = LIFParams(threshold=THRESHOLD, window=WIDTH, gamma=HEIGHT, surrogate=family)
        np.testing.assert_array_equal(_pseudo_derivative(v, None, params, None, 10.0),
                                      Surrogate(family, WIDTH, HEIGHT).numpy(v, THRESHOLD))


def test_bad_names_and_widths_are_refused():
    with pytest.raises(ValueError, match="unknown surrogate 'sigmoid'; choose one of rectangular, triangular"):
        Surrogate("sigmoid")
    with pytest.raises(ValueError, match="width must be > 0"):
        Surrogate("triangular", width=0.0)
    with pytest.raises(ConfigError, match="biograd.surrogate"):
        config_from_dict({"biograd": {"surrogate": "sigmoid"}})
    assert config_from_dict({"biograd": {"surrogate": "fast_sigmoid"}}).biograd.surrogate == "fast_sigmoid"
