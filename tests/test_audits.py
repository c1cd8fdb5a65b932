"""Tests of analysis.locality on small hand-built Brian2 networks with planted violations."""

import json

import numpy as np
import pytest
from brian2 import (
    Function,
    Network,
    NeuronGroup,
    PoissonGroup,
    Synapses,
    TimedArray,
    Hz,
    ms,
    network_operation,
    prefs,
    set_device,
    start_scope,
)

from apical.analysis.locality import audit_locality


@pytest.fixture(autouse=True)
def runtime_numpy():
    """Tiny runs on the runtime device with numpy code (no compiler needed)."""
    set_device("runtime")
    previous = prefs.codegen.target
    prefs.codegen.target = "numpy"
    start_scope()
    yield
    prefs.codegen.target = previous


LIF = """
dv/dt = -v / (10*ms) : 1
dx/dt = -x / (20*ms) : 1
plastic : 1 (shared)
"""


def _lif(n, name):
    return NeuronGroup(n, LIF, threshold="v > 1", reset="v = 0; x += 1", name=name)


def _three_groups():
    third = NeuronGroup(2, "dv/dt = -v / (10*ms) : 1", name="third")
    return _lif(3, "pre"), _lif(2, "post"), third


def _kinds(report):
    return sorted((f.object, f.kind, f.identifier) for f in report.findings)


def test_clean_stdp_network_passes():
    source = PoissonGroup(4, rates=50 * Hz, name="source")
    post = _lif(2, "post")
    stdp = Synapses(
        source,
        post,
        """
        w : 1
        dapre/dt = -apre / (20*ms) : 1 (event-driven)
        dapost/dt = -apost / (20*ms) : 1 (event-driven)
        """,
        on_pre="""
        v_post += w
        apre += 0.01
        w = clip(w + plastic_post * (apost - 0.001 * x_post), 0, w_max)
        """,
        on_post="""
        apost -= 0.012
        w = clip(w + learning_rate * plastic_post * apre, 0, w_max)
        """,
        name="stdp",
    )
    stdp.connect()
    stdp.w = 0.5
    post.plastic = 1
    namespace = {"w_max": 1.0, "learning_rate": 0.5}
    network = Network(source, post, stdp)
    network.run(5 * ms, namespace=namespace)  # it is a working Brian2 network
    report = audit_locality(network, global_signals={"learning_rate"}, namespace=namespace)
    assert report.ok, report.summary()
    assert report.findings == []
    assert report.audited == ["stdp"]
    assert report.analog_couplings == []  # every _pre/_post read is spike-triggered
    switches = {(s.identifier, s.kind) for s in report.phase_switches}
    assert ("plastic_post", "shared variable") in switches
    assert ("learning_rate", "declared global") in switches
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True


def test_third_group_state_through_a_timed_array_is_flagged():
    pre, post, third = _three_groups()
    # the third group's recorded membrane potential, one column per third-group neuron
    third_v = TimedArray(np.random.default_rng(0).random((10, 2)), dt=1 * ms)
    syn = Synapses(pre, post, "w : 1", on_pre="v_post += w\nw += 0.01 * third_v(t, j)", name="syn")
    syn.connect()
    report = audit_locality(
        Network(pre, post, third, syn), namespace={"third_v": third_v}
    )
    assert _kinds(report) == [("syn", "timed array", "third_v")]
    assert report.findings[0].code == "w += 0.01 * third_v(t, j)"
    assert "on_pre" in report.findings[0].message


def test_third_group_state_through_namespace_function_array_and_variable_is_flagged():
    pre, post, third = _three_groups()
    state_of_third = Function(
        lambda k: third.v[:][np.asarray(k) % 2], arg_units=[1], return_unit=1, arg_names=["k"]
    )
    syn = Synapses(
        pre,
        post,
        """
        w : 1
        dtrace/dt = (third_trace(j) - trace) / (5*ms) : 1 (clock-driven)
        """,
        on_pre="w += snapshot + third_live",
        name="syn",
    )
    syn.connect()
    namespace = {
        "third_trace": state_of_third,  # a Python function reading another group's array
        "snapshot": np.zeros(2),  # a non-scalar array
        "third_live": third.variables["v"],  # another group's Variable itself
    }
    report = audit_locality(Network(pre, post, third, syn), namespace=namespace)
    assert _kinds(report) == [
        ("syn", "external function", "third_trace"),
        ("syn", "foreign variable", "third_live"),
        ("syn", "namespace array", "snapshot"),
    ]
    codes = {f.identifier: f.code for f in report.findings}
    assert codes["third_trace"].startswith("dtrace/dt = ")
    assert codes["snapshot"] == "w += snapshot + third_live"
    assert "third.v" in next(f for f in report.findings if f.identifier == "third_live").message


def test_hand_added_reference_to_third_group_is_flagged():
    pre, post, third = _three_groups()
    syn = Synapses(pre, post, "w : 1", name="syn")
    syn.connect()
    syn.variables.add_reference("v_third", third, "v", index="_postsynaptic_idx")
    syn.run_regularly("w = 0.1 * v_third", dt=1 * ms)
    third.v = [0.5, 0.7]
    Network(pre, post, third, syn).run(1 * ms)
    assert sorted(set(np.round(syn.w[:], 12))) == [0.05, 0.07]  # the planted read is real
    report = audit_locality([pre, post, third, syn], namespace={})
    assert _kinds(report) == [("syn", "foreign variable", "v_third")]
    assert report.findings[0].code == "w = 0.1 * v_third"


def _forward_and_feedback():
    pre, post = _lif(3, "pre"), _lif(2, "post")
    forward = Synapses(pre, post, "w : 1", on_pre="v_post += w", name="forward")
    forward.connect()
    forward.w = "rand()"
    feedback = Synapses(post, pre, "w : 1", on_pre="v_post += w", name="feedback")
    feedback.connect()
    return pre, post, forward, feedback


def test_network_operation_copying_weights_is_flagged():
    pre, post, forward, feedback = _forward_and_feedback()

    @network_operation(dt=1 * ms)
    def transport_weights():
        feedback.w[:] = forward.w[:]

    network = Network(pre, post, forward, feedback, transport_weights)
    network.run(1 * ms)
    assert sorted(feedback.w[:]) == sorted(forward.w[:])  # the planted copy is real
    report = audit_locality(network, namespace={})
    assert _kinds(report) == [(transport_weights.name, "network operation", "feedback.w[:]")]
    assert report.findings[0].code == "feedback.w[:] = forward.w[:]"
    assert "transport_weights" in report.findings[0].message
    assert not report.ok


def test_run_regularly_weight_copy_and_foreign_write_are_flagged():
    pre, post, forward, feedback = _forward_and_feedback()
    feedback.variables.add_reference("w_forward", forward, "w", index="_idx")
    feedback.run_regularly("w = w_forward", dt=1 * ms)
    network = Network(pre, post, forward, feedback)
    network.run(1 * ms)
    assert sorted(feedback.w[:]) == sorted(forward.w[:])  # the planted copy is real
    post.variables.add_reference("w_of_forward", forward, "w")
    post.run_regularly("w_of_forward = 0", dt=1 * ms)
    report = audit_locality(network, namespace={})
    assert _kinds(report) == [
        ("feedback", "weight transport", "w_forward"),
        ("post", "foreign write", "w_of_forward"),
    ]
    assert {f.code for f in report.findings} == {"w = w_forward", "w_of_forward = 0"}


def test_summed_variable_and_linked_variable_are_listed_as_analog_couplings():
    pre = NeuronGroup(3, "dv/dt = -v / (10*ms) : 1", threshold="v > 1", reset="v = 0", name="pre")
    post = NeuronGroup(2, "dv/dt = (I_gap - v) / (10*ms) : 1\nI_gap : 1", name="post")
    gap = Synapses(pre, post, "w : 1\nI_gap_post = w * (v_pre - v_post) : 1 (summed)", name="gap")
    gap.connect()
    mirror = NeuronGroup(3, "v_copy : 1 (linked)", name="mirror")
    from brian2 import linked_var

    mirror.v_copy = linked_var(pre, "v")
    report = audit_locality(Network(pre, post, gap, mirror), namespace={})
    assert report.ok  # analog couplings are stated, not forbidden
    couplings = {(c.object, c.kind, c.identifier) for c in report.analog_couplings}
    assert ("gap", "summed variable", "I_gap_post") in couplings
    assert ("gap", "continuous presynaptic read", "v_pre") in couplings
    assert ("mirror", "linked variable", "v_copy") in couplings
    linked = next(c for c in report.analog_couplings if c.kind == "linked variable")
    assert "pre.v" in linked.detail


def test_declared_global_signal_from_a_third_group_is_allowed():
    pre, post, third = _three_groups()
    controller = NeuronGroup(1, "phase_wake : 1 (shared)", name="controller")
    syn = Synapses(pre, post, "w : 1", on_pre="w += 0.01 * phase_wake * x_post", name="syn")
    syn.connect()
    namespace = {"phase_wake": controller.variables["phase_wake"]}
    network = Network(pre, post, controller, syn)
    undeclared = audit_locality(network, namespace=namespace)
    assert _kinds(undeclared) == [("syn", "foreign variable", "phase_wake")]
    declared = audit_locality(network, global_signals={"phase_wake"}, namespace=namespace)
    assert declared.ok
    assert [(s.identifier, s.kind) for s in declared.phase_switches] == [
        ("phase_wake", "declared global")
    ]


def test_default_namespace_is_the_callers():
    pre, post = _lif(3, "pre"), _lif(2, "post")
    w_max = 2.0  # noqa: F841 - found by the audit in this frame, as Network.run would
    syn = Synapses(pre, post, "w : 1", on_pre="w = clip(w + 0.1, 0, w_max)", name="syn")
    syn.connect()
    assert audit_locality(Network(pre, post, syn)).ok
    report = audit_locality(Network(pre, post, syn), namespace={})
    assert _kinds(report) == [("syn", "unresolved", "w_max")]


def test_plausibility_report_lists_locality_findings(tmp_path):
    from apical.analysis.report import locality_check, locality_entry, write_analysis_json
    from apical.analysis.report import plausibility_report

    pre, post, forward, feedback = _forward_and_feedback()

    @network_operation(dt=1 * ms)
    def transport_weights():
        feedback.w[:] = forward.w[:]

    report = audit_locality(Network(pre, post, forward, feedback, transport_weights), namespace={})
    written = write_analysis_json(tmp_path / "analysis.json", locality_entry(report))
    assert written["locality"]["ok"] is False
    assert written["locality"]["findings"][0]["code"] == "feedback.w[:] = forward.w[:]"
    check = locality_check(report)
    assert check.passed is False
    markdown = plausibility_report([check], title="BioGrad")
    assert markdown.startswith("# BioGrad")
    assert "| claim | check | result | verdict |" in markdown
    assert "**fail**" in markdown and "feedback.w[:]" in markdown
