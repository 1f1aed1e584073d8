"""Generic claims about a bound's named predictions against a trainer's outputs: the
shared vocabulary of the check kinds ``bound`` (:mod:`.bound_claim`) and ``scaling``
(:mod:`.scaling`).

A new paper's claims are mostly of two shapes, and both are declared in the case file
instead of coded per paper:

* ``bound`` (per point): a per-repetition statistic -- a scalar output, or a curve
  reduced by ``reduce`` (``max``/``min``/``last``/``first``/``mean`` over the logged steps, ``tail_quarter``
  the mean of the last quarter)
  -- against the bound's prediction ``quantity`` (``Prediction.get``) with ``relation``
  ``<=``, ``>=`` or ``==`` and a tolerance ``rtol`` (relative) / ``atol`` (absolute).
  ``aggregate = "mean"``: the claim is about the expectation over the random draws
  (masks, init, data): a one-sided t-test of the repetitions' mean against the allowed
  value (``==``: two one-sided tests, Bonferroni).  ``aggregate = "every"``: the claim
  holds on every draw ("at every step", "for every input", exact identities): the
  p-value is 0 when any repetition violates it and 1 otherwise.
* ``scaling`` (grid level): per group of the other grid parameters, the OLS slope of
  ``log statistic`` against ``log parameter`` over all repetitions, with a t interval,
  against the bound's predicted exponent ``quantity`` (evaluated at the group's first
  point): ``<=``/``>=`` fail if the slope is significantly beyond ``exponent -/+ margin``;
  ``==`` fails if it is significantly outside ``[exponent - margin, exponent + margin]``.

``--perturb NAME=FACTOR`` multiplies the prediction ``NAME`` by ``FACTOR`` (for
exponents, ``2.5`` turns ``-0.2`` into ``-0.5``): the negative controls anyone can run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..schema import Spec
from .framework import Context
from .stats import Estimate, one_sided_p
from .verdict import PointData

RELATIONS = ("<=", ">=", "==")
REDUCERS = {
    "max": lambda c: np.max(c, axis=1),
    "min": lambda c: np.min(c, axis=1),
    "last": lambda c: c[:, -1],
    "first": lambda c: c[:, 0],
    "mean": lambda c: np.mean(c, axis=1),
    #: the floor of a loss curve: mean over the last quarter of the logged steps
    "tail_quarter": lambda c: np.mean(c[:, -max(1, c.shape[1] // 4) :], axis=1),
}
#: a non-negative tolerance
NONNEGATIVE = Spec(float, 0.0, lambda v: v >= 0, "number >= 0")


def statistic(pt: PointData, name: str, reduce: str) -> np.ndarray | str:
    """Per-repetition values of ``name`` (scalar output or reduced curve), or why not."""
    if name in pt.scalars and not reduce:
        return pt.scalars[name]
    if name in pt.curves:
        if not reduce:
            return f"{name!r} is a curve: set reduce to one of {sorted(REDUCERS)}"
        curves = pt.curves[name]
        return REDUCERS[reduce](np.where(np.isfinite(curves), curves, np.nan))
    if name in pt.scalars:
        return f"{name!r} is a scalar output: reduce does not apply"
    known = sorted(pt.scalars) + sorted(pt.curves)
    return f"the trainer has no output {name!r}; outputs: {known}"


def prediction(ctx: Context, quantity: str, params: Mapping[str, Any]) -> float | str:
    """The bound's (perturbed) prediction of ``quantity``, or why there is none."""
    value = ctx.bound.predict(params, ctx.calibration).get(quantity)
    if value is None:
        return f"{ctx.bound.id} does not predict {quantity!r}"
    return float(value) * ctx.perturb.get(quantity, 1.0)


def interval(pred: float, relation: str, rtol: float, atol: float) -> tuple[float, float]:
    """The values the claim allows: ``[low, high]``."""
    slack = rtol * abs(pred) + atol
    if relation == "<=":
        return -math.inf, pred + slack
    if relation == ">=":
        return pred - slack, math.inf
    return pred - slack, pred + slack


def interval_p(est: Estimate, low: float, high: float) -> float:
    """One-sided p-value(s) of 'the mean lies in [low, high]' (Bonferroni over two sides)."""
    ps = []
    for edge, alternative in ((high, "greater"), (low, "less")):
        if not math.isfinite(edge):
            continue
        if est.ok and est.se > 0:
            ps.append(one_sided_p((est.value - edge) / est.se, est.dof, alternative))
        elif math.isfinite(est.value):  # no spread: the claim is decided by the value
            ps.append(
                float(not (est.value > edge if alternative == "greater" else est.value < edge))
            )
    if not ps:
        return math.nan
    return float(min(1.0, len(ps) * min(ps)))
