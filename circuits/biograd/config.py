"""The ``[biograd]`` config section: BioGrad's own keys (docs/models/biograd.md): the discrete LIF
soma, the error window, how the feedback starts and the sleep phase that aligns it. Sizes, T and dt
come from ``[model]``, η, M and the optimiser from ``[learning]``.

The soma's keys are :class:`~apical.circuits.soma_keys.SomaKeys`, shared with the other frameworks
that build BioGrad's soma (circuits/soma_keys.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from apical.circuits.framework import ConfigSection
from apical.circuits.soma_keys import SOMA_BOUNDS, SOMA_CHOICES, SOMA_MOVED, SOMA_REPLACES, SomaKeys


@dataclass(frozen=True)
class BioGradConfig(SomaKeys):
    """BioGrad (Tang et al. 2021): its soma, error window, feedback initialisation and sleep phase."""

    error_start: int = 5  # t0, first step at which the output error drives the error neurons
    feedback_init: str = "forward_product"  # B init: "forward_product" (released code) or "random" (seeds.feedback)
    sleep: bool = False  # run the sleep phase after every chunk of run.chunk_samples samples
    sleep_steps: int = 50  # T_s, steps of noise per sleep phase per hidden layer
    sleep_learning_rate: float = 1e-4 / 3  # η_s, sleep learning rate for the feedback weights B
    sleep_decay: float = 2.0  # P, power of the output counts in the decay term of ΔB
    sleep_batch: int = 128  # noise samples per sleep phase (Σ_batch in ΔB)


SLEEP_KEYS = ("sleep", "sleep_steps", "sleep_learning_rate", "sleep_decay", "sleep_batch")

SECTION = ConfigSection("biograd", BioGradConfig, bounds={
    **SOMA_BOUNDS, "error_start": [(">=", 0)], "sleep_steps": [(">=", 1)], "sleep_learning_rate": [(">", 0)],
    "sleep_decay": [(">", 0)], "sleep_batch": [(">=", 1)],
}, choices={**SOMA_CHOICES, "feedback_init": ("forward_product", "random")}, replaces=SOMA_REPLACES, moved={
    **SOMA_MOVED, "model.error_start": "error_start", "model.feedback_init": "feedback_init",
    **{f"learning.{key}": key for key in SLEEP_KEYS},
})
