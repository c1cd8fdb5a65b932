"""A single layer of LIF cells trained by the delta rule on spike counts: an Apical framework kept
outside the Apical package, as a lab would keep its own rule (docs/frameworks.md).

model.py: the equations; network.py: the circuit on Apical's core; numpy_form.py: the same
learning in numpy; config.py: the ``[delta]`` section; framework.py: the adapter ``apical train``
runs. pyproject.toml declares ``FRAMEWORK`` in the entry-point group ``apical.frameworks``.
"""

from pathlib import Path

from apical.circuits.framework import ClaimsResult, FrameworkSpec, lazy
from apical_delta.config import SECTION, check_config


_build = lazy("apical_delta.framework:DeltaFramework")


def _claims(context) -> ClaimsResult:
    """The generic checks of ``apical analyze`` suffice; the rule makes no claim about signs."""
    return ClaimsResult(restated={"dale": "Neurons obey Dale's law (not claimed by the delta rule)"}, unclaimed=["dale"])


FRAMEWORK = FrameworkSpec(name="delta", title="Delta rule", factory=_build, section=SECTION,
                          check_config=check_config, devices=("cpp", "cuda", "runtime", "numpy"), claims=_claims,
                          example_config=Path(__file__).resolve().parents[1] / "delta.toml")
