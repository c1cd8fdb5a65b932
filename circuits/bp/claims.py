"""``apical analyze DIR`` for a BPTT-baseline run: BPTT claims no biological plausibility, so
beyond the generic checks (Dale's law, weight distributions) the report states the non-local
quantities it uses by construction, in place of a locality audit (it has no Brian2 network), and
the optimiser that trained it.
"""

from __future__ import annotations

from apical.analysis.report import CLAIMS, Check
from apical.circuits.framework import ClaimsContext, ClaimsResult

NON_LOCAL = ("BPTT baseline: non-local by construction (weight transport, backward pass through time); no Brian2 "
             "network to audit")


def claims(context: ClaimsContext) -> ClaimsResult:
    learning = context.config.learning
    return ClaimsResult(
        restated={"locality": Check(
            "Learning uses only local information",
            "by construction (BPTT in numpy; no Brian2 network to audit)",
            "each layer's gradient needs W^(l+1)ᵀ (weight transport) and ∂L/∂v[t+1] from every later step "
            "(the whole history of every neuron is stored and replayed backwards)",
            False,
        ), "event_based": Check(
            "Neurons interact only through spikes (event-based)",
            "by construction",
            "the forward pass is a spiking network; the backward pass carries real-valued errors through every "
            "stored step", False)},
        entries=[{"locality": {"ok": False, "audited": [], "reason": NON_LOCAL}}],
        checks=[Check("No weight transport", "by construction",
                      "the backward pass sends errors through W^(l+1)ᵀ, the forward weights themselves", False,
                      key="weight_transport")],
        unclaimed=list(CLAIMS),  # BPTT is the reference, not a plausibility claim
        not_applicable={"update_vs_backprop": "its update is the BPTT gradient itself (then Adam)"},
        notes=[f"Optimiser: {learning.optimizer}, learning rate {context.config.bp.learning_rate:g}, "
               f"batch size {learning.batch_size}."],
    )
