"""HTML building blocks: escaping, tables, badges and the per-bound / environment sections."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

import pandas as pd

from reports.store import CaseResults
from reports.summary import OUTSIDE, fmt

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1400px;
color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:.15em .6em;border-radius:4px;color:#fff;font-weight:bold}
.PASS{background:#2e7d32}.FAIL{background:#c62828}.NO-VERDICTS{background:#ef6c00}
.st-pass{background:#e8f5e9;color:#1b5e20}.st-fail{background:#ffebee;color:#b71c1c;font-weight:bold}
.st-outside-hypotheses{background:#eeeeee;color:#555}.st-inconclusive{background:#fff3e0;color:#e65100}
.st-calibration{background:#e3f2fd;color:#0d47a1}
tr.row-fail td{background:#fff5f5}
figure{margin:1.2em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:13px;color:#555;max-width:1000px}
.skip{color:#777;font-style:italic}
.warn{background:#fff3e0;border-left:4px solid #ef6c00;padding:.5em 1em}
.scroll{max-height:640px;overflow:auto;border:1px solid #eee}
table.verdicts{width:100%} table.verdicts td.ci{white-space:normal;min-width:6em}
td.detail{min-width:12em;white-space:normal;overflow-wrap:break-word}
td.detail summary{cursor:pointer} td.detail details[open] summary{color:#777}
code{background:#f5f5f5;padding:0 3px}
"""


def esc(value: Any) -> str:
    """Escaped text of any value."""
    return escape(str(value), quote=True)


def badge(outcome: str) -> str:
    """A coloured PASS / FAIL badge."""
    return f'<span class="badge {outcome.replace(" ", "-")}">{esc(outcome)}</span>'


#: verdict details longer than this are folded: the summary shows their start
DETAIL_SHOWN = 90


def detail_cell(text: str) -> str:
    """A table cell with a verdict's full detail, wrapped; a long one in ``<details>``."""
    if len(text) <= DETAIL_SHOWN:
        return f'<td class="detail">{esc(text)}</td>'
    head = text[:DETAIL_SHOWN].rsplit(" ", 1)[0]
    return f'<td class="detail"><details><summary>{esc(head)} …</summary>{esc(text)}</details></td>'


def status_cell(status: str) -> str:
    """A table cell coloured by verdict."""
    return f'<td class="st-{esc(status)}">{esc(status)}</td>'


def table(header: Sequence[str], rows: Iterable[Sequence[str]], raw: bool = False) -> str:
    """A table; cells are escaped unless ``raw`` (then each cell is already a ``<td>``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(row) if raw else "".join(f"<td>{esc(c)}</td>" for c in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def key_value_table(items: Mapping[str, Any]) -> str:
    """A two-column table of a mapping (nested values as compact JSON)."""
    return table(("key", "value"), ((k, _compact(v)) for k, v in items.items()))


def bound_section(case: CaseResults, bound: str) -> str:
    """Provenance, calibrated constants and outside-hypotheses points of one bound."""
    prov = case.meta.get("provenance", {}).get(bound, {})
    parts = [f'<h4 id="{esc(case.name)}-{esc(bound)}">Bound <code>{esc(bound)}</code></h4>']
    parts.append(
        table(
            ("field", "value"),
            [
                ("id", prov.get("id", bound)),
                ("source", prov.get("source", "—")),
                ("tightness", prov.get("tightness", "—")),
            ],
        )
    )
    trends = prov.get("trends") or []
    if trends:
        parts.append("<p>Trends claimed:</p><ul>")
        parts += [f"<li>{esc(t)}</li>" for t in trends]
        parts.append("</ul>")
    if prov.get("doc"):
        parts.append(
            f"<details><summary>statement</summary><pre>{esc(prov['doc'])}</pre></details>"
        )
    req = prov.get("requirements_example") or {}
    if req:
        parts.append("<details><summary>hypotheses at an example point</summary>")
        parts.append(key_value_table(req) + "</details>")
    parts.append(calibration_table(case.meta.get("calibration", {}).get(bound, {})))
    parts.append(outside_table(case.verdicts[case.verdicts["bound"] == bound]))
    return "\n".join(parts)


def calibration_table(calib: Mapping[str, Any]) -> str:
    """Calibrated constants and exponents per predicted quantity."""
    if not calib:
        return "<p>No constants were calibrated for this bound (fully specified prediction).</p>"
    rows = []
    for quantity, fit in calib.items():
        if not isinstance(fit, Mapping) or "error" in fit:
            err = fit.get("error") if isinstance(fit, Mapping) else fit
            rows.append((quantity, f"calibration failed: {err}", "", "", "", "", ""))
            continue
        exps = fit.get("exponents") or {}
        rows.append(
            (
                quantity,
                fmt(fit.get("constant"), 5),
                ", ".join(f"{k}={fmt(v, 4)}" for k, v in exps.items()) or "—",
                ", ".join(fit.get("calibrated_exponents") or []) or "—",
                fmt(fit.get("log_residual_sd"), 3),
                fmt(fit.get("calibration_points")),
                fmt(fit.get("dof")),
            )
        )
    header = (
        "quantity",
        "constant",
        "exponents",
        "calibrated exponents",
        "log residual sd",
        "calibration points",
        "dof",
    )
    return "<p>Calibrated constants:</p>" + table(header, rows)


def outside_table(rows: pd.DataFrame) -> str:
    """Grid points outside the theorem's hypotheses, with the violated hypotheses."""
    out = rows[rows["status"] == OUTSIDE]
    if out.empty:
        return "<p>Every grid point satisfies the theorem's hypotheses.</p>"
    grouped: dict[tuple[str, str], list[str]] = {}
    for _, r in out.iterrows():
        grouped.setdefault((r["label"] or r["point_key"], r["detail"]), []).append(r["check"])
    body = [
        (label, ", ".join(sorted(set(checks))), detail or "—")
        for (label, detail), checks in grouped.items()
    ]
    return (
        f"<p>{len(grouped)} grid point(s) outside the hypotheses (reported, not counted):</p>"
        + table(("point", "checks", "violated hypotheses"), body)
    )


def environment_section(case: CaseResults) -> str:
    """Package versions, commit, date, machine, seed entropy, wall time and data parameters."""
    meta = case.meta
    env = dict(meta.get("environment") or {})
    env["wall_time_s"] = fmt(meta.get("wall_time_s"), 4)
    for key in ("trainer", "repetitions", "false_alarm", "path"):
        if key in meta:
            env[key] = meta[key]
    parts = ["<h3>Environment</h3>", key_value_table(env)]
    parts.append(_point_versions(case))
    if meta.get("data_params"):
        parts.append("<p>Data parameters:</p>" + key_value_table(meta["data_params"]))
    if meta.get("grid"):
        parts.append("<p>Grid:</p>" + key_value_table(meta["grid"]))
    return "\n".join(parts)


def _point_versions(case: CaseResults) -> str:
    cols = [
        c for c in ("code_version", "git_commit", "python", "numpy", "platform") if c in case.points
    ]
    mixed = {c: sorted(case.points[c].dropna().astype(str).unique()) for c in cols}
    mixed = {c: v for c, v in mixed.items() if len(v) > 1}
    if not mixed:
        return ""
    items = "".join(f"<li>{esc(c)}: {esc(', '.join(v))}</li>" for c, v in mixed.items())
    return f'<div class="warn">Stored points come from several environments:<ul>{items}</ul></div>'


def _compact(value: Any) -> str:
    if isinstance(value, float):
        return fmt(value, 6)
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)
