"""Vacuity map of a case's exact bounds (from ``case.json``): where they say something."""

from __future__ import annotations

import math
from typing import Any

from reports.store import CaseResults
from reports.summary import fmt

#: (column of the vacuity map, heading)
COLUMNS = (
    ("bound_floor_over_L0", "B / L0"),
    ("observed_floor_over_bound", "floor obs / B"),
    ("observed_over_exact_decay", "decay obs / exact"),
    ("width_ratio", "m / width req."),
    ("step_ratio", "eta / step req."),
    ("kernel_event_ratio", "kernel event / (lambda0/2)"),
    ("movement_ratio", "movement / R"),
)


def vacuity_summary(case: CaseResults) -> list[dict[str, Any]]:
    """Per bound: points, vacuous points, and the range of every ratio of the map."""
    rows = case.meta.get("vacuity") or []
    out = []
    for bound in sorted({r["bound"] for r in rows}):
        mine = [r for r in rows if r["bound"] == bound]
        entry: dict[str, Any] = {
            "bound": bound,
            "points": len(mine),
            "vacuous": sum(bool(r.get("vacuous")) for r in mine),
            "outside": sum(bool(r.get("outside")) for r in mine),
        }
        for key, _ in COLUMNS:
            values = [
                r[key] for r in mine if isinstance(r.get(key), float) and math.isfinite(r[key])
            ]
            entry[key] = (min(values), max(values)) if values else None
        out.append(entry)
    return out


def vacuity_lines(case: CaseResults) -> list[str]:
    """A Markdown table: one row per exact bound, ratio ranges ``min–max``."""
    summary = vacuity_summary(case)
    if not summary:
        return []
    head = ["bound", "points", "vacuous", "outside", *(h for _, h in COLUMNS)]
    lines = ["", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for e in summary:
        cells = [f"`{e['bound']}`", str(e["points"]), str(e["vacuous"]), str(e["outside"])]
        cells += [_range(e[key]) for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Vacuous: the bound's error term is at least the initial loss (its pass says nothing). "
        "Requirement ratios use constant 1 (up to the paper's unspecified constant)."
    )
    return lines


def _range(span: tuple[float, float] | None) -> str:
    if span is None:
        return "—"
    low, high = span
    return fmt(low, 3) if low == high else f"{fmt(low, 3)}–{fmt(high, 3)}"


def vacuity_html(case: CaseResults) -> str:
    """The same table in HTML ('' when the case has no exact bound)."""
    from html import escape

    summary = vacuity_summary(case)
    if not summary:
        return ""
    head = ["bound", "points", "vacuous", "outside", *(h for _, h in COLUMNS)]
    rows = [
        "<tr>"
        + "".join(
            f"<td>{escape(str(c))}</td>"
            for c in [e["bound"], e["points"], e["vacuous"], e["outside"]]
            + [_range(e[key]) for key, _ in COLUMNS]
        )
        + "</tr>"
        for e in summary
    ]
    return (
        "<h3>Vacuity map of the exact bounds</h3><table><tr>"
        + "".join(f"<th>{escape(h)}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table><p>Vacuous: the error term is at least the initial loss, so a pass says "
        "nothing. Requirement ratios with constant 1 (up to the paper's unspecified constant); "
        "per-point values in case.json (<code>vacuity</code>).</p>"
    )
