"""Markdown summary for a pull-request comment or a CI step summary (no links)."""

from __future__ import annotations

from collections.abc import Sequence

from reports.store import CaseResults
from reports.summary import (
    CALIBRATION,
    STATUS_ORDER,
    case_outcome,
    failures,
    fmt,
    observed_with_ci,
    overall_outcome,
    point_label,
    status_counts,
    total_counts,
)
from reports.vacuity import vacuity_lines

MAX_FAILURE_ROWS = 40
ICONS = {"PASS": "✅", "FAIL": "❌", "NO VERDICTS": "⚠️"}


def markdown_summary(cases: Sequence[CaseResults]) -> str:
    """Overall outcome, a counts table per case, and a table of failures per failing case."""
    outcome = overall_outcome(cases)
    lines = [f"## {ICONS.get(outcome, '')} maskverify: {outcome}".replace("  ", " "), ""]
    if not cases:
        return "\n".join([*lines, "No cases found in the results directory.", ""])
    columns = [*STATUS_ORDER, CALIBRATION]
    lines += [
        "| case | outcome | " + " | ".join(columns) + " |",
        "|---|---|" + "---:|" * len(columns),
    ]
    for case in cases:
        counts = status_counts(case.verdicts)
        lines.append(
            f"| {_cell(case.name)} | {case_outcome(case)} | "
            + " | ".join(str(counts.get(c, 0)) for c in columns)
            + " |"
        )
    if len(cases) > 1:
        total = total_counts(cases)
        lines.append(
            f"| **total** | **{outcome}** | "
            + " | ".join(str(total.get(c, 0)) for c in columns)
            + " |"
        )
    lines.append("")
    lines.append("Calibration rows fit the unknown constants; they are shown, never counted.")
    for case in cases:
        lines += _case_section(case)
    return "\n".join(lines).rstrip() + "\n"


def _case_section(case: CaseResults) -> list[str]:
    out = ["", f"### {_cell(case.name)}: {case_outcome(case)}", ""]
    perturb = case.meta.get("perturb") or {}
    if perturb:
        shown = ", ".join(f"{k}={v}" for k, v in perturb.items())
        out += [f"Perturbed predictions ({shown}): failures are expected here.", ""]
    wall = case.meta.get("wall_time_s")
    bounds = ", ".join(f"`{b}`" for b in case.meta.get("bounds", []))
    out.append(f"Bounds: {bounds or '—'}; wall time {fmt(wall, 3)} s.")
    out += vacuity_lines(case)
    fails = failures(case.verdicts)
    if fails.empty:
        out.append("")
        out.append("No counted check failed.")
        return out
    out += [
        "",
        "| bound | check | point | observed [CI] | predicted | allowed | p (Holm) | detail |",
        "|---|---|---|---|---:|---:|---:|---|",
    ]
    for _, row in fails.head(MAX_FAILURE_ROWS).iterrows():
        out.append(
            f"| `{row['bound']}` | {_cell(row['check'])} | {_cell(point_label(case, row))} "
            f"| {observed_with_ci(row)} | {fmt(row['predicted'])} | {fmt(row['allowed'])} "
            f"| {fmt(row['p_adjusted'], 3)} | {_cell(row['detail'])} |"
        )
    if len(fails) > MAX_FAILURE_ROWS:
        out.append("")
        out.append(f"… and {len(fails) - MAX_FAILURE_ROWS} more failures (see the HTML report).")
    return out


def _cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()
