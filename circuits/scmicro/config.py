"""The ``[scmicro]`` config section: the SC microcircuit's own keys (docs/models/scmicro.md),
BioGrad's soma keys among them (its pyramidal soma is BioGrad's). Sizes, T and dt come from
``[model]``, η and M of the forward synapses from ``[learning]``."""

from __future__ import annotations

from dataclasses import dataclass, field

from brian2 import Quantity, ms

from apical.circuits.soma_keys import (SOMA_BOUNDS, SOMA_CHOICES, SOMA_MOVED, SOMA_REPLACES, SomaKeys,
                                            check_soma)
from apical.circuits.framework import ConfigError, ConfigSection


@dataclass(frozen=True)
class SCMicroConfig(SomaKeys):
    """The SC microcircuit (Yang & Li 2022, reconstructed: docs/models/scmicro.md); sizes, T and dt
    come from [model], η and M of the forward synapses from [learning]."""

    error_start: int = 5  # t0, first step from which the spiking error counts
    tau_apical: Quantity = field(default_factory=lambda: 1 * ms)  # τ_a, leak of the apical compartment
    tau_psp: Quantity = field(default_factory=lambda: 5 * ms)  # τ_psp, PSP kernel of the spiking error
    burst_gain: float = 1.0  # c, burst size per unit of (window × apical potential)
    desired_interval: int = 1  # the labelled output should fire every this many steps from t0
    feedback_scale: float = 1.0  # s: feedback magnitudes R ~ U(f·s/√n, s/√n] (seeds.feedback), n the fan-in of the layer above
    feedback_floor: float = 0.0  # f: the smallest feedback magnitude, as a fraction of the largest (0: U(0, s/√n])
    nudging: float = 0.0  # β, the target's somatic drive of the output cells (β·A; 0 = none: the apical error never moves a spike)
    feedback: str = "sign_concordant"  # B = sign(Wᵀ)·R, fixed random magnitudes (the circuit); "transposed":
    #   B = Wᵀ before every minibatch — spatial backprop of the same spiking error, a reference
    #   for comparisons, run.device = "numpy" only (no circuit carries Wᵀ back)
    error: str = "kernel_mse"  # the global spiking error at the output: "kernel_mse" (A = d − o, PSP-filtered
    #   spike trains) or "softmax" (A = y − softmax(κ·o), a cross-entropy on the same traces)
    error_gain: float = 2.0  # κ of the softmax error (per unit of PSP trace; a cell firing every step has o ≈ 1.58)


SECTION = ConfigSection("scmicro", SCMicroConfig, bounds={
    **SOMA_BOUNDS, "error_start": [(">=", 0)], "tau_apical": [(">", 0)], "tau_psp": [(">", 0)],
    "burst_gain": [(">", 0)], "desired_interval": [(">=", 1)],
    "feedback_scale": [(">", 0)], "feedback_floor": [(">=", 0), ("<", 1)], "nudging": [(">=", 0)],
    "error_gain": [(">", 0)],
}, choices={**SOMA_CHOICES, "feedback": ("sign_concordant", "transposed"), "error": ("kernel_mse", "softmax")},
    replaces=SOMA_REPLACES, moved={**SOMA_MOVED, "model.error_start": "error_start"})


def check_config(config) -> None:
    """Combinations the circuit cannot run: B = Wᵀ exists only in the numpy form; the soma's keys
    against [model]."""
    check_soma(config, "scmicro")
    if config.scmicro.feedback == "transposed" and config.run.device != "numpy":
        raise ConfigError(
            "config key 'scmicro.feedback': \"transposed\" (B = Wᵀ, backprop of the spiking error) exists only "
            f"in the numpy form (run.device = \"numpy\"), not on {config.run.device!r}"
        )
