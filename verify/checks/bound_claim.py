"""Check kind ``bound``: a statistic per repetition within a predicted bound (see
:mod:`verify.checks.claims`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..schema import Spec
from . import CheckKind, register
from .claims import NONNEGATIVE, REDUCERS, RELATIONS, interval, interval_p, prediction, statistic
from .framework import Context, point_verdicts
from .stats import t_estimate
from .verdict import Verdict

BOUND = {
    "statistic": Spec(str, required=True),
    "quantity": Spec(str, ""),
    "relation": Spec(str, "<=", choices=RELATIONS),
    "aggregate": Spec(str, "mean", choices=("mean", "every")),
    "reduce": Spec(str, "", choices=("", *REDUCERS)),
    "rtol": NONNEGATIVE,
    "atol": NONNEGATIVE,
}


def bound_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """A statistic per repetition against a predicted bound (see the module docstring)."""
    quantity = cfg["quantity"] or cfg["statistic"]
    out = []
    for pt, v in point_verdicts(ctx, name, "bound", quantity, out, known_counts=True):
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
        every = cfg["aggregate"] == "every"
        v.claim = f"{claim} on every repetition" if every else f"mean {claim}"
        if every:
            finite = values[np.isfinite(values)]
            bad = [
                f"rep {r}: {x:.4g}"
                for r, x in enumerate(values)
                if not (math.isfinite(x) and low <= x <= high)
            ]
            v.p_value = 0.0 if bad or finite.size == 0 else 1.0
            v.detail = f"{v.claim} (allowed [{low:.4g}, {high:.4g}]): " + (
                "violated by " + ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
                if bad
                else f"holds on all {values.size}, range [{finite.min():.4g}, {finite.max():.4g}]"
            )
        else:
            v.p_value = interval_p(est, low, high)
            v.detail = f"{v.claim} (allowed [{low:.4g}, {high:.4g}]), t-test over repetitions"
    for v in out:
        v.statistic = cfg["statistic"]
    return out


register(
    CheckKind("bound", "a statistic per repetition within a predicted bound", BOUND, bound_check)
)
