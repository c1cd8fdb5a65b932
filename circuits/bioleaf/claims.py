"""``apical analyze DIR`` for a BioLeaF run: the claims of docs/models/bioleaf.md, checked on the
trained network.

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
- locality of the Brian2 code (the same circuit built small, same depth), analog couplings;
- Dale's law: forward weights (not claimed) and the interneurons' outgoing W_PI (declared
  inhibitory: SST cells).

Writes ``analysis.json``, ``plausibility.md`` and figures, as for BioGrad (runs/analyze.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from brian2 import prefs

from apical.analysis.alignment import angle_degrees, dale_violations
from apical.analysis.locality import audit_locality
from apical.analysis.report import (
    Check,
    dale_check,
    dale_entries,
    locality_check,
    locality_entry,
    plausibility_report,
    write_analysis_json,
)
from apical.circuits.bioleaf.network import GLOBAL_SIGNALS, BioLeaFNetwork, BioLeaFSettings
from apical.circuits.bioleaf.oracle import LearningRates, backprop, bptt, run_circuit
from apical.runs.analyze import (
    ORACLE_BATCH,
    TINY_HIDDEN,
    TINY_INPUTS,
    TINY_OUTPUTS,
    _locality_details,
    _spike_only_check,
    cosine_or_none,
    figure_update_cosine,
    figure_weight_distributions,
    layer_label,
    read_checkpoint,
)
from apical.circuits.bioleaf.framework import bioleaf_settings, state_from_arrays
from apical.runs.train import encode, load_dataset


def summed_changes(state, rasters, desired, settings: BioLeaFSettings, teaching: bool = True):
    """The circuit's ΔW per layer summed over the samples (η = 1), and the microcircuit records."""
    updates = [np.zeros_like(W) for W in state.weights]
    ratios = []
    for start in range(0, len(rasters), ORACLE_BATCH):
        layers, interneurons = run_circuit(state, rasters[start:start + ORACLE_BATCH], desired[start:start + ORACLE_BATCH],
                                           settings.discrete(), LearningRates(forward=1.0), teaching)
        for l, record in enumerate(layers):
            updates[l] += record.weight_change.sum(axis=0)
        ratios.append((layers, interneurons))
    return updates, ratios


def gradients(state, rasters, desired, settings):
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


def locality_of_bioleaf(n_hidden_layers: int):
    sizes = (TINY_INPUTS, *[TINY_HIDDEN] * n_hidden_layers, TINY_OUTPUTS)
    circuit = BioLeaFNetwork(BioLeaFSettings(sizes=sizes), 1, device_name="runtime")
    prefs.logging.warn_for_unused_objects = False  # built to be read, never run
    return audit_locality(circuit.brian_objects()["network"], global_signals=GLOBAL_SIGNALS, namespace={}), sizes


def cosine_check(cosines, claim: str, gradient: str, minimum: float = 0.9) -> Check:
    return Check(claim, f"cosine of each layer's ΔW with −∇E of {gradient}, same digits, ≥ {minimum:g}",
                 ", ".join(f"layer {l + 1}: {'n/a' if c is None else f'{c:.3f}'}" for l, c in enumerate(cosines)),
                 all(c is not None and c >= minimum for c in cosines))


def analyze_bioleaf(directory: Path, config, checkpoint: Path, n_samples: int) -> dict:
    arrays, progress = read_checkpoint(checkpoint)
    n_layers = len(config.model.hidden) + 1
    state = state_from_arrays(arrays, n_layers)
    sizes = (state.weights[0].shape[1], *(W.shape[0] for W in state.weights))
    settings = bioleaf_settings(config, sizes[0], sizes[-1])
    dataset = load_dataset(config)
    n = min(n_samples, len(dataset.test_labels))
    rasters = encode(dataset.test_inputs[:n], config.model.time_steps, config.seeds.input, "test", 0).astype(float)
    labels = dataset.test_labels[:n]
    desired = settings.desired(labels)
    figures_dir = directory / "figures"
    figures_dir.mkdir(exist_ok=True)
    names = [layer_label(state.weights, l) for l in range(n_layers)]

    updates, _ = summed_changes(state, rasters, desired, settings)
    spatial, through_time = gradients(state, rasters, desired, settings)
    cos_spatial = [cosine_or_none(u, -g) for u, g in zip(updates, spatial)]
    cos_bptt = [cosine_or_none(u, -g) for u, g in zip(updates, through_time)]
    rng = np.random.default_rng(config.seeds.feedback)
    outside = state.copy()
    outside.feedback = [rng.uniform(-1, 1, B.shape) * np.abs(B).mean() * 2 for B in state.feedback]
    outside.apical_weights = [-B for B in outside.feedback]  # interneurons still cancel the spikes
    outside_updates, _ = summed_changes(outside, rasters, desired, settings)
    cos_outside = [cosine_or_none(u, -g) for u, g in zip(outside_updates, spatial)]

    circumstance = {
        "feedback_vs_forward_transpose_degrees": [angle_degrees(B, W.T) for B, W in zip(state.feedback, state.weights[1:])],
        "interneuron_input_vs_forward_degrees": [angle_degrees(Wi, W) for Wi, W in zip(state.interneuron_weights,
                                                                                         state.weights[1:])],
        "interneuron_apical_vs_minus_feedback_degrees": [angle_degrees(Wp, -B) for Wp, B in zip(state.apical_weights,
                                                                                                 state.feedback)],
    }
    residual, mismatch = self_prediction(state, rasters, settings)
    locality, tiny = locality_of_bioleaf(n_layers - 1)
    forward_dale = [dale_violations(W) for W in state.weights]
    inhibitory = [dale_violations(Wp, ["inhibitory"] * Wp.shape[1]) for Wp in state.apical_weights]

    figures = figure_update_cosine(names, cos_spatial, cos_bptt, n, figures_dir / "update_gradient_cosine",
                                   ylabel="cosine of BioLeaF ΔW with −∇E", legend=("spatial backprop", "BPTT"))
    figures += figure_weight_distributions(state.weights, [], figures_dir / "weight_distributions")

    per_layer = lambda values: {f"layer_{l}": v for l, v in enumerate(values)}  # noqa: E731
    entries = [
        {"analysis": {"framework": "bioleaf", "checkpoint": checkpoint.name, "samples_seen": progress["samples_seen"],
                      "network": list(sizes), "update_samples": {"split": "test", "first": n},
                      "layer_index": "layer_<l> is the output of weights_<l+1> (Python order)",
                      "locality_network": list(tiny), "figures": [str(p.relative_to(directory)) for p in figures]}},
        {"update_spatial_backprop_cosine": per_layer(cos_spatial), "update_bptt_cosine": per_layer(cos_bptt),
         "update_random_feedback_cosine": per_layer(cos_outside),
         "update_norm": per_layer([float(np.linalg.norm(u)) for u in updates])},
        {"special_circumstance": {k: per_layer(v) for k, v in circumstance.items()}},
        {"apical_residual_without_target": per_layer(residual), "interneuron_spike_mismatch": per_layer(mismatch)},
        locality_entry(locality), dale_entries(state.weights),
        {"dale_interneuron_apical": per_layer([r.to_dict() for r in inhibitory])},
    ]
    worst = max(max(v) for v in circumstance.values()) if state.feedback else 0.0
    checks = [
        locality_check(locality),
        _spike_only_check(locality),
        Check("No weight transport: B, W_IP and W_PI are learned, not copied",
              "how B and the interneurons started; whether any synapse reads another's weights (locality)",
              f"B {'= Wᵀ' if config.model.feedback_init == 'forward_product' else 'random'} and interneurons "
              f"{'self-predicting (copies)' if config.bioleaf.interneuron_init == 'mirror' else 'random'} at t = 0; "
              f"afterwards mirror STDP {'on' if config.bioleaf.mirror_plasticity else 'off'} (local rules)",
              config.model.feedback_init != "forward_product" and config.bioleaf.interneuron_init != "mirror"),
        Check("The trained network is in the special circumstance",
              "angles of B with Wᵀ above, W_IP with W above, W_PI with −B below 5°",
              "; ".join(f"{k.split('_vs_')[0]}: " + ", ".join(f"{a:.2f}°" for a in v) for k, v in circumstance.items()),
              worst < 5.0),
        cosine_check(cos_spatial, "Updates follow backprop of the spiking error (the special circumstance)",
                     "spatial backprop (error down through Wᵀ at every step)"),
        cosine_check(cos_bptt, "Updates follow backprop through time of the spiking error", "full BPTT"),
        Check("Out of the special circumstance (B random) the hidden updates leave the gradient",
              "cosine with spatial backprop when B is replaced by random weights (W_PI = −B kept)",
              ", ".join(f"layer {l + 1}: {'n/a' if c is None else f'{c:.3f}'}" for l, c in enumerate(cos_outside)), None),
        Check("Interneurons cancel the top-down input (apical potential without target ≈ 0)",
              "RMS of hidden apical potentials without target ÷ RMS of the top-down input alone ≤ 0.1",
              ", ".join(f"layer {l + 1}: {r:.3f} (spikes disagree on {100 * m:.2f}% of steps)"
                        for l, (r, m) in enumerate(zip(residual, mismatch))),
              all(r <= 0.1 for r in residual)),
        dale_check(inhibitory, claim="SST interneurons are inhibitory (W_PI ≤ 0)"),
        dale_check(forward_dale, claim="Pyramidal cells obey Dale's law (not claimed by BioLeaF)"),
    ]
    summary = json.loads((directory / "summary.json").read_text()) if (directory / "summary.json").exists() else {}
    notes = [f"Analysed checkpoint {checkpoint.name} ({progress['samples_seen']} samples seen) of bioleaf network "
             f"{'-'.join(map(str, sizes))}."]
    if "final_test_accuracy" in summary:
        notes.append(f"Final test accuracy of this run: {100 * summary['final_test_accuracy']:.2f}%.")
    notes += [
        f"Updates: the circuit's ΔW (numpy oracle of the Brian2 network, equal to it to 1e-9) summed over the first {n} "
        "test digits with their labels' desired spike trains, against −∇E of E = ½Σ_{t≥t0}(d − o)² (PSP-filtered "
        "desired and output spike trains) by spatial backprop and by BPTT, same rectangular pseudo-derivative "
        "(docs/models/bioleaf.md).",
        "The locality audit reads the Brian2 code, not this run's weights: the same circuit built on the runtime "
        f"device at sizes {tuple(tiny)}.",
    ]
    write_path = directory / "analysis.json"
    write_path.unlink(missing_ok=True)
    write_analysis_json(write_path, *entries)
    text = plausibility_report(checks, f"Plausibility report: bioleaf ({directory.name})", notes)
    (directory / "plausibility.md").write_text(text + "\n" + "\n".join(_locality_details(locality)) + "\n")
    printed = [
        "update vs spatial backprop: " + ", ".join(f"{names[l]}: {c:.3f}" for l, c in enumerate(cos_spatial) if c is not None),
        "update vs BPTT: " + ", ".join(f"{names[l]}: {c:.3f}" for l, c in enumerate(cos_bptt) if c is not None),
        "update with random B: " + ", ".join(f"{names[l]}: {c:.3f}" for l, c in enumerate(cos_outside) if c is not None),
        "special circumstance (°): " + json.dumps({k: [round(a, 3) for a in v] for k, v in circumstance.items()}),
        "apical residual without target: " + ", ".join(f"{r:.3f}" for r in residual),
        f"locality: {'ok' if locality.ok else f'{len(locality.findings)} findings'} in {len(locality.audited)} synapse "
        f"objects; {len(locality.analog_couplings)} analog couplings",
    ]
    return {"entries": entries, "checks": checks, "figures": figures, "summary": printed}
