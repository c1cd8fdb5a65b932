"""The BPTT baseline: BioGrad's LIF network (same constants, initial weights, inputs and decoding)
trained by backprop through time with the same pseudo-derivative (apical.circuits.bptt), Adam or
plain gradient descent on the cross-entropy of the output spike counts. numpy arithmetic on every
device. config.py: the ``[bp]`` section (its soma's keys and learning rate)."""

from pathlib import Path

from apical.circuits.soma_keys import check_soma
from apical.circuits.bp.config import SECTION
from apical.circuits.framework import FrameworkSpec, lazy

_CONFIGS = Path(__file__).resolve().parents[2] / "runs" / "configs"


_build = lazy("apical.circuits.bp.framework:BPFramework")
_claims = lazy("apical.circuits.bp.claims:claims")


def _check_config(config):
    check_soma(config, "bp")


FRAMEWORK = FrameworkSpec(name="bp", title="BPTT baseline", factory=_build, section=SECTION,
                          check_config=_check_config, claims=_claims,
                          example_config=_CONFIGS / "mnist-bp.toml", order=20, optimizers=("sgd", "adam"),
                          computes_on="numpy")  # BPTT in numpy, whatever run.device says
