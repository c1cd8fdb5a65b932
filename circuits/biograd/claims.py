"""``apical analyze DIR`` for a BioGrad run: the claims of docs/models/biograd.md (Tang et al.
2021), checked on the trained network, beyond the generic checks every framework gets (feedback
alignment and sign-concordance of B against the forward pathway, Dale's law, the locality audit).

- update vs gradient: on the first test samples, rate-coded exactly as the run's evaluations code
  them, the mean BioGrad update ΔW of every layer (the numpy oracle of the Brian2 network) against
  the BPTT gradient of the same network on the same rasters, with the same pseudo-derivative
  (biograd.surrogate). BioGrad's error is softmax(counts so far) − y from step t0 on, carried by
  error spikes through B; BPTT's loss is the cross-entropy of softmax(final counts): cosines below
  1 are expected even with B equal to the forward pathway;
- weight transport: whether B started as a copy of the forward pathway;
- Dale's law of the feedback matrices; BioGrad claims neither Dale's law nor sign-concordance,
  and the report says so.
"""

from __future__ import annotations

import numpy as np

from apical.analysis.report import Check, cosine_or_none, layer_labels, mixed_sign_fractions, update_cosine_check
from apical.analysis.report_figures import figure_update_cosine
from apical.circuits.biograd.oracle import DiscreteParameters, run_batch
from apical.circuits.bptt import LIFParams, bptt_gradients
from apical.circuits.framework import ClaimsContext, ClaimsResult

ORACLE_BATCH = 8  # samples per oracle pass (its per-synapse traces are [batch, post, pre])
LOSS = "cross-entropy of softmax(final output spike counts)"  # what the BPTT reference differentiates


def update_and_gradient(config, weights, biases, feedback, rasters, labels):
    """Mean BioGrad update (oracle) and the BPTT gradient on the same rasters, per layer."""
    m, b = config.model, config.biograd
    params = DiscreteParameters(leak=b.leak_per_step(m.dt), threshold=b.threshold, window=b.window, gamma=b.gamma,
                                surrogate=b.surrogate, time_steps=m.time_steps, error_start=b.error_start,
                                learning_rate=config.learning.learning_rate)
    delta_W = [np.zeros_like(W) for W in weights]
    delta_b = [np.zeros_like(b) for b in biases]
    for start in range(0, len(labels), ORACLE_BATCH):
        records = run_batch(weights, biases, feedback, rasters[start : start + ORACLE_BATCH],
                            labels[start : start + ORACLE_BATCH], params)
        for l, record in enumerate(records):
            delta_W[l] += record.weight_change.sum(axis=0) / len(labels)
            delta_b[l] += record.bias_change.sum(axis=0) / len(labels)
    lif = LIFParams(leak=b.leak_per_step(m.dt), threshold=b.threshold, window=b.window, gamma=b.gamma,
                    surrogate=b.surrogate)
    _, grad_W, grad_b = bptt_gradients(weights, biases, rasters, labels, lif)
    return delta_W, delta_b, grad_W, grad_b


def weight_transport_check(config) -> Check:
    copied = config.biograd.feedback_init == "forward_product"
    return Check(
        "No weight transport: feedback weights are learned, not copied",
        "feedback B are separate synapses (no synapse reads forward weights, see locality); how B was initialised",
        "B^l initialised as the transposed product of the forward weights above l (a copy at t = 0, as in the "
        "released code)" if copied else "B^l initialised at random, independent of W",
        not copied,
        key="weight_transport",
    )


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def claims(context: ClaimsContext) -> ClaimsResult:
    config, state = context.config, context.framework.state
    weights, biases, feedback = ([np.asarray(a, dtype=np.float64) for a in group]
                                 for group in (state.weights, state.biases, state.feedback))
    n = len(context.labels)
    labels = layer_labels(context.sizes)
    delta_W, delta_b, grad_W, grad_b = update_and_gradient(config, weights, biases, feedback, context.input_spikes,
                                                           context.labels)
    weight_cosines = [cosine_or_none(d, -g) for d, g in zip(delta_W, grad_W)]
    bias_cosines = [cosine_or_none(d, -g) for d, g in zip(delta_b, grad_b)]
    figures = figure_update_cosine(labels, weight_cosines, bias_cosines, n,
                                   context.figures_dir / "update_backprop_cosine",
                                   ylabel="cosine of BioGrad update with −∇L (BPTT)")
    per_layer = lambda values: {f"layer_{l}": v for l, v in enumerate(values)}  # noqa: E731
    valid = [c if c is not None else float("nan") for c in weight_cosines]
    sleep = config.biograd.sleep
    return ClaimsResult(
        info={"update_samples": {"split": "test", "first": n, "seed_input": config.seeds.input}},
        entries=[
            {"update_backprop_cosine": per_layer(weight_cosines),
             "bias_update_backprop_cosine": per_layer(bias_cosines),
             "update_backprop_loss": LOSS,
             "update_norm": per_layer(float(np.linalg.norm(d)) for d in delta_W),
             "bptt_gradient_norm": per_layer(float(np.linalg.norm(g)) for g in grad_W)},
            {"dale_feedback_mixed_sign_fraction": mixed_sign_fractions(feedback)},
        ],
        checks=[
            weight_transport_check(config),
            update_cosine_check(valid, claim="Updates follow the backprop gradient (\"gradient-based\")", loss=LOSS),
        ],
        restated={"sign_concordance": "Feedback is sign-concordant (not claimed by BioGrad)",
                  "dale": "Neurons obey Dale's law (not claimed by BioGrad)"},
        unclaimed=["sign_concordance", "dale"],
        notes=[
            f"Update-vs-gradient cosines: mean BioGrad ΔW (numpy oracle of the Brian2 circuit) on the first {n} "
            f"test samples, rate-coded with input seed {config.seeds.input} as the run's evaluations are, against "
            f"−∂L/∂W of BPTT (the run's {config.biograd.surrogate} pseudo-derivative, biograd.surrogate) on the same "
            "rasters. BioGrad's error is "
            f"softmax(counts so far) − y from step t0 = {config.biograd.error_start}, sent as error spikes through B; "
            "BPTT's loss is the cross-entropy of softmax(final counts), so cosines below 1 are expected.",
            f"Feedback: initialised as {config.biograd.feedback_init!r}; sleep phase {'on' if sleep else 'off'} in this "
            f"run, so B {'was realigned by sleep' if sleep else 'stayed at its initial value while W learned'}.",
            "Teaching signal: the error neurons read the one-hot label y from `target_raster`, and the input layer "
            "its spikes from `input_raster` (external inputs, as in any supervised network).",
        ],
        figures=figures,
        summary=[
            f"update-vs-BPTT cosine (weights, {n} test samples): "
            + ", ".join(f"{labels[l]}: {_fmt(c)}" for l, c in enumerate(weight_cosines)),
            "update-vs-BPTT cosine (biases): "
            + ", ".join(f"{labels[l]}: {_fmt(c)}" for l, c in enumerate(bias_cosines)),
        ],
    )
