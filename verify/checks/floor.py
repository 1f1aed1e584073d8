"""Check kind ``floor``: the tail-mean loss within the predicted neighbourhood."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from . import CheckKind, register
from .comparisons import log_test
from .framework import Context, mark_vacuous, point_verdicts
from .observations import OBSERVE, observe_floor, unsettled
from .predictions import predicted
from .stats import one_sided_p
from .verdict import Verdict


def floor_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """Tail-mean loss within the predicted neighbourhood (one-sided: fail if above)."""
    out = []
    for pt, v in point_verdicts(ctx, name, "floor", "floor", out, known_counts=True):
        est = observe_floor(pt, cfg)
        pred = predicted(ctx, "floor", pt.params)
        if isinstance(pred, str) or not est.ok:
            v.detail = (
                pred
                if isinstance(pred, str)
                else unsettled(pt, cfg) or "too few tail samples for a CI"
            )
            continue
        v.predicted_floor = pred.value
        mark_vacuous(v, pred.value, float(pt.curves[cfg["curve"]][:, 0].mean()))
        if pred.value == 0.0:  # no masking noise: the loss must vanish (to floor_atol)
            v.observed, v.ci_low, v.ci_high = est.value, est.low, est.high
            v.predicted, v.allowed = 0.0, cfg["floor_atol"]
            z = (est.value - cfg["floor_atol"]) / est.se if est.se > 0 else -math.inf
            v.p_value = one_sided_p(z, est.dof, "greater") if math.isfinite(z) else 0.0
            v.detail = f"predicted floor 0: tested against floor_atol = {cfg['floor_atol']:g}"
        else:
            log_test(v, est, pred, "greater")
    return out


register(
    CheckKind("floor", "tail-mean loss within the predicted neighbourhood", OBSERVE, floor_check)
)
