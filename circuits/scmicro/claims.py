"""``apical analyze DIR`` for an SC-microcircuit run: the claims of docs/models/scmicro.md, checked
on the trained network, beyond the generic checks every framework gets (alignment and
sign-concordance of B with Wᵀ of the layer above, the locality audit).

- effective feedback: measured by perturbation on the Brian2 network (runtime device; an injected
  burst in one upper cell at a time, the first test digit with its label's target) and compared in
  sign with Wᵀ of the layer above (sign-concordance, silent connections left out) and with B;
- update vs SC-FA and vs backprop: the circuit's ΔW of every layer (the numpy oracle of the Brian2
  network, equal to it to 1e-9), summed over the first test digits with their labels' desired spike
  trains, against −∇E of sign-concordant FA (the error down through B), spatial backprop (through
  Wᵀ) and full BPTT of the same spiking error;
- Dale's law on every pathway (afferent/pyramidal → soma, PV → soma, pyramidal → apical, SST →
  apical) with its declared cell type, in place of the generic check of the forward weights (whose
  negative entries are PV-relayed connections), and the fraction of silent connections.
"""

from __future__ import annotations

import numpy as np

from apical.analysis.alignment import cosine, dale_violations, sign_concordance
from apical.analysis.report import Check, cosine_check, cosine_or_none, dale_check, layer_labels, sign_concordance_check
from apical.analysis.report_figures import figure_update_cosine
from apical.circuits.framework import ClaimsContext, ClaimsResult
from apical.circuits.microcircuit import backprop, bptt
from apical.circuits.scmicro.network import dale_matrices, effective_feedback
from apical.circuits.scmicro.oracle import run_circuit, sign_concordant_fa

ORACLE_BATCH = 8  # samples per oracle pass (its per-synapse traces are [batch, post, pre])


def summed(function, state, rasters, desired):
    """Σ over the samples, in batches, of the per-layer matrices ``function`` returns."""
    totals = [np.zeros_like(W) for W in state.weights]
    for start in range(0, len(rasters), ORACLE_BATCH):
        for l, matrix in enumerate(function(rasters[start:start + ORACLE_BATCH], desired[start:start + ORACLE_BATCH])):
            totals[l] += matrix
    return totals


def _checks(concordance, cos_sc, cos_bp, cos_bptt, loss: str, transposed: bool, dale, silent) -> list:
    """The rows of plausibility.md that the SC microcircuit's claims add (docs/models/scmicro.md)."""
    return [
        sign_concordance_check(concordance, claim="Effective feedback (measured by perturbation) is "
                                                  "sign-concordant with Wᵀ"),
        cosine_check(cos_sc, "Updates are sign-concordant FA of the spiking error", "SC-FA (error down through B)"),
        cosine_check(cos_bp, "Updates approximate backprop (not claimed: FA is not the gradient)",
                     "spatial backprop (through Wᵀ)", minimum=None),
        cosine_check(cos_bptt, "Updates follow backprop through time (not claimed: FA is not the gradient)",
                     "full BPTT", key="update_vs_backprop", loss=loss),
        Check("No weight transport: feedback magnitudes are not copied",
              "how B was made: its magnitudes, and whether any synapse reads another's weight (locality)",
              "B = Wᵀ (a copy, numpy form only)" if transposed else
              "B = sign(Wᵀ)·R, R random; the sign is the connection's type (direct or PV-relayed), fixed when "
              "the network is built, never read off a weight",
              not transposed, key="weight_transport"),
        dale_check([report for _, report in dale],
                   claim="Every cell obeys Dale's law with its declared type (pyramidal and afferents excitatory, "
                         "PV and SST inhibitory)", key="dale"),
        Check("Silent connections (held at zero, feedback kept: outside strict SC-FA)", "fraction of W entries = 0",
              ", ".join(f"layer {l + 1}: {100 * s:.2f}%" for l, s in enumerate(silent)), None),
    ]


def claims(context: ClaimsContext) -> ClaimsResult:
    state, settings = context.framework.state, context.framework.settings
    rasters = context.input_spikes.astype(float)
    labels = context.labels
    desired = settings.desired(labels)
    params = settings.discrete()
    n = len(labels)
    names = layer_labels(context.sizes)

    updates = summed(lambda x, d: [r.weight_change.sum(axis=0) for r in
                                   run_circuit(state.weights, state.biases, state.feedback, x, d, params, 1.0)],
                     state, rasters, desired)
    sc_fa = summed(lambda x, d: sign_concordant_fa(state.weights, state.biases, state.feedback, x, d, params)[0],
                   state, rasters, desired)
    spatial = summed(lambda x, d: backprop(state.weights, state.biases, x, d, params)[0], state, rasters, desired)
    through_time = summed(lambda x, d: bptt(state.weights, state.biases, x, d, params)[0], state, rasters, desired)
    cos_sc = [cosine_or_none(u, g) for u, g in zip(updates, sc_fa)]  # the references return −∇E
    cos_bp = [cosine_or_none(u, g) for u, g in zip(updates, spatial)]
    cos_bptt = [cosine_or_none(u, g) for u, g in zip(updates, through_time)]

    measured = effective_feedback(state, rasters[0], int(labels[0]), settings)  # Brian2, runtime
    concordance = [sign_concordance(F, W.T) for F, W in zip(measured, state.weights[1:])]
    measured_vs_B = [cosine(F, B) for F, B in zip(measured, state.feedback)]
    silent = [float((W == 0).mean()) for W in state.weights]
    dale = [(name, dale_violations(matrix, types)) for name, matrix, types in dale_matrices(state)]

    figures = figure_update_cosine(names, cos_sc, cos_bp, n, context.figures_dir / "update_backprop_cosine",
                                   ylabel="cosine of SC-microcircuit ΔW with −∇E",
                                   legend=("SC-FA (same B)", "backprop"))

    per_layer = lambda values: {f"layer_{l}": v for l, v in enumerate(values)}  # noqa: E731
    softmax = settings.pyramidal.output_error == "softmax"
    loss = ("softmax error E = −(1/κ)·Σ_{t≥t0} log softmax(κ·o[t])_y of PSP-filtered output trains" if softmax
            else "spiking error E = ½Σ_{t≥t0}(d − o)² of PSP-filtered desired and output spike trains")
    transposed = context.config.scmicro.feedback == "transposed"
    return ClaimsResult(
        info={"update_samples": {"split": "test", "first": n}},
        entries=[
            {"update_sc_fa_cosine": per_layer(cos_sc), "update_spatial_backprop_cosine": per_layer(cos_bp),
             "update_backprop_cosine": per_layer(cos_bptt), "update_backprop_loss": loss,
             "update_norm": per_layer([float(np.linalg.norm(u)) for u in updates])},
            {"effective_feedback_sign_concordance": per_layer(concordance),
             "effective_feedback_vs_B_cosine": per_layer(measured_vs_B),
             "silent_connection_fraction": per_layer(silent)},
            {"dale": {name: report.to_dict() for name, report in dale}},
        ],
        checks=_checks(concordance, cos_sc, cos_bp, cos_bptt, loss, transposed, dale, silent),
        restated={"feedback_alignment": "Feedback aligns with the forward pathway (not claimed: B carries random "
                                        "magnitudes with the signs of Wᵀ)",
                  "dale": None},
        unclaimed=["update_vs_backprop", "feedback_alignment"],
        notes=[
            f"Updates: the circuit's ΔW summed over the first {n} test samples with their labels' desired spike "
            "trains, against −∇E of " + ("the softmax error E = −(1/κ)·Σ_{t≥t0} log softmax(κ·o[t])_y" if softmax
                                         else "E = ½Σ_{t≥t0}(d − o)²")
            + " by SC-FA, spatial backprop and BPTT (docs/models/scmicro.md).",
            "Effective feedback: the Brian2 network (runtime) with a burst injected into one upper cell at a time, "
            "first test sample; measured vs B cosine: " + ", ".join(f"{c:.5f}" for c in measured_vs_B) + ".",
        ],
        figures=figures,
        summary=[
            "update vs SC-FA: " + ", ".join(f"{names[l]}: {c:.4f}" for l, c in enumerate(cos_sc) if c is not None),
            "update vs spatial backprop: " + ", ".join(f"{names[l]}: {c:.3f}" for l, c in enumerate(cos_bp)
                                                       if c is not None),
            "update vs BPTT: " + ", ".join(f"{names[l]}: {c:.3f}" for l, c in enumerate(cos_bptt) if c is not None),
            "effective feedback sign-concordance: " + ", ".join(f"{100 * c:.2f}%" for c in concordance),
            "silent connections: " + ", ".join(f"{100 * s:.2f}%" for s in silent),
            f"Dale: {'ok' if all(r.ok for _, r in dale) else 'violations'} on {len(dale)} pathways",
        ],
    )
