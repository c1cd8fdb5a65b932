"""Turn analysis results into ``analysis.json`` entries and a markdown plausibility report.

``analysis.json`` holds one named entry per metric; per-layer metrics map "layer_<l>" to
a value (l in Python order: hidden layer l is the output of ``weights[l]``). The report is
one table of claims (those the framework makes, and those it does not, marked so), the check run
on the trained network, and the result, followed by the details behind them. Functions only: the ``apical analyze`` command and
each framework's claims (``circuits/<name>/claims.py``) assemble them; :func:`write_analysis`
writes both files.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apical.analysis.alignment import (
    dale_violations,
    feedback_alignment,
    forward_pathway,
    sign_concordance,
    update_gradient_cosine,
)

__all__ = [
    "CLAIMS",
    "Check",
    "claims_entry",
    "alignment_entries",
    "update_cosine_entries",
    "sign_concordance_entries",
    "dale_entries",
    "locality_entry",
    "write_analysis_json",
    "alignment_check",
    "update_cosine_check",
    "sign_concordance_check",
    "dale_check",
    "locality_check",
    "plausibility_report",
    "write_plausibility_report",
    "cosine_or_none",
    "cosine_check",
    "spike_only_check",
    "locality_details",
    "mixed_sign_fractions",
    "layer_labels",
    "superscript",
    "write_analysis",
]


def _per_layer(values):
    return {f"layer_{l}": value for l, value in enumerate(values)}


def alignment_entries(weights, feedback):
    """Angle (degrees) and norm ratio of each direct feedback matrix to its forward pathway."""
    results = feedback_alignment(weights, feedback)
    return {
        "feedback_angle_degrees": _per_layer(r["angle"] for r in results),
        "feedback_norm_ratio": _per_layer(r["norm_ratio"] for r in results),
    }


def update_cosine_entries(delta_W, grad_W):
    """Cosine of each layer's update with the negative BPTT gradient on the same samples."""
    return {"update_gradient_cosine": _per_layer(update_gradient_cosine(delta_W, grad_W))}


def sign_concordance_entries(weights, feedback):
    """Sign-concordance of each (effective) feedback matrix with its forward pathway."""
    return {
        "sign_concordance": _per_layer(
            sign_concordance(B, forward_pathway(weights, l)) for l, B in enumerate(feedback)
        )
    }


def dale_entries(weights, cell_types=None):
    """Dale's-law audit per weight matrix; ``cell_types[l]`` types the presynaptic neurons."""
    cell_types = cell_types or [None] * len(weights)
    return {
        "dale": _per_layer(
            dale_violations(W, types).to_dict() for W, types in zip(weights, cell_types)
        )
    }


def locality_entry(report):
    return {"locality": report.to_dict()}


def _plain(value):
    """JSON-ready: numpy scalars and arrays become Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_analysis_json(path, *entries):
    """Merge entry dicts into ``analysis.json`` at ``path`` (kept entries are updated)."""
    path = Path(path)
    merged = json.loads(path.read_text()) if path.exists() else {}
    for entry in entries:
        merged.update(_plain(entry))
    path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    return merged


@dataclass
class Check:
    """One row of the plausibility report (docs/claims.md, "Writing the claims of a framework").

    ``claim`` is what the rule is said to do, ``check`` how it was tested, ``result`` what the test
    found, ``passed`` the verdict. ``key`` names the claim of the shared vocabulary (:data:`CLAIMS`)
    the row answers, if any; ``value`` holds the number(s) behind the verdict (per layer:
    ``layer_<l>``), copied into that claim's entry of analysis.json."""

    claim: str
    check: str
    result: str
    passed: bool | None  # None: informative, no pass/fail criterion
    key: str | None = None
    value: object = None


#: The claims every framework's analysis.json answers under the same key (its "claims" entry),
#: each meaning one thing across frameworks; docs/claims.md states how each is checked.
CLAIMS = {
    "update_vs_backprop": "each layer's update points along the gradient of backprop through time of a named "
                          "loss on the same samples (cosine ≥ 0.9)",
    "locality": "every quantity a synapse's learning reads is its own, its two cells', a constant or a declared "
                "global signal (audit of the Brian2 code)",
    "event_based": "cells interact only through spikes (no analog coupling in the built network)",
    "weight_transport": "no synapse's weight is copied from, or read off, another synapse (passes when none is)",
    "feedback_alignment": "each feedback matrix lies within 45° of what exact backprop would send in its place",
    "sign_concordance": "≥ 99 % of feedback entries share the sign of the forward pathway they stand for",
    "dale": "every presynaptic cell's outgoing weights share one sign, that of its declared type",
}


def claims_entry(checks, claimed=(), not_applicable=None) -> dict:
    """The ``claims`` entry of analysis.json: for every key of :data:`CLAIMS`, the verdict ("pass",
    "fail", "info" or "n/a"), whether the framework makes the claim (its key is in ``claimed``),
    and the row behind it; ``not_applicable`` maps keys to why they do not apply (no row then)."""
    rows = {}
    for c in checks:  # the first row of a key answers it: a framework's own rows precede the closing generic ones
        if getattr(c, "key", None) and c.key not in rows:
            rows[c.key] = c
    found = {}
    for key, meaning in CLAIMS.items():
        if key in rows:
            c = rows[key]
            verdict = {True: "pass", False: "fail", None: "info"}[c.passed]
            found[key] = {"verdict": verdict, "claimed": key in claimed, "claim": c.claim, "check": c.check,
                          "result": c.result, "value": c.value, "meaning": meaning}
        else:
            reason = (not_applicable or {}).get(key, "no check of this claim applies to this framework")
            found[key] = {"verdict": "n/a", "claimed": False, "reason": reason, "meaning": meaning}
    return found


def _layers(values, fmt):
    return ", ".join(f"layer {l}: {fmt.format(v)}" for l, v in enumerate(values, start=1))


def alignment_check(alignment, max_angle=45.0, claim="Feedback aligns with the forward pathway"):
    angles = [r["angle"] for r in alignment]
    return Check(
        claim,
        f"angle between each B^l and (W^L···W^(l+1))ᵀ below {max_angle:g}°",
        _layers(angles, "{:.1f}°"),
        all(a < max_angle for a in angles),
    )


def update_cosine_check(cosines, min_cosine=0.9, claim="Updates follow the backprop gradient", loss="L"):
    """Each layer's update against −∇ of ``loss`` by BPTT on the same samples; the vocabulary's
    ``update_vs_backprop`` row."""
    return Check(
        claim,
        f"cosine of each layer's update with −∇ of {loss} (BPTT, same samples) ≥ {min_cosine:g}",
        _layers(cosines, "{:.3f}"),
        all(c >= min_cosine for c in cosines),
        key="update_vs_backprop",
        value={"loss": loss, **_per_layer(None if c != c else c for c in cosines)},
    )


def sign_concordance_check(fractions, minimum=0.99, claim="Feedback is sign-concordant"):
    return Check(
        claim,
        f"fraction of feedback entries with the sign of the forward pathway ≥ {minimum:g}",
        _layers(fractions, "{:.1%}"),
        all(f >= minimum for f in fractions),
        key="sign_concordance",
        value=_per_layer(fractions),
    )


def dale_check(reports, claim="Neurons obey Dale's law", key=None):
    """``reports``: one DaleReport per weight matrix."""
    mixed = sum(len(r.mixed_sign) for r in reports)
    wrong = sum(len(r.type_violations) for r in reports)
    total = sum(r.n_presynaptic for r in reports)
    return Check(
        claim,
        "every presynaptic neuron's outgoing weights share one sign, that of its declared type",
        f"{mixed} mixed-sign and {wrong} wrong-type neurons of {total}",
        mixed == 0 and wrong == 0,
        key=key,
        value={"mixed_sign": mixed, "wrong_type": wrong, "presynaptic": total},
    )


def locality_check(report, claim="Learning uses only local information"):
    if report.ok:
        result = f"no findings in {len(report.audited)} synapse objects"
    else:
        result = "; ".join(
            f"{f.object}: {f.kind} `{f.identifier}` in `{f.code}`" for f in report.findings
        )
    extras = []
    if report.analog_couplings:
        extras.append(f"{len(report.analog_couplings)} analog couplings")
    if report.phase_switches:
        names = sorted({s.identifier for s in report.phase_switches})
        extras.append("global signals: " + ", ".join(names))
    if extras:
        result += " (" + "; ".join(extras) + ")"
    return Check(
        claim,
        "every name in synaptic code is synaptic, pre/post, constant or a declared global signal",
        result,
        report.ok,
    )


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def plausibility_report(checks, title="Plausibility report", notes=()):
    """A one-page markdown table: claim, check, result, verdict."""
    verdict = {True: "pass", False: "**fail**", None: "—"}
    lines = [f"# {title}", "", "| claim | check | result | verdict |", "|---|---|---|---|"]
    for c in checks:
        lines.append(
            f"| {_cell(c.claim)} | {_cell(c.check)} | {_cell(c.result)} | {verdict[c.passed]} |"
        )
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def write_plausibility_report(path, checks, title="Plausibility report", notes=()):
    Path(path).write_text(plausibility_report(checks, title, notes))


# ------------------------------------------------------------------ shared by apical analyze and the claims
def cosine_or_none(update, descent):
    """Cosine of an update with a descent direction (−∇); None where either is all zero."""
    update, descent = np.ravel(update), np.ravel(descent)
    norm = np.linalg.norm(update) * np.linalg.norm(descent)
    return None if norm == 0 else float(np.clip(update @ descent / norm, -1.0, 1.0))


def _cosines(values):
    return ", ".join(f"layer {l}: {'n/a' if c is None else f'{c:.3f}'}" for l, c in enumerate(values, start=1))


def cosine_check(cosines, claim, gradient, minimum=0.9, key=None, loss=None):
    """Each layer's ΔW against −∇E of ``gradient`` on the same samples; ``minimum`` None: no criterion;
    ``key`` the vocabulary claim it answers, ``loss`` the loss E it differentiates."""
    return Check(
        claim,
        f"cosine of each layer's ΔW with −∇E of {gradient}" + (f", E the {loss}" if loss else "") + ", same digits"
        + ("" if minimum is None else f", ≥ {minimum:g}"),
        _cosines(cosines),
        None if minimum is None else all(c is not None and c >= minimum for c in cosines),
        key=key,
        value={**({"loss": loss} if loss else {}), **_per_layer(cosines)},
    )


def spike_only_check(report):
    """Whether the audited network's neurons interact only through spikes (a LocalityReport)."""
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


def locality_details(report):
    """The markdown section of plausibility.md behind the locality rows."""
    lines = ["## Locality audit", "",
             f"Synapse objects audited: {', '.join(report.audited)}. Findings: " + ("none." if report.ok else ""), ""]
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


def mixed_sign_fractions(matrices):
    """Per matrix (post × pre), the fraction of presynaptic neurons with outgoing weights of both signs."""
    return _per_layer(len(dale_violations(M).mixed_sign) / M.shape[1] for M in matrices)


def layer_labels(sizes):
    """"n_pre → n_post" of every forward layer of a network of ``sizes`` (input, hidden..., output)."""
    return [f"{a} → {b}" for a, b in zip(sizes[:-1], sizes[1:])]


def superscript(n):
    return str(n).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))


def write_analysis(directory, title, info, entries, checks, notes=(), details=(), figures=()):
    """Write ``analysis.json`` (afresh: entries of an older analysis must not linger; ``info`` with the
    figures' paths as its "analysis" entry, then ``entries`` in order) and ``plausibility.md``
    (the checks, the notes, then ``details``) into ``directory``; returns the merged entries."""
    directory = Path(directory)
    info = {**info, "figures": [str(Path(p).relative_to(directory)) for p in figures]}
    json_path = directory / "analysis.json"
    json_path.unlink(missing_ok=True)
    merged = write_analysis_json(json_path, {"analysis": info}, *entries)
    text = plausibility_report(checks, title, notes)
    if details:
        text += "\n" + "\n".join(details) + "\n"
    (directory / "plausibility.md").write_text(text)
    return merged
