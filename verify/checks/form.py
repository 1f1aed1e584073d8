"""Does a calibrated functional form fit? A lack-of-fit test on its calibration residuals.

Where a paper's constants are unknown, the bound is verified through its *functional form*
(e.g. arXiv:2112.02668, Theorem 1: rate proportional to ``theta * eta * lambda0 * tau`` in
the early phase): the constants are fitted on the calibration points and the held-out
points are tested against the prediction with the OLS prediction interval.  That interval
widens with the calibration's residual s.d., so a form that does not describe the data
(large residuals) could never fail a held-out test.  This check closes that gap.

The case declares ``max_log_sd``: the largest scatter (s.d. on the log scale) of the
observations around the fitted form that it still accepts as "the form holds"; 0.2 means
within about 22%.  The check tests ``H0: sigma <= max_log_sd`` with the chi-square
statistic ``dof * s^2 / max_log_sd^2`` of the calibration fit (``s``: residual s.d., ``dof``:
residual degrees of freedom), one-sided; the test is exact for Gaussian log residuals and
its false-alarm rate at ``sigma = max_log_sd`` is the case's budget.

``--perturb form=FACTOR`` multiplies every ``max_log_sd`` (a factor below 1 claims a
tighter fit: the check's negative control).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from ..schema import Spec, positive_float
from . import CheckKind, register
from .framework import Context
from .verdict import INCONCLUSIVE, Verdict

FORM = {
    "quantity": Spec(str, "rate"),
    "max_log_sd": positive_float(0.2),
}


def sd_interval(s: float, dof: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided chi-square confidence interval for a Gaussian s.d. estimated as ``s``."""
    lo, hi = stats.chi2.ppf([0.5 + level / 2, 0.5 - level / 2], dof)
    return math.sqrt(dof * s**2 / lo), math.sqrt(dof * s**2 / hi)


def form_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """One verdict per bound: the residual s.d. of ``quantity``'s calibrated form."""
    quantity = cfg["quantity"]
    tolerance = cfg["max_log_sd"] * ctx.perturb.get("form", 1.0)
    v = Verdict(
        case=ctx.case,
        bound=ctx.bound.id,
        check=name,
        kind="form",
        point_key=f"form:{quantity}",
        label=f"functional form of {quantity}",
        params={},
        role="test",
        status=INCONCLUSIVE,
        quantity=quantity,
        predicted=tolerance,
        allowed=tolerance,
    )
    cal = ctx.calibration.get(quantity)
    if cal is None:
        v.detail = ctx.calibration_errors.get(
            quantity, f"{ctx.bound.id} has no calibrated form of {quantity}"
        )
        return [v]
    if cal.dof < 1 or not math.isfinite(cal.sigma):
        v.detail = (
            f"{cal.n_points} calibration points leave no residual degrees of freedom "
            f"for {len(cal.free) + max(1, len(cal.groups))} fitted constants"
        )
        return [v]
    statistic = cal.dof * cal.sigma**2 / tolerance**2
    v.observed = cal.sigma
    v.ci_low, v.ci_high = sd_interval(cal.sigma, cal.dof)
    v.p_value = float(stats.chi2.sf(statistic, cal.dof))
    worst = float(np.max(np.abs(cal.residuals))) if cal.residuals else math.nan
    v.detail = (
        f"log-residual s.d. of the calibrated {quantity} form = {cal.sigma:.3g} on {cal.dof} "
        f"dof ({cal.n_points} calibration points; largest |log residual| {worst:.3g}, a factor "
        f"{math.exp(worst):.3g}); accepted scatter max_log_sd = {tolerance:.3g}, "
        f"chi-square = {statistic:.3g}"
    )
    return [v]


register(
    CheckKind(
        "form",
        "a calibrated functional form fits its calibration points (residual s.d. test)",
        FORM,
        form_check,
        per_point=False,
    )
)
