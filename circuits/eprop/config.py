"""The ``[eprop]`` config section: e-prop's own keys (docs/models/eprop.md). The hidden layer's
size (one recurrent layer), T and dt come from ``[model]``; η and M from ``[learning]``; B from
``seeds.feedback``."""

from __future__ import annotations

from dataclasses import dataclass, field

from brian2 import Quantity, ms

from apical.circuits.framework import ConfigError, ConfigSection
from apical.models.surrogate import FAMILIES


@dataclass(frozen=True)
class EpropConfig:
    """A recurrent layer of LIF or ALIF cells with a leaky softmax readout, trained by e-prop
    (Bellec et al. 2020; defaults: NEST's e-prop examples)."""

    neuron: str = "lif"  # "lif", or "alif" (adaptive threshold, eq. 22)
    tau_m: Quantity = field(default_factory=lambda: 20 * ms)  # τ_m of the recurrent cells
    tau_out: Quantity = field(default_factory=lambda: 20 * ms)  # τ_out of the readout (κ)
    tau_a: Quantity = field(default_factory=lambda: 2000 * ms)  # τ_a, threshold adaptation (ALIF)
    beta: float = 0.0174  # β, adaptation strength per spike (NEST's adapt_beta; ALIF)
    threshold: float = 0.6  # v_th (NEST's classification examples)
    surrogate: str = "triangular"  # family of ψ (models/surrogate.py)
    gamma: float = 0.3  # γ, ψ = γ/v_th at the threshold
    width: float = 1.0  # half width of ψ in units of v_th
    scaled_input: bool = True  # synaptic inputs × (1 − α), readout × (1 − κ), as NEST and the authors' code
    feedback: str = "random"  # "random" (fixed random B, seeds.feedback) or "symmetric" (B = W_outᵀ)
    readout_window: int = 10  # the error counts in the last this many steps of a sample (m = 1 there)
    c_reg: float = 300.0  # c_reg, firing-rate regularisation
    target_rate: float = 10.0  # f*, target rate of the recurrent cells in spikes/s


SECTION = ConfigSection("eprop", EpropConfig, bounds={
    "tau_m": [(">", 0)], "tau_out": [(">", 0)], "tau_a": [(">", 0)], "beta": [(">=", 0)], "threshold": [(">", 0)],
    "gamma": [(">", 0)], "width": [(">", 0)], "readout_window": [(">=", 1)], "c_reg": [(">=", 0)],
    "target_rate": [(">=", 0)],
}, choices={"neuron": ("lif", "alif"), "surrogate": FAMILIES, "feedback": ("random", "symmetric")})


def check_config(config) -> None:
    """One recurrent hidden layer; the error window inside the sample."""
    if len(config.model.hidden) != 1:
        raise ConfigError(f"config key 'model.hidden': e-prop trains one recurrent layer, got "
                          f"{list(config.model.hidden)}; give one size, e.g. [200]")
    if config.eprop.readout_window > config.model.time_steps:
        raise ConfigError(f"config key 'eprop.readout_window': {config.eprop.readout_window} steps do not fit in a "
                          f"sample of model.time_steps = {config.model.time_steps}")
