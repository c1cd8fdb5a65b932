"""``apical analyze DIR``: check a trained network against the claims its framework makes.

Reads a results directory (config.toml, the newest checkpoint, metrics.csv, summary.json) and
writes, into the same directory:

- ``analysis.json``: one named entry per metric, per layer ("layer_<l>", l in Python order:
  hidden layer l is the output of ``weights_<l+1>``);
- ``plausibility.md``: claim, check, result, verdict, and the details behind them;
- figures in ``figures/``: feedback alignment over training, update-vs-gradient cosine,
  sign-concordance, weight distributions (PNG and PDF).

For a BioGrad run (Tang et al. 2021):

- feedback alignment: angle and norm ratio of each direct feedback matrix B^l against the
  transposed product of the forward matrices above layer l (what exact backprop would send),
  and the fraction of entries with the same sign;
- update vs gradient: on the first test samples, rate-coded exactly as the run's evaluations
  code them, the mean BioGrad update ΔW of every layer (the numpy oracle of the Brian2 network)
  against the BPTT gradient of the same network on the same rasters, with the same rectangular
  pseudo-derivative. BioGrad's error is softmax(counts so far) − y from step t0 on, carried by
  error spikes through B; BPTT's loss is the cross-entropy of softmax(final counts): cosines
  below 1 are expected even with B equal to the forward pathway;
- Dale's law per weight matrix with no declared cell types (BioGrad does not claim it);
- locality of the Brian2 code: the same circuit, built at a tiny size with the same number of
  layers, audited by ``analysis.locality`` with the learning rate, the error window and the
  step counter declared as global signals; analog (non-spike) couplings are listed.

For a BP run only Dale's law and the weight distributions are measured; the report states the
non-local quantities BPTT uses by construction.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from brian2 import prefs
from matplotlib.ticker import FuncFormatter, MaxNLocator

from apical.analysis.alignment import dale_violations, feedback_alignment, forward_pathway, sign_concordance
from apical.analysis.bptt import LIFParams, bptt_gradients
from apical.analysis.figures import STYLE, plt, save
from apical.analysis.locality import audit_locality
from apical.analysis.report import (
    Check,
    alignment_check,
    alignment_entries,
    dale_check,
    dale_entries,
    locality_check,
    locality_entry,
    plausibility_report,
    sign_concordance_check,
    sign_concordance_entries,
    update_cosine_check,
    write_analysis_json,
)
from apical.circuits.biograd.network import BioGradNetwork, BioGradSettings, initial_state
from apical.circuits.biograd.oracle import DiscreteParameters, run_batch
from apical.models.encoders import sample_rng
from apical.runs.config import load_config
from apical.runs.train import encode, load_dataset

UPDATE_SAMPLES = 32  # test samples on which updates are compared with the BPTT gradient
ORACLE_BATCH = 8  # samples per oracle pass (its per-synapse traces are [batch, post, pre])
#: Signals the BioGrad circuit broadcasts on purpose: the learning rate (0 while testing), the
#: length of the error window and the clock's step counter with the sample timing it is read
#: against (which steps carry an error), and the minibatch size.
BIOGRAD_GLOBAL_SIGNALS = ("learning_rate", "error_steps", "batch_size", "t_in_timesteps", "sample_steps",
                          "error_start")
TINY_INPUTS, TINY_HIDDEN, TINY_OUTPUTS = 8, 6, 3  # sizes of the network built for the locality audit


class AnalysisError(RuntimeError):
    """The directory cannot be analysed (no checkpoint, unknown framework)."""


def main(args) -> int:
    directory = Path(args.directory)
    results = analyze(directory)
    for line in results["summary"]:
        print(line)
    print(f"wrote {directory / 'analysis.json'}, {directory / 'plausibility.md'} and {len(results['figures'])} "
          f"figures in {directory / 'figures'}")
    return 0


# ------------------------------------------------------------------------------- loading
def read_checkpoint(path: Path) -> tuple[dict, dict]:
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files if k != "progress"}
        progress = json.loads(str(stored["progress"]))
    return arrays, progress


def layer_arrays(arrays: dict, prefix: str) -> list[np.ndarray]:
    """``prefix_1``, ``prefix_2``, ... as float64 arrays, in layer order."""
    found = []
    while f"{prefix}_{len(found) + 1}" in arrays:
        found.append(np.asarray(arrays[f"{prefix}_{len(found) + 1}"], dtype=np.float64))
    return found


def read_metrics(directory: Path) -> list[dict]:
    path = directory / "metrics.csv"
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def layer_label(weights, l: int) -> str:
    n_post, n_pre = weights[l].shape
    return f"{n_pre} → {n_post}"


# ------------------------------------------------------------------------------- analyses
def update_and_gradient(config, weights, biases, feedback, rasters, labels):
    """Mean BioGrad update (oracle) and the BPTT gradient on the same rasters, per layer."""
    m = config.model
    params = DiscreteParameters(leak=config.leak_per_step, threshold=m.threshold, window=m.window, gamma=m.gamma,
                                time_steps=m.time_steps, error_start=m.error_start,
                                learning_rate=config.learning.learning_rate)
    delta_W = [np.zeros_like(W) for W in weights]
    delta_b = [np.zeros_like(b) for b in biases]
    for start in range(0, len(labels), ORACLE_BATCH):
        records = run_batch(weights, biases, feedback, rasters[start : start + ORACLE_BATCH],
                            labels[start : start + ORACLE_BATCH], params)
        for l, record in enumerate(records):
            delta_W[l] += record.weight_change.sum(axis=0) / len(labels)
            delta_b[l] += record.bias_change.sum(axis=0) / len(labels)
    lif = LIFParams(leak=config.leak_per_step, threshold=m.threshold, window=m.window, gamma=m.gamma)
    _, grad_W, grad_b = bptt_gradients(weights, biases, rasters, labels, lif, surrogate="rectangular")
    return delta_W, delta_b, grad_W, grad_b


def cosine_or_none(update, gradient):
    """Cosine of an update with −gradient; None where either is all zero (no update, no gradient)."""
    update, gradient = np.ravel(update), np.ravel(gradient)
    norm = np.linalg.norm(update) * np.linalg.norm(gradient)
    return None if norm == 0 else float(np.clip(update @ -gradient / norm, -1.0, 1.0))


def alignment_over_training(directory: Path, config, metrics, final_weights) -> dict:
    """Feedback angles per hidden layer against samples seen: from the metrics.csv columns
    ``alignment_angle_<l+1>`` the BioGrad framework logs at each evaluation (plus the initial
    network), else from the initial network and every checkpoint kept. The initial network is
    rebuilt from the weight seed as the framework builds it."""
    n_hidden = len(final_weights) - 1
    sizes = (final_weights[0].shape[1], *(W.shape[0] for W in final_weights))
    start = initial_state(sizes, sample_rng(config.seeds.weights, "weights", 0), config.model.feedback_init)
    start_angles = [r["angle"] for r in feedback_alignment(start.weights, start.feedback)]
    columns = [f"alignment_angle_{l + 1}" for l in range(n_hidden)]
    if metrics and all(c in metrics[0] for c in columns):
        series = {"source": "metrics.csv", "samples_seen": [0] + [int(r["samples_seen"]) for r in metrics]}
        for l, column in enumerate(columns):
            series[f"layer_{l}"] = [start_angles[l]] + [float(r[column]) for r in metrics]
        return series
    points = [(0, start.weights, start.feedback)]
    for path in sorted((directory / "checkpoints").glob("checkpoint-*.npz")):
        arrays, progress = read_checkpoint(path)
        points.append((progress["samples_seen"], layer_arrays(arrays, "weights"), layer_arrays(arrays, "feedback")))
    series = {"source": "initial network and checkpoints", "samples_seen": [p[0] for p in points]}
    angles = [[r["angle"] for r in feedback_alignment(W, B)] for _, W, B in points]
    for l in range(n_hidden):
        series[f"layer_{l}"] = [a[l] for a in angles]
    return series


def locality_of_biograd(n_hidden_layers: int):
    """Audit the BioGrad circuit's Brian2 code, built on runtime at a tiny size with the same depth."""
    sizes = (TINY_INPUTS, *[TINY_HIDDEN] * n_hidden_layers, TINY_OUTPUTS)
    circuit = BioGradNetwork(BioGradSettings(sizes=sizes), 1, device_name="runtime")
    # built to be read, never run: no "unused object" warnings when Brian2 collects it (the next
    # circuit build resets every preference to its default)
    prefs.logging.warn_for_unused_objects = False
    network = circuit.brian_objects()["network"]
    report = audit_locality(network, global_signals=BIOGRAD_GLOBAL_SIGNALS, namespace={})
    return report, sizes


def mixed_sign_fractions(matrices) -> dict:
    return {f"layer_{l}": len(dale_violations(M).mixed_sign) / M.shape[1] for l, M in enumerate(matrices)}


# ------------------------------------------------------------------------------- figures
def figure_alignment(series: dict, path: Path) -> list[Path]:
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots()
        seen = series["samples_seen"]
        for l in range(len([k for k in series if k.startswith("layer_")])):
            axes.plot(seen, series[f"layer_{l}"], "o-", label=f"B{_superscript(l + 1)} (to hidden layer {l + 1})")
        axes.axhline(90.0, color="0.6", lw=0.8, ls="--")
        axes.text(seen[-1], 88.0, "orthogonal", ha="right", va="top", fontsize=6, color="0.4")
        axes.set_xlabel("training samples seen")
        axes.set_ylabel("angle between B and forward pathway (°)")
        axes.set_ylim(0.0, 95.0)
        axes.set_yticks([0, 15, 30, 45, 60, 75, 90])
        axes.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        axes.xaxis.set_major_formatter(FuncFormatter(_in_thousands))
        axes.grid(alpha=0.3)
        axes.legend(loc="best", frameon=False)
        source = "initial network and each evaluation" if series["source"] == "metrics.csv" \
            else "initial network and kept checkpoints"
        axes.set_title(f"points: {source}", fontsize=6, color="0.3")
        return save(figure, path)


def figure_update_cosine(labels, weight_cosines, bias_cosines, n_samples, path: Path,
                         ylabel: str = "cosine of BioGrad update with −∇L (BPTT)",
                         legend: tuple[str, str] = ("ΔW (weights)", "Δb (biases)")) -> list[Path]:
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots()
        x = np.arange(len(labels))
        bar_sets = ((-0.2, weight_cosines, legend[0], "C0"), (0.2, bias_cosines, legend[1], "C1"))
        for offset, values, name, color in bar_sets:
            heights = [np.nan if v is None else v for v in values]
            bars = axes.bar(x + offset, heights, width=0.4, label=name, color=color)
            for bar, v in zip(bars, values):
                y = 0.0 if v is None else v
                axes.annotate("n/a" if v is None else f"{v:.2f}", (bar.get_x() + bar.get_width() / 2, y),
                              xytext=(0, 2 if y >= 0 else -2), textcoords="offset points", ha="center",
                              va="bottom" if y >= 0 else "top", fontsize=6)
        axes.axhline(0.0, color="0.3", lw=0.8)
        axes.set_xticks(x, labels)
        axes.set_xlabel("layer (pre → post neurons)")
        axes.set_ylabel(ylabel)
        low = min([0.0] + [v for v in weight_cosines + bias_cosines if v is not None])
        # headroom above the bars for the legend, so it never covers the values printed on them
        axes.set_ylim(min(-0.1, low - 0.15), 1.4)
        axes.set_yticks([t for t in axes.get_yticks() if t <= 1.0 + 1e-9])
        axes.legend(loc="upper center", frameon=False, ncols=2)
        axes.set_title(f"mean update over {n_samples} test samples", fontsize=6, color="0.3")
        return save(figure, path)


def figure_sign_concordance(fractions, path: Path) -> list[Path]:
    with plt.rc_context(STYLE):
        figure, axes = plt.subplots()
        x = np.arange(len(fractions))
        bars = axes.bar(x, [100 * f for f in fractions], width=0.5, color="C2")
        for bar, f in zip(bars, fractions):
            axes.annotate(f"{100 * f:.1f}%", (bar.get_x() + bar.get_width() / 2, 100 * f), xytext=(0, 2),
                          textcoords="offset points", ha="center", va="bottom", fontsize=6)
        axes.axhline(50.0, color="0.5", lw=0.8, ls="--")
        axes.set_xlim(-0.75, len(fractions) - 0.25)
        axes.text(-0.7, 51.0, "chance", ha="left", va="bottom", fontsize=6, color="0.4")
        axes.set_xticks(x, [f"B{_superscript(l + 1)} → hidden {l + 1}" for l in x])
        axes.set_ylabel("entries with the sign of the\nforward pathway (%)")
        axes.set_ylim(0.0, 108.0)
        axes.set_yticks([0, 25, 50, 75, 100])
        return save(figure, path)


def figure_weight_distributions(weights, feedback, path: Path) -> list[Path]:
    rows = [("W", weights)] + ([("B", feedback)] if feedback else [])
    n_columns = max(len(matrices) for _, matrices in rows)
    style = {**STYLE, "figure.figsize": (7.0, 1.9 * len(rows))}  # full page width
    with plt.rc_context(style):
        figure, grid = plt.subplots(len(rows), n_columns, squeeze=False, constrained_layout=True)
        for r, (symbol, matrices) in enumerate(rows):
            for c in range(n_columns):
                axes = grid[r, c]
                if c >= len(matrices):
                    axes.axis("off")
                    continue
                values = matrices[c].ravel()
                bins = int(np.clip(np.sqrt(values.size), 10, 80))
                axes.hist(values, bins=bins, color="C0" if symbol == "W" else "C3")
                axes.axvline(0.0, color="0.3", lw=0.6)
                n_a, n_b = matrices[c].shape
                if symbol == "W":
                    title = f"W{_superscript(c + 1)}: {n_b} → {n_a} neurons"
                else:
                    title = f"B{_superscript(c + 1)}: errors → hidden {c + 1} ({n_b} → {n_a})"
                axes.set_title(title)
                axes.set_xlabel("weight")
                axes.xaxis.set_major_locator(MaxNLocator(5, symmetric=True))
                if c == 0:
                    axes.set_ylabel("synapses")
        return save(figure, path)


def _in_thousands(value, _position) -> str:
    return f"{value / 1000:g}k" if abs(value) >= 1000 else f"{value:g}"


def _superscript(n: int) -> str:
    return str(n).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


# ------------------------------------------------------------------------------- the command
def analyze(directory: Path, n_samples: int = UPDATE_SAMPLES) -> dict:
    """Run every analysis that applies to the directory's framework; returns what was written."""
    directory = Path(directory)
    config = load_config(directory / "config.toml")
    checkpoints = sorted((directory / "checkpoints").glob("checkpoint-*.npz"))
    if not checkpoints:
        raise AnalysisError(f"{directory} holds no checkpoint to analyse")
    arrays, progress = read_checkpoint(checkpoints[-1])
    weights, biases, feedback = (layer_arrays(arrays, name) for name in ("weights", "biases", "feedback"))
    framework = config.model.framework
    if framework == "bioleaf":  # its own claims and checks (issue 5)
        from apical.circuits.bioleaf.claims import analyze_bioleaf

        return analyze_bioleaf(directory, config, checkpoints[-1], n_samples)
    if framework == "scmicro":  # its own claims and checks (issue 6)
        from apical.circuits.scmicro.claims import analyze_scmicro

        return analyze_scmicro(directory, config, checkpoints[-1], n_samples)
    if framework not in ("biograd", "bp"):
        raise AnalysisError(f"no analysis for framework {framework!r} yet (available: biograd, bp)")
    metrics = read_metrics(directory)
    summary_path = directory / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    figures_dir = directory / "figures"
    figures_dir.mkdir(exist_ok=True)
    labels = [layer_label(weights, l) for l in range(len(weights))]

    info = {"framework": framework, "checkpoint": checkpoints[-1].name, "samples_seen": progress["samples_seen"],
            "network": [weights[0].shape[1], *(W.shape[0] for W in weights)],
            "layer_index": "layer_<l> is the output of weights_<l+1> (Python order)"}
    entries = [dale_entries(weights), {"dale_mixed_sign_fraction": mixed_sign_fractions(weights)}]
    checks, notes, details, figures, printed = [], [], [], [], []
    dale_reports = [dale_violations(W) for W in weights]

    if framework == "biograd":
        alignment = feedback_alignment(weights, feedback)
        concordance = [sign_concordance(B, forward_pathway(weights, l)) for l, B in enumerate(feedback)]
        entries += [alignment_entries(weights, feedback), sign_concordance_entries(weights, feedback),
                    {"dale_feedback_mixed_sign_fraction": mixed_sign_fractions(feedback)}]

        dataset = load_dataset(config)
        n = min(n_samples, len(dataset.test_labels))
        rasters = encode(dataset.test_inputs[:n], config.model.time_steps, config.seeds.input, "test", 0)
        sample_labels = dataset.test_labels[:n]
        delta_W, delta_b, grad_W, grad_b = update_and_gradient(config, weights, biases, feedback, rasters,
                                                               sample_labels)
        weight_cosines = [cosine_or_none(d, g) for d, g in zip(delta_W, grad_W)]
        bias_cosines = [cosine_or_none(d, g) for d, g in zip(delta_b, grad_b)]
        info["update_samples"] = {"split": "test", "first": n, "seed_input": config.seeds.input}
        entries.append({
            "update_gradient_cosine": {f"layer_{l}": c for l, c in enumerate(weight_cosines)},
            "bias_update_gradient_cosine": {f"layer_{l}": c for l, c in enumerate(bias_cosines)},
            "update_norm": {f"layer_{l}": float(np.linalg.norm(d)) for l, d in enumerate(delta_W)},
            "bptt_gradient_norm": {f"layer_{l}": float(np.linalg.norm(g)) for l, g in enumerate(grad_W)},
        })

        series = alignment_over_training(directory, config, metrics, weights)
        entries.append({"feedback_angle_over_training": series})

        locality, tiny_sizes = locality_of_biograd(len(weights) - 1)
        entries.append(locality_entry(locality))
        info["locality_network"] = list(tiny_sizes)

        figures += figure_alignment(series, figures_dir / "feedback_alignment")
        figures += figure_update_cosine(labels, weight_cosines, bias_cosines, n, figures_dir / "update_gradient_cosine")
        figures += figure_sign_concordance(concordance, figures_dir / "sign_concordance")

        checks.append(locality_check(locality))
        checks.append(_spike_only_check(locality))
        checks.append(_weight_transport_check(config))
        checks.append(alignment_check(alignment))
        valid = [c if c is not None else float("nan") for c in weight_cosines]
        checks.append(update_cosine_check(valid, claim="Updates follow the backprop gradient (\"gradient-based\")"))
        checks.append(sign_concordance_check(concordance, claim="Feedback is sign-concordant (not claimed by BioGrad)"))
        checks.append(dale_check(dale_reports, claim="Neurons obey Dale's law (not claimed by BioGrad)"))

        notes += [
            f"Update-vs-gradient cosines: mean BioGrad ΔW (numpy oracle of the Brian2 circuit) on the first {n} "
            f"test samples, rate-coded with input seed {config.seeds.input} as the run's evaluations are, against "
            "−∂L/∂W of BPTT (rectangular pseudo-derivative) on the same rasters. BioGrad's error is "
            f"softmax(counts so far) − y from step t0 = {config.model.error_start}, sent as error spikes through B; "
            "BPTT's loss is the cross-entropy of softmax(final counts), so cosines below 1 are expected.",
            f"Feedback: initialised as {config.model.feedback_init!r}; sleep phase "
            f"{'on' if config.learning.sleep else 'off'} in this run, so B "
            f"{'was realigned by sleep' if config.learning.sleep else 'stayed at its initial value while W learned'}.",
            "The locality audit reads the Brian2 code, not this run's weights: it audits the same circuit built on "
            f"the runtime device at sizes {tuple(tiny_sizes)} with the same number of layers.",
            "Teaching signal: the error neurons read the one-hot label y from `target_raster`, and the input layer "
            "its spikes from `input_raster` (external inputs, as in any supervised network).",
        ]
        details += _locality_details(locality)
        printed += [
            "feedback angle (°): " + ", ".join(f"hidden {l + 1}: {r['angle']:.1f}" for l, r in enumerate(alignment)),
            "feedback norm ratio: " + ", ".join(f"hidden {l + 1}: {r['norm_ratio']:.3f}"
                                                for l, r in enumerate(alignment)),
            "sign-concordance: " + ", ".join(f"hidden {l + 1}: {100 * f:.1f}%" for l, f in enumerate(concordance)),
            f"update-vs-BPTT cosine (weights, {n} test samples): "
            + ", ".join(f"{labels[l]}: {_fmt(c)}" for l, c in enumerate(weight_cosines)),
            "update-vs-BPTT cosine (biases): " + ", ".join(f"{labels[l]}: {_fmt(c)}" for l, c in enumerate(bias_cosines)),
            f"locality: {'ok' if locality.ok else f'{len(locality.findings)} findings'} in "
            f"{len(locality.audited)} synapse objects; {len(locality.analog_couplings)} analog couplings",
        ]
    else:
        checks.append(Check(
            "Learning uses only local information",
            "by construction (BPTT in numpy; no Brian2 network to audit)",
            "each layer's gradient needs W^(l+1)ᵀ (weight transport) and ∂L/∂v[t+1] from every later step "
            "(the whole history of every neuron is stored and replayed backwards)",
            False,
        ))
        checks.append(dale_check(dale_reports))
        entries.append({"locality": {"ok": False, "audited": [],
                                     "reason": "BPTT baseline: non-local by construction (weight transport, "
                                               "backward pass through time); no Brian2 network to audit"}})
        notes.append(f"Optimiser: {config.learning.optimizer}, learning rate {config.learning.bp_learning_rate:g}, "
                     f"batch size {config.learning.batch_size}.")

    mixed = mixed_sign_fractions(weights)
    printed.append("Dale, mixed-sign presynaptic neurons: "
                   + ", ".join(f"{labels[l]}: {100 * mixed[f'layer_{l}']:.1f}%" for l in range(len(weights))))
    figures += figure_weight_distributions(weights, feedback, figures_dir / "weight_distributions")
    if "final_test_accuracy" in summary:
        notes.insert(0, f"Final test accuracy of this run: {100 * summary['final_test_accuracy']:.2f}% "
                        f"after {summary.get('samples_seen', progress['samples_seen'])} training samples.")
    notes.insert(0, f"Analysed checkpoint {checkpoints[-1].name} ({progress['samples_seen']} samples seen) of "
                    f"{framework} network {'-'.join(str(n) for n in info['network'])}.")

    info["figures"] = [str(p.relative_to(directory)) for p in figures]
    entries.insert(0, {"analysis": info})
    json_path = directory / "analysis.json"
    json_path.unlink(missing_ok=True)  # a fresh file: entries of an older analysis must not linger
    write_analysis_json(json_path, *entries)
    title = f"Plausibility report: {framework} ({directory.name})"
    text = plausibility_report(checks, title, notes)
    if details:
        text += "\n" + "\n".join(details) + "\n"
    (directory / "plausibility.md").write_text(text)
    return {"entries": entries, "checks": checks, "figures": figures, "summary": printed}


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _spike_only_check(report) -> Check:
    couplings = [f"{c.object}: {c.code}" for c in report.analog_couplings if c.kind == "summed variable"]
    others = [f"{c.object}: {c.kind} `{c.identifier}`" for c in report.analog_couplings if c.kind != "summed variable"]
    listed = "; ".join(couplings + others) or "none"
    return Check(
        "Neurons interact only through spikes (event-based)",
        "analog (non-spike) couplings between neurons in the built network: summed variables, "
        "presynaptic state read every step, linked variables",
        f"{len(report.analog_couplings)} analog couplings: {listed}",
        not report.analog_couplings,
    )


def _weight_transport_check(config) -> Check:
    copied = config.model.feedback_init == "forward_product"
    return Check(
        "No weight transport: feedback weights are learned, not copied",
        "feedback B are separate synapses (no synapse reads forward weights, see locality); how B was initialised",
        "B^l initialised as the transposed product of the forward weights above l (a copy at t = 0, as in the "
        "released code)" if copied else "B^l initialised at random, independent of W",
        not copied,
    )


def _locality_details(report) -> list[str]:
    lines = ["## Locality audit", "",
             f"Synapse objects audited: {', '.join(report.audited)}. Findings: "
             + ("none." if report.ok else ""), ""]
    for f in report.findings:
        lines.append(f"- **{f.object}**: {f.kind} `{f.identifier}` in `{f.code}` ({f.message})")
    lines += ["", "Analog (non-spike) couplings, allowed by the audit but not event-based:", ""]
    for c in report.analog_couplings:
        lines.append(f"- **{c.object}** ({c.kind}) `{c.code}`: {c.detail}")
    if not report.analog_couplings:
        lines.append("- none")
    lines += ["", "Global signals read by the circuit (broadcast to many neurons at once):", ""]
    for s in report.phase_switches:
        lines.append(f"- **{s.object}** reads `{s.identifier}` ({s.kind}, {s.owner}) in `{s.code}`")
    return lines
