"""Huang & Lee, "Training Structured Neural Networks Through Manifold Identification and
Variance Reduction", ICLR 2022, arXiv:2112.02612.

Problem ``min_W F(W) = f(W) + psi(W)`` (Eq. (1)) with ``f`` an expected loss and ``psi``
a partly smooth regulariser, here the group lasso ``psi(W) = lam sum_g sqrt(|g|) ||W_g||``.
RMDA (Algorithm 1): ``beta_t = sqrt(t)``, ``s_t = eta beta_t``, ``alpha_t = sum_{i<=t} s_i``,
``V_t = V_{t-1} + s_t grad f_{xi_t}(W_{t-1})``,
``W~_t = prox_{(alpha_t / beta_t) psi}(W_0 - V_t / beta_t)``,
``W_t = (1 - c_t) W_{t-1} + c_t W~_t``.

Provenance.  The theorem text was not available (no version of the paper's full text);
the algorithm is checked line by line against the authors' optimizer
(``zihsyuan1214/rmda``, ``RMDA/Optimizer/rmda.py`` and ``RMDA/ProxFn/prox_fns.py``): the step
``s_t = lr sqrt(t)``, the accumulator ``alpha_t``, the threshold ``lam alpha_t / sqrt(t)``
times ``sqrt(group size)`` and the averaging ``W_t = (1 - c) W_{t-1} + c W~_t`` agree (tested
against a transcription, ``tests/test_rmda.py``).  The code's ``MultiStepParam`` scheduler
multiplies the step by ``gamma`` and ``c`` by ``1/gamma`` (capped at 1) at epoch milestones
and *restarts* (``t``, ``alpha``, ``V`` reset, ``W_0`` = the current point).  The analysed
algorithm has no restarts; with finitely many, the run after the last one is the analysed
algorithm from a new ``W_0``, so the identification claim is about that final stage.  The
trainer runs the analysed algorithm (no restarts).

The hypotheses of the identification theorem are taken from RAMDA (Huang et al., NeurIPS
2024, which restates RMDA's): ``sum c_t = inf``; ``f_xi`` almost surely L-smooth;
``E ||grad f_xi||^4`` bounded; ``sum s_t / alpha_t = inf`` and ``sum (s_t/alpha_t)^2 < inf``;
``psi`` prox-regular, subdifferentially continuous and partly smooth relative to a C^2
manifold at the limit point; nondegeneracy ``-grad f(W*) in relint d psi(W*)``.  Here
(:meth:`RMDAIdentification.preconditions`, :func:`step_ratio` and the trainer's measured
outputs): constant ``c`` in (0, 1] gives ``sum c_t = inf``; the per-sample softmax loss is
``||x_i||^2 / 2``-smooth and its gradient is bounded by ``sqrt(2) ||x_i||`` on a finite data
set (both measured: ``sample_smoothness``, ``gradient_bound``); ``s_t / alpha_t ~ 3 / (2t)``
for ``beta_t = sqrt(t)`` (:func:`step_ratio`), so the first sum diverges and the second
converges; the group lasso is convex and finite (prox-regular and subdifferentially
continuous) and partly smooth relative to ``{W : W_g = 0 for the zero groups of W*}``;
nondegeneracy on the zero groups is ``||grad_g f(W*)|| < lam sqrt(|g|)``, measured as the
*nondegeneracy gap* ``min_g (lam sqrt(|g|) - ||grad_g f(W*)||)`` over the zero groups
(``nondegeneracy_gap``): identification is claimed only where it exceeds the accuracy of
``W*`` (the FISTA residual).

Claims verified (qualitative: no rate or constant is tested; theorem numbers are those of
the project's notes, not verified against the text):

* convergence (Theorem 1 as summarised in the project's notes): the iterates converge to a
  stationary point, so for a convex ``f`` the objective gap ``F(W_t) - F(W*)`` tends to 0;
* identification (Theorem 2): if ``W*`` is nondegenerate then after finitely many steps
  ``W~_t`` lies on the active manifold of ``W*`` -- for the group lasso, the zero-group
  pattern of ``W~_t`` equals that of ``W*`` -- and stays there: zero pattern changes after
  the identification step.  This is a property of ``W~_t``, not of the averaged ``W_t``;
  proximal SGD has no such guarantee.
"""

from __future__ import annotations

import math

import numpy as np

from .core import Bound, Params, Prediction, Source, Tightness, register

PAPER = "arXiv:2112.02612 (Huang & Lee, ICLR 2022)"

#: RMDA's schedule: beta_t = t ** SCHEDULE_POWER, s_t = eta beta_t
SCHEDULE_POWER = 0.5


def step_ratio(t: np.ndarray | int, power: float = SCHEDULE_POWER) -> np.ndarray:
    """``s_t / alpha_t`` for ``s_t = eta t^power`` (``eta`` cancels), ``t = 1, 2, ...``.

    ``t s_t / alpha_t -> power + 1``: for ``power > -1`` the ratio is ``~ (power + 1) / t``,
    whose sum diverges and whose sum of squares converges (the step conditions).
    """
    t = np.atleast_1d(np.asarray(t, dtype=int))
    if t.min() < 1:
        raise ValueError(f"steps are 1-based, got t = {int(t.min())}")
    s = np.arange(1, int(t.max()) + 1, dtype=float) ** power
    return s[t - 1] / np.cumsum(s)[t - 1]


def step_conditions_hold(power: float = SCHEDULE_POWER) -> bool:
    """``sum s_t / alpha_t = inf`` and ``sum (s_t / alpha_t)^2 < inf`` for ``s_t ~ t^power``.

    For ``power > -1`` the ratio is ``(power + 1) / t`` asymptotically (both hold); at
    ``power = -1`` it is ``1 / (t log t)``, whose sum still diverges (both hold); for
    ``power < -1`` ``alpha_t`` converges and the ratio behaves like ``s_t``, whose sum is
    finite (the first condition fails).  RMDA's ``beta_t = sqrt(t)`` is far from the edge.
    """
    return power >= -1.0


@register
class RMDAIdentification(Bound):
    """Finite-time identification of the zero-group pattern by RMDA's ``W~_t``."""

    id = "huang2022.rmda_identification"
    source = Source(
        PAPER,
        "the manifold-identification theorem for W~_t with the convergence theorem "
        "(numbered Theorems 2 and 1 in the project's notes; numbers unverified); algorithm "
        "checked against the authors' optimizer (zihsyuan1214/rmda, "
        "RMDA/Optimizer/rmda.py, RMDA/ProxFn/prox_fns.py), without its restart scheduler",
        "the theorem text was not found: its hypotheses are RAMDA's (NeurIPS 2024) "
        "restatement; identification time T is finite but not bounded; tested: T exists "
        "within the run, no pattern change after T, objective gap -> 0; screened: "
        "nondegeneracy gap of W* > its accuracy, step and averaging conditions",
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
            out.append(f"averaging weight c in (0, 1] (constant: sum c_t = inf), got {c}")
        if not params.get("eta", 0.0) > 0:
            out.append(f"step scale eta > 0, got {params.get('eta')}")
        if not step_conditions_hold(params.get("schedule_power", SCHEDULE_POWER)):
            out.append("step conditions sum s_t/alpha_t = inf, sum (s_t/alpha_t)^2 < inf fail")
        for name in ("sample_smoothness", "gradient_bound"):
            value = params.get(name)
            if value is not None and not math.isfinite(value):
                out.append(f"{name} must be finite (L-smooth f_xi, bounded gradients)")
        gap = params.get("nondegeneracy_gap")
        accuracy = params.get("fista_residual", 0.0)
        if gap is not None and math.isfinite(gap) and not gap > accuracy:
            out.append(
                f"nondegeneracy: min over zero groups of lam sqrt(|g|) - ||grad_g f(W*)|| = "
                f"{gap:.3g} is not above the accuracy of W* ({accuracy:.2g}): -grad f(W*) is "
                "not (verifiably) in the relative interior of d psi(W*)"
            )
        return out

    def predict(self, params: Params, calibration=None) -> Prediction:
        """Zero pattern changes after the (finite) identification step; gap -> 0."""
        return Prediction(extra={"flips_after_identification": 0.0, "objective_gap_limit": 0.0})
