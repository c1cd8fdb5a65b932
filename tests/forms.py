"""Equality of two forms of one model (Brian2 against its oracle, a numpy form against either),
with failures that say where the forms part: the quantity, the layer, the sample and the first
step, and the two values there."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TOLERANCE = 1e-9


def first_difference(ours, reference, tolerance: float = TOLERANCE) -> tuple[tuple[int, ...], int] | None:
    """The index of the first value (row-major: earliest sample, then earliest step) where the
    arrays differ by more than ``tolerance``, and how many values do; None where none does."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    differs = ~(np.abs(a - b) <= tolerance)  # NaN on either side counts as a difference
    if not differs.any():
        return None
    return tuple(int(i) for i in np.argwhere(differs)[0]), int(differs.sum())


def assert_forms_equal(ours, reference, quantity: str, layer: str | None = None,
                       axes: Sequence[str] = ("sample", "step", "neuron"), tolerance: float = TOLERANCE,
                       forms: tuple[str, str] = ("Brian2", "oracle"), context: str = "") -> None:
    """Assert equality to ``tolerance``; ``layer`` says whose quantity it is ("layer 2"),
    ``axes`` name the leading axes of the arrays."""
    where = quantity + (f" of {layer}" if layer is not None else "")
    a, b = np.asarray(ours), np.asarray(reference)
    if a.shape != b.shape:
        raise AssertionError(f"{where}: shape {a.shape} in {forms[0]}, {b.shape} in {forms[1]}")
    found = first_difference(a, b, tolerance)
    if found is None:
        return
    index, count = found
    names = list(axes) + [f"axis {k}" for k in range(len(axes), len(index))]
    position = ", ".join(f"{name} {i}" for name, i in zip(names, index))
    raise AssertionError(
        f"{where}: the forms part at {position}: {forms[0]} {float(a[index])!r}, {forms[1]} {float(b[index])!r} "
        f"({count} of {a.size} values differ by more than {tolerance:g}){context}. If the model was edited on "
        "purpose, its references no longer implement it: check the edit with pytest -m \"not oracle\" "
        "(docs/editing.md)")


def first_spike_difference(ours_spikes: Sequence, reference_spikes: Sequence) -> str:
    """Where the spike rasters ([sample, step, neuron] per layer) first part, as a sentence."""
    earliest = None
    for l, (a, b) in enumerate(zip(ours_spikes, reference_spikes)):
        found = first_difference(a, b, 0.5)
        if found is not None:
            sample, step = found[0][:2]
            if earliest is None or (sample, step) < earliest[:2]:
                earliest = (sample, step, l + 1, found[0][2])
    if earliest is None:
        return "; the spikes agree at every step, so the forms part in the learning arithmetic"
    sample, step, layer, neuron = earliest
    return f"; the spikes first part at sample {sample}, step {step} (layer {layer}, neuron {neuron})"


def assert_layer_records_equal(ours: Sequence, reference: Sequence, fields: Sequence[str],
                               tolerance: float = TOLERANCE, forms: tuple[str, str] = ("Brian2", "oracle"),
                               label: str = "layer") -> None:
    """Per layer and field, equal to ``tolerance``; the spikes (with their time axis) are compared
    first, and a later field's failure says at which step the spikes parted, if they did."""
    assert len(ours) == len(reference), f"{len(ours)} {label}s in {forms[0]}, {len(reference)} in {forms[1]}"
    context = ""
    if "spikes" in fields:
        context = first_spike_difference([r.spikes for r in ours], [r.spikes for r in reference])
    for l, (a, b) in enumerate(zip(ours, reference)):
        for field in fields:
            axes = ("sample", "step", "neuron") if field == "spikes" else ("sample", "neuron", "input")
            assert_forms_equal(getattr(a, field), getattr(b, field), field, f"{label} {l + 1}", axes, tolerance,
                               forms, context if field != "spikes" else "")
