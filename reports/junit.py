"""JUnit XML: one test suite per (case, bound), one test case per counted verdict row."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

import pandas as pd

from reports.store import FLOAT_COLUMNS, CaseResults
from reports.summary import FAIL, INCONCLUSIVE, OUTSIDE, bound_ids, counted, fmt, fmt_ci


def junit_xml(cases: Sequence[CaseResults]) -> str:
    """The JUnit XML document for all cases (calibration rows are not test cases)."""
    root = ET.Element("testsuites", name="maskverify")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for case in cases:
        rows = counted(case.verdicts)
        for bound in bound_ids(case):
            suite = _suite(case, bound, rows[rows["bound"] == bound])
            root.append(suite)
            for key in totals:
                totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("errors", "0")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _suite(case: CaseResults, bound: str, rows: pd.DataFrame) -> ET.Element:
    suite = ET.Element("testsuite", name=f"{case.name}.{bound}")
    failures = skipped = 0
    for _, row in rows.iterrows():
        tc = ET.SubElement(
            suite,
            "testcase",
            classname=f"{case.name}.{bound}.{row['check']}",
            name=str(row["label"] or row["point_key"]),
        )
        status = row["status"]
        if status == FAIL:
            failures += 1
            failure = ET.SubElement(
                tc, "failure", message=failure_message(row), type="BoundViolated"
            )
            failure.text = _evidence(row)
        elif status == OUTSIDE:
            skipped += 1
            ET.SubElement(tc, "skipped", message=f"outside hypotheses: {row['detail']}".strip())
        elif status == INCONCLUSIVE:
            skipped += 1
            ET.SubElement(tc, "skipped", message=f"inconclusive: {row['detail']}".strip())
        elif status != "pass":
            skipped += 1
            ET.SubElement(tc, "skipped", message=f"{status}: {row['detail']}".strip())
        if status != FAIL and row["detail"]:
            ET.SubElement(tc, "system-out").text = _evidence(row)
    suite.set("tests", str(len(rows)))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    env = case.meta.get("environment", {})
    if env.get("date"):
        suite.set("timestamp", str(env["date"]))
    return suite


def failure_message(row: pd.Series) -> str:
    """One line with the evidence of a failed check."""
    ci = fmt_ci(row["ci_low"], row["ci_high"]) or "—"
    msg = (
        f"{row['check']} ({row['quantity'] or row['kind']}): observed={fmt(row['observed'])} "
        f"CI={ci} predicted={fmt(row['predicted'])} allowed={fmt(row['allowed'])} "
        f"p_adjusted={fmt(row['p_adjusted'], 3)}"
    )
    return f"{msg}; {row['detail']}" if row["detail"] else msg


def _evidence(row: pd.Series) -> str:
    fields = (
        ("kind", "quantity", "role", "status")
        + FLOAT_COLUMNS
        + ("detail", "params_json", "point_key")
    )
    return "\n".join(f"{f}: {fmt(row[f], 6)}" for f in fields)
