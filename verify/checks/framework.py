"""What every check kind shares: the context of one (case, bound), verdict construction,
screening of points outside the hypotheses or diverged, and grouping of points by the
parameters a grid-level check holds fixed.

A check kind (one module of this package each) is a function ``run(ctx, name, cfg)`` from a
:class:`Context` to :class:`~verify.checks.verdict.Verdict` rows, registered with
:func:`verify.checks.register`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from bounds.core import Bound, CalibratedForm

from .verdict import FAIL, INCONCLUSIVE, OUTSIDE, PointData, Verdict


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


def testable(ctx: Context, pt: PointData) -> bool:
    """A point inside the hypotheses whose run did not diverge (what :func:`screened` passes)."""
    return not ctx.violations[pt.key] and not pt.divergence()


def screened(ctx: Context, v: Verdict, pt: PointData) -> bool:
    """Settle outside-hypotheses and divergence; True if the verdict is final (the point is
    not :func:`testable`)."""
    if ctx.violations[pt.key]:
        v.status, v.detail = OUTSIDE, "; ".join(ctx.violations[pt.key])
        return True
    diverged = pt.divergence()
    if diverged:
        v.status, v.detail, v.p_value = FAIL, diverged, 0.0
        return True
    return False


def point_verdicts(
    ctx: Context,
    name: str,
    kind: str,
    quantity: str,
    out: list[Verdict],
    known_counts: bool = False,
) -> Iterator[tuple[PointData, Verdict]]:
    """One verdict per point of ``ctx`` appended to ``out``; yields the points left to test
    (not outside the hypotheses, not diverged) with their verdicts.  ``known_counts``: a
    calibration point is tested too when ``quantity`` is predicted without calibration
    (:func:`count_if_known`)."""
    for pt in ctx.points:
        v = base_verdict(ctx, name, kind, pt, quantity)
        if known_counts:
            count_if_known(ctx, v, quantity)
        out.append(v)
        if not screened(ctx, v, pt):
            yield pt, v


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
    statistic: str = "",
    group: str = "",
) -> Verdict:
    """An (inconclusive until tested) verdict about a group of points varying ``parameter``
    (``group``: the other grid parameters' values, in words)."""
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
        statistic=statistic,
        parameter=parameter,
        group=group,
    )


GRID_KEYS: set[str] = set()


def grid_params(pt: PointData) -> dict[str, Any]:
    return {k: v for k, v in pt.params.items() if k in pt.cache.get("grid_keys", GRID_KEYS)}
