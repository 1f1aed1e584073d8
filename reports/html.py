"""Self-contained HTML report: summary, verdict tables, embedded figures, provenance."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd

from reports.figures import FigureBlock, case_figures
from reports.htmlparts import (
    CSS,
    badge,
    bound_section,
    detail_cell,
    environment_section,
    esc,
    status_cell,
    table,
)
from reports.store import CaseResults
from reports.summary import (
    CALIBRATION,
    STATUS_ORDER,
    bound_ids,
    case_outcome,
    failures,
    fmt,
    fmt_ci,
    overall_outcome,
    point_label,
    shown_role,
    sorted_verdicts,
    status_counts,
    total_counts,
)
from reports.vacuity import vacuity_html

VERDICT_HEADER = (
    "bound",
    "check",
    "kind",
    "point",
    "role",
    "verdict",
    "observed",
    "CI",
    "predicted",
    "allowed",
    "slack",
    "p",
    "p (Holm)",
    "detail",
)


def html_report(cases: Sequence[CaseResults], source: str = "", figures: bool = True) -> str:
    """The full HTML page for all cases."""
    outcome = overall_outcome(cases)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    body = [
        f"<h1>maskverify report {badge(outcome)}</h1>",
        f"<p>Results: <code>{esc(source)}</code> · rendered {esc(stamp)} · "
        f"{len(cases)} case(s). The outcome is FAIL if any tested (non-calibration) check "
        "fails; outside-hypotheses and inconclusive rows are reported but not counted.</p>",
        _overview(cases),
    ]
    for case in cases:
        body.append(_case(case, figures))
    if not cases:
        body.append('<p class="skip">No cases found in the results directory.</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>maskverify report: {esc(outcome)}</title><style>{CSS}</style></head>\n"
        f"<body>\n{chr(10).join(body)}\n</body></html>\n"
    )


def _overview(cases: Sequence[CaseResults]) -> str:
    columns = [*STATUS_ORDER, CALIBRATION]
    rows = []
    for case in cases:
        counts = status_counts(case.verdicts)
        link = f'<td><a href="#case-{esc(case.name)}">{esc(case.name)}</a></td>'
        rows.append(
            [link, f"<td>{badge(case_outcome(case))}</td>"]
            + [f'<td class="num">{counts.get(c, 0)}</td>' for c in columns]
        )
    if len(cases) > 1:
        total = total_counts(cases)
        rows.append(
            ["<td><b>total</b></td>", f"<td>{badge(overall_outcome(cases))}</td>"]
            + [f'<td class="num">{total.get(c, 0)}</td>' for c in columns]
        )
    return table(("case", "outcome", *columns), rows, raw=True)


def _case(case: CaseResults, figures: bool) -> str:
    meta = case.meta
    parts = [
        f'<h2 id="case-{esc(case.name)}">Case {esc(case.name)} {badge(case_outcome(case))}</h2>'
    ]
    if meta.get("description"):
        parts.append(f"<p>{esc(meta['description'])}</p>")
    perturb = meta.get("perturb") or {}
    if perturb:
        shown = ", ".join(f"{k}={v}" for k, v in perturb.items())
        parts.append(
            f'<p class="warn">Predictions perturbed ({esc(shown)}): this run checks '
            "that the checks have power, so failures are expected.</p>"
        )
    counts = status_counts(case.verdicts)
    parts.append(
        "<p>"
        + " · ".join(f'<span class="st-{esc(k)}">{esc(k)}: {v}</span>' for k, v in counts.items())
        + "</p>"
    )
    parts.append(vacuity_html(case))
    fails = failures(case.verdicts)
    if len(fails):
        parts.append(f"<h3>Failures ({len(fails)})</h3>")
        parts.append(_verdict_table(case, fails))
    parts.append("<h3>Verdicts</h3>")
    if case.verdicts.empty:
        parts.append(
            '<p class="skip">No verdicts stored for this case (verdicts.parquet is '
            "missing or empty).</p>"
        )
    else:
        parts.append(f'<div class="scroll">{_verdict_table(case, case.verdicts)}</div>')
    if figures:
        parts.append("<h3>Figures</h3>")
        parts += [_figure(b) for b in case_figures(case)]
    parts.append("<h3>Bounds</h3>")
    parts += [bound_section(case, b) for b in bound_ids(case)]
    parts.append(environment_section(case))
    return f'<section class="case">{chr(10).join(parts)}</section>'


def _verdict_table(case: CaseResults, verdicts: pd.DataFrame) -> str:
    rows = []
    for _, r in sorted_verdicts(verdicts).iterrows():
        shown = shown_role(r)
        tr = [
            f"<td><code>{esc(r['bound'])}</code></td>",
            f"<td>{esc(r['check'])}</td>",
            f"<td>{esc(r['kind'])}</td>",
            f'<td title="{esc(r["label"] or r["point_key"])}">{esc(point_label(case, r))}</td>',
            f"<td>{esc(r['role'])}</td>",
            status_cell(shown),
            *(f'<td class="num">{esc(fmt(r[c]))}</td>' for c in ("observed",)),
            f'<td class="num ci">{esc(fmt_ci(r["ci_low"], r["ci_high"]))}</td>',
            *(f'<td class="num">{esc(fmt(r[c]))}</td>' for c in ("predicted", "allowed", "slack")),
            *(f'<td class="num">{esc(fmt(r[c], 3))}</td>' for c in ("p_value", "p_adjusted")),
            detail_cell(str(r["detail"])),
        ]
        cls = ' class="row-fail"' if shown == "fail" else ""
        rows.append(f"<tr{cls}>{''.join(tr)}</tr>")
    head = "".join(f"<th>{esc(h)}</th>" for h in VERDICT_HEADER)
    body = "".join(rows)
    return f'<table class="verdicts"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(block: FigureBlock) -> str:
    if block.skipped:
        return f'<p class="skip"><b>{esc(block.title)}</b>: {esc(block.caption)}</p>'
    return (
        f'<figure><img alt="{esc(block.title)}" src="data:image/png;base64,{block.png_base64}">'
        f"<figcaption><b>{esc(block.title)}.</b> {esc(block.caption)}</figcaption></figure>"
    )
