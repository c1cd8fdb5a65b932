"""``apical analyze DIR`` for an e-prop run: the claims of docs/models/eprop.md, checked on the
trained network beside the generic ones (the locality audit of the Brian2 network, the angle of
random feedback B with W_outᵀ, Dale's law, which e-prop does not claim).

On the first test samples, each with its label as the target in the error window:

- e-prop vs BPTT: the cosine of e-prop's update of every pathway with −∂E/∂W of backprop through
  time of the same loss, the same network and the same pseudo-derivative (circuits/eprop/bptt.py;
  the regulariser left out of both);
- random vs symmetric e-prop: the cosine of the update with random B and with B = W_outᵀ;
- alignment of random feedback: the angle of B with W_outᵀ (the generic check) and how it moved
  during training.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from apical.analysis.alignment import angle_degrees
from apical.analysis.report import cosine_check
from apical.circuits.eprop.bptt import bptt_gradients
from apical.circuits.eprop.network import EpropSettings, EpropState
from apical.circuits.eprop.numpy_form import NumpyEprop
from apical.circuits.framework import ClaimsContext, ClaimsResult

PATHWAYS = ("input (W_in)", "recurrent (W_rec)", "readout (W_out)")


def eprop_gradients(state: EpropState, input_spikes, targets, window, settings: EpropSettings):
    """e-prop's g = −ΔW/η summed over the samples, one minibatch of them all (numpy form)."""
    if settings.c_reg != 0:
        raise ValueError("compare e-prop with BPTT at c_reg = 0: the regulariser is not part of the loss BPTT takes")
    samples = len(input_spikes)
    after = NumpyEprop(replace(settings, batch_size=samples)).run(state, input_spikes, targets, window, 1.0).state
    return tuple(samples * (getattr(state, name) - getattr(after, name))
                 for name in ("input_weights", "recurrent_weights", "output_weights"))


def _cosine(a, b) -> float | None:
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    return None if norm == 0 else float(np.sum(a * b) / norm)


def claims(context: ClaimsContext) -> ClaimsResult:
    from apical.circuits.eprop.framework import error_window, targets_of

    framework = context.framework
    settings = replace(framework.settings, c_reg=0.0)
    state = framework.state
    spikes, labels = context.input_spikes, context.labels
    targets = targets_of(labels, settings)
    window = error_window(settings, context.config.eprop.readout_window)
    exact = bptt_gradients(state, spikes, targets, window, settings)
    found = eprop_gradients(state, spikes, targets, window, settings)
    cosines = [_cosine(a, b) for a, b in zip(found, exact)]
    checks = [cosine_check(cosines, "e-prop's update points along the gradient of BPTT (the paper: close to it)",
                           "BPTT of the same network and pseudo-derivative (reset not differentiated)", minimum=0.0,
                           key="update_vs_backprop", loss="cross-entropy of the softmax readout in the error window")]
    details = ["", "### e-prop vs BPTT", ""]
    details += [f"- {pathway}: cosine " + ("n/a (no gradient)" if c is None else f"{c:.3f}")
                + f" on {len(labels)} test samples" for pathway, c in zip(PATHWAYS, cosines)]
    entries = [{"claim": "eprop_bptt_cosine", "value": dict(zip(PATHWAYS, cosines))}]
    info = {"eprop_bptt_cosine": dict(zip(PATHWAYS, cosines))}
    if state.feedback is not None:
        symmetric = eprop_gradients(EpropState(state.input_weights, state.recurrent_weights, state.output_weights, None),
                                    spikes, targets, window, replace(settings, feedback="symmetric"))
        random_vs_symmetric = [_cosine(a, b) for a, b in zip(found, symmetric)]
        info["random_vs_symmetric_cosine"] = dict(zip(PATHWAYS, random_vs_symmetric))
        info["feedback_angle_degrees"] = angle_degrees(state.feedback, state.output_weights.T)
        details.append("- random B vs symmetric B = W_outᵀ: update cosines "
                       + ", ".join(f"{p} {c:.3f}" if c is not None else f"{p} n/a"
                                   for p, c in zip(PATHWAYS, random_vs_symmetric)))
        details.append(f"- angle of B with W_outᵀ now: {info['feedback_angle_degrees']:.1f}°")
    summary = ["e-prop vs BPTT cosine: " + ", ".join("n/a" if c is None else f"{c:.3f}" for c in cosines)]
    return ClaimsResult(checks=checks, entries=entries, details=details, summary=summary, info=info,
                        restated={"dale": "Neurons obey Dale's law (not claimed by e-prop)",
                                  "event_based": "Neurons interact only through spikes (not claimed by e-prop: the "
                                                 "learning signal and the softmax normaliser are analog)",
                                  "feedback_alignment": "Feedback aligns with the forward pathway (not claimed by "
                                                        "random e-prop: B stays fixed; measured, W_out may align with it)",
                                  "sign_concordance": "Feedback is sign-concordant (not claimed by random e-prop)"},
                        # the four rows above say "not claimed": the count of claims agrees with them
                        unclaimed=["dale", "event_based", "feedback_alignment", "sign_concordance"])
