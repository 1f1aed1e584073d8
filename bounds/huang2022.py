"""Huang & Lee, "Training Structured Neural Networks Through Manifold Identification and
Variance Reduction", ICLR 2022, arXiv:2112.02612.

Problem ``min_W F(W) = f(W) + psi(W)`` (Eq. (1)) with ``f`` an expected loss and ``psi``
a partly smooth regulariser, here the group lasso ``psi(W) = lam sum_g sqrt(|g|) ||W_g||``.
RMDA (Algorithm 1): ``beta_t = sqrt(t)``, ``s_t = eta beta_t``, ``alpha_t = sum_{i<=t} s_i``,
``V_t = V_{t-1} + s_t grad f_{xi_t}(W_{t-1})``,
``W~_t = prox_{(alpha_t / beta_t) psi}(W_0 - V_t / beta_t)``,
``W_t = (1 - c_t) W_{t-1} + c_t W~_t``.

Claims verified (qualitative: no rate or constant is tested):

* Theorem 1: with ``c_t`` in (0, 1] (the paper allows ``sum c_t = inf``; constant ``c`` is
  the variant used in its experiments) the iterates converge to a stationary point, so
  for a convex ``f`` the objective gap ``F(W_t) - F(W*)`` tends to 0;
* Theorem 2: if ``W*`` is nondegenerate (``-grad f(W*)`` in the relative interior of
  ``d psi(W*)``) then after finitely many steps ``W~_t`` lies on the active manifold of
  ``W*`` -- for the group lasso, the zero-group pattern of ``W~_t`` equals that of ``W*``
  -- and stays there: zero pattern changes after the identification step.  This is a
  property of ``W~_t``, not of the averaged ``W_t``; proximal SGD has no such guarantee.

The nondegeneracy condition depends on the data and ``lam`` and is screened by the check
(from the trainer's ``nondegeneracy_margin``), not here.
"""

from __future__ import annotations

from .core import Bound, Params, Prediction, Source, Tightness, register

PAPER = "arXiv:2112.02612 (Huang & Lee, ICLR 2022)"


@register
class RMDAIdentification(Bound):
    """Finite-time identification of the zero-group pattern by RMDA's ``W~_t``."""

    id = "huang2022.rmda_identification"
    source = Source(
        PAPER,
        "Theorem 2 (manifold identification of W~_t) with Theorem 1 (convergence)",
        "identification time T is finite but not bounded in the paper; tested: T exists "
        "within the run, no pattern change after T, objective gap -> 0",
    )
    tightness = Tightness.QUALITATIVE
    forms = {}
    predicts = ("flips_after_identification", "objective_gap_limit")

    def preconditions(self, params: Params) -> list[str]:
        out: list[str] = []
        if not params.get("lam", 0.0) > 0:
            out.append(
                f"group-lasso weight lam > 0 (a manifold to identify), got {params.get('lam')}"
            )
        c = params.get("c", 0.0)
        if not 0 < c <= 1:
            out.append(f"averaging weight c in (0, 1], got {c}")
        if not params.get("eta", 0.0) > 0:
            out.append(f"step scale eta > 0, got {params.get('eta')}")
        return out

    def predict(self, params: Params, calibration=None) -> Prediction:
        """Zero pattern changes after the (finite) identification step; gap -> 0."""
        return Prediction(extra={"flips_after_identification": 0.0, "objective_gap_limit": 0.0})
