"""The ``[bp]`` config section: the BPTT baseline's own keys. Its network is BioGrad's, so its soma
keys are BioGrad's (:class:`~apical.circuits.soma_keys.SomaKeys`, set here for the runs this
section configures); sizes, T and dt come from ``[model]``, M and the optimiser from ``[learning]``."""

from __future__ import annotations

from dataclasses import dataclass

from apical.circuits.soma_keys import SOMA_BOUNDS, SOMA_CHOICES, SOMA_MOVED, SOMA_REPLACES, SomaKeys
from apical.circuits.framework import ConfigSection


@dataclass(frozen=True)
class BPConfig(SomaKeys):
    """BioGrad's LIF network trained by backprop through time (docs/models/biograd.md, "The discrete form")."""

    learning_rate: float = 1e-4  # step size of Adam or plain gradient descent (learning.optimizer) on the BPTT gradient


SECTION = ConfigSection("bp", BPConfig, bounds={**SOMA_BOUNDS, "learning_rate": [(">", 0)]}, choices=SOMA_CHOICES,
                        replaces=SOMA_REPLACES, moved={**SOMA_MOVED, "learning.bp_learning_rate": "learning_rate"})
