"""Shared plotting helpers: figure blocks, PNG encoding, colours (labels: reports.params)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

from matplotlib.figure import Figure

from reports.params import order_params, short_label, sort_values, symbol, value_key

__all__ = [
    "DPI",
    "STATUS_COLOURS",
    "FigureBlock",
    "encode",
    "new_figure",
    "order_params",
    "short_label",
    "sort_values",
    "symbol",
    "value_key",
]

DPI = 100
STATUS_COLOURS = {
    "pass": "#2e7d32",
    "fail": "#c62828",
    "outside-hypotheses": "#757575",
    "inconclusive": "#ef6c00",
    "calibration": "#1565c0",
}


@dataclass
class FigureBlock:
    """One figure of the report, or the sentence explaining why it was skipped."""

    title: str
    caption: str
    png_base64: str | None = None

    @property
    def skipped(self) -> bool:
        return self.png_base64 is None


def new_figure(width: float, height: float) -> Figure:
    """A pyplot-free figure (Agg canvas), so rendering has no global state."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def encode(fig: Figure) -> str:
    """The figure as a base64 PNG string."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return base64.b64encode(buf.getvalue()).decode("ascii")
