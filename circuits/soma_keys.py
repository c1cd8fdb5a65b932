"""The config keys of the discrete LIF soma of Tang et al. (2021), which BioGrad, the BP baseline,
BioLeaF and the SC microcircuit all build: each of their sections (``[biograd]``, ``[bp]``,
``[bioleaf]``, ``[scmicro]``) holds its own copy of these keys, so a config says in one place what
the framework it runs reads (docs/config.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from brian2 import Quantity

from apical.circuits.framework import ConfigError
from apical.models.surrogate import FAMILIES


@dataclass(frozen=True)
class SomaKeys:
    """BioGrad's discrete LIF soma (Tang et al. 2021): leak, threshold and pseudo-derivative."""

    leak: float | None = 0.3  # λ, membrane decay per step; unset when tau_m is given
    tau_m: Quantity | None = None  # membrane time constant; if given, λ = exp(-dt / tau_m)
    threshold: float = 0.3  # θ, firing threshold (strict: v > θ)
    window: float = 0.3  # w, half-width of the pseudo-derivative window |v - θ| < w
    gamma: float = 1.0  # γ, height of the pseudo-derivative
    surrogate: str = "rectangular"  # family of the pseudo-derivative, width w, height γ (docs/editing.md)

    def leak_per_step(self, dt: Quantity) -> float:
        """λ = leak, or exp(-dt / tau_m) when tau_m is given (dt: model.dt)."""
        if self.tau_m is not None:
            return math.exp(-float(dt / self.tau_m))
        return float(self.leak)

    def membrane_time_constant(self, dt: Quantity) -> Quantity:
        """tau_m, or the one that gives λ per step of dt: dt / ln(1/λ)."""
        if self.tau_m is not None:
            return self.tau_m
        return dt / math.log(1.0 / self.leak)


SOMA_KEYS = ("leak", "tau_m", "threshold", "window", "gamma", "surrogate")
SOMA_BOUNDS = {"leak": [(">", 0), ("<", 1)], "tau_m": [(">", 0)], "threshold": [(">", 0)], "window": [(">", 0)],
               "gamma": [(">", 0)]}
SOMA_CHOICES = {"surrogate": FAMILIES}
SOMA_REPLACES = {"tau_m": "leak"}  # tau_m is the other way of giving λ
SOMA_MOVED = {f"model.{key}": key for key in SOMA_KEYS}  # where these keys were before each framework had its own


def check_soma(config, section: str) -> None:
    """The soma's keys of ``[section]`` against [model]: λ from tau_m must lie in (0, 1), and the
    error window (where the section has one) must start inside the sample."""
    keys = getattr(config, section)
    if keys.tau_m is not None and not 0.0 < keys.leak_per_step(config.model.dt) < 1.0:
        raise ConfigError(f"config key '{section}.tau_m' gives a leak per step exp(-dt/tau_m) = "
                          f"{keys.leak_per_step(config.model.dt)!r}, outside (0, 1)")
    error_start = getattr(keys, "error_start", None)
    if error_start is not None and error_start >= config.model.time_steps:
        raise ConfigError(f"config key '{section}.error_start' must be < model.time_steps "
                          f"({config.model.time_steps}), got {error_start}")
