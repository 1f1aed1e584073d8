"""Statistical building blocks of the checks: fits with confidence intervals,
autocorrelation-aware means, one-sided tests and Holm's family-wise correction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a two-sided ``level`` confidence interval.

    ``samples`` are the (approximately independent) values the estimate averages,
    e.g. batch means or per-repetition fits; ``se`` its standard error; ``dof`` the
    degrees of freedom of the t interval.
    """

    value: float
    low: float
    high: float
    se: float
    dof: int
    samples: np.ndarray

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.value) and np.isfinite(self.se) and self.dof >= 1)


NAN_ESTIMATE = Estimate(math.nan, math.nan, math.nan, math.nan, 0, np.zeros(0))


def t_estimate(samples: np.ndarray, level: float = 0.95) -> Estimate:
    """Mean of independent samples with a Student-t interval."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        value = float(x[0]) if x.size else math.nan
        return Estimate(value, math.nan, math.nan, math.nan, 0, x)
    se = float(x.std(ddof=1) / math.sqrt(x.size))
    q = float(stats.t.ppf(0.5 + level / 2, x.size - 1)) * se
    mean = float(x.mean())
    return Estimate(mean, mean - q, mean + q, se, x.size - 1, x)


def batch_means(curves: np.ndarray, tail: int, batches: int) -> np.ndarray:
    """Batch means of the last ``tail`` values of each row (one row per repetition).

    Consecutive losses of a run are autocorrelated; means of long contiguous batches
    are nearly independent, so the batch means of all repetitions can be treated as
    independent samples of the stationary tail mean (the batch-means method).
    """
    window = curves[:, -tail:]
    size = window.shape[1] // batches
    if size < 1:
        raise ValueError(f"tail={tail} is shorter than batches={batches}")
    window = window[:, window.shape[1] - size * batches :]
    return window.reshape(window.shape[0], batches, size).mean(axis=2).ravel()


def lag1_autocorrelation(x: np.ndarray) -> float:
    """Lag-1 autocorrelation of a series (used to report how independent batch means are)."""
    x = np.asarray(x, dtype=float) - np.mean(x)
    denom = float(x @ x)
    return float(x[:-1] @ x[1:] / denom) if denom > 0 else 0.0


def fit_exponential_plus_floor(curve: np.ndarray) -> tuple[float, float, float]:
    """Fit ``L_k = A rho^k + B`` to a loss curve in log space; returns ``(rho, A, B)``.

    Fitting ``log L_k`` against ``log(A rho^k + B)`` (robust soft-L1 loss) models the
    transition into the floor explicitly, so rounds on the plateau do not bias the rate
    the way a straight line through ``log L_k`` would.  Parameters are fitted on the log
    scale (``A, B > 0``, ``0 < rho < 1``).
    """
    L = np.asarray(curve, dtype=float)
    k = np.arange(L.size, dtype=float)
    good = np.isfinite(L) & (L > 0)
    L, k = L[good], k[good]
    if L.size < 4:
        return math.nan, math.nan, math.nan
    logL = np.log(L)
    B0 = max(float(np.mean(L[-max(2, L.size // 5) :])), 1e-300)
    A0 = max(float(L[0] - B0), float(L[0]) * 1e-3)
    head = L[: max(3, L.size // 10)]
    gap = np.maximum(head - B0, 1e-300)
    slope = -np.polyfit(np.arange(head.size), np.log(gap), 1)[0] if head.size > 1 else 0.1
    delta0 = float(np.clip(slope, 1e-6, 5.0))

    def residual(z: np.ndarray) -> np.ndarray:
        logA, logdelta, logB = z
        model = np.logaddexp(logA - np.exp(logdelta) * k, logB)
        return model - logL

    z0 = np.array([math.log(A0), math.log(delta0), math.log(B0)])
    res = optimize.least_squares(residual, z0, loss="soft_l1", f_scale=0.5, method="trf")
    logA, logdelta, logB = res.x
    return math.exp(-math.exp(logdelta)), math.exp(logA), math.exp(logB)


def one_sided_p(z: float, dof: float, alternative: str) -> float:
    """p-value of a t statistic: ``greater`` tests ``mean > 0``, ``less`` tests ``mean < 0``."""
    if not math.isfinite(z):
        return math.nan
    dist = stats.t(dof) if math.isfinite(dof) and dof > 0 else stats.norm()
    return float(dist.sf(z) if alternative == "greater" else dist.cdf(z))


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (strong family-wise error control).

    ``p_adj_(i) = max_{j <= i} min(1, (H - j + 1) p_(j))`` over the sorted p-values;
    reject the hypotheses whose adjusted p-value is at most alpha.  NaNs are ignored.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    H = order.size
    scaled = np.minimum(1.0, (H - np.arange(H)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def slope_with_ci(
    x: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None, level: float = 0.95
):
    """OLS slope of ``y`` on ``x`` (with a fixed effect per group), its s.e., dof and CI."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if groups is None:
        groups = np.zeros(x.size, dtype=int)
    else:
        groups = np.asarray(groups)[ok]
    labels, g = np.unique(groups, return_inverse=True)
    design = np.column_stack([x, (g[:, None] == np.arange(labels.size)).astype(float)])
    dof = x.size - design.shape[1]
    if dof < 1 or np.ptp(x) == 0:
        return math.nan, math.nan, 0, (math.nan, math.nan)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    s2 = float(resid @ resid) / dof
    cov = s2 * np.linalg.pinv(design.T @ design)
    se = math.sqrt(max(cov[0, 0], 0.0))
    q = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return float(coef[0]), se, dof, (float(coef[0]) - q, float(coef[0]) + q)
