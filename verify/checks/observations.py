"""Statistics observed on stored loss curves: floor, linear-phase decay, envelope decay.

Per grid point, from all repetitions:

* **floor**: the tail mean of the loss; batch means of the last ``tail`` rounds of every
  repetition are the (nearly independent) samples of a t interval (batch-means method).
* **rate**: the per-round log-decay ``delta = -log rho`` of the linear phase, fitted per
  repetition as the slope of ``log(L_k - B)`` against ``k`` over the rounds until the excess
  loss ``L_k - B`` first falls to ``fit_fraction`` of its initial value (``B``: the floor
  estimate).  The window is a fixed fraction of the decay, so in the linearised regime
  the statistic is proportional to the effective step and comparable across the grid.
* **envelope rate**: the largest decay whose envelope ``rho^k L0 + B`` covers the descent.

Every observation is cached on the point under its settings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..schema import Spec, positive_float, positive_int
from .stats import NAN_ESTIMATE, Estimate, batch_means, one_sided_p, t_estimate
from .verdict import PointData

#: observation settings every convergence check kind accepts (validated strictly)
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
