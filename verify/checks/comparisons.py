"""One-sided tests of an observed statistic against a prediction, on the log scale."""

from __future__ import annotations

import math

import numpy as np

from .predictions import Predicted
from .stats import Estimate, one_sided_p, t_estimate
from .verdict import Verdict


def paired_log_test(
    v: Verdict, est: Estimate, pred: Predicted, offsets: np.ndarray, alternative: str
) -> None:
    """Held-out test paired with the calibration points' repetitions (common random numbers).

    ``e_r = log obs_r - log predicted - o_r`` removes the variation the held-out point shares
    with the calibration points through the initialisation; ``z = mean(e) / sqrt(se(e)^2 +
    se_pred^2)`` with Welch--Satterthwaite degrees of freedom.
    """
    e = np.log(est.samples) - math.log(pred.value) - offsets
    v.observed, v.ci_low, v.ci_high = est.value, est.low, est.high
    v.predicted, v.allowed = pred.value, pred.limit
    own = t_estimate(e)
    a, b = own.se**2, pred.log_se**2
    if not own.ok or a + b == 0:
        v.detail = "paired test impossible: fewer than two repetitions with a fitted rate"
        return
    dof = (a + b) ** 2 / (a**2 / own.dof + (b**2 / pred.dof if pred.dof > 0 else 0.0))
    v.p_value = one_sided_p(own.value / math.sqrt(a + b), dof, alternative)
    v.detail = (
        f"paired with the calibration points' repetitions (shared initialisations): "
        f"mean log(observed / predicted) = {own.value:+.3g} +- {own.se:.2g}"
    )


def log_test(v: Verdict, est: Estimate, pred: Predicted, alternative: str) -> None:
    """One-sided test of the observation against a prediction on the log scale."""
    v.observed, v.ci_low, v.ci_high = est.value, est.low, est.high
    v.predicted = pred.value
    if math.isfinite(pred.log_se):
        # the prediction's error plus the point's own sampling error (delta method), so a
        # point noisier than the calibration points is not over-trusted
        own = est.se / est.value if est.ok and est.value > 0 else 0.0
        z = (math.log(est.value) - math.log(pred.value)) / math.hypot(pred.log_se, own)
        v.p_value = one_sided_p(z, pred.dof, alternative)
        v.allowed = pred.limit
    else:
        z = (
            (est.value - pred.value) / est.se
            if est.se > 0
            else math.copysign(math.inf, est.value - pred.value)
        )
        v.p_value = (
            one_sided_p(z, est.dof, alternative)
            if math.isfinite(z)
            else float((z > 0) == (alternative == "greater"))
        )
        v.allowed = pred.value
