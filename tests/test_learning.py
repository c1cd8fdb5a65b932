"""Behaviour, not equality: each built-in framework's Brian2 network, as the source defines it,
still learns MNIST well above chance (10 %) in a few hundred digits. These tests carry no
``oracle`` mark, so after editing an equation ``pytest -m "not oracle"`` says whether the edited
model still learns (docs/editing.md). They run the network on Brian2's runtime device (numpy code
generation, nothing to compile: about a third of the time of a cpp_standalone build and run here);
that the compiled program computes the same numbers is what the ``oracle`` tests check."""

from __future__ import annotations

import pytest

from apical.runs.config import config_from_dict
from apical.runs.train import train

CHANCE = 0.1
# Example configs' models at a small size; the digits and their order are the same for all three.
SMALL = {
    "biograd": {"model": {"framework": "biograd", "hidden": [100]},
                "learning": {"learning_rate": 2e-3, "batch_size": 1}},
    "bioleaf": {"model": {"framework": "bioleaf", "hidden": [100]},
                "learning": {"learning_rate": 2e-3, "batch_size": 10}},
    "scmicro": {"model": {"framework": "scmicro", "hidden": [100]},
                "learning": {"learning_rate": 2e-3, "batch_size": 10}},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_small_network_learns_well_above_chance(tmp_path, name):
    tree = {**SMALL[name],
            "data": {"dataset": "mnist", "train_samples": 600, "test_samples": 200, "validation_samples": 0},
            "run": {"device": "runtime", "epochs": 1, "chunk_samples": 200, "eval_every": 600, "checkpoint_every": 0}}
    summary = train(config_from_dict(tree), tmp_path / name)
    assert summary["final_test_accuracy"] >= 3 * CHANCE, (
        f"{name} reached {100 * summary['final_test_accuracy']:.1f} % on 200 test digits after 600 training digits: "
        "no better than a few times chance")
