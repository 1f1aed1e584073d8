"""Check kind ``rate``: the linear-phase decay at least as fast as predicted."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from . import CheckKind, register
from .comparisons import log_test, paired_log_test
from .framework import Context, point_verdicts
from .observations import OBSERVE, observe_decay, unsettled
from .predictions import predicted, rep_offsets
from .verdict import Verdict


def rate_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """Linear-phase decay at least as fast as predicted (one-sided: fail if slower)."""
    out = []
    for pt, v in point_verdicts(ctx, name, "rate", "rate", out):
        est = observe_decay(pt, cfg)
        pred = predicted(ctx, "rate", pt.params)
        if isinstance(pred, str) or not est.ok or est.value <= 0:
            v.detail = (
                pred
                if isinstance(pred, str)
                else unsettled(pt, cfg)
                or "no linear phase to fit: the floor is not far below the fit window, a "
                "repetition never reached it, or it lasts fewer than min_window = "
                f"{cfg['min_window']} rounds"
            )
            continue
        v.predicted_rate = math.exp(-pred.value)
        group = pt.cache.get("init_group")
        offsets = (
            rep_offsets(ctx, "rate", cfg, group)
            if group is not None and math.isfinite(pred.log_se)
            else None
        )
        if (
            offsets is not None
            and offsets.size == est.samples.size
            and (est.samples > 0).all()  # a repetition that rose has no log: test the mean
        ):
            paired_log_test(v, est, pred, offsets, "less")
        else:
            log_test(v, est, pred, "less")
    return out


register(
    CheckKind("rate", "linear-phase contraction at least as fast as predicted", OBSERVE, rate_check)
)
