"""The ``[bioleaf]`` config section: BioLeaF's own keys (docs/models/bioleaf.md), BioGrad's soma
keys among them (its pyramidal soma is BioGrad's). Sizes, T and dt come from ``[model]``, η and M
of the forward synapses from ``[learning]``."""

from __future__ import annotations

from dataclasses import dataclass, field

from brian2 import Quantity, ms

from apical.circuits.soma_keys import SOMA_BOUNDS, SOMA_CHOICES, SOMA_MOVED, SOMA_REPLACES, SomaKeys
from apical.circuits.framework import ConfigSection


@dataclass(frozen=True)
class BioLeaFConfig(SomaKeys):
    """The BioLeaF microcircuit (Yang & Li 2021, reconstructed: docs/models/bioleaf.md); sizes, T
    and dt come from [model], η and M of the forward synapses from [learning]."""

    error_start: int = 5  # t0, first step from which the spiking error counts
    feedback_init: str = "forward_product"  # B init: "forward_product" (Wᵀ of the layer above) or "random"
    tau_apical: Quantity = field(default_factory=lambda: 1 * ms)  # τ_a, leak of the apical compartment
    tau_psp: Quantity = field(default_factory=lambda: 5 * ms)  # τ_psp, PSP kernel of the spiking error
    burst_gain: float = 1.0  # c, burst size per unit of (window × apical potential)
    nudging: float = 0.0  # β, somatic nudging of the output cells by their apical error (0 = none)
    desired_interval: int = 1  # the labelled output should fire every this many steps from t0
    interneuron_init: str = "mirror"  # "mirror" (self-predicting: W_IP = W above, W_PI = -B) or "random"
    interneuron_learning_rate: float = 0.0  # η_IP of the pyramidal -> interneuron synapses
    apical_learning_rate: float = 0.0  # η_PI of the interneuron -> apical synapses
    mirror_plasticity: bool = False  # B, W_IP, W_PI also learn by mirror STDP at η (the special circumstance persists)


SECTION = ConfigSection("bioleaf", BioLeaFConfig, bounds={
    **SOMA_BOUNDS, "error_start": [(">=", 0)], "tau_apical": [(">", 0)], "tau_psp": [(">", 0)],
    "burst_gain": [(">", 0)], "nudging": [(">=", 0)],
    "desired_interval": [(">=", 1)], "interneuron_learning_rate": [(">=", 0)], "apical_learning_rate": [(">=", 0)],
}, choices={**SOMA_CHOICES, "feedback_init": ("forward_product", "random"), "interneuron_init": ("mirror", "random")},
    replaces=SOMA_REPLACES,
    moved={**SOMA_MOVED, "model.error_start": "error_start", "model.feedback_init": "feedback_init"})
