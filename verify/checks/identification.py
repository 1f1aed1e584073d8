"""Checks of manifold identification and objective convergence (arXiv:2112.02612).

* ``identification`` (per point): Theorem 2 of Huang & Lee (ICLR 2022) states that the
  zero-group pattern of RMDA's ``W~_t`` equals that of the limit point ``W*`` from some
  finite step ``T`` on.  Per repetition the trainer reports ``identification_step_<m>``
  (first step after which the pattern equals ``W*``'s until the end of the run, NaN if it
  does not at the end) and ``flips_after_identification_<m>`` (pattern changes after that
  step).  The claim is deterministic, so the p-value is 0 when *any* repetition misses
  it (no finite ``T``, a pattern change after ``T``, or ``T`` later than
  ``(1 - min_stable_fraction) * steps``, i.e. the pattern was not held for a visible
  stretch) and 1 otherwise; the observed value is the mean ``T`` with a t interval.
  ``method = "proxsgd"`` reads the ProxSGD outputs instead (the negative control: its
  pattern keeps flipping).  Points whose ``W*`` is degenerate -- a zero group with
  ``||grad_g f(W*)||`` within ``min_margin`` of ``lam sqrt(k)`` (the theorem's
  nondegeneracy condition), a nonzero group of norm below ``min_active_norm`` (``lam`` at a
  kink of the regularisation path: ``T`` finite but beyond any feasible horizon), or an
  inaccurate FISTA solve -- are reported outside the hypotheses.
* ``objective_convergence`` (per point): ``F(W_t) - F(W*) -> 0`` (Theorem 1).  Two verdicts:
  the mean gap over the last ``tail_fraction`` of the logged steps is at most ``tolerance``
  (one-sided t-test across repetitions: fail if significantly above), and the per-
  repetition OLS slope of ``log gap`` against ``log t`` over the second half of the run is
  at most ``max_slope`` (default 0: decreasing; one-sided t-test, fail if significantly
  above).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..schema import Spec, positive_float
from . import CheckKind, register
from .framework import Context, base_verdict
from .stats import one_sided_p, t_estimate
from .verdict import OUTSIDE, PointData, Verdict

METHODS = ("rmda", "proxsgd")
METHOD = Spec(str, "rmda", choices=METHODS)

IDENTIFICATION = {
    "method": METHOD,
    "min_stable_fraction": Spec(float, 0.25, lambda v: 0 <= v < 1, "number in [0, 1)"),
    "min_margin": Spec(float, 0.05, lambda v: 0 <= v < 1, "number in [0, 1)"),
    "min_active_norm": Spec(float, 0.1, lambda v: v >= 0, "number >= 0"),
    "max_residual": positive_float(1e-8),
}

CONVERGENCE = {
    "method": METHOD,
    "tolerance": positive_float(5e-3),
    "tail_fraction": Spec(float, 0.1, lambda v: 0 < v <= 0.5, "number in (0, 0.5]"),
    "max_slope": Spec(float, 0.0),
}

#: gaps are clipped here before taking logs (F(W*) is accurate to about 1e-12)
GAP_FLOOR = 1e-14


def degenerate(pt: PointData, cfg: Mapping[str, Any]) -> str:
    """Why ``W*`` of this point is outside the identification theorem's reach ('' if not)."""
    s = pt.scalars
    reasons = []
    if "nondegeneracy_margin" in s and np.nanmin(s["nondegeneracy_margin"]) < cfg["min_margin"]:
        reasons.append(
            f"nondegeneracy margin {np.nanmin(s['nondegeneracy_margin']):.3g} < "
            f"{cfg['min_margin']:g} (a zero group of W* has ||grad_g f|| ~ lam sqrt(k))"
        )
    if "min_active_norm" in s and np.nanmin(s["min_active_norm"]) < cfg["min_active_norm"]:
        reasons.append(
            f"smallest nonzero group of W* has norm {np.nanmin(s['min_active_norm']):.3g} < "
            f"{cfg['min_active_norm']:g} (lam near a kink of the regularisation path)"
        )
    if "fista_residual" in s and np.nanmax(s["fista_residual"]) > cfg["max_residual"]:
        reasons.append(
            f"W* not accurate: FISTA residual {np.nanmax(s['fista_residual']):.3g} > "
            f"{cfg['max_residual']:g}"
        )
    return "; ".join(reasons)


def screened_or_degenerate(ctx: Context, v: Verdict, pt: PointData, cfg: Mapping[str, Any]) -> bool:
    """Outside the bound's preconditions or with a degenerate ``W*``: final, not counted."""
    reasons = list(ctx.violations.get(pt.key, [])) + [r for r in [degenerate(pt, cfg)] if r]
    if reasons:
        v.status, v.detail = OUTSIDE, "; ".join(reasons)
        return True
    return False


def identification_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """Finite identification step and no pattern change after it, on every repetition."""
    m = cfg["method"]
    out = []
    for pt in ctx.points:
        v = base_verdict(ctx, name, "identification", pt, f"identification_step_{m}")
        out.append(v)
        if screened_or_degenerate(ctx, v, pt, cfg):
            continue
        T = pt.scalars[f"identification_step_{m}"]
        flips = pt.scalars[f"flips_after_identification_{m}"]
        steps = int(pt.params["steps"])
        latest = (1.0 - cfg["min_stable_fraction"]) * steps
        est = t_estimate(T)
        v.observed, v.ci_low, v.ci_high = est.value, est.low, est.high
        v.predicted, v.allowed = 0.0, latest  # predicted: flips after T; allowed: latest T
        problems = []
        for r, (t_r, f_r) in enumerate(zip(T, flips, strict=True)):
            if not math.isfinite(t_r):
                problems.append(f"rep {r}: pattern of W* not held at the end of the run")
            elif t_r > latest:
                problems.append(f"rep {r}: identified only at step {t_r:.0f} > {latest:.0f}")
            if math.isfinite(f_r) and f_r > 0:
                problems.append(f"rep {r}: {f_r:.0f} pattern changes after identification")
        v.p_value = 0.0 if problems else 1.0  # deterministic claim: any miss refutes it
        finite = T[np.isfinite(T)]
        iterate = "dual-averaging iterate W~_t" if m == "rmda" else "iterate W_t"
        v.detail = f"zero-group pattern of the {iterate} vs W*: " + (
            "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
            if problems
            else f"{m}: identified on all {T.size} repetitions, T in "
            f"[{finite.min():.0f}, {finite.max():.0f}] of {steps} steps, no change after T"
        )
    return out


def final_gaps(curves: np.ndarray, tail_fraction: float) -> np.ndarray:
    """Per repetition: the mean gap over the last ``tail_fraction`` of the logged values."""
    tail = max(1, int(round(tail_fraction * (curves.shape[1] - 1))))
    return curves[:, -tail:].mean(axis=1)


def log_slopes(curves: np.ndarray, log_every: int) -> np.ndarray:
    """Per repetition: OLS slope of ``log gap`` on ``log t`` over the second half."""
    t = np.arange(curves.shape[1]) * float(log_every)
    half = slice(max(1, curves.shape[1] // 2), None)
    x = np.log(t[half])
    y = np.log(np.maximum(curves[:, half], GAP_FLOOR))
    xc = x - x.mean()
    return (y - y.mean(axis=1, keepdims=True)) @ xc / float(xc @ xc)


def _t_test_above(v: Verdict, samples: np.ndarray, limit: float) -> None:
    """Observed mean with CI; p-value of 'mean <= limit' (fail if significantly above)."""
    est = t_estimate(samples)
    v.observed, v.ci_low, v.ci_high, v.allowed = est.value, est.low, est.high, limit
    if est.ok and est.se > 0:
        v.p_value = one_sided_p((est.value - limit) / est.se, est.dof, "greater")
    elif math.isfinite(est.value):
        v.p_value = 0.0 if est.value > limit else 1.0


def convergence_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """Final objective gap below ``tolerance`` and a decreasing gap (log-log slope)."""
    m = cfg["method"]
    out = []
    for pt in ctx.points:
        curves = pt.curves[f"objective_gap_{m}"]
        gap = base_verdict(ctx, name, "objective_convergence", pt, f"final_gap_{m}")
        slope = base_verdict(ctx, name, "objective_convergence", pt, f"gap_slope_{m}")
        out += [gap, slope]
        if ctx.violations.get(pt.key):
            for v in (gap, slope):
                v.status, v.detail = OUTSIDE, "; ".join(ctx.violations[pt.key])
            continue
        if not np.isfinite(curves).all():
            for v in (gap, slope):
                v.p_value, v.detail = 0.0, "objective gap not finite (diverged)"
            continue
        gap.predicted = 0.0
        _t_test_above(gap, final_gaps(curves, cfg["tail_fraction"]), cfg["tolerance"])
        gap.detail = (
            f"mean F(W_t) - F(W*) over the last {cfg['tail_fraction']:.0%} of the run "
            f"vs tolerance {cfg['tolerance']:g}"
        )
        samples = log_slopes(curves, int(pt.params.get("log_every", 1)))
        _t_test_above(slope, samples, cfg["max_slope"])
        slope.detail = "slope of log gap vs log t over the second half (claim: decreasing)"
    return out


register(
    CheckKind(
        "identification",
        "zero pattern of W~_t equals W*'s after a finite step and never changes again",
        IDENTIFICATION,
        identification_check,
    )
)
register(
    CheckKind(
        "objective_convergence",
        "final objective gap below tolerance and decreasing (log-log slope < 0)",
        CONVERGENCE,
        convergence_check,
    )
)
