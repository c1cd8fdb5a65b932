"""``apical analyze DIR``: check a trained network against what its framework claims.

Reads a results directory (config.toml, the newest checkpoint, metrics.csv, summary.json), builds
the run's framework through its declaration (``apical.circuits.registry``) on a device that needs
no compilation, loads the checkpoint's state into it, and writes into the same directory:

- ``analysis.json``: one named entry per metric; per-layer metrics map "layer_<l>" to a value, l in
  Python order (hidden layer l is the output of ``weights_<l+1>``; feedback pathway l is the l-th
  of ``Framework.feedback_pairs``, the feedback to hidden layer l);
- ``plausibility.md``: claim, check, result, verdict, and the details behind them;
- figures in ``figures/`` (PNG and PDF).

Every framework gets the generic checks, from what its Framework object exposes
(circuits/framework.py):

- learning curve: test accuracy at each evaluation of metrics.csv;
- Dale's law per forward weight matrix (``layer_weights``), with no declared cell types, and the
  weight distributions;
- feedback alignment where the framework has feedback (``feedback_pairs``): angle and norm ratio of
  each feedback matrix against what exact backprop would send in its place, sign-concordance, and
  the angle over training (metrics.csv's ``alignment_angle_<l+1>`` columns, else every checkpoint
  kept, after the initial network the framework's factory builds from the weight seed);
- weight transport where the framework has feedback and none of its own rows answers the claim:
  whether a feedback matrix ever lay along (or against) what backprop would send, a copy of the
  forward weights (fails), else measured without a verdict;
- locality where the framework has a Brian2 network (``locality_copy``): the same circuit built small
  with the run's settings, audited by ``analysis.locality`` with the global signals the framework
  declares; analog (non-spike) couplings are listed.

Then the framework's own claims (``FrameworkSpec.claims``, circuits/<name>/claims.py, stated in
docs/models/<name>.md) run on the first test samples, coded exactly as the run's evaluations code
them; they add checks, entries, notes and figures and may reword the generic checks for their
framework (``ClaimsResult.restated``).

Two entries read the same for every framework:

- ``claims``: the shared vocabulary (docs/claims.md, ``apical.analysis.report.CLAIMS``): for each of
  update_vs_backprop, locality, event_based, weight_transport, feedback_alignment,
  sign_concordance and dale, the verdict (pass, fail, info, n/a), whether the framework claims it
  (``FrameworkSpec.claimed``; without it, every key its claims do not return as unclaimed, and none
  for a framework without claims), and the row and numbers behind it. A generic row of a claim the
  framework does not make, and does not reword, reads "(not claimed by <title>)";
- ``events``: operations and energy per training and per inference sample, counted on the
  framework's Brian2 network on the first test samples (``apical.analysis.events``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from brian2 import prefs

from apical.analysis.alignment import angle_degrees, dale_violations, sign_concordance
from apical.analysis.events import event_summary, summary_line
from apical.analysis.locality import audit_small_copy
from apical.analysis.report import (
    CLAIMS,
    Check,
    claims_entry,
    dale_check,
    dale_entries,
    layer_labels,
    locality_check,
    locality_details,
    locality_entry,
    mixed_sign_fractions,
    spike_only_check,
    write_analysis,
)
from apical.analysis.report_figures import figure_alignment, figure_sign_concordance, figure_weight_distributions
from apical.circuits import registry
from apical.circuits.framework import ClaimsContext, ClaimsResult
from apical.circuits.provenance import check_against_reference
from apical.runs.equations import read_record
from apical.runs.config import load_config
from apical.runs.datasets import encode, load_dataset
from apical.runs.errors import TrainingError
from apical.runs.results import load_checkpoint, read_checkpoint, read_metrics

UPDATE_SAMPLES = 32  # test samples handed to a framework's claims (updates compared with gradients)
EVENT_SAMPLES = 8  # test samples whose operations are counted (apical.analysis.events)
MAX_FEEDBACK_ANGLE = 45.0  # degrees: feedback "aligns" below this angle to what backprop would send
MIN_SIGN_CONCORDANCE = 0.99
COPY_ANGLE = 1e-3  # degrees: a feedback matrix this close to what backprop would send is a copy of it (up to scale)
#: The generic checks, in the order they head (locality) or close (the others) the report; a
#: framework's claims may reword each of them by these keys.
OPENING_CHECKS = ("locality", "event_based")
CLOSING_CHECKS = ("weight_transport", "feedback_alignment", "sign_concordance", "dale")
#: Generic checks that stand in for a framework's own: left out where one of its rows answers the key.
FALLBACK_CHECKS = ("weight_transport",)


class AnalysisError(RuntimeError):
    """The directory cannot be analysed (no checkpoint)."""


def register(commands) -> None:
    """``apical analyze``."""
    parser = commands.add_parser("analyze", help="plausibility audits and alignment of a results directory")
    parser.add_argument("directory")
    parser.add_argument("--out", help="where analysis.json, plausibility.md and figures/ go (default: the directory; "
                                      "the results directory itself is only read)")
    parser.set_defaults(handler=main)


def main(args) -> int:
    directory = Path(args.directory)
    out = Path(args.out) if getattr(args, "out", None) else directory
    results = analyze(directory, out=out)
    for line in results["summary"]:
        print(line)
    print(f"wrote {out / 'analysis.json'}, {out / 'plausibility.md'} and {len(results['figures'])} "
          f"figures in {out / 'figures'}")
    return 0


# ------------------------------------------------------------------------------- loading
def analysis_framework(spec, config, n_in: int, n_out: int, build_dir: Path):
    """The run's framework with its initial state, built for one sample at a time on a device that
    compiles nothing: the numpy form where the run used it, else Brian2's runtime device where the
    framework supports it."""
    device = config.run.device
    if device != "numpy" and "runtime" in spec.devices:
        device = "runtime"
    config = replace(config, run=replace(config.run, device=device))
    framework = spec.factory(config, n_in, n_out, 1, build_dir)
    prefs.logging.warn_for_unused_objects = False  # its Brian2 objects are read, never run
    return framework


# ------------------------------------------------------------------------------- generic analyses
def feedback_statistics(pairs) -> list[dict]:
    """Per feedback pathway: angle (degrees) and norm ratio against what backprop would send, and
    the sign-concordance (None where a matrix is all zero, or no entry is non-zero in both)."""
    found = []
    for label, feedback, target in pairs:
        feedback, target = np.asarray(feedback, dtype=np.float64), np.asarray(target, dtype=np.float64)
        norms = np.linalg.norm(feedback) * np.linalg.norm(target)
        signed = ((feedback != 0) & (target != 0)).any()
        found.append({"label": label,
                      "angle": angle_degrees(feedback, target) if norms else None,
                      "norm_ratio": float(np.linalg.norm(feedback) / np.linalg.norm(target)) if norms else None,
                      "sign_concordance": sign_concordance(feedback, target) if signed else None})
    return found


def feedback_over_training(directory: Path, framework, initial: list[dict], metrics: list[dict],
                           final_arrays: dict) -> dict:
    """Feedback angles per pathway against samples seen: the initial network, then the metrics.csv
    columns ``alignment_angle_<l+1>`` the framework logs at each evaluation, else every checkpoint
    kept (loaded into ``framework``, which ends with ``final_arrays`` loaded again)."""
    columns = [f"alignment_angle_{l + 1}" for l in range(len(initial))]
    if metrics and all(c in metrics[0] for c in columns):
        series = {"source": "metrics.csv", "samples_seen": [0] + [int(r["samples_seen"]) for r in metrics]}
        for l, column in enumerate(columns):
            series[f"layer_{l}"] = [initial[l]["angle"]] + [float(r[column]) for r in metrics]
        return series
    points = [(0, [s["angle"] for s in initial])]
    for path in sorted((directory / "checkpoints").glob("checkpoint-*.npz")):
        try:
            arrays, progress = read_checkpoint(path)
        except TrainingError:
            continue  # damaged (load_checkpoint has said so) or rotated away by a training beside us
        framework.load_state_arrays(arrays)
        points.append((progress["samples_seen"], [s["angle"] for s in feedback_statistics(framework.feedback_pairs())]))
    framework.load_state_arrays(final_arrays)
    series = {"source": "initial network and checkpoints", "samples_seen": [p[0] for p in points]}
    for l in range(len(initial)):
        series[f"layer_{l}"] = [angles[l] for _, angles in points]
    return series


def learning_curve(metrics: list[dict], initial: float | None = None) -> dict | None:
    """Test accuracy at each evaluation (metrics.csv), from ``initial`` at 0 samples (the
    evaluation before training, summary.json's ``initial_test_accuracy``) where there is one, with
    the last and the best; None without an evaluation."""
    rows = [r for r in metrics if r.get("test_accuracy") not in (None, "")]
    if not rows:
        return None
    seen = [int(r["samples_seen"]) for r in rows]
    accuracy = [float(r["test_accuracy"]) for r in rows]
    if initial is not None and seen[0] > 0:
        seen, accuracy = [0] + seen, [float(initial)] + accuracy
    best = int(np.argmax(accuracy))
    return {"samples_seen": seen, "test_accuracy": accuracy, "final_test_accuracy": accuracy[-1],
            "best_test_accuracy": accuracy[best], "best_samples_seen": seen[best]}


def _per_layer(values) -> dict:
    return {f"layer_{l}": value for l, value in enumerate(values)}


def _listed(statistics, key: str, form: str) -> str:
    return ", ".join(f"{s['label']}: {'n/a' if s[key] is None else form.format(s[key])}" for s in statistics)


def restate(key: str, check: Check | None, restated: dict):
    """A generic check as a framework's claims word it: unchanged, reworded, replaced or left out."""
    if key not in restated:
        return check
    new = restated[key]
    if isinstance(new, str):
        return None if check is None else replace(check, claim=new)
    if isinstance(new, Check) and new.key is None:
        return replace(new, key=key)  # a row in its place answers the same claim
    return new  # a Check in its place, or None


# ------------------------------------------------------------------------------- the generic checks
# Each adds to ``found`` (entries, notes, figures, printed lines) and to ``checks`` its row by key.
def events_entry(framework, dataset, config, found: ClaimsResult, n_samples: int = None) -> dict | None:
    """Operations and energy per training and per inference sample (apical.analysis.events) of the
    analysed network on the first test samples; None when the framework has nothing to count."""
    n = min(n_samples or EVENT_SAMPLES, len(dataset.test_labels))
    spikes = encode(dataset.test_inputs[:n], config.model.time_steps, config.seeds.input, "test", 0)
    events = event_summary(framework, spikes, dataset.test_labels[:n])
    if events is not None:
        found.summary.append("events: " + summary_line(events))
    return events


def check_learning_curve(metrics: list[dict], found: ClaimsResult, initial: float | None = None) -> None:
    curve = learning_curve(metrics, initial)
    if curve is None:
        return
    seen, accuracy = curve["samples_seen"], curve["test_accuracy"]
    told = (f"test accuracy {100 * accuracy[0]:.2f}% after {seen[0]} training samples, {100 * accuracy[-1]:.2f}% "
            f"after {seen[-1]} (best {100 * curve['best_test_accuracy']:.2f}% after {curve['best_samples_seen']})")
    found.entries.append({"learning_curve": curve})
    found.notes.append(f"Learning curve (metrics.csv, {len(seen)} evaluations): {told}.")
    found.summary.append(f"learning curve: {told}")


def check_dale(weights: list[np.ndarray], labels: list[str], found: ClaimsResult, checks: dict) -> None:
    if not weights:
        return
    mixed = mixed_sign_fractions(weights)
    found.entries += [dale_entries(weights), {"dale_mixed_sign_fraction": mixed}]
    checks["dale"] = replace(dale_check([dale_violations(W) for W in weights]), key="dale",
                             value=mixed_sign_fractions(weights))
    found.summary.append("Dale, mixed-sign presynaptic neurons: "
                         + ", ".join(f"{labels[l]}: {100 * mixed[f'layer_{l}']:.1f}%" for l in range(len(weights))))


def weight_transport_check(series: dict, names: list[str], audited: bool = True) -> Check:
    """No weight transport, as far as the feedback's angles tell: a feedback matrix that ever lies
    along what backprop would send, or against it (at the initial network or any later measurement
    of ``series``), is a copy of the forward weights; otherwise the verdict is left open (a copy made
    and undone between measurements, or one read while learning, is for the framework's own check
    and the locality audit, ``audited``: whether it ran)."""
    closest = []  # per pathway: (angle nearest 0° or 180°, samples seen then)
    for l in range(len(names)):
        measured = [(a, n) for a, n in zip(series[f"layer_{l}"], series["samples_seen"]) if a is not None]
        closest.append(min(measured, key=lambda m: min(m[0], 180.0 - m[0])) if measured else (None, None))
    copies = [name for name, (angle, _) in zip(names, closest)
              if angle is not None and min(angle, 180.0 - angle) < COPY_ANGLE]
    listed = ", ".join(f"{name}: {'n/a' if angle is None else f'{angle:.1f}° (after {seen} samples)'}"
                       for name, (angle, seen) in zip(names, closest))
    return Check(
        "No weight transport: feedback weights are not copies of the forward weights",
        f"angle nearest 0° or 180° of each feedback matrix to what exact backprop would send, over training "
        f"({series['source']}); within {COPY_ANGLE:g}° of either it is a copy, up to scale and sign",
        f"{listed}; " + (f"copied: {', '.join(copies)}" if copies else
                         "no copy seen (" + ("a weight read while learning would be a finding of the locality audit)"
                                             if audited else "weights read while learning: not audited)")),
        False if copies else None,
        key="weight_transport", value=_per_layer(angle for angle, _ in closest))


def check_feedback(pairs, series: dict, figures_dir: Path, found: ClaimsResult, checks: dict) -> None:
    if not pairs:
        return
    statistics = feedback_statistics(pairs)
    names = [s["label"] for s in statistics]
    found.entries += [{"feedback_angle_degrees": _per_layer(s["angle"] for s in statistics),
                       "feedback_norm_ratio": _per_layer(s["norm_ratio"] for s in statistics),
                       "sign_concordance": _per_layer(s["sign_concordance"] for s in statistics)},
                      {"feedback_angle_over_training": series}]
    checks["feedback_alignment"] = Check(
        "Feedback aligns with the forward pathway",
        f"angle between each feedback matrix and what exact backprop would send in its place below "
        f"{MAX_FEEDBACK_ANGLE:g}°",
        _listed(statistics, "angle", "{:.1f}°"),
        all(s["angle"] is not None and s["angle"] < MAX_FEEDBACK_ANGLE for s in statistics),
        key="feedback_alignment", value=_per_layer(s["angle"] for s in statistics))
    checks["sign_concordance"] = Check(
        "Feedback is sign-concordant",
        f"fraction of feedback entries with the sign of the forward pathway ≥ {MIN_SIGN_CONCORDANCE:g}",
        _listed(statistics, "sign_concordance", "{:.1%}"),
        all(s["sign_concordance"] is not None and s["sign_concordance"] >= MIN_SIGN_CONCORDANCE for s in statistics),
        key="sign_concordance", value=_per_layer(s["sign_concordance"] for s in statistics))
    found.figures += figure_alignment(series, names, figures_dir / "feedback_alignment")
    found.figures += figure_sign_concordance([s["sign_concordance"] for s in statistics], names,
                                             figures_dir / "sign_concordance")
    found.summary += ["feedback angle (°): " + _listed(statistics, "angle", "{:.1f}"),
                      "feedback norm ratio: " + _listed(statistics, "norm_ratio", "{:.3f}"),
                      "sign-concordance: " + _listed(statistics, "sign_concordance", "{:.1%}")]


def check_locality(locality, small_sizes, found: ClaimsResult, checks: dict) -> None:
    if locality is None:
        found.entries.append({"locality": {"ok": None, "audited": [], "reason": "no Brian2 network to audit"}})
        checks["locality"] = Check("Learning uses only local information", "a locality audit of the Brian2 code",
                                   "not audited: the framework builds no Brian2 network", None, key="locality")
        return
    found.entries.append(locality_entry(locality))
    found.info["locality_network"] = list(small_sizes)
    checks["locality"] = replace(locality_check(locality), key="locality", value=len(locality.findings))
    checks["event_based"] = replace(spike_only_check(locality), key="event_based",
                                    value=len(locality.analog_couplings))
    found.details += locality_details(locality)
    found.notes.append("The locality audit reads the Brian2 code, not this run's weights: it audits the same circuit "
                       f"built on the runtime device at sizes {tuple(small_sizes)} with the same number of layers.")
    found.summary.append(f"locality: {'ok' if locality.ok else f'{len(locality.findings)} findings'} in "
                         f"{len(locality.audited)} synapse objects; {len(locality.analog_couplings)} analog couplings")


def equations_unscored(directory: Path, spec, found: ClaimsResult) -> str | None:
    """Why the framework's own claims cannot be scored, or None: they compare the run with its
    references (oracle, numpy form, BPTT), which implement the equations of
    ``reference_equations.json``; a run whose model.json holds other code is not scored against them."""
    record = read_record(directory)
    if record is None:
        found.notes.append("This run predates the record of its equations (model.md): its claims are scored on the "
                           "assumption that it ran the published equations of its commit.")
        return None
    verdict = check_against_reference(spec, record)
    found.info["equations"] = ("those the references implement" if verdict.matches
                               else verdict.reason() if verdict.checked else "not checked: " + verdict.reason())
    if not verdict.checked or verdict.matches:
        return None
    reason = (f"not scored: the run's network holds {verdict.reason()} (model.md), and {spec.title}'s references "
              "implement the published equations")
    found.notes.append(f"{spec.title}'s own claims (circuits/{spec.name}/claims.py: the update against backprop and "
                       f"the references' other comparisons) are {reason}. The generic checks ran on the network as "
                       "built.")
    found.summary.append(f"{spec.title}'s own claims {reason}")
    return reason


def claims_made(spec, own: ClaimsResult) -> tuple[str, ...]:
    """The keys of the shared vocabulary the framework claims (docs/claims.md, "Who claims what"):
    ``FrameworkSpec.claimed`` where it declares it, else every key for a framework with claims of its
    own and none for one without; less those its claims return as ``unclaimed``."""
    for field, keys in (("FrameworkSpec.claimed", spec.claimed or ()), ("ClaimsResult.unclaimed", own.unclaimed),
                        ("ClaimsResult.not_applicable", own.not_applicable)):
        unknown = set(keys) - set(CLAIMS)
        if unknown:
            raise ValueError(f"{field} of {spec.name} names claims outside the shared vocabulary: "
                             f"{', '.join(sorted(unknown))} (known: {', '.join(CLAIMS)}; docs/claims.md)")
    declared = spec.claimed if spec.claimed is not None else tuple(CLAIMS) if spec.claims is not None else ()
    return tuple(key for key in CLAIMS if key in declared and key not in own.unclaimed)


def ordered_checks(checks: dict, own: ClaimsResult, spec, claimed: tuple[str, ...]) -> list[Check]:
    """The report's rows: the opening generic checks, the framework's own, the closing generic
    checks; each generic one as the framework's claims word it, else marked "not claimed" where its
    key is not in ``claimed``, and a fallback check only where no row of the framework's answers it."""
    unknown = set(own.restated) - set(OPENING_CHECKS + CLOSING_CHECKS)
    if unknown:
        raise ValueError(f"the claims of {spec.name} reword generic checks that do not exist: "
                         f"{', '.join(sorted(unknown))} (known: {', '.join(OPENING_CHECKS + CLOSING_CHECKS)})")
    answered = {c.key for c in own.checks if c.key}

    def generic(key):
        check = checks.get(key)
        if key in FALLBACK_CHECKS and key in answered:
            return None
        if key in own.restated:
            return restate(key, check, own.restated)
        if check is not None and key not in claimed:
            return replace(check, claim=f"{check.claim} (not claimed by {spec.title})")
        return check

    opening = [generic(key) for key in OPENING_CHECKS]
    closing = [generic(key) for key in CLOSING_CHECKS]
    return [c for c in opening if c is not None] + list(own.checks) + [c for c in closing if c is not None]


def unanswered_reasons(weights, pairs, locality) -> dict[str, str]:
    """Why a claim has no row, where the framework's claims say nothing: read from what the
    framework declares (its weights, its feedback pathways, its Brian2 network)."""
    left_out = "the framework's claims leave the generic check out (ClaimsResult.restated) and check it no other way"
    return {"update_vs_backprop": "the framework compares its updates with no backprop gradient",
            "locality": left_out,
            "event_based": left_out if locality is not None else "no Brian2 network to audit",
            "weight_transport": left_out if pairs else "no feedback pathway whose weights could be copied",
            "feedback_alignment": left_out if pairs else "no feedback pathway",
            "sign_concordance": left_out if pairs else "no feedback pathway",
            "dale": left_out if weights else "no forward weight matrices (Framework.layer_weights)"}


# ------------------------------------------------------------------------------- the command
def writable_figures(out: Path) -> Path:
    """``out``/figures, made; one line naming ``out`` if the analysis cannot be written there."""
    figures_dir = out / "figures"
    try:
        figures_dir.mkdir(parents=True, exist_ok=True)
        probe = out / ".apical-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise AnalysisError(f"cannot write the analysis into {out} ({error.strerror or error}); "
                            "pass --out FOLDER") from None
    return figures_dir


def analyze(directory: Path, n_samples: int = UPDATE_SAMPLES, out: Path | None = None) -> dict:
    """Run the generic checks and the framework's own claims on the directory's newest good
    checkpoint; returns what was written (entries, checks, figures) and the lines to print. The
    results directory is only read: the analysis goes to ``out`` (default: the directory itself)."""
    from brian2.utils.logger import BrianLogger

    BrianLogger.suppress_name("unused_brian_object")  # copies built to be audited or counted, never run
    directory = Path(directory)
    out = Path(out) if out else directory
    config = load_config(directory / "config.toml")
    if not list((directory / "checkpoints").glob("checkpoint-*.npz")):
        raise AnalysisError(f"{directory} holds no checkpoint to analyse")
    checkpoint, arrays, progress = load_checkpoint(directory, "latest", "analyse")
    spec = registry.get(config.model.framework)
    metrics = read_metrics(directory)
    summary_path = directory / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    figures_dir = writable_figures(out)

    dataset = load_dataset(config)
    framework = analysis_framework(spec, config, dataset.n_inputs, dataset.n_classes, None)
    initial_feedback = feedback_statistics(framework.feedback_pairs())
    framework.load_state_arrays(arrays)
    sizes = tuple(framework.settings.sizes)

    found = ClaimsResult(info={"framework": spec.name, "checkpoint": checkpoint.name,
                               "samples_seen": progress["samples_seen"], "network": list(sizes),
                               "layer_index": "layer_<l> is the output of weights_<l+1> (Python order)"})
    found.notes.append(f"Analysed checkpoint {checkpoint.name} ({progress['samples_seen']} samples seen) of "
                       f"{spec.name} network {'-'.join(str(size) for size in sizes)}.")
    if "final_test_accuracy" in summary:
        found.notes.append(f"Final test accuracy of this run: {100 * summary['final_test_accuracy']:.2f}% after "
                           f"{summary.get('samples_seen', progress['samples_seen'])} training samples.")
    checks: dict[str, Check] = {}
    check_learning_curve(metrics, found, summary.get("initial_test_accuracy"))
    weights, pairs = framework.layer_weights(), framework.feedback_pairs()
    check_dale(weights, layer_labels(sizes), found, checks)
    if pairs:
        series = feedback_over_training(directory, framework, initial_feedback, metrics, arrays)
        check_feedback(pairs, series, figures_dir, found, checks)
    if weights:
        found.figures += figure_weight_distributions(weights, pairs, figures_dir / "weight_distributions")
    locality, small_sizes = audit_small_copy(framework)
    check_locality(locality, small_sizes, found, checks)
    if pairs:
        checks["weight_transport"] = weight_transport_check(series, [label for label, _, _ in pairs],
                                                            audited=locality is not None)

    own = ClaimsResult()
    unscored = equations_unscored(directory, spec, found)
    if spec.claims is not None and unscored is None:
        n = min(n_samples, len(dataset.test_labels))
        input_spikes = encode(dataset.test_inputs[:n], config.model.time_steps, config.seeds.input, "test", 0)
        context = ClaimsContext(directory=directory, config=config, spec=spec, framework=framework,
                                checkpoint=checkpoint, progress=progress, metrics=metrics,
                                input_spikes=input_spikes, labels=dataset.test_labels[:n], locality=locality,
                                output=out)
        own = spec.claims(context) or ClaimsResult()
    claimed = claims_made(spec, own)
    if spec.claims is None and spec.claimed is None:
        found.notes.append(f"{spec.title} declares none of the shared claims (FrameworkSpec.claimed, docs/claims.md): "
                           "every row is measured, none is a claim it makes.")
    checks = ordered_checks(checks, own, spec, claimed)
    info = {**found.info, **own.info}
    not_applicable = {**unanswered_reasons(weights, pairs, locality), **own.not_applicable,
                      **({"update_vs_backprop": unscored} if unscored else {})}
    vocabulary = claims_entry(checks, claimed, not_applicable)
    events = events_entry(framework, dataset, config, found)
    entries = found.entries + own.entries + [{"claims": vocabulary}] + ([{"events": events}] if events else [])
    figures = found.figures + own.figures
    merged = write_analysis(out, f"Plausibility report: {spec.name} ({directory.name})", info, entries, checks,
                            found.notes + own.notes, found.details + own.details, figures)
    return {"entries": [{"analysis": merged["analysis"]}] + entries, "checks": checks, "figures": figures,
            "summary": found.summary + own.summary}
