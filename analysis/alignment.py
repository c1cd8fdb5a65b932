"""Alignment of feedback with the forward pathway, and Dale's law, for trained weights.

Conventions (docs/models/biograd.md, "The discrete form"): forward weights W^l are (post × pre), l = 0..L-1 in Python order,
so hidden layer l is the output of ``weights[l]`` and the output layer is the output of
``weights[-1]``. A direct feedback matrix B^l is indexed B^l_ik, i a neuron of hidden layer l
and k an output unit (shape n_l × n_out), as in BioGrad's apical input
a_i += Σ_k B^l_ik (s⁺_k − s⁻_k). The forward pathway it stands for is
(W^{L-1} ··· W^{l+1})ᵀ (Lillicrap et al. 2016 for FA; Nøkland 2016 for direct FA).

- angle: arccos of the cosine between two matrices flattened to vectors, in degrees;
  0° identical direction, 90° orthogonal, 180° opposite.
- norm ratio: ‖B‖_F / ‖forward pathway‖_F.
- update-vs-gradient cosine: cosine between a weight update ΔW and the *negative* loss
  gradient −∂L/∂W, so +1 means the update descends the loss exactly as gradient descent would.
- sign-concordance (Liao, Leibo & Poggio 2016): fraction of entries with equal sign,
  counted over the entries that are non-zero in both matrices.
- Dale's law: every presynaptic neuron (a column of a post × pre matrix) should have
  outgoing weights of one sign, and the sign its declared cell type implies.
"""

from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = [
    "cosine",
    "angle_degrees",
    "forward_pathway",
    "feedback_alignment",
    "update_gradient_cosine",
    "sign_concordance",
    "measure_effective_feedback",
    "DaleReport",
    "dale_violations",
]

CELL_TYPES = ("excitatory", "inhibitory")


def cosine(A, B):
    """Cosine between two arrays of the same shape, flattened."""
    a = np.asarray(A, dtype=np.float64).ravel()
    b = np.asarray(B, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"cannot compare arrays of shapes {np.shape(A)} and {np.shape(B)}")
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if norm == 0:
        raise ValueError("the cosine of an all-zero array is undefined")
    return float(np.clip(a @ b / norm, -1.0, 1.0))


def angle_degrees(A, B):
    """Angle between two matrices flattened to vectors, in degrees (0 to 180)."""
    return float(np.degrees(np.arccos(cosine(A, B))))


def forward_pathway(weights, layer):
    """(W^{L-1} ··· W^{layer+1})ᵀ: what direct feedback to hidden ``layer`` stands for.

    ``weights`` are the forward matrices (post × pre) in order; ``layer`` indexes the layer
    produced by ``weights[layer]``. Shape n_layer × n_out; the output layer gives identity.
    """
    n_layers = len(weights)
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer must lie in [0, {n_layers}), got {layer}")
    product = np.eye(weights[-1].shape[0])
    for W in reversed(weights[layer + 1 :]):
        product = product @ W
    return product.T


def feedback_alignment(weights, feedback):
    """Angle and norm ratio of each direct feedback matrix against its forward pathway.

    ``feedback[l]`` is B^l for hidden layer l (n_l × n_out), l = 0..L-2. Returns one dict
    per hidden layer: {"layer", "angle", "norm_ratio"}.
    """
    if len(feedback) != len(weights) - 1:
        raise ValueError(
            f"{len(weights)} forward matrices have {len(weights) - 1} hidden layers, "
            f"got {len(feedback)} feedback matrices"
        )
    results = []
    for layer, B in enumerate(feedback):
        pathway = forward_pathway(weights, layer)
        if np.shape(B) != pathway.shape:
            raise ValueError(
                f"feedback to hidden layer {layer} must be {pathway.shape} "
                f"(n_hidden × n_out), got {np.shape(B)}"
            )
        results.append(
            {
                "layer": layer,
                "angle": angle_degrees(B, pathway),
                "norm_ratio": float(np.linalg.norm(B) / np.linalg.norm(pathway)),
            }
        )
    return results


def update_gradient_cosine(delta_W, grad_W):
    """Per layer, the cosine between the update ΔW and −∂L/∂W (1: the update descends)."""
    if len(delta_W) != len(grad_W):
        raise ValueError(f"got {len(delta_W)} updates and {len(grad_W)} gradients")
    return [cosine(update, -np.asarray(grad)) for update, grad in zip(delta_W, grad_W)]


def sign_concordance(feedback, forward_T):
    """Fraction of entries where ``feedback`` and ``forward_T`` have the same sign.

    Entries that are exactly zero in either matrix have no sign and are left out of both
    the count and the total; it is an error if no entry is non-zero in both.
    """
    feedback = np.asarray(feedback)
    forward_T = np.asarray(forward_T)
    if feedback.shape != forward_T.shape:
        raise ValueError(f"shapes differ: {feedback.shape} and {forward_T.shape}")
    signed = (feedback != 0) & (forward_T != 0)
    if not signed.any():
        raise ValueError("no entry is non-zero in both matrices")
    agree = np.sign(feedback[signed]) == np.sign(forward_T[signed])
    return float(agree.mean())


def measure_effective_feedback(inject, n_upper, n_lower, subtract_baseline=True):
    """Assemble a circuit's effective feedback matrix by perturbation, n_lower × n_upper.

    ``inject(k)`` must run the circuit with a unit error at upper unit k and return the
    apical responses of the n_lower units below; ``inject(None)`` runs it with no injected
    error. Column k is the response to unit k, minus the response to no injection when
    ``subtract_baseline`` (removing whatever the circuit does without an error).
    """
    def response(k):
        r = np.asarray(inject(k), dtype=np.float64)
        if r.shape != (n_lower,):
            raise ValueError(f"inject({k}) returned shape {r.shape}, expected ({n_lower},)")
        return r

    effective = np.column_stack([response(k) for k in range(n_upper)])
    if subtract_baseline:
        effective -= response(None)[:, None]
    return effective


@dataclass
class DaleReport:
    """Dale's-law audit of one post × pre weight matrix; neurons are presynaptic indices."""

    n_presynaptic: int
    mixed_sign: list = field(default_factory=list)  # neurons with both signs outgoing
    # (neuron, declared type, number of outgoing weights of the wrong sign)
    type_violations: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.mixed_sign and not self.type_violations

    def to_dict(self):
        return {**asdict(self), "ok": self.ok}


def dale_violations(W, cell_types=None, tolerance=0.0):
    """Per presynaptic neuron (column j of a post × pre ``W``): one sign, and the right one.

    ``cell_types`` gives "excitatory" or "inhibitory" per presynaptic neuron; where given,
    an excitatory neuron with a negative outgoing weight, or an inhibitory one with a
    positive weight, is a type violation. Weights with |w| ≤ ``tolerance`` count as zero.
    """
    W = np.asarray(W)
    if W.ndim != 2:
        raise ValueError(f"W must be a post × pre matrix, got shape {W.shape}")
    positive = (W > tolerance).sum(axis=0)
    negative = (W < -tolerance).sum(axis=0)
    report = DaleReport(n_presynaptic=W.shape[1])
    report.mixed_sign = [int(j) for j in np.flatnonzero((positive > 0) & (negative > 0))]
    if cell_types is not None:
        cell_types = list(cell_types)
        if len(cell_types) != W.shape[1]:
            raise ValueError(
                f"{len(cell_types)} cell types for {W.shape[1]} presynaptic neurons"
            )
        unknown = sorted(set(cell_types) - set(CELL_TYPES))
        if unknown:
            raise ValueError(f"unknown cell types {unknown}; expected one of {CELL_TYPES}")
        for j, cell_type in enumerate(cell_types):
            wrong = negative[j] if cell_type == "excitatory" else positive[j]
            if wrong:
                report.type_violations.append((j, cell_type, int(wrong)))
    return report
