"""Figures of the HTML report (matplotlib, Agg canvas, embedded as base64 PNG)."""

from __future__ import annotations

from reports.figures.claims import bound_figures, scaling_figures
from reports.figures.common import FigureBlock
from reports.figures.curves import loss_curve_figures
from reports.figures.floor import floor_figures
from reports.figures.rate import rate_scatter
from reports.figures.slack import slack_heatmaps
from reports.figures.vacuity import vacuity_heatmaps
from reports.store import CaseResults
from reports.summary import bound_ids

__all__ = ["FigureBlock", "case_figures"]


def case_figures(case: CaseResults) -> list[FigureBlock]:
    """Every figure of one case, in report order; skipped figures carry their reason."""
    kinds = set(case.verdicts["kind"]) if not case.verdicts.empty else set()
    blocks = list(loss_curve_figures(case))
    bounds = [b for b in bound_ids(case) if (case.verdicts["bound"] == b).any()]
    if "floor" in kinds:
        for bound in bounds:
            blocks += floor_figures(case, bound)
    for bound in bounds:
        blocks += slack_heatmaps(case, bound)
    if "rate" in kinds:
        blocks += rate_scatter(case)
    blocks += vacuity_heatmaps(case)
    blocks += bound_figures(case)
    blocks += scaling_figures(case)
    return blocks
