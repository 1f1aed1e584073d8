"""A bound's prediction of a :mod:`~verify.checks.quantities` quantity at a point: calibrated
(with its prediction standard error and one-sided limit) or known, with the case's
``--perturb`` factors and the bound's named mutations applied."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .framework import Context
from .quantities import QUANTITIES


@dataclass(frozen=True)
class Predicted:
    value: float  # point prediction (possibly perturbed)
    log_se: float  # prediction s.e. in log space (calibrated) or nan (known)
    dof: float
    limit: float  # one-sided Bonferroni prediction limit used by the envelope


def predicted(ctx: Context, quantity: str, params: Mapping[str, Any]) -> Predicted | str:
    """Prediction of ``quantity`` at ``params``, or the reason there is none."""
    if quantity in ctx.calibration_errors:
        return f"calibration of {quantity} failed: {ctx.calibration_errors[quantity]}"
    q = QUANTITIES[quantity]
    cal = ctx.calibration.get(quantity)
    if cal is not None:
        value = cal.predict(params)
        log_se, dof = cal.log_se(params), float(cal.dof)
        # the least favourable plausible value: an upper floor, the slowest decay
        limit = cal.limit(params, ctx.alpha / ctx.n_tested, q.side)
        if value > 0 and not math.isfinite(log_se):
            return f"calibration of {quantity} has no residual degrees of freedom"
    else:
        value = ctx.bound.predict(params).get(q.prediction)
        if value is None:
            return f"{ctx.bound.id} does not predict {quantity}"
        log_se, dof, limit = math.nan, math.nan, value
    factor = ctx.perturb.get(q.perturb, 1.0)
    factor *= ctx.bound.mutation_factor(ctx.perturb, quantity, params)
    return Predicted(value * factor, log_se, dof, limit * factor)


def rep_offsets(
    ctx: Context, quantity: str, cfg: Mapping[str, Any], group: str
) -> np.ndarray | None:
    """Per-repetition log offsets of the calibration points sharing an initialisation.

    Under common random numbers repetition ``r`` of every point with the same init
    parameters starts from the same network, so a repetition whose initial kernel is
    favourable is fast at every such point.  ``o_r`` is the mean over those calibration
    points of ``log obs_r - log prediction``: the repetition's own offset from the fit.
    ``None`` when there is no such calibration point or the repetitions do not line up.
    """
    key = ("rep_offsets", quantity, group, tuple(sorted(cfg.items())))
    cache = ctx.cache
    if key not in cache:
        cal = ctx.calibration.get(quantity)
        rows = []
        for pt in ctx.points:
            if ctx.roles[pt.key] != "calibration" or pt.cache.get("init_group") != group:
                continue
            est = QUANTITIES[quantity].observer(pt, cfg)
            size = pt.curves[cfg["curve"]].shape[0]
            if est.ok and est.samples.size == size and (est.samples > 0).all():
                rows.append(np.log(est.samples) - math.log(cal.predict(pt.params)))
        sizes = {r.size for r in rows}
        cache[key] = np.mean(rows, axis=0) if cal is not None and rows and len(sizes) == 1 else None
    return cache[key]
