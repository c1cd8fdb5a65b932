"""BioGrad (Tang, Kumar, Polykretis & Michmizos 2021, arXiv 2110.14092): multi-compartment LIF
neurons with per-synapse eligibility traces, an apical error compartment fed by ± error neurons
through direct feedback weights, and a sleep phase that aligns the feedback by a local Hebbian
rule (docs/models/biograd.md).

network.py: the wake network (Brian2); sleep.py: the sleep network; oracle.py: the numpy oracle of
both, sample by sample; numpy_form.py: the same learning batched in numpy; framework.py: the
adapter ``apical train`` runs; config.py: the ``[biograd]`` section; claims.py: what ``apical
analyze`` checks; bench.py: its cost.
"""

from pathlib import Path

from apical.circuits.biograd.config import SECTION
from apical.circuits.soma_keys import check_soma
from apical.circuits.framework import FrameworkSpec, lazy

_CONFIGS = Path(__file__).resolve().parents[2] / "runs" / "configs"


_build = lazy("apical.circuits.biograd.framework:BioGradFramework")
_equation_parts = lazy("apical.circuits.biograd.framework:equation_parts")
_claims = lazy("apical.circuits.biograd.claims:claims")


def _check_config(config):
    from apical.circuits.framework import ConfigError

    check_soma(config, "biograd")
    if config.learning.optimizer == "adam" and config.run.device != "numpy":
        raise ConfigError(
            "config key 'learning.optimizer': 'adam' is stepped by BioGrad's numpy form only (run.device = \"numpy\"); "
            f"the Brian2 network on {config.run.device!r} applies the rule's own step W += ΔW / M inside its run")


_bench = lazy("apical.circuits.biograd.bench:main")


FRAMEWORK = FrameworkSpec(name="biograd", title="BioGrad", factory=_build, section=SECTION,
                          devices=("cpp", "cuda", "runtime", "numpy"), claims=_claims, bench=_bench,
                          optimizers=("sgd", "adam"), check_config=_check_config,
                          example_config=_CONFIGS / "mnist-sleep.toml", order=10,
                          reference_file=Path(__file__).with_name("reference_equations.json"),
                          equation_parts=_equation_parts,
                          # two hidden layers with a sleep phase, and one without: every block its references implement
                          reference_configs=(
                              {"model": {"hidden": [5, 4], "time_steps": 6}, "learning": {"batch_size": 2},
                               "biograd": {"error_start": 2, "sleep": True, "sleep_steps": 4, "sleep_batch": 2}},
                              {"model": {"hidden": [5], "time_steps": 6}, "biograd": {"error_start": 2, "sleep": False}},
                          ))
