"""Reports rendered from a stored results directory: HTML (with figures), Markdown, JUnit XML.

Rendering only: this package reads ``results/<case>/`` (``case.json``, point parquet files,
``verdicts.parquet``) and never trains or evaluates.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from reports.html import html_report
from reports.junit import junit_xml
from reports.markdown import markdown_summary
from reports.store import CaseResults, load_results

__all__ = ["FILE_NAMES", "render"]

#: Output file per format.
FILE_NAMES = {"html": "report.html", "md": "report.md", "junit": "junit.xml"}
_ALIASES = {"markdown": "md", "xml": "junit", "htm": "html"}


def render(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    formats: Sequence[str] = ("html", "md", "junit"),
) -> dict[str, Path]:
    """Render every case found under results_dir; returns {format: written path}.

    ``out_dir`` defaults to ``results_dir``. Formats are ``html``, ``md`` and ``junit``; an
    unknown format raises :class:`ValueError` before anything is read or written.
    """
    wanted = _formats(formats)
    cases = load_results(results_dir)
    out = Path(out_dir) if out_dir is not None else Path(results_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for fmt in wanted:
        path = out / FILE_NAMES[fmt]
        _write(path, _render_one(fmt, cases, str(results_dir)))
        written[fmt] = path
    return written


def _render_one(fmt: str, cases: list[CaseResults], source: str) -> str:
    if fmt == "html":
        return html_report(cases, source)
    if fmt == "md":
        return markdown_summary(cases)
    return junit_xml(cases)


def _formats(formats: Sequence[str] | str) -> list[str]:
    if isinstance(formats, str):
        formats = formats.split(",")
    out = []
    for f in formats:
        name = _ALIASES.get(f.strip().lower(), f.strip().lower())
        if not name:
            continue
        if name not in FILE_NAMES:
            raise ValueError(f"unknown report format {f!r}; choose from {', '.join(FILE_NAMES)}")
        if name not in out:
            out.append(name)
    return out


def _write(path: Path, text: str) -> None:
    """Write atomically: a reader never sees a half-written report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
