"""Input encoders: static images to spike rasters.

Tang, Kumar, Polykretis & Michmizos 2021 (arXiv 2110.14092), MNIST setting: each pixel drives one
input neuron with a Bernoulli rate code. With intensity I_j in [0, 1] (pixel value / 255), input j
spikes at step t with probability I_j, independently across steps and pixels:

    s_j[t] ~ Bernoulli(I_j),    t = 1..T   (T = 20 for MNIST)

The rasters are drawn here in numpy and fed to the Brian2 network as data (docs/models/biograd.md, "Compile once, run many"): every sample
has its own generator, keyed by (seed, purpose, sample index), so a sample's spikes are the same
whatever the device, the chunking of the data or the point a run was resumed from.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["stable_int", "sample_rng", "bernoulli_rate_raster", "encode_batch"]


def stable_int(purpose: str) -> int:
    """A 64-bit integer from a purpose name, identical across processes (unlike Python's hash())."""
    return int.from_bytes(hashlib.sha256(purpose.encode("utf-8")).digest()[:8], "little")


def sample_rng(seed: int, purpose: str, index: int) -> np.random.Generator:
    """The generator for one purpose ("input", "sleep", ...) and one sample index under a seed."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), stable_int(purpose), int(index)]))


def _check_intensity(intensity: np.ndarray) -> np.ndarray:
    intensity = np.asarray(intensity, dtype=np.float64)
    if not np.all(np.isfinite(intensity)) or intensity.min(initial=0.0) < 0.0 or intensity.max(initial=0.0) > 1.0:
        finite = intensity[np.isfinite(intensity)]
        low = finite.min(initial=np.nan) if finite.size else np.nan
        high = finite.max(initial=np.nan) if finite.size else np.nan
        raise ValueError(
            "intensities must be finite and in [0, 1] (spike probabilities per step; divide pixel "
            f"values by 255), got values in [{low}, {high}]"
            + ("" if finite.size == intensity.size else " and non-finite entries")
        )
    return intensity


def _check_time_steps(time_steps: int) -> int:
    if isinstance(time_steps, bool) or int(time_steps) != time_steps or time_steps < 1:
        raise ValueError(f"time_steps must be an integer >= 1, got {time_steps!r}")
    return int(time_steps)


def bernoulli_rate_raster(intensity: np.ndarray, time_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Raster uint8 [time_steps, n_inputs]: input j spikes at each step with probability intensity[j]."""
    intensity = _check_intensity(intensity)
    if intensity.ndim != 1:
        raise ValueError(f"intensity must be one sample, shape [n_inputs], got shape {intensity.shape}")
    time_steps = _check_time_steps(time_steps)
    return (rng.random((time_steps, intensity.size)) < intensity).astype(np.uint8)


def encode_batch(
    intensities: np.ndarray, time_steps: int, seed: int, first_index: int, purpose: str = "input"
) -> np.ndarray:
    """Rasters uint8 [N, time_steps, n_inputs]; sample i uses sample_rng(seed, purpose, first_index + i)."""
    intensities = _check_intensity(intensities)
    if intensities.ndim != 2:
        raise ValueError(f"intensities must have shape [N, n_inputs], got shape {intensities.shape}")
    time_steps = _check_time_steps(time_steps)
    rasters = np.empty((intensities.shape[0], time_steps, intensities.shape[1]), dtype=np.uint8)
    for i, intensity in enumerate(intensities):
        rng = sample_rng(seed, purpose, first_index + i)
        rasters[i] = rng.random((time_steps, intensity.size)) < intensity
    return rasters
