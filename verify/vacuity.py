"""Vacuity map: where a bound with explicit constants says something, and how tight it is.

Per grid point and bound that defines ``vacuity(params)`` (the exact statements of
:mod:`bounds.liao2022`): the explicit error term over the initial loss (``>= 1``: vacuous), the
observed floor over the error term, the observed decay over the exact decay, and the ratios
of the point to the printed width and step requirements (constant 1, "up to the paper's
unspecified constant") and to the measured proof events.  Also the shape diagnostic "which
terms of B1 match": per term, a one-constant fit of the observed floors to that term alone,
with its log-residual standard deviation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

import bounds

from .checks.observations import observe_decay, observe_floor
from .checks.verdict import PointData

#: columns of the vacuity table in display order (others follow)
MAIN_COLUMNS = (
    "bound",
    "label",
    "bound_floor_over_L0",
    "observed_floor_over_bound",
    "observed_over_exact_decay",
    "width_ratio",
    "step_ratio",
    "kernel_event_ratio",
    "movement_ratio",
    "vacuous",
    "outside",
)


def vacuity_rows(
    bound_ids: Iterable[str],
    points: list[PointData],
    observe_cfg: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """One row per (bound with a ``vacuity`` method, point in its scope)."""
    rows = []
    for bound_id, bound, pt, params in _scoped(bound_ids, points, lambda pt: pt.params):
        row: dict[str, Any] = {"bound": bound_id, "point_key": pt.key, "label": pt.label}
        row |= bound.vacuity(params)
        if not row.keys() - {"bound", "point_key", "label"}:
            continue
        curves = pt.curves[observe_cfg["floor"]["curve"]]
        initial = float(np.mean(curves[:, 0]))
        floor = observe_floor(pt, observe_cfg["floor"]).value
        decay = observe_decay(pt, observe_cfg["rate"]).value
        row["L0_observed"] = initial
        row["observed_floor"] = floor
        row["observed_decay"] = decay
        if "bound_floor" in row:
            row["bound_floor_over_L0"] = row["bound_floor"] / initial
            row["observed_floor_over_bound"] = _ratio(floor, row["bound_floor"])
            row["vacuous"] = bool(row["bound_floor"] >= initial)
        row["observed_over_exact_decay"] = _ratio(decay, row.get("exact_decay", math.nan))
        row["outside"] = "; ".join(bound.preconditions(pt.params))
        rows.append(row)
    return rows


def _scoped(bound_ids: Iterable[str], points: list, params_of) -> Iterable[tuple]:
    """``(bound id, bound, point, params)`` for the bounds with a vacuity table and the points
    in their scope; ``params_of(point)`` gives the parameters the bound reads."""
    for bound_id in bound_ids:
        bound = bounds.get(bound_id)
        if getattr(bound, "vacuity", None) is None:
            continue
        applies = getattr(bound, "applies", lambda _: True)
        for pt in points:
            params = params_of(pt)
            if applies(params):
                yield bound_id, bound, pt, params


def term_fits(rows: list[dict[str, Any]], prefix: str = "B1_") -> dict[str, dict[str, float]]:
    """Which terms of the error bound describe the observed floors (shape diagnostic).

    For each term ``t_j`` (columns starting with ``prefix``): the one-constant fit ``log floor =
    c + log t_j`` over the points where both are positive and finite; its constant ``exp(c)``
    and log-residual s.d. (small: the floor follows that term up to a constant).
    """
    out: dict[str, dict[str, float]] = {}
    terms = sorted({k for r in rows for k in r if k.startswith(prefix)})
    for term in terms:
        pairs = [
            (r["observed_floor"], r[term])
            for r in rows
            if np.isfinite(r.get("observed_floor", math.nan))
            and r["observed_floor"] > 0
            and r.get(term, 0) > 0
        ]
        if len(pairs) < 3:
            continue
        resid = np.log([f for f, _ in pairs]) - np.log([t for _, t in pairs])
        out[term.removeprefix(prefix)] = {
            "constant": float(np.exp(resid.mean())),
            "log_residual_sd": float(resid.std(ddof=1)),
            "points": len(pairs),
        }
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan


# --------------------------------------------------------------------------- region table
def parse_axes(items: list[str]) -> dict[str, list[Any]]:
    """``KEY=V1,V2,...`` grid axes (numbers where they parse, strings otherwise)."""
    from .schema import CaseError

    axes: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise CaseError(f"--grid: {item!r}: expected KEY=V1,V2,...")
        axes[key] = [_number(v) for v in values.split(",")]
    return axes


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def region_rows(case, bound_ids: Iterable[str], axes: Mapping[str, list[Any]]) -> list[dict]:
    """The exact bounds over the case's grid (``axes`` replace or add grid axes), no training.

    Per point: the error term over the *expected* initial loss, the exact per-round decay,
    the rounds the envelope needs to come within a factor 2 of its floor (``ln(L0 / B) /
    decay``, when ``B < L0``) and the cost of those rounds in neuron-steps (``rounds * p *
    tau * keep * m``) and in FLOPs (``4 n d`` per neuron-step).
    """
    from dataclasses import replace

    from .grid import datasets, expand
    from .schema import CaseError

    specs = {k: spec for section in case.trainer.schema.values() for k, spec in section.items()}
    for key, values in axes.items():
        if key not in case.trainer.grid_keys:
            raise CaseError(f"--grid: {key!r} is not a grid parameter of {case.trainer.name}")
        axes = {**axes, key: [specs[key].validate(f"--grid {key}", v) for v in values]}
    case = replace(case, grid={**case.grid, **axes}, points=[] if axes else case.points)
    points = expand(case)
    data = datasets(case, points)
    rows = []
    for bound_id, bound, pt, params in _scoped(
        bound_ids, points, lambda pt: {**data[pt.key][2], **pt.params}
    ):
        row = {"bound": bound_id, **{k: pt.params[k] for k in case.grid}} | bound.vacuity(params)
        if "bound_floor" not in row:
            continue
        initial = bounds.liao2022.expected_initial_loss(params)
        ratio = row["bound_floor"] / initial
        decay = row["exact_decay"]
        rounds = math.log(initial / row["bound_floor"]) / decay if 0 < ratio < 1 else math.inf
        if row["bound_floor"] == 0:
            rounds = math.log(2.0) / decay  # no floor: the rounds to halve the loss
        keep = 1.0 / params["p"] if params.get("scheme") == "partition" else params["xi"]
        steps = rounds * params["p"] * params["tau"] * keep * params["m"]
        row |= {
            "expected_L0": initial,
            "bound_over_L0": ratio,
            "non_vacuous": ratio < 1,
            "rounds_needed": rounds,
            "neuron_steps": steps,
            "flops": 4.0 * params["n"] * params["d"] * steps,
        }
        rows.append(row)
    return sorted(rows, key=lambda r: r["bound_over_L0"])
