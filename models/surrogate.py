"""Pseudo-derivatives ∂s/∂v of a spiking soma: one definition for Brian2, the oracles and numpy.

A spike s = H(v − θ) has no useful derivative; every rule in Apical replaces it by a
pseudo-derivative g(v) of height γ and width w around the threshold θ. With x = |v − θ|:

    rectangular    g = γ·1[x < w]                  BioGrad (Tang et al. 2021, §3), BioLeaF, SC
    triangular     g = γ·max(0, 1 − x/w)           Bellec et al. (2018, 2020), e-prop
    exponential    g = γ·exp(−x/w)                 Shrestha & Orchard (2018), SLAYER
    fast_sigmoid   g = γ/(1 + x/w)²                Zenke & Ganguli (2018), SuperSpike

Each family is written once here, as a Brian2 expression (:meth:`Surrogate.brian`) and as the
same arithmetic on numpy arrays (:meth:`Surrogate.numpy`); the two agree to rounding. The
rectangular and triangular windows vanish outside |v − θ| < w (``compact``), which the batched
numpy forms use to skip rows; the exponential and fast-sigmoid ones never vanish.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Family name → Brian2 expression in x = ``abs(v - theta)``, width ``w`` and height ``h``.
_BRIAN = {
    "rectangular": "{h} * int({x} < {w})",
    "triangular": "{h} * clip(1 - {x} / {w}, 0, inf)",
    "exponential": "{h} * exp(-{x} / {w})",
    "fast_sigmoid": "{h} / (1 + {x} / {w})**2",
}

FAMILIES = tuple(_BRIAN)


@dataclass(frozen=True)
class Surrogate:
    """One pseudo-derivative: ``family`` (one of :data:`FAMILIES`), width w and height γ."""

    family: str = "rectangular"
    width: float = 0.3  # w, half width (or decay length) around the threshold
    height: float = 1.0  # γ, value at v = θ

    def __post_init__(self):
        if self.family not in _BRIAN:
            raise ValueError(f"unknown surrogate {self.family!r}; choose one of {', '.join(FAMILIES)}")
        if not self.width > 0:
            raise ValueError(f"surrogate width must be > 0, got {self.width}")

    @property
    def compact(self) -> bool:
        """True when g = 0 outside |v − θ| < w (rows outside the window can be skipped)."""
        return self.family in ("rectangular", "triangular")

    def brian(self, potential: str = "v", threshold: str = "theta", width: str = "window",
              height: str = "gamma") -> str:
        """The Brian2 expression of g, in the names a group's namespace gives w and γ."""
        distance = f"abs({potential} - {threshold})"
        return _BRIAN[self.family].format(x=distance, w=width, h=height)

    def numpy(self, v: np.ndarray, threshold) -> np.ndarray:
        """g(v) on an array (float64 arithmetic in the same order as :meth:`brian`)."""
        x = np.abs(np.asarray(v) - threshold)
        w, h = self.width, self.height
        if self.family == "rectangular":
            return h * (x < w)
        if self.family == "triangular":
            return h * np.clip(1.0 - x / w, 0.0, np.inf)
        if self.family == "exponential":
            return h * np.exp(-x / w)
        return h / (1.0 + x / w) ** 2

    def describe(self) -> str:
        """The formula in plain maths with its constants, for provenance and reports."""
        formula = {
            "rectangular": "γ·1[|v − θ| < w]",
            "triangular": "γ·max(0, 1 − |v − θ|/w)",
            "exponential": "γ·exp(−|v − θ|/w)",
            "fast_sigmoid": "γ/(1 + |v − θ|/w)²",
        }[self.family]
        return f"{self.family}: g = {formula}, w = {self.width:g}, γ = {self.height:g}"
