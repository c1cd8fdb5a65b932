"""Tests of analysis.alignment against hand-computed cases."""

import json

import numpy as np
import pytest

from apical.analysis.alignment import (
    angle_degrees,
    cosine,
    dale_violations,
    feedback_alignment,
    forward_pathway,
    measure_effective_feedback,
    sign_concordance,
    update_gradient_cosine,
)


def test_angle_identical_orthogonal_negated():
    A = np.array([[1.0, 2.0], [3.0, -4.0]])
    assert angle_degrees(A, A) == pytest.approx(0.0, abs=1e-6)
    assert angle_degrees(A, 2.5 * A) == pytest.approx(0.0, abs=1e-6)
    orthogonal = np.array([[2.0, -1.0], [4.0, 3.0]])  # 2 - 2 + 12 - 12 = 0
    assert angle_degrees(A, orthogonal) == pytest.approx(90.0)
    assert angle_degrees(A, -A) == pytest.approx(180.0)
    # 45°: [1, 0] against [1, 1]
    assert angle_degrees(np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])) == pytest.approx(45.0)


def test_angle_rejects_zero_and_mismatched_shapes():
    with pytest.raises(ValueError, match="zero"):
        angle_degrees(np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="shapes"):
        angle_degrees(np.ones((2, 2)), np.ones(3))


def test_forward_pathway_is_transposed_product_above():
    W1 = np.arange(12.0).reshape(4, 3)  # hidden 0: 3 neurons → hidden 1: 4
    W2 = np.arange(8.0).reshape(2, 4) - 3  # hidden 1 → output: 2 units
    W0 = np.ones((3, 5))  # input 5 → hidden 0: 3
    weights = [W0, W1, W2]
    np.testing.assert_array_equal(forward_pathway(weights, 1), W2.T)
    np.testing.assert_array_equal(forward_pathway(weights, 0), (W2 @ W1).T)
    assert forward_pathway(weights, 0).shape == (3, 2)  # n_hidden × n_out, like B_ik
    np.testing.assert_array_equal(forward_pathway(weights, 2), np.eye(2))
    with pytest.raises(ValueError):
        forward_pathway(weights, 3)


def test_feedback_alignment_angles_and_norm_ratios():
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(6, 8)), rng.normal(size=(5, 6)), rng.normal(size=(3, 5))]
    aligned = [3.0 * forward_pathway(weights, 0), -forward_pathway(weights, 1)]
    results = feedback_alignment(weights, aligned)
    assert [r["layer"] for r in results] == [0, 1]
    assert results[0]["angle"] == pytest.approx(0.0, abs=1e-5)
    assert results[0]["norm_ratio"] == pytest.approx(3.0)
    assert results[1]["angle"] == pytest.approx(180.0)
    assert results[1]["norm_ratio"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n_hidden × n_out"):
        feedback_alignment(weights, [aligned[0], aligned[1].T])
    with pytest.raises(ValueError, match="hidden layers"):
        feedback_alignment(weights, aligned[:1])


def test_update_gradient_cosine_is_against_the_negative_gradient():
    grad = [np.array([[1.0, -2.0]]), np.array([3.0, 0.0])]
    descent = [-0.1 * g for g in grad]
    assert update_gradient_cosine(descent, grad) == pytest.approx([1.0, 1.0])
    ascent = [0.1 * g for g in grad]
    assert update_gradient_cosine(ascent, grad) == pytest.approx([-1.0, -1.0])
    sideways = [np.array([[2.0, 1.0]]), np.array([0.0, 5.0])]
    assert update_gradient_cosine(sideways, grad) == pytest.approx([0.0, 0.0])
    assert cosine([1.0, 1.0], [1.0, 0.0]) == pytest.approx(np.sqrt(0.5))


def test_sign_concordance_known_fraction_ignoring_zeros():
    feedback = np.array([[1.0, -2.0, 3.0], [0.0, 5.0, -1.0]])
    forward_T = np.array([[2.0, -1.0, -4.0], [7.0, 1.0, 0.0]])
    # signed entries: (0,0) agree, (0,1) agree, (0,2) disagree, (1,1) agree; zeros skipped
    assert sign_concordance(feedback, forward_T) == pytest.approx(3 / 4)
    assert sign_concordance(forward_T, forward_T) == 1.0
    assert sign_concordance(-forward_T, forward_T) == 0.0
    with pytest.raises(ValueError, match="non-zero"):
        sign_concordance(np.zeros((2, 2)), np.ones((2, 2)))


def test_perturbation_recovers_a_linear_feedback_matrix():
    rng = np.random.default_rng(3)
    hidden_feedback = rng.normal(size=(7, 4))  # lower × upper, B_ik
    offset = rng.normal(size=7)  # what the circuit does with no error
    calls = []

    def inject(k):
        calls.append(k)
        error = np.zeros(4)
        if k is not None:
            error[k] = 1.0
        return hidden_feedback @ error + offset

    measured = measure_effective_feedback(inject, n_upper=4, n_lower=7)
    np.testing.assert_allclose(measured, hidden_feedback, atol=1e-12)
    assert calls == [0, 1, 2, 3, None]
    raw = measure_effective_feedback(inject, 4, 7, subtract_baseline=False)
    np.testing.assert_allclose(raw, hidden_feedback + offset[:, None], atol=1e-12)
    with pytest.raises(ValueError, match="expected"):
        measure_effective_feedback(inject, 4, 6)


def test_dale_flags_mixed_sign_and_wrong_type_and_passes_clean():
    # post × pre: columns are presynaptic neurons
    clean = np.array([[0.5, -0.2, 0.0], [0.1, -0.7, 0.0], [0.3, 0.0, 0.0]])
    report = dale_violations(clean, ["excitatory", "inhibitory", "inhibitory"])
    assert report.ok and report.mixed_sign == [] and report.type_violations == []
    assert report.n_presynaptic == 3

    planted = clean.copy()
    planted[2, 1] = 0.4  # neuron 1 now sends both signs
    report = dale_violations(planted)
    assert report.mixed_sign == [1] and not report.ok

    single_wrong = clean.copy()
    single_wrong[:, 0] = [-0.5, -0.1, -0.3]  # declared excitatory, all weights negative
    report = dale_violations(single_wrong, ["excitatory", "inhibitory", "inhibitory"])
    assert report.mixed_sign == []  # consistent sign, but the wrong one for its type
    assert report.type_violations == [(0, "excitatory", 3)]
    assert json.loads(json.dumps(report.to_dict()))["ok"] is False


def test_dale_tolerance_and_bad_cell_types():
    W = np.array([[1.0, -1.0], [-1e-9, -2.0]])
    assert dale_violations(W).mixed_sign == [0]
    assert dale_violations(W, tolerance=1e-6).ok
    with pytest.raises(ValueError, match="unknown cell types"):
        dale_violations(W, ["excitatory", "pyramidal"])
    with pytest.raises(ValueError, match="cell types for"):
        dale_violations(W, ["excitatory"])


def test_analysis_json_entries_per_layer(tmp_path):
    from apical.analysis.report import (
        alignment_check,
        alignment_entries,
        dale_entries,
        sign_concordance_entries,
        update_cosine_entries,
        write_analysis_json,
    )

    rng = np.random.default_rng(1)
    weights = [rng.normal(size=(4, 6)), rng.normal(size=(3, 4))]
    feedback = [forward_pathway(weights, 0)]
    grads = [rng.normal(size=W.shape) for W in weights]
    path = tmp_path / "analysis.json"
    write_analysis_json(path, alignment_entries(weights, feedback))
    written = write_analysis_json(
        path,
        update_cosine_entries([-g for g in grads], grads),
        sign_concordance_entries(weights, feedback),
        dale_entries(weights),
    )
    assert json.loads(path.read_text()) == written
    assert written["feedback_angle_degrees"]["layer_0"] == pytest.approx(0.0, abs=1e-5)
    assert written["feedback_norm_ratio"] == {"layer_0": pytest.approx(1.0)}
    assert written["update_gradient_cosine"] == {"layer_0": 1.0, "layer_1": 1.0}
    assert written["sign_concordance"] == {"layer_0": 1.0}
    assert written["dale"]["layer_1"]["ok"] is False  # Gaussian weights have mixed signs
    check = alignment_check(feedback_alignment(weights, [-feedback[0]]))
    assert check.passed is False and "180.0°" in check.result
