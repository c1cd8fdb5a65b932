"""``apical analyze DIR`` for a BioLeaF run: the claims of docs/models/bioleaf.md, checked on the
trained network, beyond the generic checks every framework gets (alignment and sign-concordance
of B with Wᵀ of the layer above, Dale's law of the forward weights, the locality audit).

On the first test digits (rate-coded as the run's evaluations code them), each with its label's
desired spike train as the target:

- update vs gradient: the circuit's ΔW of every layer (the numpy oracle of the Brian2 network,
  summed over the digits) against −∇E of spatial backprop and of full BPTT of the spiking error
  (same pseudo-derivative), in the network's own state and out of the special circumstance
  (B replaced by random weights of the same scale);
- the special circumstance itself: angles of B with Wᵀ of the layer above, of W_IP with W and of
  W_PI with −B;
- self-prediction: without a target, the RMS of the hidden apical potentials relative to the
  top-down input alone, and how often interneurons and their partners disagree;
- weight transport: how B and the interneurons started;
- Dale's law of the interneurons' outgoing W_PI (declared inhibitory: SST cells).
"""

from __future__ import annotations

import json

import numpy as np

from apical.analysis.alignment import angle_degrees, dale_violations
from apical.analysis.report import Check, cosine_check, cosine_or_none, dale_check, layer_labels
from apical.analysis.report_figures import figure_update_cosine
from apical.circuits.bioleaf.network import BioLeaFSettings
from apical.circuits.bioleaf.oracle import LearningRates, run_circuit
from apical.circuits.framework import ClaimsContext, ClaimsResult
from apical.circuits.microcircuit import backprop, bptt

ORACLE_BATCH = 8  # samples per oracle pass (its per-synapse traces are [batch, post, pre])
LOSS = "spiking error E = ½Σ_{t≥t0}(d − o)² of PSP-filtered desired and output spike trains"


def summed_changes(state, rasters, desired, settings: BioLeaFSettings):
    """The circuit's ΔW per layer summed over the samples (η = 1), each with its target."""
    updates = [np.zeros_like(W) for W in state.weights]
    for start in range(0, len(rasters), ORACLE_BATCH):
        layers, _ = run_circuit(state, rasters[start:start + ORACLE_BATCH], desired[start:start + ORACLE_BATCH],
                                settings.discrete(), LearningRates(forward=1.0), True)
        for l, record in enumerate(layers):
            updates[l] += record.weight_change.sum(axis=0)
    return updates


def gradients(state, rasters, desired, settings):
    """−∇E per layer, summed over the samples, of spatial backprop and of BPTT."""
    spatial = [np.zeros_like(W) for W in state.weights]
    through_time = [np.zeros_like(W) for W in state.weights]
    for start in range(0, len(rasters), ORACLE_BATCH):
        chunk = (rasters[start:start + ORACLE_BATCH], desired[start:start + ORACLE_BATCH], settings.discrete())
        for total, (descent, _, _) in ((spatial, backprop(state.weights, state.biases, *chunk)),
                                       (through_time, bptt(state.weights, state.biases, *chunk))):
            for l, d in enumerate(descent):
                total[l] += d
    return spatial, through_time


def self_prediction(state, rasters, settings):
    """Per hidden layer: RMS(apical) / RMS(top-down input alone) without a target, and the
    fraction of steps on which an interneuron and its partner disagree."""
    n_hidden = len(state.feedback)
    apical_sq, top_down_sq, disagree, steps = np.zeros(n_hidden), np.zeros(n_hidden), np.zeros(n_hidden), 0
    silent = np.zeros(rasters.shape[:2] + (settings.sizes[-1],))
    for start in range(0, len(rasters), ORACLE_BATCH):
        layers, interneurons = run_circuit(state, rasters[start:start + ORACLE_BATCH], silent[start:start + ORACLE_BATCH],
                                           settings.discrete(), LearningRates(), teaching=False)
        for m, B in enumerate(state.feedback):
            apical_sq[m] += (layers[m].apical ** 2).sum()
            top_down_sq[m] += (np.einsum("btk,ik->bti", layers[m + 1].spikes, B) ** 2).sum()
            disagree[m] += np.abs(layers[m + 1].spikes - interneurons[m].spikes).mean() * len(layers[m].spikes)
        steps += len(layers[0].spikes)
    return np.sqrt(apical_sq / top_down_sq).tolist(), (disagree / steps).tolist()


def _checks(config, circumstance, cos_spatial, cos_bptt, cos_outside, residual, mismatch, inhibitory) -> list:
    """The rows of plausibility.md that BioLeaF's claims add (docs/models/bioleaf.md)."""
    worst = max(max(v) for v in circumstance.values()) if any(circumstance.values()) else 0.0
    return [
        Check("No weight transport: B, W_IP and W_PI are learned, not copied",
              "how B and the interneurons started; whether any synapse reads another's weights (locality)",
              f"B {'= Wᵀ' if config.bioleaf.feedback_init == 'forward_product' else 'random'} and interneurons "
              f"{'self-predicting (copies)' if config.bioleaf.interneuron_init == 'mirror' else 'random'} at "
              f"t = 0; afterwards mirror STDP {'on' if config.bioleaf.mirror_plasticity else 'off'} (local rules)",
              config.bioleaf.feedback_init != "forward_product" and config.bioleaf.interneuron_init != "mirror",
              key="weight_transport"),
        Check("The trained network is in the special circumstance",
              "angles of B with Wᵀ above, W_IP with W above, W_PI with −B below 5°",
              "; ".join(f"{k.split('_vs_')[0]}: " + ", ".join(f"{a:.2f}°" for a in v)
                        for k, v in circumstance.items()),
              worst < 5.0),
        cosine_check(cos_spatial, "Updates follow backprop of the spiking error (the special circumstance)",
                     "spatial backprop (error down through Wᵀ at every step)"),
        cosine_check(cos_bptt, "Updates follow backprop through time of the spiking error", "full BPTT",
                     key="update_vs_backprop", loss=LOSS),
        Check("Out of the special circumstance (B random) the hidden updates leave the gradient",
              "cosine with spatial backprop when B is replaced by random weights (W_PI = −B kept)",
              ", ".join(f"layer {l + 1}: {'n/a' if c is None else f'{c:.3f}'}" for l, c in enumerate(cos_outside)),
              None),
        Check("Interneurons cancel the top-down input (apical potential without target ≈ 0)",
              "RMS of hidden apical potentials without target ÷ RMS of the top-down input alone ≤ 0.1",
              ", ".join(f"layer {l + 1}: {r:.3f} (spikes disagree on {100 * m:.2f}% of steps)"
                        for l, (r, m) in enumerate(zip(residual, mismatch))),
              all(r <= 0.1 for r in residual)),
        dale_check(inhibitory, claim="SST interneurons are inhibitory (W_PI ≤ 0)"),
    ]


def claims(context: ClaimsContext) -> ClaimsResult:
    config, state, settings = context.config, context.framework.state, context.framework.settings
    rasters = context.input_spikes.astype(float)
    desired = settings.desired(context.labels)
    n = len(context.labels)
    names = layer_labels(context.sizes)

    updates = summed_changes(state, rasters, desired, settings)
    spatial, through_time = gradients(state, rasters, desired, settings)
    cos_spatial = [cosine_or_none(u, g) for u, g in zip(updates, spatial)]  # the references return −∇E
    cos_bptt = [cosine_or_none(u, g) for u, g in zip(updates, through_time)]
    rng = np.random.default_rng(config.seeds.feedback)
    outside = state.copy()
    outside.feedback = [rng.uniform(-1, 1, B.shape) * np.abs(B).mean() * 2 for B in state.feedback]
    outside.apical_weights = [-B for B in outside.feedback]  # interneurons still cancel the spikes
    cos_outside = [cosine_or_none(u, g) for u, g in zip(summed_changes(outside, rasters, desired, settings), spatial)]

    circumstance = {
        "feedback_vs_forward_transpose_degrees": [angle_degrees(B, W.T)
                                                  for B, W in zip(state.feedback, state.weights[1:])],
        "interneuron_input_vs_forward_degrees": [angle_degrees(Wi, W) for Wi, W in zip(state.interneuron_weights,
                                                                                         state.weights[1:])],
        "interneuron_apical_vs_minus_feedback_degrees": [angle_degrees(Wp, -B) for Wp, B in zip(state.apical_weights,
                                                                                                 state.feedback)],
    }
    residual, mismatch = self_prediction(state, rasters, settings)
    inhibitory = [dale_violations(Wp, ["inhibitory"] * Wp.shape[1]) for Wp in state.apical_weights]

    figures = figure_update_cosine(names, cos_spatial, cos_bptt, n, context.figures_dir / "update_backprop_cosine",
                                   ylabel="cosine of BioLeaF ΔW with −∇E", legend=("spatial backprop", "BPTT"))

    per_layer = lambda values: {f"layer_{l}": v for l, v in enumerate(values)}  # noqa: E731
    return ClaimsResult(
        info={"update_samples": {"split": "test", "first": n}},
        entries=[
            {"update_spatial_backprop_cosine": per_layer(cos_spatial), "update_backprop_cosine": per_layer(cos_bptt),
             "update_backprop_loss": LOSS,
             "update_random_feedback_cosine": per_layer(cos_outside),
             "update_norm": per_layer([float(np.linalg.norm(u)) for u in updates])},
            {"special_circumstance": {k: per_layer(v) for k, v in circumstance.items()}},
            {"apical_residual_without_target": per_layer(residual), "interneuron_spike_mismatch": per_layer(mismatch)},
            {"dale_interneuron_apical": per_layer([r.to_dict() for r in inhibitory])},
        ],
        checks=_checks(config, circumstance, cos_spatial, cos_bptt, cos_outside, residual, mismatch, inhibitory),
        restated={"dale": "Pyramidal cells obey Dale's law (not claimed by BioLeaF)"},
        unclaimed=["dale", "sign_concordance"],
        notes=[
            f"Updates: the circuit's ΔW (numpy oracle of the Brian2 network, equal to it to 1e-9) summed over the "
            f"first {n} test digits with their labels' desired spike trains, against −∇E of E = ½Σ_{{t≥t0}}(d − o)² "
            "(PSP-filtered desired and output spike trains) by spatial backprop and by BPTT, same "
            f"{config.bioleaf.surrogate} pseudo-derivative as the run (docs/models/bioleaf.md).",
        ],
        figures=figures,
        summary=[
            "update vs spatial backprop: " + ", ".join(f"{names[l]}: {c:.3f}" for l, c in enumerate(cos_spatial)
                                                       if c is not None),
            "update vs BPTT: " + ", ".join(f"{names[l]}: {c:.3f}" for l, c in enumerate(cos_bptt) if c is not None),
            "update with random B: " + ", ".join(f"{names[l]}: {c:.3f}" for l, c in enumerate(cos_outside)
                                                 if c is not None),
            "special circumstance (°): " + json.dumps({k: [round(a, 3) for a in v] for k, v in circumstance.items()}),
            "apical residual without target: " + ", ".join(f"{r:.3f}" for r in residual),
        ],
    )
