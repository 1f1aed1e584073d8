"""Check kind ``trend``: the floor's claimed monotonicity in a parameter."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from bounds.core import Trend

from . import CheckKind, register
from .framework import Context, group_by_other_params, group_verdict, testable
from .observations import OBSERVE, rep_floors, unsettled
from .stats import one_sided_p, slope_with_ci
from .verdict import Verdict


def trend_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """The floor's claimed monotonicity in a parameter, per group of the other parameters.

    Per group: OLS slope of log per-repetition floor against log(parameter) (or the
    claim's encoding of a categorical parameter) with a t interval; fail if the slope
    is significantly of the wrong sign.  ``perturb trend=-1`` reverses every claim.
    """
    out = []
    trends: tuple[Trend, ...] = ctx.bound.trends
    if ctx.perturb.get("trend", 1.0) < 0:
        trends = tuple(t.reversed() for t in trends)
    pool = ctx.all_points or ctx.points
    eligible = [pt for pt in pool if testable(ctx, pt)]
    for trend in trends:
        param = trend.parameter
        for label, group in group_by_other_params(eligible, param).items():
            if len({pt.params[param] for pt in group}) < 2:
                continue
            v = group_verdict(
                ctx,
                name,
                "trend",
                group[0],
                param,
                f"{trend.quantity}~{param}|{label}",
                f"{trend.quantity} {trend.direction} in {param} at {label}",
                "slope",
                statistic=trend.quantity,
                group=label,
            )
            out.append(v)
            members = [pt for pt in group if not unsettled(pt, cfg)]
            dropped = sorted(str(pt.params[param]) for pt in group if unsettled(pt, cfg))
            note = (
                f"; excluded (floor not reached within the run): {param} = {', '.join(dropped)}"
                if dropped
                else ""
            )
            if len({pt.params[param] for pt in members}) < 2:
                v.detail = f"fewer than two settled values of {param}{note}"
                continue
            xs, ys = [], []
            for pt in members:
                floors = rep_floors(pt, cfg)
                xs += [trend.encode(pt.params[param])] * len(floors)
                ys += list(np.log(np.maximum(floors, 1e-300)))
            slope, se, dof, (lo, hi) = slope_with_ci(np.array(xs), np.array(ys))
            v.observed, v.ci_low, v.ci_high, v.allowed = slope, lo, hi, 0.0
            v.claim = f"{trend.quantity} {trend.direction} in {param}"
            v.detail = (
                f"claim: {trend.direction} in {param} ({trend.note}); slope of log "
                f"{trend.quantity} vs {'encoded ' if trend.order else 'log '}{param}{note}"
            )
            if math.isfinite(se) and se > 0:
                alt = "greater" if trend.direction == "nonincreasing" else "less"
                v.p_value = one_sided_p(slope / se, dof, alt)
    return out


register(
    CheckKind(
        "trend",
        "floor monotone in p / tau as the theorem claims",
        OBSERVE,
        trend_check,
        per_point=False,
    )
)
