"""Grid-level evaluation: hypotheses, calibration, checks and Holm's correction.

For each bound of a case:
1. points outside the bound's scope are skipped; the others get the bound's violated
   hypotheses (outside-hypotheses points are reported, never counted);
2. points inside the hypotheses are split into calibration and held-out points; every
   unknown constant of the bound is calibrated on the calibration points;
3. every check of the case runs; calibration rows are reported but not counted.
Finally all counted p-values of the case are adjusted together with Holm's method and
a verdict fails when its adjusted p-value is at most the case's ``false_alarm``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import bounds
from bounds.core import CalibratedForm, CalibrationError

from .case import Case
from .checks import CHECKS
from .checks.framework import Context
from .checks.observations import OBSERVE
from .checks.quantities import QUANTITIES
from .checks.stats import holm
from .checks.verdict import FAIL, INCONCLUSIVE, PASS, PointData, Verdict
from .grid import DATA_AXIS, GridPoint, calibration_mask
from .result_schema import declared_outputs
from .vacuity import vacuity_rows


@dataclass
class Evaluation:
    verdicts: list[Verdict]
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per point and exact bound: bound / initial loss, observed / bound, requirement ratios
    vacuity: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(v.status == FAIL and v.role != "calibration" for v in self.verdicts)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([v.row() for v in self.verdicts])


def point_data(
    case: Case,
    points: list[GridPoint],
    results: pd.DataFrame,
    data_params: Mapping[str, Any],
    per_point: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[PointData]:
    """Assemble per-point arrays from the tidy result table (one row per repetition), the
    outputs as the table declares them (:func:`verify.result_schema.declared_outputs`)."""
    out = []
    declared = declared_outputs(results)
    grid_keys = set(case.trainer.grid_keys) | {DATA_AXIS}
    by_key = {k: g.sort_values("rep") for k, g in results.groupby("point_key")}
    for pt in points:
        rows = by_key[pt.key]
        present = [c for c in declared.curves if c in rows and rows[c].notna().all()]
        curves = {c: np.vstack(rows[c].to_numpy()).astype(float) for c in present}
        scalars = {s: rows[s].to_numpy(dtype=float) for s in declared.scalars if s in rows}
        params = {**(per_point or {}).get(pt.key, data_params), **pt.params}
        measured = (
            (case.trainer.measured_params, np.nanmin),
            (case.trainer.measured_max, np.nanmax),
        )
        for names, reduce in measured:
            for name in names:
                if name in scalars and np.isfinite(scalars[name]).any():
                    params[name] = float(reduce(scalars[name]))
        # repetition r of points with equal init parameters shares its initial network
        init_group = json.dumps([pt.params.get(k) for k in case.trainer.init_keys], default=str)
        cache = {
            "grid_keys": grid_keys,
            "init_group": init_group if case.trainer.init_keys else None,
        }
        out.append(PointData(pt.key, pt.label, params, curves, scalars, cache=cache))
    return out


def evaluate(
    case: Case,
    points: list[GridPoint],
    results: pd.DataFrame,
    data_params: Mapping[str, Any],
    perturb: Mapping[str, float] | None = None,
    per_point: Mapping[str, Mapping[str, Any]] | None = None,
) -> Evaluation:
    """``per_point``: each point's data parameters when the data set is a grid axis."""
    perturb = dict(perturb or {})
    pdata = point_data(case, points, results, data_params, per_point)
    cal_flags = dict(zip([p.key for p in points], calibration_mask(case, points), strict=True))
    observe_cfg = _observation_config(case)
    verdicts: list[Verdict] = []
    calibration_report: dict[str, dict[str, Any]] = {}
    for bound_id in case.bounds:
        bound = bounds.get(bound_id)
        scoped = [pt for pt in pdata if _in_scope(bound, pt.params)]
        violations = {pt.key: bound.preconditions(pt.params) for pt in pdata}
        needs_cal = bool(bound.forms)
        roles = {
            pt.key: (
                "calibration"
                if cal_flags[pt.key] and not violations[pt.key] and not pt.divergence()
                else "held-out"
            )
            if needs_cal
            else "test"
            for pt in scoped
        }
        calibration, errors = _calibrate(
            bound,
            [pt for pt in scoped if roles[pt.key] == "calibration"],
            observe_cfg,
            case.trainer.init_keys,
        )
        sources = observation_sources(case)
        calibration_report[bound_id] = {
            q: c.describe() | {"observed_with_settings_of": sources.get(q, "defaults")}
            for q, c in calibration.items()
        } | {q: {"error": e} for q, e in errors.items()}
        ctx = Context(
            case.name,
            bound,
            scoped,
            roles,
            violations,
            calibration,
            errors,
            perturb,
            case.false_alarm,
            observe_cfg,
            all_points=pdata,
        )
        for name, cfg in case.checks.items():
            if cfg["bound"] in ("", bound_id):  # a check may be restricted to one bound
                verdicts += CHECKS[cfg["kind"]].run(ctx, name, cfg)
    _finalise(verdicts, case.false_alarm)
    return Evaluation(verdicts, calibration_report, vacuity_rows(case.bounds, pdata, observe_cfg))


def _in_scope(bound: bounds.Bound, params: Mapping[str, Any]) -> bool:
    applies = getattr(bound, "applies", None)
    return applies(params) if applies else True


def observation_sources(case: Case) -> dict[str, str]:
    """Which of the case's checks sets the observation settings of each quantity (written
    with the calibration): the first check of the quantity's settings kind
    (:attr:`Quantity.settings`), else the first floor check, else the defaults; the floor
    estimate inside every observation uses the floor check's tail settings."""
    out = {}
    for quantity, q in QUANTITIES.items():
        out[quantity] = next(
            (n for n, c in case.checks.items() if c["kind"] == q.settings),
            next((n for n, c in case.checks.items() if c["kind"] == "floor"), "defaults"),
        )
    return out


def _observation_config(case: Case) -> dict[str, dict[str, Any]]:
    """Observation settings of every quantity, from the checks :func:`observation_sources`
    names."""
    defaults = {k: s.default for k, s in OBSERVE.items()}
    cfg = {q: dict(defaults) for q in QUANTITIES}
    floor_cfg = next((c for c in case.checks.values() if c["kind"] == "floor"), None)
    for quantity, source in observation_sources(case).items():
        if source in case.checks:
            cfg[quantity] = {k: case.checks[source][k] for k in OBSERVE}
    if floor_cfg is not None:  # every quantity's floor estimate uses the floor check's tail
        for quantity in cfg:
            cfg[quantity]["tail"] = floor_cfg["tail"]
            cfg[quantity]["batches"] = floor_cfg["batches"]
            cfg[quantity]["max_drift"] = floor_cfg["max_drift"]
            cfg[quantity]["floor_atol"] = floor_cfg["floor_atol"]
    return cfg


def _calibrate(
    bound: bounds.Bound,
    cal_points: list[PointData],
    observe_cfg: Mapping[str, Mapping[str, Any]],
    init_keys: tuple[str, ...] = (),
):
    """Fit every form of the bound; under common random numbers the constant is fitted per
    initialisation group (``init_keys``), so the held-out test is paired with it."""
    calibration: dict[str, CalibratedForm] = {}
    errors: dict[str, str] = {}
    for quantity, form in bound.forms.items():
        if quantity not in QUANTITIES:
            errors[quantity] = (
                f"no observed quantity {quantity!r} to calibrate (verify.checks.quantities "
                f"knows {sorted(QUANTITIES)})"
            )
            continue
        observer = QUANTITIES[quantity].observer
        obs = np.array([observer(pt, observe_cfg[quantity]).value for pt in cal_points])
        try:
            calibration[quantity] = form.calibrate(
                [pt.params for pt in cal_points], obs, group_keys=tuple(init_keys)
            )
        except CalibrationError as exc:
            errors[quantity] = str(exc)
    return calibration, errors


def _finalise(verdicts: list[Verdict], alpha: float) -> None:
    counted = [v for v in verdicts if v.counted]
    adjusted = holm(np.array([v.p_value for v in counted]))
    for v, p in zip(counted, adjusted, strict=True):
        v.p_adjusted = float(p)
    for v in verdicts:
        if v.status != INCONCLUSIVE and v.status != FAIL:
            continue  # outside-hypotheses is final
        if v.status == FAIL and v.p_value == 0.0 and v.detail:
            continue  # divergence inside the hypotheses
        if not math.isfinite(v.p_value):
            v.status = INCONCLUSIVE
        elif v.role == "calibration":
            v.status = FAIL if v.p_value <= alpha else PASS
        else:
            v.status = FAIL if v.p_adjusted <= alpha else PASS
