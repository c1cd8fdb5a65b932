"""`apical analyze` on tiny results directories made by the training driver."""

from __future__ import annotations

import argparse
import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

from apical.circuits import registry
from apical.circuits.biograd.claims import update_and_gradient
from apical.circuits.biograd.network import initial_state
from apical.circuits.biograd.oracle import DiscreteParameters, run_batch
from apical.analysis.report import Check, claims_entry
from apical.circuits.framework import ClaimsResult, Framework, FrameworkSpec
from apical.runs.analyze import AnalysisError, analyze, claims_made, main, ordered_checks, weight_transport_check
from apical.runs.compare import Row
from apical.runs.config import config_from_dict, load_config
from apical.runs.train import train

# One xdist worker runs this whole file, so its module-level fixture is built once (.ci/run).
pytestmark = pytest.mark.xdist_group("test_analyze")

BIOGRAD = {
    "model": {"framework": "biograd", "hidden": [12], "time_steps": 8},
    "biograd": {"error_start": 2},
    "learning": {"learning_rate": 0.005},
    "data": {"dataset": "mnist", "train_samples": 100, "test_samples": 50},
    "run": {"device": "runtime", "epochs": 2, "eval_every": 50, "checkpoint_every": 50, "chunk_samples": 50},
}
FIGURES = ("feedback_alignment", "update_backprop_cosine", "sign_concordance", "weight_distributions")


@pytest.fixture(scope="module")
def biograd_run(tmp_path_factory):
    """A BioGrad run on the runtime device, analysed once through the command's entry point."""
    out = tmp_path_factory.mktemp("analyze") / "biograd"
    train(config_from_dict(BIOGRAD), out)
    assert main(argparse.Namespace(directory=str(out))) == 0
    return out


def per_layer(entry, n_layers):
    assert sorted(entry) == [f"layer_{l}" for l in range(n_layers)]
    return [entry[f"layer_{l}"] for l in range(n_layers)]


def test_analysis_json_has_every_metric_in_range(biograd_run):
    analysis = json.loads((biograd_run / "analysis.json").read_text())
    assert analysis["analysis"]["framework"] == "biograd"
    assert analysis["analysis"]["network"] == [784, 12, 10]
    assert analysis["analysis"]["samples_seen"] == 200

    (angle,) = per_layer(analysis["feedback_angle_degrees"], 1)
    (ratio,) = per_layer(analysis["feedback_norm_ratio"], 1)
    (concordance,) = per_layer(analysis["sign_concordance"], 1)
    assert 0.0 < angle < 90.0, "B started equal to W²ᵀ and drifted as W² learned"
    assert ratio > 0.0 and 0.5 <= concordance <= 1.0
    for name in ("update_backprop_cosine", "bias_update_backprop_cosine"):
        for cosine in per_layer(analysis[name], 2):
            assert cosine is not None and -1.0 <= cosine <= 1.0, name
    assert all(c > 0 for c in per_layer(analysis["update_backprop_cosine"], 2)), "updates descend the BPTT loss"
    assert analysis["update_backprop_loss"] == "cross-entropy of softmax(final output spike counts)"
    for fraction in per_layer(analysis["dale_mixed_sign_fraction"], 2) + \
            per_layer(analysis["dale_feedback_mixed_sign_fraction"], 1):
        assert 0.0 <= fraction <= 1.0
    dale = per_layer(analysis["dale"], 2)
    assert [d["n_presynaptic"] for d in dale] == [784, 12]

    over_training = analysis["feedback_angle_over_training"]
    # the initial network, then each evaluation (metrics.csv) or each checkpoint kept
    assert over_training["samples_seen"][0] == 0 and over_training["samples_seen"][-1] == 200
    assert over_training["layer_0"][0] == pytest.approx(0.0, abs=1e-6)  # B = W²ᵀ at the start
    assert over_training["layer_0"][-1] == pytest.approx(angle, abs=1e-3)


def test_claims_use_the_shared_vocabulary(biograd_run):
    analysis = json.loads((biograd_run / "analysis.json").read_text())
    claims = analysis["claims"]
    assert set(claims) == {"update_vs_backprop", "locality", "event_based", "weight_transport",
                           "feedback_alignment", "sign_concordance", "dale"}
    update = claims["update_vs_backprop"]
    assert update["claimed"] and update["value"]["loss"] == analysis["update_backprop_loss"]
    assert [update["value"][f"layer_{l}"] for l in range(2)] == pytest.approx(
        per_layer(analysis["update_backprop_cosine"], 2))
    assert update["verdict"] == ("pass" if min(per_layer(analysis["update_backprop_cosine"], 2)) >= 0.9 else "fail")
    assert claims["locality"]["verdict"] == "pass" and claims["locality"]["claimed"]
    assert claims["event_based"]["verdict"] == "fail"  # the softmax coupling is analog
    assert claims["weight_transport"]["verdict"] == "fail"  # B started as the forward product (released code)
    assert claims["feedback_alignment"]["value"]["layer_0"] == pytest.approx(
        analysis["feedback_angle_degrees"]["layer_0"])
    assert not claims["dale"]["claimed"] and not claims["sign_concordance"]["claimed"]


def test_events_are_counted_on_the_analysed_network(biograd_run):
    events = json.loads((biograd_run / "analysis.json").read_text())["events"]
    training, inference = events["training"], events["inference"]
    assert events["samples"] == {"split": "test", "first": 8}
    assert training["synaptic_events"]["feedback"] > 0  # error spikes through B while learning
    assert training["synaptic_events"]["learning"] > 0 and inference["synaptic_events"]["learning"] == 0
    assert training["plasticity_updates"] > 0 and inference["plasticity_updates"] == 0
    # hidden, output and ± error cells, each step of 8 samples of T = 8 and the run's closing boundary step
    assert training["neuron_updates"] == inference["neuron_updates"] == (12 + 10 + 20) * (8 * 8 + 1) / 8
    assert training["energy"]["chip_nJ"] > inference["energy"]["chip_nJ"] > 0
    summary = json.loads((biograd_run / "summary.json").read_text())["events"]
    assert summary["inference"]["synaptic_events"]["forward"] > 0


def test_locality_audit_lists_softmax_coupling_as_analog(biograd_run):
    locality = json.loads((biograd_run / "analysis.json").read_text())["locality"]
    assert locality["ok"] and not locality["findings"]
    assert {"forward_1", "forward_2", "feedback_1", "softmax_coupling"} <= set(locality["audited"])
    summed = {c["identifier"] for c in locality["analog_couplings"]
              if c["object"] == "softmax_coupling" and c["kind"] == "summed variable"}
    assert summed == {"partition_post", "own_drive_post"}
    signals = {s["identifier"] for s in locality["phase_switches"]}
    assert {"learning_rate", "learning_rate_post", "error_steps"} <= signals


def test_plausibility_report_lists_the_checks(biograd_run):
    report = (biograd_run / "plausibility.md").read_text()
    assert report.startswith("# Plausibility report: biograd")
    assert "| Learning uses only local information |" in report
    assert "no findings in 5 synapse objects" in report
    assert "| Neurons interact only through spikes (event-based) |" in report
    assert "partition_post = exp(spike_count_pre) (summed)" in report
    assert "Updates follow the backprop gradient" in report and "Dale's law" in report


def test_figures_are_written(biograd_run):
    for name in FIGURES:
        for suffix in (".png", ".pdf"):
            path = biograd_run / "figures" / f"{name}{suffix}"
            assert path.exists() and path.stat().st_size > 1000, path


def test_mean_update_does_not_depend_on_oracle_batching():
    config = config_from_dict(BIOGRAD)
    rng = np.random.default_rng(0)
    state = initial_state((30, 12, 10), rng)
    state.weights = [3 * W for W in state.weights]  # active enough that every layer learns
    rasters = (rng.random((11, 8, 30)) < 0.4).astype(np.uint8)
    labels = rng.integers(0, 10, size=11)
    delta_W, _, grad_W, _ = update_and_gradient(config, state.weights, state.biases, state.feedback, rasters, labels)
    params = DiscreteParameters(time_steps=8, error_start=2, learning_rate=0.005)
    records = run_batch(state.weights, state.biases, state.feedback, rasters, labels, params)
    for ours, record in zip(delta_W, records):
        assert np.abs(ours).max() > 0
        np.testing.assert_allclose(ours, record.weight_change.mean(axis=0), rtol=1e-12, atol=1e-15)
    assert [g.shape for g in grad_W] == [(12, 30), (10, 12)]


def test_bp_directory_gets_dale_and_a_non_locality_statement(tmp_path):
    out = tmp_path / "bp"
    config = config_from_dict({**BIOGRAD, "model": {**BIOGRAD["model"], "framework": "bp"},
                               "learning": {"optimizer": "adam", "batch_size": 10}, "bp": {"learning_rate": 3e-3},
                               "run": {**BIOGRAD["run"], "epochs": 1}})
    train(config, out)
    analyze(out)
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["analysis"]["framework"] == "bp"
    assert not analysis["locality"]["ok"] and "weight transport" in analysis["locality"]["reason"]
    assert "update_backprop_cosine" not in analysis and "feedback_angle_degrees" not in analysis
    claims = analysis["claims"]
    assert {key: claims[key]["verdict"] for key in claims} == {
        "update_vs_backprop": "n/a", "locality": "fail", "event_based": "fail", "weight_transport": "fail",
        "feedback_alignment": "n/a", "sign_concordance": "n/a", "dale": "fail"}
    assert not any(claim["claimed"] for claim in claims.values())
    events = analysis["events"]
    assert events["training"]["plasticity_updates"] is None and events["training"]["energy"]["chip_nJ"] is None
    assert events["training"]["dense_macs"] > events["inference"]["dense_macs"] > 0
    assert len(analysis["dale_mixed_sign_fraction"]) == 2
    assert "W^(l+1)ᵀ (weight transport)" in (out / "plausibility.md").read_text()
    assert (out / "figures" / "weight_distributions.png").exists()


def test_directory_without_checkpoint_is_refused(tmp_path):
    (tmp_path / "config.toml").write_text("[model]\nhidden = [12]\n")
    with pytest.raises(AnalysisError, match="no checkpoint"):
        analyze(tmp_path)


class CountRule(Framework):
    """A user's minimal rule: output counts = input counts · Wᵀ, a delta rule on them; numpy only,
    no feedback, no Brian2 network, no claims."""

    def __init__(self, config, n_in, n_out, chunk, build_dir):
        self.settings = SimpleNamespace(sizes=(n_in, n_out))
        self.weights = np.random.default_rng(config.seeds.weights).uniform(-0.01, 0.01, (n_out, n_in))

    def train_chunk(self, input_spikes, labels, chunk_index=0, rate_scale=1.0):
        counts = self.evaluate_chunk(input_spikes, labels)
        rates = input_spikes.sum(axis=1)
        self.weights += 1e-4 * rate_scale * (np.eye(len(self.weights))[labels] - counts / (counts.max() + 1.0)).T @ rates
        return counts

    def evaluate_chunk(self, input_spikes, labels):
        return np.maximum(input_spikes.sum(axis=1) @ self.weights.T, 0.0)

    def state_arrays(self):
        return {"weights_1": self.weights}

    def load_state_arrays(self, arrays):
        self.weights = np.array(arrays["weights_1"])


class FeedbackCountRule(CountRule):
    """The same rule with a fixed random feedback matrix B standing in for Wᵀ, declared as its
    feedback pathway: what a three-factor rule with direct random feedback declares, and no claims."""

    def __init__(self, config, n_in, n_out, chunk, build_dir):
        super().__init__(config, n_in, n_out, chunk, build_dir)
        self.feedback = np.random.default_rng(config.seeds.feedback).uniform(-0.01, 0.01, (n_in, n_out))

    def feedback_pairs(self):
        return [("B (output → input)", self.feedback.copy(), self.weights.T.copy())]

    def state_arrays(self):
        return {"weights_1": self.weights, "feedback_1": self.feedback}

    def load_state_arrays(self, arrays):
        super().load_state_arrays(arrays)
        self.feedback = np.array(arrays["feedback_1"])


#: One epoch of 100 digits, evaluated and kept every 50; nothing in [model] beyond what every framework reads.
OUTSIDE_RULE = {"model": {"hidden": [12], "time_steps": 8},
                "data": {"dataset": "mnist", "train_samples": 100, "test_samples": 50},
                "run": {"device": "runtime", "epochs": 1, "eval_every": 50, "checkpoint_every": 50, "chunk_samples": 50}}


def analysed_outside_rule(directory, spec):
    """Train ``spec`` (registered for the call) on OUTSIDE_RULE into ``directory`` unless it is there,
    and analyse it; returns what analyze returns and the directory as `apical compare` reads it."""
    registry.register(spec)
    try:
        if not (directory / "summary.json").exists():
            train(config_from_dict({**OUTSIDE_RULE, "model": {**OUTSIDE_RULE["model"], "framework": spec.name}}),
                  directory)
        results = analyze(directory)
        return results, Row(directory, json.loads((directory / "summary.json").read_text()),
                            load_config(directory / "config.toml"), json.loads((directory / "analysis.json").read_text()))
    finally:
        registry.unregister(spec.name)


def test_framework_without_claims_gets_the_generic_checks(tmp_path):
    out = tmp_path / "count_rule"
    results, row = analysed_outside_rule(out, FrameworkSpec(name="count_rule", title="count rule", factory=CountRule))
    misworded = ClaimsResult(restated={"dales_law": "Neurons obey Dale's law (not claimed)"})
    registry.register(FrameworkSpec(name="count_rule", title="count rule", factory=CountRule,
                                    claims=lambda context: misworded))
    try:
        with pytest.raises(ValueError, match="reword generic checks that do not exist: dales_law"):
            analyze(out)
    finally:
        registry.unregister("count_rule")
    analysis = json.loads((out / "analysis.json").read_text())
    assert analysis["analysis"]["framework"] == "count_rule" and analysis["analysis"]["network"] == [784, 10]
    assert analysis["locality"] == {"ok": None, "audited": [], "reason": "no Brian2 network to audit"}
    assert analysis["learning_curve"]["samples_seen"] == [0, 50, 100]  # 0: evaluated before training
    assert analysis["learning_curve"]["test_accuracy"][0] == json.loads((out / "summary.json").read_text())[
        "initial_test_accuracy"]
    assert "events" not in analysis  # no Brian2 network and no count of its own
    claims = analysis["claims"]
    assert {key: (claim["verdict"], claim["claimed"]) for key, claim in claims.items()} == {
        "update_vs_backprop": ("n/a", False), "locality": ("info", False), "event_based": ("n/a", False),
        "weight_transport": ("n/a", False), "feedback_alignment": ("n/a", False), "sign_concordance": ("n/a", False),
        "dale": ("fail", False)}  # measured (weights of both signs), never claimed
    assert claims["update_vs_backprop"]["reason"] == "the framework compares its updates with no backprop gradient"
    assert claims["weight_transport"]["reason"] == "no feedback pathway whose weights could be copied"
    assert len(analysis["dale"]) == 1 and "feedback_angle_degrees" not in analysis
    assert [check.claim for check in results["checks"]] == ["Learning uses only local information (not claimed by "
                                                            "count rule)", "Neurons obey Dale's law (not claimed by "
                                                            "count rule)"]
    report = (out / "plausibility.md").read_text()
    assert report.startswith("# Plausibility report: count_rule")
    assert "count rule declares none of the shared claims (FrameworkSpec.claimed" in report
    assert (out / "figures" / "weight_distributions.png").exists()
    assert row.passed() == (0, 0) and (row.claim("dale"), row.claim("locality")) == ("✗*", "info*")


def test_declared_feedback_pathway_without_claims(tmp_path):
    """Direct random feedback and no claims: every vocabulary row is measured where it can be and
    none counts as claimed; weight transport is read from the feedback pathway the alignment rows score."""
    out = tmp_path / "feedback_rule"
    spec = FrameworkSpec(name="feedback_rule", title="feedback rule", factory=FeedbackCountRule)
    results, row = analysed_outside_rule(out, spec)
    analysis = json.loads((out / "analysis.json").read_text())
    claims = analysis["claims"]
    assert not any(claim["claimed"] for claim in claims.values())
    assert claims["feedback_alignment"]["verdict"] in ("pass", "fail")
    (angle,) = per_layer(analysis["feedback_angle_degrees"], 1)
    assert 60.0 < angle < 120.0, "random B lies far from Wᵀ"
    transport = claims["weight_transport"]
    assert transport["verdict"] == "info", "B was never a copy of Wᵀ, but copying between measurements stays open"
    closest = min(analysis["feedback_angle_over_training"]["layer_0"], key=lambda a: min(a, 180 - a))
    assert transport["value"]["layer_0"] == pytest.approx(closest)
    assert "B (output → input)" in transport["result"] and "B (output → input)" in claims["feedback_alignment"]["result"]
    assert not any("no feedback pathway" in claim.get("reason", "") for claim in claims.values())
    rows = {check.key: check.claim for check in results["checks"]}
    assert rows["weight_transport"] == ("No weight transport: feedback weights are not copies of the forward weights "
                                        "(not claimed by feedback rule)")
    assert all(claim.endswith("(not claimed by feedback rule)") for claim in rows.values())
    report = (out / "plausibility.md").read_text()
    assert "no feedback pathway" not in report and "| No weight transport: feedback weights" in report
    assert row.passed() == (0, 0) and row.claim("weight_transport") == "info*"

    # The same rule declaring the claims it makes: those count, and their rows keep the generic wording.
    _, row = analysed_outside_rule(out, dataclasses.replace(spec, claimed=("dale", "weight_transport")))
    claims = row.analysis["claims"]
    assert {key for key, claim in claims.items() if claim["claimed"]} == {"weight_transport", "dale"}
    assert claims["dale"]["claim"] == "Neurons obey Dale's law" and claims["dale"]["verdict"] == "fail"
    assert row.passed() == (0, 1)  # Dale fails; weight transport is measured without a verdict


def test_weight_transport_fails_where_feedback_was_ever_a_copy():
    def verdict(angles):
        return weight_transport_check({"source": "checkpoints", "samples_seen": [0, 50, 100], "layer_0": angles},
                                      ["B"])

    copied = verdict([0.0, 12.5, 30.0])  # B = Wᵀ at the start, as BioGrad's released initialisation
    assert copied.passed is False and copied.key == "weight_transport"
    assert copied.value == {"layer_0": 0.0} and "copied: B" in copied.result and "after 0 samples" in copied.result
    assert verdict([40.0, 180.0 - 1e-4, 30.0]).passed is False  # −Wᵀ is a copy too
    independent = verdict([88.0, None, 61.0])
    assert independent.passed is None and independent.value == {"layer_0": 61.0}
    assert "no copy seen" in independent.result and "61.0° (after 100 samples)" in independent.result


def test_claims_made_reads_the_declaration():
    def spec(**declared):
        return FrameworkSpec(name="rule", title="rule", factory=CountRule, **declared)

    def own_claims(context):
        return ClaimsResult()

    assert claims_made(spec(), ClaimsResult()) == ()  # no claims(): it makes none
    assert claims_made(spec(claims=own_claims), ClaimsResult(unclaimed=["dale", "sign_concordance"])) == (
        "update_vs_backprop", "locality", "event_based", "weight_transport", "feedback_alignment")
    assert claims_made(spec(claimed=("dale", "locality")), ClaimsResult()) == ("locality", "dale")  # vocabulary order
    assert claims_made(spec(claims=own_claims, claimed=("dale", "locality")), ClaimsResult(unclaimed=["dale"])) == (
        "locality",)
    with pytest.raises(ValueError, match="FrameworkSpec.claimed of rule names claims outside the shared vocabulary: "
                                         "dales_law"):
        claims_made(spec(claimed=("dales_law",)), ClaimsResult())
    with pytest.raises(ValueError, match="ClaimsResult.not_applicable of rule names claims outside"):
        claims_made(spec(), ClaimsResult(not_applicable={"weight_transprot": "none"}))


def test_generic_rows_as_the_framework_words_them():
    generic = {key: Check(f"generic {key}", "check", "result", True, key=key)
               for key in ("locality", "event_based", "weight_transport", "dale")}
    own = ClaimsResult(checks=[Check("own weight transport", "check", "result", False, key="weight_transport")],
                       restated={"event_based": "spikes only (not claimed: its own words)"})
    spec = FrameworkSpec(name="rule", title="rule", factory=CountRule)
    rows = ordered_checks(generic, own, spec, claimed=("locality", "weight_transport"))
    assert [(row.key, row.claim) for row in rows] == [
        ("locality", "generic locality"), ("event_based", "spikes only (not claimed: its own words)"),
        ("weight_transport", "own weight transport"),  # the generic stand-in is left out
        ("dale", "generic dale (not claimed by rule)")]
    entry = claims_entry(rows, claimed=("locality", "weight_transport"), not_applicable={"sign_concordance": "none"})
    assert {key: (claim["verdict"], claim["claimed"]) for key, claim in entry.items()} == {
        "update_vs_backprop": ("n/a", False), "locality": ("pass", True), "event_based": ("pass", False),
        "weight_transport": ("fail", True), "feedback_alignment": ("n/a", False), "sign_concordance": ("n/a", False),
        "dale": ("pass", False)}
    assert entry["sign_concordance"]["reason"] == "none"
    assert entry["feedback_alignment"]["reason"] == "no check of this claim applies to this framework"
