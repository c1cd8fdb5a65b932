"""e-prop (Bellec, Scherr, Subramoney, Hajek, Salaj, Legenstein & Maass 2020, Nat. Commun. 11:3625):
a recurrent layer of LIF or ALIF cells and a leaky readout, trained online by eligibility traces
times a learning signal broadcast from the output error (docs/models/eprop.md).

network.py: the Brian2 network; oracle.py: its numpy oracle, synapse by synapse; numpy_form.py:
the same learning batched in numpy (``--device numpy``); config.py: the ``[eprop]`` section;
framework.py: the adapter ``apical train`` runs; bptt.py: backprop through time of the same network;
claims.py: what ``apical analyze`` checks; bench.py: its cost.
"""

from pathlib import Path

from apical.circuits.eprop.config import SECTION, check_config
from apical.circuits.framework import FrameworkSpec, lazy

_CONFIGS = Path(__file__).resolve().parents[2] / "runs" / "configs"


_build = lazy("apical.circuits.eprop.framework:EpropFramework")
_claims = lazy("apical.circuits.eprop.claims:claims")
_bench = lazy("apical.circuits.eprop.bench:main")


def _describe(config) -> str:
    e = config.eprop
    name = f"e-prop ({e.neuron.upper()}, {e.feedback} feedback)"
    return name + (" (numpy form)" if config.run.device == "numpy" else "")


FRAMEWORK = FrameworkSpec(name="eprop", title="e-prop", factory=_build, section=SECTION, check_config=check_config,
                          devices=("cpp", "cuda", "runtime", "numpy"), describe=_describe, claims=_claims, bench=_bench,
                          example_config=_CONFIGS / "eprop-mnist.toml", order=50)
