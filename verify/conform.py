"""Conformance: is a user's trainer the algorithm of the theorem?  A distributional test.

``python -m verify conform CASE --trainer SPEC`` trains every grid point of the case with
the user's callable (:mod:`verify.user_trainer`) and with the suite's reference trainer
(arXiv:2112.02668v1, Algorithm 1, :mod:`verify.trainers.masked_shallow`), on the same data
with independent seeds, and compares the two samples of loss curves.  A correct
implementation draws different masks than the reference, so only the *distributions* of
its losses can agree.

Per grid point four statistics of each repetition are compared, on the log scale:
the loss at initialisation (round 0), at an *early* and a *mid-descent* round, and the
*tail mean* (mean loss over the last ``tail`` rounds: the case's ``checks.floor.tail``,
else a quarter of the rounds).  The early and mid rounds are where the pooled mean log
loss (both samples together) has covered 20% and 50% of its descent from round 0 to the
tail; chosen from the pooled sample, they are the same whichever sample is which, so the
choice does not bias the test.  Each comparison is a two-sample test of equal
distributions against the alternatives that matter here, location and spread:
Welch's t-test on the log losses and the Brown--Forsythe test (Levene with median
centring) of their spread, combined by Bonferroni (``p = min(1, 2 min(p_t, p_BF))``).  Per
statistic, a grid-wide test combines the points' location scores (Stouffer): a bug that
shifts the losses of the whole grid one way is seen with far fewer repetitions than any one
point needs.  Both samples come through the protocol (the reference is the suite's
trainer behind it, :func:`verify.user_trainer.reference`), so every point's samples are
independent of every other point's and the combination is exact under conformance.  The
p-values of all points, statistics and grid-wide tests are adjusted together with Holm's
method at the case's ``false_alarm`` budget: a test *differs* when its adjusted p-value is
at most it.
A repetition that diverged for the user but not for the reference makes that point's
statistics differ outright.

Power (stated, like TFP's ``min_discrepancy``): the smallest common relative shift of every
point's tail mean that the grid-wide test detects with 90% probability, and the smallest
shift of one point's tail mean its own t-test detects, both at the first Holm step, from the
reference's log-scale spread of the tail mean at each point and the repetitions of both
samples; and the repetitions that would make a 20% shift detectable.  The statistic is a geometric-mean shift on the log scale; for the small
spreads of a tail mean it equals the shift of the mean.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

from .case import Case
from .checks.stats import holm
from .grid import GridPoint, expand
from .runner import run_case
from .schema import CaseError
from .store import read_points, write_table
from .user_trainer import REFERENCE_TAG, with_trainer

#: the suite's reference trainer behind the protocol: its repetitions are independent
#: across grid points, as the user's are (no common random numbers), so the grid-wide
#: test sums independent statistics
REFERENCE_SPEC = "verify.user_trainer:reference"
#: label of the grid-wide comparisons
ALL_POINTS = "all points"

#: descent fractions (of the pooled mean log loss, round 0 to tail) of the early/mid rounds
DESCENT = {"early": 0.2, "mid": 0.5}
#: the power the stated detectable shift has
POWER = 0.9
#: the floor shift the default repetitions are chosen to detect
TARGET_SHIFT = 0.2
#: repetitions per sample by default: the grid-wide test detects a 20% shift of every
#: point's tail mean with 90% probability on grids of four points and more (the tests' grid
#: needs 19; the smoke case 2); one point alone needs about 80 at the smoke case's median
DEFAULT_REPETITIONS = 24
#: a loss below this is taken as this (log of an exact zero)
TINY = 1e-300


@dataclass
class Comparison:
    """One statistic of one grid point: user sample against reference sample."""

    point_key: str
    label: str
    statistic: str  # init | early | mid | tail
    rounds: str  # the round (or window) it was taken at
    n_user: int
    n_reference: int
    ratio: float = math.nan  # geometric mean user / reference
    ratio_low: float = math.nan
    ratio_high: float = math.nan
    sd_ratio: float = math.nan  # log-scale spread user / reference
    z: float = math.nan  # the location test's signed normal score (grid-wide test)
    p_location: float = math.nan
    p_spread: float = math.nan
    p_value: float = math.nan
    p_adjusted: float = math.nan
    differs: bool = False
    detail: str = ""


@dataclass
class PointPower:
    key: str
    label: str
    sd_log_tail: float  # reference's log-scale s.d. of the tail mean
    min_shift: float  # smallest tail-mean shift detected with probability POWER
    repetitions_needed: int  # per sample, for a TARGET_SHIFT shift


@dataclass
class Conformance:
    case: str
    trainer: str
    repetitions: int
    alpha: float
    comparisons: list[Comparison]
    power: list[PointPower]
    grid_power: dict[str, float]
    directory: Path | None = None
    wall_time_s: float = math.nan
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def differing(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.differs]

    @property
    def conforms(self) -> bool:
        return not self.differing

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([dataclasses.asdict(c) for c in self.comparisons])


def _log(values: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(values, TINY))


def tail_length(case: Case, rounds: int) -> int:
    """The case's floor window, else a quarter of the rounds (at least one round)."""
    floor = [c["tail"] for c in case.checks.values() if c["kind"] == "floor"]
    return max(1, min(floor[0] if floor else rounds // 4, rounds))


def tested_rounds(user: np.ndarray, reference: np.ndarray, tail: int) -> dict[str, int]:
    """Early and mid-descent rounds, from the pooled mean log-loss curve."""
    pooled = np.vstack([user, reference])
    pooled = pooled[np.isfinite(pooled).all(axis=1)]
    rounds = user.shape[1] - 1
    if pooled.shape[0] == 0:
        return {name: max(1, int(rounds * f)) for name, f in DESCENT.items()}
    g = _log(pooled).mean(axis=0)
    start, end = g[0], g[-tail:].mean()
    out = {}
    for name, f in DESCENT.items():
        if start - end > math.log(2.0):
            below = np.flatnonzero(g[1:] <= start - f * (start - end))
            out[name] = int(below[0]) + 1 if below.size else max(1, int(rounds * f))
        else:  # no descent to speak of: fixed fractions of the run
            out[name] = max(1, int(rounds * f))
    return out


def two_sample(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """Welch t and Brown--Forsythe p-values of two samples of log values, and the effect
    sizes: ``exp(mean a - mean b)`` with its 95% Welch interval, and ``sd a / sd b``."""
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff = a.mean() - b.mean()
    if va + vb == 0:
        p_loc = 1.0 if diff == 0 else 0.0
        half = 0.0
    else:
        p_loc = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
        half = float(stats.t.ppf(0.975, dof)) * math.sqrt(va + vb)
    sa, sb = a.std(ddof=1), b.std(ddof=1)
    if sa == 0 and sb == 0:
        p_spread = 1.0
    else:
        p_spread = float(stats.levene(a, b, center="median").pvalue)
    sd_ratio = sa / sb if sb > 0 else math.inf if sa > 0 else 1.0
    return p_loc, p_spread, math.exp(diff), math.exp(diff - half), math.exp(diff + half), sd_ratio


def _statistics(curves: np.ndarray, rounds: dict[str, int], tail: int) -> dict[str, np.ndarray]:
    out = {"init": curves[:, 0]}
    out.update({name: curves[:, k] for name, k in rounds.items()})
    out["tail"] = curves[:, -tail:].mean(axis=1)
    return out


def compare_point(
    key: str, label: str, user: np.ndarray, reference: np.ndarray, tail: int
) -> list[Comparison]:
    """The four statistics of one point (p-values before Holm)."""
    rounds = tested_rounds(user, reference, tail)
    T = user.shape[1] - 1
    where = {"init": "0", **{k: str(v) for k, v in rounds.items()}, "tail": f"{T - tail + 1}-{T}"}
    su, sr = _statistics(user, rounds, tail), _statistics(reference, rounds, tail)
    out = []
    for name in su:
        a, b = su[name], sr[name]
        fa, fb = np.isfinite(a), np.isfinite(b)
        c = Comparison(key, label, name, where[name], int(fa.sum()), int(fb.sum()))
        if (~fa).sum() > (~fb).sum():
            c.p_value = 0.0
            c.detail = f"diverged in {int((~fa).sum())} repetitions (reference: {int((~fb).sum())})"
        elif fa.sum() < 2 or fb.sum() < 2:
            c.detail = "fewer than two finite repetitions: not tested"
        else:
            la, lb = _log(a[fa]), _log(b[fb])
            c.p_location, c.p_spread, c.ratio, c.ratio_low, c.ratio_high, c.sd_ratio = two_sample(
                la, lb
            )
            c.p_value = min(1.0, 2.0 * min(c.p_location, c.p_spread))
            c.z = math.copysign(float(stats.norm.isf(c.p_location / 2.0)), math.log(c.ratio))
        out.append(c)
    return out


def min_shift(sd_log: float, n_user: int, n_reference: int, alpha: float) -> float:
    """Smallest relative increase ``exp(delta) - 1`` of the geometric mean that a two-sided
    Welch t-test at level ``alpha`` detects with probability :data:`POWER`."""
    if not math.isfinite(sd_log) or n_user < 2 or n_reference < 2:
        return math.nan
    if sd_log == 0:
        return 0.0
    dof = n_user + n_reference - 2
    se = sd_log * math.sqrt(1.0 / n_user + 1.0 / n_reference)
    crit = float(stats.t.ppf(1.0 - alpha / 2.0, dof))

    def power(delta: float) -> float:
        nc = delta / se
        lower = float(stats.nct.cdf(-crit, dof, nc))  # the wrong-sign tail: tiny (or NaN)
        return float(stats.nct.sf(crit, dof, nc)) + (lower if lower == lower else 0.0) - POWER

    hi = se * (crit + 10.0)
    delta = optimize.brentq(power, 0.0, hi) if power(hi) > 0 else math.inf
    return math.expm1(delta)


def repetitions_needed(sd_log: float, alpha: float, shift: float = TARGET_SHIFT) -> int:
    """Repetitions per sample (both samples equal) for ``min_shift <= shift``."""
    if not math.isfinite(sd_log):
        return -1
    lo, hi = 2, 2
    while min_shift(sd_log, hi, hi, alpha) > shift:
        lo, hi = hi, hi * 2
        if hi > 1_000_000:
            return -1
    while lo < hi:  # smallest n in (lo, hi] with enough power
        mid = (lo + hi) // 2
        if min_shift(sd_log, mid, mid, alpha) <= shift:
            hi = mid
        else:
            lo = mid + 1
    return hi


def short_labels(points: list[GridPoint]) -> dict[str, str]:
    """``key=value`` of the parameters that vary over the grid only."""
    keys = sorted({k for pt in points for k in pt.params})
    varying = [k for k in keys if len({str(pt.params.get(k)) for pt in points}) > 1]
    return {pt.key: " ".join(f"{k}={pt.params.get(k)}" for k in varying) for pt in points}


def grid_wide(comparisons: list[Comparison]) -> list[Comparison]:
    """Per statistic, Stouffer's combination of the points' location scores:
    ``Z = sum z_j / sqrt(J)``, standard normal when every point conforms (the points'
    samples are independent), far from 0 when the implementation shifts the losses of
    the whole grid in one direction -- the typical bug, and one a single point's test
    sees only with many more repetitions."""
    out = []
    for name in dict.fromkeys(c.statistic for c in comparisons):
        rows = [c for c in comparisons if c.statistic == name and math.isfinite(c.z)]
        c = Comparison(
            "", ALL_POINTS, name, "", sum(r.n_user for r in rows), sum(r.n_reference for r in rows)
        )
        if rows:
            z = sum(r.z for r in rows) / math.sqrt(len(rows))
            c.z = z
            c.p_location = c.p_value = float(2.0 * stats.norm.sf(abs(z)))
            c.ratio = math.exp(float(np.mean([math.log(r.ratio) for r in rows])))
            c.detail = f"Stouffer Z = {z:+.3g} over {len(rows)} points"
        out.append(c)
    return out


def compare(
    case: Case, points: list[GridPoint], user: pd.DataFrame, reference: pd.DataFrame
) -> tuple[list[Comparison], list[PointPower], dict[str, float]]:
    """Every point's comparisons and the grid-wide ones, Holm-adjusted together; the
    power at every point and of the grid-wide tail-mean test."""
    labels = short_labels(points)
    comparisons: list[Comparison] = []
    curves = {}
    for pt in points:
        cu = _curves(user, pt.key)
        cr = _curves(reference, pt.key)
        _check_nan(pt, user, cr)
        curves[pt.key] = (cu, cr)
        tail = tail_length(case, cu.shape[1] - 1)
        comparisons += compare_point(pt.key, labels[pt.key], cu, cr, tail)
    comparisons += grid_wide(comparisons)
    adjusted = holm(np.array([c.p_value for c in comparisons]))
    for c, p in zip(comparisons, adjusted, strict=True):
        c.p_adjusted = float(p)
        c.differs = bool(np.isfinite(p) and p <= case.false_alarm)
    tests = max(1, int(np.isfinite(adjusted).sum()))
    alpha_point = case.false_alarm / (2 * tests)  # first Holm step, location and spread
    power = []
    for pt in points:
        cu, cr = curves[pt.key]
        t = tail_length(case, cr.shape[1] - 1)
        tails = cr[:, -t:].mean(axis=1)
        tails = _log(tails[np.isfinite(tails)])
        sd = float(tails.std(ddof=1)) if tails.size >= 2 else math.nan
        n_u = int(np.isfinite(cu[:, -1]).sum())
        power.append(
            PointPower(
                pt.key,
                labels[pt.key],
                sd,
                min_shift(sd, n_u, tails.size, alpha_point),
                repetitions_needed(sd, alpha_point),
            )
        )
    return comparisons, power, grid_power(power, case.false_alarm / tests, curves)


def grid_power(
    power: list[PointPower], alpha: float, curves: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, float]:
    """The grid-wide tail-mean test: the smallest common relative shift of every point's
    tail mean detected with probability :data:`POWER` at level ``alpha`` (normal
    approximation: ``E Z = delta sum_j 1/se_j / sqrt(J)``), and the repetitions per sample
    that make :data:`TARGET_SHIFT` detectable."""
    ok = [p for p in power if math.isfinite(p.sd_log_tail) and p.sd_log_tail > 0]
    if not ok:
        return {"min_shift": math.nan, "repetitions_needed": -1}
    need = float(stats.norm.isf(alpha / 2.0) + stats.norm.isf(1.0 - POWER)) * math.sqrt(len(ok))
    inv_se = 0.0
    for p in ok:
        cu, cr = curves[p.key]
        n_u, n_r = int(np.isfinite(cu[:, -1]).sum()), int(np.isfinite(cr[:, -1]).sum())
        inv_se += 1.0 / (p.sd_log_tail * math.sqrt(1.0 / max(n_u, 1) + 1.0 / max(n_r, 1)))
    inv_sd = sum(1.0 / p.sd_log_tail for p in ok)
    reps = 2.0 * (need / (math.log1p(TARGET_SHIFT) * inv_sd)) ** 2
    return {"min_shift": math.expm1(need / inv_se), "repetitions_needed": max(2, math.ceil(reps))}


def _curves(frame: pd.DataFrame, key: str) -> np.ndarray:
    rows = frame[frame.point_key == key].sort_values("rep")
    return np.vstack(rows["loss"].to_numpy()).astype(float)


def _check_nan(pt: GridPoint, user: pd.DataFrame, ref_curves: np.ndarray) -> None:
    """NaN or inf returned by the user where the reference has none is bad input."""
    if "nonfinite_round" not in user:
        return
    rows = user[user.point_key == pt.key]
    bad = rows[rows.nonfinite_round >= 0]
    if len(bad) and np.isfinite(ref_curves).all():
        r = bad.iloc[0]
        raise CaseError(
            f"--trainer: returned a non-finite loss at [{pt.label}], repetition {int(r.rep)}, "
            f"round {int(r.nonfinite_round)}, where the reference trainer has none"
        )


def conform(
    case: Case,
    spec: str,
    out: Path,
    repetitions: int | None = None,
    executor: str = "serial",
    jobs: int = 1,
    quick: bool = False,
    show_progress: bool = True,
) -> Conformance:
    """Train the case with the user's trainer and the reference, and compare them."""
    start = time.perf_counter()
    if quick:
        case = case.with_quick()
    reps = repetitions or DEFAULT_REPETITIONS
    if reps < 2:
        raise CaseError("--repetitions: at least 2 per sample are needed")
    case = dataclasses.replace(case, repetitions=reps)
    reference_case = with_trainer(case, REFERENCE_SPEC, REFERENCE_TAG, "reference")
    user_case = with_trainer(case, spec)
    timing = {}
    runs = {}
    for role, c in (("reference", reference_case), ("user", user_case)):
        t0 = time.perf_counter()
        runs[role] = run_case(c, out, executor, jobs, show_progress=show_progress)
        timing[role] = time.perf_counter() - t0
    points = expand(reference_case)
    keys = [pt.key for pt in points]
    ref = read_points(runs["reference"].directory, keys)
    user = read_points(runs["user"].directory, keys)
    comparisons, power, grid = compare(case, points, user, ref)
    result = Conformance(
        case.name,
        spec,
        reps,
        case.false_alarm,
        comparisons,
        power,
        grid,
        runs["user"].directory,
        time.perf_counter() - start,
        timing,
    )
    write_table(runs["user"].directory / "conformance.parquet", result.frame())
    return result


def summary(result: Conformance) -> list[str]:
    """The lines ``python -m verify conform`` prints."""
    n = len(result.comparisons)
    tested = sum(math.isfinite(c.p_value) for c in result.comparisons)
    lines = [
        f"{result.case}: {result.trainer} against the reference trainer, {result.repetitions} "
        f"repetitions each, {len(result.power)} points x 4 statistics + 4 grid-wide "
        f"({tested} of {n} tested), Holm at {result.alpha:g}  [{result.wall_time_s:.1f} s: "
        f"reference {result.timing.get('reference', math.nan):.1f} s, user "
        f"{result.timing.get('user', math.nan):.1f} s]"
    ]
    grid = result.grid_power
    if math.isfinite(grid.get("min_shift", math.nan)):
        lines.append(
            f"power: a common shift of every point's tail mean by +{100 * grid['min_shift']:.1f}% "
            f"is detected with {100 * POWER:.0f}% probability (a {100 * TARGET_SHIFT:.0f}% shift "
            f"needs {grid['repetitions_needed']} repetitions)"
        )
    finite = [p for p in result.power if math.isfinite(p.min_shift)]
    if finite:
        worst = max(finite, key=lambda p: p.min_shift)
        median = float(np.median([p.min_shift for p in finite]))
        lines.append(
            f"power at one point alone: +{100 * median:.0f}% (median over points; largest "
            f"+{100 * worst.min_shift:.0f}% at [{worst.label}], where a "
            f"{100 * TARGET_SHIFT:.0f}% shift needs {worst.repetitions_needed} repetitions)"
        )
    for c in result.comparisons:
        if c.differs:
            effect = (
                f"user/reference geometric mean {c.ratio:.3g} [{c.ratio_low:.3g}, "
                f"{c.ratio_high:.3g}], spread ratio {c.sd_ratio:.3g}"
                if math.isfinite(c.ratio_low)
                else f"user/reference geometric mean {c.ratio:.3g}, {c.detail}"
                if math.isfinite(c.ratio)
                else c.detail
            )
            where = f" (round {c.rounds})" if c.rounds else ""
            lines.append(
                f"  DIFFERS [{c.label}] {c.statistic}{where}: {effect}, p_holm={c.p_adjusted:.2g}"
            )
    smallest = min(
        (c for c in result.comparisons if math.isfinite(c.p_value)),
        key=lambda c: c.p_value,
        default=None,
    )
    if smallest is not None:
        lines.append(
            f"smallest p-value: {smallest.p_value:.3g} (Holm {smallest.p_adjusted:.3g}) at "
            f"[{smallest.label}] {smallest.statistic}"
        )
    k = len(result.differing)
    lines.append(
        "CONFORMING" if result.conforms else f"NOT CONFORMING ({k} of {n} statistics differ)"
    )
    return lines
