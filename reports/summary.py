"""Verdict bookkeeping shared by every format: counts, overall status, number formatting."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from reports.params import short_label
from reports.store import CaseResults

PASS, FAIL, OUTSIDE, INCONCLUSIVE = "pass", "fail", "outside-hypotheses", "inconclusive"
CALIBRATION = "calibration"
STATUS_ORDER = (PASS, FAIL, OUTSIDE, INCONCLUSIVE)


def counted(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Rows that count towards the outcome: everything but calibration rows."""
    return verdicts[verdicts["role"] != CALIBRATION]


def failures(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Counted rows whose status is ``fail``."""
    rows = counted(verdicts)
    return rows[rows["status"] == FAIL]


def status_counts(verdicts: pd.DataFrame) -> dict[str, int]:
    """Counts per status of counted rows (every status present), plus calibration rows."""
    counts = Counter(counted(verdicts)["status"])
    out = {s: int(counts.pop(s, 0)) for s in STATUS_ORDER}
    out.update({s: int(n) for s, n in sorted(counts.items())})
    out[CALIBRATION] = int((verdicts["role"] == CALIBRATION).sum())
    return out


def case_outcome(case: CaseResults) -> str:
    """``FAIL`` if a counted row fails, ``NO VERDICTS`` if nothing was evaluated, else ``PASS``."""
    if len(failures(case.verdicts)):
        return "FAIL"
    if case.verdicts.empty:
        return "NO VERDICTS"
    return "PASS"


def overall_outcome(cases: Sequence[CaseResults]) -> str:
    """``FAIL`` if any case fails; ``PASS`` if at least one case has verdicts and none fails."""
    outcomes = [case_outcome(c) for c in cases]
    if "FAIL" in outcomes:
        return "FAIL"
    if "PASS" in outcomes:
        return "PASS"
    return "NO VERDICTS"


def total_counts(cases: Iterable[CaseResults]) -> dict[str, int]:
    """Status counts summed over cases."""
    total: Counter[str] = Counter()
    for c in cases:
        total.update(status_counts(c.verdicts))
    return {s: total.get(s, 0) for s in (*STATUS_ORDER, CALIBRATION)} | dict(total)


def bound_ids(case: CaseResults) -> list[str]:
    """Bounds of a case: those declared in case.json, then any other found in the verdicts."""
    declared = [str(b) for b in case.meta.get("bounds", [])]
    extra = sorted(set(case.verdicts["bound"]) - set(declared))
    return declared + extra


def varying_grid_params(case: CaseResults) -> list[str]:
    """Grid parameters that vary over the case (from the point files, else from case.json)."""
    if case.varying_params:
        return case.varying_params
    grid = case.meta.get("grid") or {}
    return [k for k, v in grid.items() if isinstance(v, list) and len(v) > 1]


def point_label(case: CaseResults, row: Any) -> str:
    """Short label of a verdict row: only the grid parameters that vary (full label if none)."""
    params = row["params"] if isinstance(row["params"], dict) else {}
    keys = [k for k in varying_grid_params(case) if k in params]
    if not keys:
        return str(row["label"] or row["point_key"])
    return short_label(params, keys)


def fmt(x: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; NaN / missing as an em dash."""
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "—"
    return f"{v:.{digits}g}"


def fmt_ci(low: Any, high: Any) -> str:
    """A confidence interval ``[low, high]``, empty if both ends are missing."""
    if _nan(low) and _nan(high):
        return ""
    return f"[{fmt(low, 3)}, {fmt(high, 3)}]"


def observed_with_ci(row: Any) -> str:
    """``observed [ci_low, ci_high]`` of a verdict row."""
    ci = fmt_ci(row["ci_low"], row["ci_high"])
    return f"{fmt(row['observed'])} {ci}".strip()


def shown_role(row: Any) -> str:
    """The verdict as shown: calibration rows are labelled as such, not by their status."""
    return CALIBRATION if row["role"] == CALIBRATION else str(row["status"])


def sorted_verdicts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Verdicts in display order: case, bound, check, then as stored."""
    order = verdicts.assign(_i=range(len(verdicts)))
    return order.sort_values(["case", "bound", "check", "_i"], kind="stable").drop(columns="_i")


def _nan(x: Any) -> bool:
    try:
        return math.isnan(float(x))
    except (TypeError, ValueError):
        return x is None
