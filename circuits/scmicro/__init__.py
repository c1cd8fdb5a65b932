"""The SC microcircuit (Yang & Li 2022, arXiv 2205.07292), reconstructed from its abstract:
excitatory pyramidal cells with PV and SST relays, two connectivity types, burst feedback of the
connection's sign with random magnitudes, apical-gated Hebbian rules; its updates equal
sign-concordant feedback alignment (docs/models/scmicro.md).

network.py: the Brian2 microcircuit; oracle.py: its numpy oracle; numpy_form.py: the same learning
batched in numpy; config.py: the ``[scmicro]`` section; framework.py: the adapter; claims.py:
``apical analyze``; bench.py: its cost per sample.
"""

from pathlib import Path

from apical.circuits.framework import FrameworkSpec, lazy
from apical.circuits.scmicro.config import SECTION, check_config

_CONFIGS = Path(__file__).resolve().parents[2] / "runs" / "configs"


_build = lazy("apical.circuits.scmicro.framework:SCMicroFramework")
_equation_parts = lazy("apical.circuits.scmicro.framework:equation_parts")
_claims = lazy("apical.circuits.scmicro.claims:claims")
_bench = lazy("apical.circuits.scmicro.bench:main")


def _describe(config) -> str:
    if config.scmicro.feedback == "transposed":
        return "backprop of the SC spiking error (B = Wᵀ, numpy)"
    return "SC microcircuit" + (" (numpy form)" if config.run.device == "numpy" else "")


FRAMEWORK = FrameworkSpec(name="scmicro", title="SC microcircuit", factory=_build, section=SECTION,
                          check_config=check_config, devices=("cpp", "cuda", "runtime", "numpy"), claims=_claims,
                          bench=_bench, describe=_describe, example_config=_CONFIGS / "mnist-scmicro.toml", order=40,
                          reference_file=Path(__file__).with_name("reference_equations.json"),
                          equation_parts=_equation_parts,
                          # both output errors the references implement
                          reference_configs=tuple({"model": {"hidden": [5, 4], "time_steps": 6},
                                                   "scmicro": {"error_start": 2, "error": error}}
                                                  for error in ("kernel_mse", "softmax")))
