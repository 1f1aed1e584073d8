"""Check kind ``scaling``: the log-log slope of a statistic in a parameter against the
predicted exponent (see :mod:`verify.checks.claims`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..schema import Spec
from . import CheckKind, register
from .claims import NONNEGATIVE, REDUCERS, RELATIONS, interval, interval_p, prediction, statistic
from .framework import Context, group_by_other_params, group_verdict, testable
from .stats import Estimate, slope_with_ci
from .verdict import Verdict

SCALING = {
    "statistic": Spec(str, required=True),
    "parameter": Spec(str, required=True),
    "quantity": Spec(str, required=True),
    "relation": Spec(str, "<=", choices=RELATIONS),
    "reduce": Spec(str, "", choices=("", *REDUCERS)),
    "margin": NONNEGATIVE,
}


def scaling_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """Log-log slope of a statistic in a parameter against the predicted exponent."""
    param = cfg["parameter"]
    usable = [pt for pt in ctx.points if testable(ctx, pt)]
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
            statistic=cfg["statistic"],
            group=label,
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
        v.claim = f"slope of log {cfg['statistic']} vs log {param} {cfg['relation']} {pred:.3g}"
        v.detail = (
            f"slope of log {cfg['statistic']} vs log {param} over "
            f"{', '.join(str(pt.params[param]) for pt in members)}: {slope:.3g} "
            f"[{lo:.3g}, {hi:.3g}]; claim {cfg['relation']} {pred:.3g}"
            + (f" (margin {cfg['margin']:g})" if cfg["margin"] else "")
        )
    return out


register(
    CheckKind(
        "scaling",
        "log-log slope of a statistic in a parameter vs the predicted exponent",
        SCALING,
        scaling_check,
        per_point=False,
    )
)
