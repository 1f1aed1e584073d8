"""Generic checks of a bound's named predictions against a trainer's outputs.

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
from . import CheckKind, register
from .convergence import (
    Context,
    base_verdict,
    count_if_known,
    group_by_other_params,
    group_verdict,
    screened,
)
from .stats import Estimate, one_sided_p, slope_with_ci, t_estimate
from .verdict import PointData, Verdict

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
_nonneg = Spec(float, 0.0, lambda v: v >= 0, "number >= 0")

BOUND = {
    "statistic": Spec(str, required=True),
    "quantity": Spec(str, ""),
    "relation": Spec(str, "<=", choices=RELATIONS),
    "aggregate": Spec(str, "mean", choices=("mean", "every")),
    "reduce": Spec(str, "", choices=("", *REDUCERS)),
    "rtol": _nonneg,
    "atol": _nonneg,
}

SCALING = {
    "statistic": Spec(str, required=True),
    "parameter": Spec(str, required=True),
    "quantity": Spec(str, required=True),
    "relation": Spec(str, "<=", choices=RELATIONS),
    "reduce": Spec(str, "", choices=("", *REDUCERS)),
    "margin": _nonneg,
}


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


def bound_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """A statistic per repetition against a predicted bound (see the module docstring)."""
    quantity = cfg["quantity"] or cfg["statistic"]
    out = []
    for pt in ctx.points:
        v = base_verdict(ctx, name, "bound", pt, quantity)
        count_if_known(ctx, v, quantity)
        out.append(v)
        if screened(ctx, v, pt):
            continue
        values = statistic(pt, cfg["statistic"], cfg["reduce"])
        pred = prediction(ctx, quantity, pt.params)
        if isinstance(values, str) or isinstance(pred, str):
            v.detail = values if isinstance(values, str) else pred
            continue
        low, high = interval(pred, cfg["relation"], cfg["rtol"], cfg["atol"])
        est = t_estimate(values)
        v.observed, v.ci_low, v.ci_high = est.value, est.low, est.high
        v.predicted = pred
        v.allowed = high if cfg["relation"] != ">=" else low
        what = f"{cfg['reduce']} of " if cfg["reduce"] else ""
        claim = f"{what}{cfg['statistic']} {cfg['relation']} {quantity}"
        if cfg["aggregate"] == "every":
            finite = values[np.isfinite(values)]
            bad = [
                f"rep {r}: {x:.4g}"
                for r, x in enumerate(values)
                if not (math.isfinite(x) and low <= x <= high)
            ]
            v.p_value = 0.0 if bad or finite.size == 0 else 1.0
            v.detail = f"{claim} on every repetition (allowed [{low:.4g}, {high:.4g}]): " + (
                "violated by " + ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
                if bad
                else f"holds on all {values.size}, range [{finite.min():.4g}, {finite.max():.4g}]"
            )
        else:
            v.p_value = interval_p(est, low, high)
            v.detail = f"mean {claim} (allowed [{low:.4g}, {high:.4g}]), t-test over repetitions"
    return out


def scaling_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """Log-log slope of a statistic in a parameter against the predicted exponent."""
    param = cfg["parameter"]
    usable = [pt for pt in ctx.points if not ctx.violations[pt.key] and not pt.divergence()]
    out = []
    for label, members in group_by_other_params(usable, param).items():
        members.sort(key=lambda pt: pt.params[param])
        first = members[0]
        v = group_verdict(
            ctx,
            name,
            "scaling",
            first,
            param,
            f"{cfg['statistic']}~{param}|{label}",
            f"{cfg['statistic']} vs {param}" + (f" at {label}" if label else ""),
            cfg["quantity"],
        )
        out.append(v)
        pred = prediction(ctx, cfg["quantity"], first.params)
        xs, ys, problem = [], [], ""
        for pt in members:
            values = statistic(pt, cfg["statistic"], cfg["reduce"])
            if isinstance(values, str):
                problem = values
                break
            keep = np.isfinite(values) & (values > 0)
            xs += [math.log(float(pt.params[param]))] * int(keep.sum())
            ys += list(np.log(values[keep]))
        if problem or isinstance(pred, str):
            v.detail = problem or str(pred)
            continue
        if len({pt.params[param] for pt in members}) < 2:
            v.detail = f"a single value of {param}: no slope"
            continue
        slope, se, dof, (lo, hi) = slope_with_ci(np.array(xs), np.array(ys))
        low, high = interval(pred, cfg["relation"], 0.0, cfg["margin"])
        v.observed, v.ci_low, v.ci_high, v.predicted = slope, lo, hi, pred
        v.allowed = high if cfg["relation"] != ">=" else low
        v.p_value = interval_p(Estimate(slope, lo, hi, se, dof, np.zeros(0)), low, high)
        v.detail = (
            f"slope of log {cfg['statistic']} vs log {param} over "
            f"{', '.join(str(pt.params[param]) for pt in members)}: {slope:.3g} "
            f"[{lo:.3g}, {hi:.3g}]; claim {cfg['relation']} {pred:.3g}"
            + (f" (margin {cfg['margin']:g})" if cfg["margin"] else "")
        )
    return out


register(
    CheckKind("bound", "a statistic per repetition within a predicted bound", BOUND, bound_check)
)
register(
    CheckKind(
        "scaling",
        "log-log slope of a statistic in a parameter vs the predicted exponent",
        SCALING,
        scaling_check,
        per_point=False,
    )
)
