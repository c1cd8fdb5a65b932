"""The ``[delta]`` config section: the output cells and the target of the delta rule.

``[model]`` gives the clock (``dt``) and the sample length (``time_steps``, T); ``[learning]`` the
learning rate η and the minibatch size M; this table gives what is particular to the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from brian2 import Quantity, ms

from apical.circuits.framework import ConfigError, ConfigSection


@dataclass(frozen=True)
class DeltaConfig:
    """A layer of LIF cells trained by the delta rule on spike counts (apical_delta.model)."""

    tau_m: Quantity = field(default_factory=lambda: 20 * ms)  # τ_m, membrane time constant of the output cells
    threshold: float = 1.0  # θ, firing threshold (strict: v > θ), in units of the potential
    target_count: float = 15.0  # d, spikes per sample asked of the labelled cell (the others: 0)


SECTION = ConfigSection("delta", DeltaConfig, bounds={
    "tau_m": [(">", 0)], "threshold": [(">", 0)], "target_count": [(">", 0)],
})


def check_config(config) -> None:
    """The delta rule trains one layer: input straight to output."""
    if config.model.hidden:
        raise ConfigError(f"config key 'model.hidden': the delta rule has no hidden layer, got "
                          f"{list(config.model.hidden)}; set hidden = []")
    if config.delta.target_count > config.model.time_steps:
        raise ConfigError(f"config key 'delta.target_count': a cell fires at most once per step, so at most "
                          f"model.time_steps = {config.model.time_steps} times per sample, got "
                          f"{config.delta.target_count}")
