"""``apical analyze DIR`` for an SC-microcircuit run: the claims of docs/models/scmicro.md, checked
on the trained network.

- effective feedback: measured by perturbation on the Brian2 network (runtime device; an injected
  burst in one upper cell at a time, the first test digit with its label's target) and compared in
  sign with Wᵀ of the layer above (sign-concordance, silent connections left out) and with B;
- update vs SC-FA and vs backprop: the circuit's ΔW of every layer (the numpy oracle of the Brian2
  network, equal to it to 1e-9), summed over the first test digits with their labels' desired spike
  trains, against −∇E of sign-concordant FA (the error down through B), spatial backprop (through
  Wᵀ) and full BPTT of the same spiking error;
- Dale's law on every pathway (afferent/pyramidal → soma, PV → soma, pyramidal → apical, SST →
  apical) with its declared cell type, and the fraction of silent connections;
- locality of the Brian2 code (the same circuit built small, same depth), analog couplings.

Writes ``analysis.json``, ``plausibility.md`` and figures, as for BioGrad (runs/analyze.py).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from brian2 import prefs

from apical.analysis.alignment import cosine, dale_violations, sign_concordance
from apical.analysis.locality import audit_locality
from apical.analysis.report import (
    Check,
    dale_check,
    locality_check,
    locality_entry,
    plausibility_report,
    sign_concordance_check,
    write_analysis_json,
)
from apical.circuits.bioleaf.oracle import backprop, bptt
from apical.circuits.scmicro.network import GLOBAL_SIGNALS, SCMicroNetwork, SCMicroSettings, dale_matrices, effective_feedback
from apical.circuits.scmicro.oracle import run_circuit, sign_concordant_fa
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
from apical.circuits.scmicro.framework import scmicro_settings, state_from_arrays
from apical.runs.train import encode, load_dataset


def summed(function, state, rasters, desired, settings):
    """Σ over the samples, in batches, of the per-layer matrices ``function`` returns."""
    totals = [np.zeros_like(W) for W in state.weights]
    for start in range(0, len(rasters), ORACLE_BATCH):
        for l, matrix in enumerate(function(rasters[start:start + ORACLE_BATCH], desired[start:start + ORACLE_BATCH])):
            totals[l] += matrix
    return totals


def locality_of_scmicro(settings: SCMicroSettings):
    """Audit the run's own circuit (its error function, relays and constants) built small, same depth."""
    n_hidden_layers = len(settings.sizes) - 2
    sizes = (TINY_INPUTS, *[TINY_HIDDEN] * n_hidden_layers, TINY_OUTPUTS)
    types = [np.where(np.random.default_rng(0).random((b, a)) < 0.5, 1.0, -1.0) for a, b in zip(sizes[:-1], sizes[1:])]
    circuit = SCMicroNetwork(replace(settings, sizes=sizes), types, 1, device_name="runtime")
    prefs.logging.warn_for_unused_objects = False  # built to be read, never run
    return audit_locality(circuit.brian_objects()["network"], global_signals=GLOBAL_SIGNALS, namespace={}), sizes


def cosine_check(cosines, claim: str, gradient: str, minimum: float | None = 0.9) -> Check:
    return Check(claim, f"cosine of each layer's ΔW with −∇E of {gradient}, same digits"
                 + ("" if minimum is None else f", ≥ {minimum:g}"),
                 ", ".join(f"layer {l + 1}: {'n/a' if c is None else f'{c:.3f}'}" for l, c in enumerate(cosines)),
                 None if minimum is None else all(c is not None and c >= minimum for c in cosines))


def analyze_scmicro(directory: Path, config, checkpoint: Path, n_samples: int) -> dict:
    arrays, progress = read_checkpoint(checkpoint)
    n_layers = len(config.model.hidden) + 1
    state = state_from_arrays(arrays, n_layers)
    sizes = (state.weights[0].shape[1], *(W.shape[0] for W in state.weights))
    settings: SCMicroSettings = scmicro_settings(config, sizes[0], sizes[-1])
    dataset = load_dataset(config)
    n = min(n_samples, len(dataset.test_labels))
    rasters = encode(dataset.test_inputs[:n], config.model.time_steps, config.seeds.input, "test", 0).astype(float)
    labels = dataset.test_labels[:n]
    desired = settings.desired(labels)
    params = settings.discrete()
    figures_dir = directory / "figures"
    figures_dir.mkdir(exist_ok=True)
    names = [layer_label(state.weights, l) for l in range(n_layers)]

    updates = summed(lambda x, d: [r.weight_change.sum(axis=0) for r in
                                   run_circuit(state.weights, state.biases, state.feedback, x, d, params, 1.0)],
                     state, rasters, desired, settings)
    sc_fa = summed(lambda x, d: sign_concordant_fa(state.weights, state.biases, state.feedback, x, d, params)[0],
                   state, rasters, desired, settings)
    spatial = summed(lambda x, d: backprop(state.weights, state.biases, x, d, params)[0], state, rasters, desired,
                     settings)
    through_time = summed(lambda x, d: bptt(state.weights, state.biases, x, d, params)[0], state, rasters, desired,
                          settings)
    cos_sc = [cosine_or_none(u, -g) for u, g in zip(updates, sc_fa)]  # the oracles return −∇E
    cos_bp = [cosine_or_none(u, -g) for u, g in zip(updates, spatial)]
    cos_bptt = [cosine_or_none(u, -g) for u, g in zip(updates, through_time)]

    measured = effective_feedback(state, rasters[0], int(labels[0]), settings)  # Brian2, runtime
    concordance = [sign_concordance(F, W.T) for F, W in zip(measured, state.weights[1:])]
    measured_vs_B = [cosine(F, B) for F, B in zip(measured, state.feedback)]
    silent = [float((W == 0).mean()) for W in state.weights]

    pathways = dale_matrices(state)
    dale = [(name, dale_violations(matrix, types)) for name, matrix, types in pathways]
    locality, tiny = locality_of_scmicro(settings)

    figures = figure_update_cosine(names, cos_sc, cos_bp, n, figures_dir / "update_gradient_cosine",
                                   ylabel="cosine of SC-microcircuit ΔW with −∇E", legend=("SC-FA (same B)", "backprop"))
    figures += figure_weight_distributions(state.weights, [], figures_dir / "weight_distributions")

    per_layer = lambda values: {f"layer_{l}": v for l, v in enumerate(values)}  # noqa: E731
    entries = [
        {"analysis": {"framework": "scmicro", "checkpoint": checkpoint.name, "samples_seen": progress["samples_seen"],
                      "network": list(sizes), "update_samples": {"split": "test", "first": n},
                      "layer_index": "layer_<l> is the output of weights_<l+1> (Python order)",
                      "locality_network": list(tiny), "figures": [str(p.relative_to(directory)) for p in figures]}},
        {"update_sc_fa_cosine": per_layer(cos_sc), "update_spatial_backprop_cosine": per_layer(cos_bp),
         "update_bptt_cosine": per_layer(cos_bptt), "update_norm": per_layer([float(np.linalg.norm(u)) for u in updates])},
        {"effective_feedback_sign_concordance": per_layer(concordance),
         "effective_feedback_vs_B_cosine": per_layer(measured_vs_B), "silent_connection_fraction": per_layer(silent)},
        locality_entry(locality), {"dale_pathways": {name: report.to_dict() for name, report in dale}},
    ]
    checks = [
        locality_check(locality),
        _spike_only_check(locality),
        sign_concordance_check(concordance, claim="Effective feedback (measured by perturbation) is sign-concordant "
                                                  "with Wᵀ"),
        cosine_check(cos_sc, "Updates are sign-concordant FA of the spiking error", "SC-FA (error down through B)"),
        cosine_check(cos_bp, "Updates approximate backprop (not claimed: FA is not the gradient)",
                     "spatial backprop (through Wᵀ)", minimum=None),
        dale_check([report for _, report in dale], claim="Every cell obeys Dale's law with its declared type "
                                                          "(pyramidal and afferents excitatory, PV and SST inhibitory)"),
        Check("Silent connections (held at zero, feedback kept: outside strict SC-FA)", "fraction of W entries = 0",
              ", ".join(f"layer {l + 1}: {100 * s:.2f}%" for l, s in enumerate(silent)), None),
    ]
    summary = json.loads((directory / "summary.json").read_text()) if (directory / "summary.json").exists() else {}
    notes = [f"Analysed checkpoint {checkpoint.name} ({progress['samples_seen']} samples seen) of scmicro network "
             f"{'-'.join(map(str, sizes))}."]
    if "final_test_accuracy" in summary:
        notes.append(f"Final test accuracy of this run: {100 * summary['final_test_accuracy']:.2f}%.")
    notes += [
        f"Updates: the circuit's ΔW summed over the first {n} test samples with their labels' desired spike trains, "
        "against −∇E of " + ("the softmax error E = −(1/κ)·Σ_{t≥t0} log softmax(κ·o[t])_y"
                             if settings.pyramidal.output_error == "softmax" else "E = ½Σ_{t≥t0}(d − o)²")
        + " by SC-FA, spatial backprop and BPTT (docs/models/scmicro.md).",
        "Effective feedback: the Brian2 network (runtime) with a burst injected into one upper cell at a time, "
        "first test sample; measured vs B cosine: " + ", ".join(f"{c:.5f}" for c in measured_vs_B) + ".",
        f"The locality audit reads the Brian2 code: the same circuit built on the runtime device at sizes {tuple(tiny)}.",
    ]
    write_path = directory / "analysis.json"
    write_path.unlink(missing_ok=True)
    write_analysis_json(write_path, *entries)
    text = plausibility_report(checks, f"Plausibility report: scmicro ({directory.name})", notes)
    (directory / "plausibility.md").write_text(text + "\n" + "\n".join(_locality_details(locality)) + "\n")
    printed = [
        "update vs SC-FA: " + ", ".join(f"{names[l]}: {c:.4f}" for l, c in enumerate(cos_sc) if c is not None),
        "update vs spatial backprop: " + ", ".join(f"{names[l]}: {c:.3f}" for l, c in enumerate(cos_bp) if c is not None),
        "update vs BPTT: " + ", ".join(f"{names[l]}: {c:.3f}" for l, c in enumerate(cos_bptt) if c is not None),
        "effective feedback sign-concordance: " + ", ".join(f"{100 * c:.2f}%" for c in concordance),
        "silent connections: " + ", ".join(f"{100 * s:.2f}%" for s in silent),
        f"Dale: {'ok' if all(r.ok for _, r in dale) else 'violations'} on {len(dale)} pathways; locality: "
        f"{'ok' if locality.ok else f'{len(locality.findings)} findings'} in {len(locality.audited)} synapse objects",
    ]
    return {"entries": entries, "checks": checks, "figures": figures, "summary": printed}
