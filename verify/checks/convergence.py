"""Checks of linear convergence to a neighbourhood: envelope, rate, floor and trends.

Observed statistics (per grid point, from all repetitions):

* **floor**: the tail mean of the loss; batch means of the last ``tail`` rounds of every
  repetition are the (nearly independent) samples of a t interval (batch-means method).
* **rate**: the per-round log-decay ``delta = -log rho`` of the linear phase, fitted per
  repetition as the slope of ``log(L_k - B)`` against ``k`` over the rounds until the excess
  loss ``L_k - B`` first falls to ``fit_fraction`` of its initial value (``B``: the floor
  estimate).  The window is a fixed fraction of the decay, so in the linearised regime
  the statistic is proportional to the effective step and comparable across the grid.

Tests (each a one-sided p-value for "the bound holds"):

* calibrated prediction: ``z = (log observed - log predicted) / sqrt(se_pred^2 + se_obs^2)``
  with the OLS prediction s.e. of the calibration fit (its degrees of freedom) and the
  observation's own relative standard error;
* known prediction: a t-test of the samples against the prediction.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bounds.core import Bound, CalibratedForm, Trend

from ..schema import Spec, positive_float, positive_int
from . import CheckKind, register
from .stats import NAN_ESTIMATE, Estimate, batch_means, one_sided_p, slope_with_ci, t_estimate
from .verdict import FAIL, INCONCLUSIVE, OUTSIDE, PointData, Verdict

OBSERVE = {
    "curve": Spec(str, "loss"),
    "tail": positive_int(100, maximum=1_000_000),
    "batches": positive_int(5, maximum=1000),
    "fit_fraction": Spec(float, 0.3, lambda v: 0 < v < 1, "number in (0, 1)"),
    "floor_atol": positive_float(1e-3),
    "blocks": positive_int(10, maximum=10_000),
    "min_window": positive_int(5, maximum=100_000),
    "max_drift": Spec(float, 0.1, lambda v: 0 < v < 1, "number in (0, 1)"),
}


@dataclass
class Context:
    """What a check needs about one (case, bound): points, roles, calibration, budget."""

    case: str
    bound: Bound
    points: list[PointData]
    roles: dict[str, str]
    violations: dict[str, list[str]]
    calibration: dict[str, CalibratedForm]
    calibration_errors: dict[str, str]
    perturb: Mapping[str, float]
    alpha: float
    observe: dict[str, Any] = field(default_factory=dict)
    all_points: list[PointData] = field(default_factory=list)  # incl. out-of-scope comparisons
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def n_tested(self) -> int:
        return max(1, sum(1 for r in self.roles.values() if r != "calibration"))


# --------------------------------------------------------------------------- observations
#: one-sided level of the test that the tail is still falling (floor not reached)
DRIFT_LEVEL = 0.05


def unsettled(pt: PointData, cfg: Mapping[str, Any]) -> str:
    """Why the tail window has not reached the floor ('' if it has).

    Per repetition the drift ``1 - mean(second half of the tail) / mean(first half)``; the
    floor is not reached when the mean drift is significantly above ``max_drift`` (one-sided
    t-test at :data:`DRIFT_LEVEL`) and the tail is above ``floor_atol`` (a loss converging
    to zero always falls).  A still-falling tail overstates the floor, so floor, rate and
    trend verdicts there would be artefacts of the run length.
    """
    key = ("unsettled", cfg["curve"], cfg["tail"], cfg["max_drift"], cfg["floor_atol"])
    if key not in pt.cache:
        curves = pt.curves[cfg["curve"]]
        tail = min(cfg["tail"], curves.shape[1] - 1)
        half = tail // 2
        pt.cache[key] = ""
        if half >= 1 and np.isfinite(curves[:, -tail:]).all():
            first = curves[:, -tail : -tail + half].mean(axis=1)
            second = curves[:, -half:].mean(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                drift = np.where(first > 0, 1.0 - second / first, 0.0)
            est = t_estimate(drift)
            p = (
                one_sided_p((est.value - cfg["max_drift"]) / est.se, est.dof, "greater")
                if est.ok and est.se > 0
                else float(not est.value > cfg["max_drift"])
            )
            if p < DRIFT_LEVEL and second.mean() > cfg["floor_atol"]:
                pt.cache[key] = (
                    f"floor not reached: the loss still falls by {est.value:.0%} (CI "
                    f"{est.low:.0%} to {est.high:.0%}) between the halves of the last {tail} rounds "
                    f"(> max_drift = {cfg['max_drift']:.0%}); run more rounds"
                )
    return pt.cache[key]


def observe_floor(pt: PointData, cfg: Mapping[str, Any]) -> Estimate:
    key = ("floor", cfg["curve"], cfg["tail"], cfg["batches"], cfg["max_drift"], cfg["floor_atol"])
    if key not in pt.cache:
        curves = pt.curves[cfg["curve"]]
        tail = min(cfg["tail"], curves.shape[1] - 1)
        if tail < cfg["batches"] or not np.isfinite(curves[:, -tail:]).all():
            pt.cache[key] = NAN_ESTIMATE
        elif unsettled(pt, cfg):
            pt.cache[key] = NAN_ESTIMATE
        else:
            pt.cache[key] = t_estimate(batch_means(curves, tail, cfg["batches"]))
    return pt.cache[key]


def rep_floors(pt: PointData, cfg: Mapping[str, Any]) -> np.ndarray:
    curves = pt.curves[cfg["curve"]]
    tail = min(cfg["tail"], curves.shape[1] - 1)
    return curves[:, -tail:].mean(axis=1)


def fit_decay(curve: np.ndarray, floor: float, fraction: float) -> tuple[float, int]:
    """Per-round log-decay of one curve over its linear phase, and the phase's length.

    The linear phase ends at the first round ``K`` where the excess loss falls to
    ``fraction`` of its initial value; the decay is the least-squares slope of
    ``log(L_k - floor)`` over rounds ``0..K``.
    """
    excess = curve - floor
    if not np.isfinite(excess).all() or excess[0] <= 0:
        return math.nan, 0
    below = np.flatnonzero(excess <= fraction * excess[0])
    if below.size == 0:
        return math.nan, 0
    K = int(below[0])
    if K < 2:
        return float(-math.log(max(excess[K], 1e-300) / excess[0]) / max(K, 1)), K
    k = np.arange(K + 1)
    slope = np.polyfit(k, np.log(np.maximum(excess[: K + 1], 1e-300)), 1)[0]
    return float(-slope), K


def observe_decay(pt: PointData, cfg: Mapping[str, Any]) -> Estimate:
    key = (
        "decay",
        cfg["curve"],
        cfg["tail"],
        cfg["fit_fraction"],
        cfg["min_window"],
        cfg["max_drift"],
        cfg["floor_atol"],
    )
    if key not in pt.cache:
        curves = pt.curves[cfg["curve"]]
        floor = observe_floor(pt, cfg).value
        start = float(np.mean(curves[:, 0]))
        if not math.isfinite(floor) or floor > 0.5 * cfg["fit_fraction"] * start:
            # the tail has not settled far below the fit window: no linear phase to fit
            pt.cache[key] = NAN_ESTIMATE
        else:
            fits = [fit_decay(c, floor, cfg["fit_fraction"]) for c in curves]
            decays = np.array([f[0] for f in fits])
            window = float(np.median([f[1] for f in fits]))
            if window < cfg["min_window"] or not np.isfinite(decays).all():
                # the floor is reached within a few rounds: no per-round rate to resolve
                pt.cache[key] = NAN_ESTIMATE
            else:
                pt.cache[key] = t_estimate(decays)
    return pt.cache[key]


#: the envelope rate is measured while the loss is above this multiple of its floor
ENVELOPE_LEVEL = 4.0


def observe_envelope_decay(pt: PointData, cfg: Mapping[str, Any]) -> Estimate:
    """Largest per-round log-decay for which ``rho^k L0 + B`` covers the descent.

    ``delta_env = min_k -log(r_k - b) / k`` over the initial stretch of rounds where the mean
    normalised loss ``r_k = mean_r L_k / L_0`` stays above ``ENVELOPE_LEVEL`` times the
    normalised floor ``b`` (closer to the floor the excess is dominated by noise): the
    theorem's worst-case rate constant, as opposed to the (faster) early-phase rate.
    """
    key = ("envelope_decay", cfg["curve"], cfg["tail"], cfg["max_drift"], cfg["floor_atol"])
    if key not in pt.cache:
        curves = pt.curves[cfg["curve"]]
        floor = observe_floor(pt, cfg).value
        pt.cache[key] = NAN_ESTIMATE
        if math.isfinite(floor) and np.isfinite(curves).all():
            r = (curves / curves[:, :1]).mean(axis=0)
            b = floor / float(np.mean(curves[:, 0]))
            below = np.flatnonzero(r[1:] <= ENVELOPE_LEVEL * b)
            k = np.arange(1, below[0] + 1 if below.size else r.size)
            if k.size:
                value = float(np.min(-np.log(r[k] - b) / k))
                pt.cache[key] = Estimate(value, value, value, math.nan, 0, np.array([value]))
    return pt.cache[key]


OBSERVERS = {"floor": observe_floor, "rate": observe_decay, "envelope_rate": observe_envelope_decay}
#: which check kind's settings each observed quantity uses
OBSERVED_BY = {"floor": "floor", "rate": "rate", "envelope_rate": "envelope"}


# --------------------------------------------------------------------------- predictions
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
    cal = ctx.calibration.get(quantity)
    side = "upper" if quantity == "floor" else "lower"  # rates: the slowest plausible
    if cal is not None:
        value = cal.predict(params)
        log_se, dof = cal.log_se(params), float(cal.dof)
        limit = cal.limit(params, ctx.alpha / ctx.n_tested, side)
        if value > 0 and not math.isfinite(log_se):
            return f"calibration of {quantity} has no residual degrees of freedom"
    else:
        value = ctx.bound.predict(params).get("decay" if quantity == "rate" else quantity)
        if value is None:
            return f"{ctx.bound.id} does not predict {quantity}"
        log_se, dof, limit = math.nan, math.nan, value
    factor = ctx.perturb.get("rate" if quantity == "envelope_rate" else quantity, 1.0)
    factor *= structural_mutation(ctx.perturb, quantity, params)
    factor *= ctx.bound.mutation_factor(ctx.perturb, quantity, params)
    return Predicted(value * factor, log_se, dof, limit * factor)


def structural_mutation(
    perturb: Mapping[str, float], quantity: str, params: Mapping[str, Any]
) -> float:
    """Factors of the mutation tests' wrong bounds (:mod:`verify.mutants`), 1 otherwise.

    ``theta``: the rate counts a neuron as held ``p * xi`` times (no overlap correction)
    instead of with probability ``1 - (1 - xi)^p``; ``sqrt_m``: the floor shrinks like
    ``1/sqrt(m)`` (as if the masking noise vanished with width, which it does not under
    the network's ``1/sqrt(m)`` output scaling).
    """
    factor = 1.0
    if "theta" in perturb and quantity in ("rate", "envelope_rate") and "xi" in params:
        xi, p = params["xi"], params["p"]
        factor *= p * xi / (1.0 - (1.0 - xi) ** p)
    if "sqrt_m" in perturb and quantity == "floor" and "m" in params:
        factor *= math.sqrt(16.0 / params["m"])
    return factor


# --------------------------------------------------------------------------- verdict helpers
def base_verdict(ctx: Context, name: str, kind: str, pt: PointData, quantity: str) -> Verdict:
    return Verdict(
        case=ctx.case,
        bound=ctx.bound.id,
        check=name,
        kind=kind,
        point_key=pt.key,
        label=pt.label,
        params=pt.params,
        role=ctx.roles[pt.key],
        status=INCONCLUSIVE,
        quantity=quantity,
    )


def count_if_known(ctx: Context, v: Verdict, quantity: str) -> None:
    """Test a calibration point too when ``quantity`` is predicted without calibration.

    Calibration points are set aside only for the quantities their observations calibrate;
    a prediction the bound makes without any fitted constant (e.g. a kernel lower bound
    next to a calibrated rate) is an ordinary test there, counted like any other.
    """
    if v.role == "calibration" and ctx.bound.predict(v.params).get(quantity) is not None:
        v.role = "test"


def mark_vacuous(v: Verdict, bound_at_end: float, initial: float) -> None:
    """Flag a verdict whose bound is never below the initial loss over the run (vacuous)."""
    if math.isfinite(bound_at_end) and bound_at_end >= initial:
        v.vacuous = True


def screened(ctx: Context, v: Verdict, pt: PointData) -> bool:
    """Settle outside-hypotheses and divergence; True if the verdict is final."""
    if ctx.violations[pt.key]:
        v.status, v.detail = OUTSIDE, "; ".join(ctx.violations[pt.key])
        return True
    diverged = pt.divergence()
    if diverged:
        v.status, v.detail, v.p_value = FAIL, diverged, 0.0
        return True
    return False


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
            est = OBSERVERS[quantity](pt, cfg)
            size = pt.curves[cfg["curve"]].shape[0]
            if est.ok and est.samples.size == size and (est.samples > 0).all():
                rows.append(np.log(est.samples) - math.log(cal.predict(pt.params)))
        sizes = {r.size for r in rows}
        cache[key] = np.mean(rows, axis=0) if cal is not None and rows and len(sizes) == 1 else None
    return cache[key]


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


# --------------------------------------------------------------------------- checks
def floor_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """Tail-mean loss within the predicted neighbourhood (one-sided: fail if above)."""
    out = []
    for pt in ctx.points:
        v = base_verdict(ctx, name, "floor", pt, "floor")
        count_if_known(ctx, v, "floor")
        out.append(v)
        if screened(ctx, v, pt):
            continue
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


def rate_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """Linear-phase decay at least as fast as predicted (one-sided: fail if slower)."""
    out = []
    for pt in ctx.points:
        v = base_verdict(ctx, name, "rate", pt, "rate")
        out.append(v)
        if screened(ctx, v, pt):
            continue
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


def envelope_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """The mean loss under ``rho^k L0 + B`` over the whole run.

    Rounds are cut into ``blocks`` consecutive blocks; in each, the relative excess
    ``(L_k - env_k) / env_k`` is averaged over ``batches`` sub-batches per repetition and
    t-tested (one-sided) over those samples; Bonferroni over the blocks.

    Uses the per-repetition initial loss (the theorem bounds the expectation over masks
    given the initialisation) and the one-sided prediction limits of rate and floor at
    level ``false_alarm / (number of tested points)``.
    """
    out = []
    for pt in ctx.points:
        v = base_verdict(ctx, name, "envelope", pt, "envelope")
        out.append(v)
        if screened(ctx, v, pt):
            continue
        rate = predicted(ctx, "envelope_rate", pt.params)
        floor = predicted(ctx, "floor", pt.params)
        if isinstance(rate, str) or isinstance(floor, str):
            v.detail = rate if isinstance(rate, str) else floor
            continue
        B = floor.limit if floor.value > 0 else cfg["floor_atol"]
        delta = rate.limit
        curves = pt.curves[cfg["curve"]]
        R, T = curves.shape
        # a statement whose envelope starts from a stated constant (e.g. C^2 n), not from L0
        prefactor = ctx.bound.predict(pt.params).get("envelope_prefactor")
        start = curves[:, :1] if prefactor is None else np.full((R, 1), prefactor)
        envelope = np.exp(-delta * np.arange(T))[None, :] * start + B
        v.predicted_rate, v.predicted_floor = math.exp(-delta), B
        mark_vacuous(v, float(envelope.mean(axis=0)[-1]), float(curves[:, 0].mean()))
        ratio = curves.mean(axis=0) / envelope.mean(axis=0)
        worst = int(np.argmax(ratio[1:])) + 1
        v.predicted, v.allowed = 1.0, 1.0
        blocks = np.array_split(np.arange(1, T), min(cfg["blocks"], T - 1))
        p_blocks, ratios = [], []
        for block in blocks:
            excess = (curves[:, block] - envelope[:, block]) / envelope[:, block]
            size = max(1, len(block) // cfg["batches"])
            usable = excess[:, : size * (len(block) // size)]
            samples = usable.reshape(R, -1, size).mean(axis=2).ravel()
            est = t_estimate(samples)
            ratios.append(est)
            if est.ok and est.se > 0:
                p_blocks.append(one_sided_p(est.value / est.se, est.dof, "greater"))
            else:
                p_blocks.append(float(est.value > 0) if math.isfinite(est.value) else math.nan)
        j = int(np.nanargmin(p_blocks))
        v.p_value = float(min(1.0, len(blocks) * p_blocks[j]))
        # observed: mean loss / envelope over the least favourable block, with its CI
        v.observed = 1 + ratios[j].value
        v.ci_low, v.ci_high = 1 + ratios[j].low, 1 + ratios[j].high
        v.detail = (
            f"worst round {worst}: mean loss / envelope = {ratio[worst]:.3g}; least favourable "
            f"block rounds {blocks[j][0]}-{blocks[j][-1]}: relative excess "
            f"{ratios[j].value:+.3g}"
        )
    return out


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
    eligible = [pt for pt in pool if not ctx.violations[pt.key] and not pt.divergence()]
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
            v.detail = (
                f"claim: {trend.direction} in {param} ({trend.note}); slope of log "
                f"{trend.quantity} vs {'encoded ' if trend.order else 'log '}{param}{note}"
            )
            if math.isfinite(se) and se > 0:
                alt = "greater" if trend.direction == "nonincreasing" else "less"
                v.p_value = one_sided_p(slope / se, dof, alt)
    return out


def group_by_other_params(points: list[PointData], parameter: str) -> dict[str, list[PointData]]:
    """Points having ``parameter``, grouped by the values of their other grid parameters."""
    groups: dict[str, list[PointData]] = defaultdict(list)
    for pt in points:
        if parameter not in pt.params:
            continue
        fixed = {k: v for k, v in grid_params(pt).items() if k != parameter}
        groups[" ".join(f"{k}={v}" for k, v in sorted(fixed.items()))].append(pt)
    return dict(sorted(groups.items()))


def group_verdict(
    ctx: Context,
    name: str,
    kind: str,
    pt: PointData,
    parameter: str,
    key: str,
    label: str,
    quantity: str,
) -> Verdict:
    """An (inconclusive until tested) verdict about a group of points varying ``parameter``."""
    return Verdict(
        case=ctx.case,
        bound=ctx.bound.id,
        check=name,
        kind=kind,
        point_key=key,
        label=label,
        params={k: v for k, v in grid_params(pt).items() if k != parameter},
        role="test",
        status=INCONCLUSIVE,
        quantity=quantity,
    )


GRID_KEYS: set[str] = set()


def grid_params(pt: PointData) -> dict[str, Any]:
    return {k: v for k, v in pt.params.items() if k in pt.cache.get("grid_keys", GRID_KEYS)}


for _name, _fn, _doc, _per_point in (
    ("envelope", envelope_check, "mean loss under rate^k L0 + floor at every round", True),
    ("rate", rate_check, "linear-phase contraction at least as fast as predicted", True),
    ("floor", floor_check, "tail-mean loss within the predicted neighbourhood", True),
    ("trend", trend_check, "floor monotone in p / tau as the theorem claims", False),
):
    register(CheckKind(_name, _doc, OBSERVE, _fn, _per_point))
