"""BioLeaF (Yang & Li 2021, arXiv 2111.13188), reconstructed from its abstract: pyramidal cells and
SST-like interneurons, four synapse types, apical-gated STDP, equal to backprop of the spiking
error in its special circumstance (docs/models/bioleaf.md).

network.py: the Brian2 microcircuit; oracle.py: its numpy oracle and the backprop references;
config.py: the ``[bioleaf]`` section; framework.py: the adapter; claims.py: ``apical analyze``;
bench.py: its cost per sample.
"""

from pathlib import Path

from apical.circuits.soma_keys import check_soma
from apical.circuits.bioleaf.config import SECTION
from apical.circuits.framework import FrameworkSpec, lazy

_CONFIGS = Path(__file__).resolve().parents[2] / "runs" / "configs"


_build = lazy("apical.circuits.bioleaf.framework:BioLeaFFramework")
_equation_parts = lazy("apical.circuits.bioleaf.framework:equation_parts")
_claims = lazy("apical.circuits.bioleaf.claims:claims")


def _check_config(config):
    check_soma(config, "bioleaf")


_bench = lazy("apical.circuits.bioleaf.bench:main")


FRAMEWORK = FrameworkSpec(name="bioleaf", title="BioLeaF", factory=_build, section=SECTION,
                          check_config=_check_config, claims=_claims,
                          bench=_bench, example_config=_CONFIGS / "mnist-bioleaf.toml", order=30,
                          reference_file=Path(__file__).with_name("reference_equations.json"),
                          equation_parts=_equation_parts,
                          reference_configs=({"model": {"hidden": [5, 4], "time_steps": 6},
                                              "bioleaf": {"error_start": 2}},))
