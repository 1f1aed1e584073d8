"""Shared plotting helpers: figure blocks, PNG encoding, colours (labels: reports.params)."""

from __future__ import annotations

import base64
import io
import textwrap
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.params import order_params, short_label, sort_values, symbol, value_key

__all__ = [
    "DPI",
    "STATUS_COLOURS",
    "FigureBlock",
    "encode",
    "fit_titles",
    "new_figure",
    "title_overflow",
    "order_params",
    "short_label",
    "sort_values",
    "symbol",
    "value_key",
]

DPI = 100
#: smallest font size a panel title is shrunk to before it is wrapped onto more lines
MIN_TITLE_SIZE = 6.0
#: a title may use this fraction of its panel's width (the layout still moves a little)
TITLE_FILL = 0.96
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
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # text extents need a renderer
    return fig


def title_overflow(ax: Axes) -> float:
    """How much wider than its panel the title of ``ax`` is, in pixels (<= 0: it fits).
    Measured on the figure's last layout (draw it first)."""
    renderer = ax.figure.canvas.get_renderer()
    if not ax.get_visible() or not ax.title.get_text():
        return 0.0
    return ax.title.get_window_extent(renderer).width - ax.get_window_extent(renderer).width


def fit_titles(fig: Figure) -> None:
    """Shrink every panel title wider than its panel, down to :data:`MIN_TITLE_SIZE`, then
    wrap it at spaces onto as many lines as needed."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    engine = fig.get_layout_engine()
    if engine is not None:  # the panels' final sizes (cheaper than drawing the figure)
        engine.execute(fig)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        title = ax.title
        text = title.get_text()
        if not ax.get_visible() or not text:
            continue
        room = TITLE_FILL * ax.get_window_extent(renderer).width

        def too_wide(title=title, room=room) -> bool:
            return title.get_window_extent(renderer).width > room

        while too_wide() and title.get_fontsize() > MIN_TITLE_SIZE:
            title.set_fontsize(max(MIN_TITLE_SIZE, title.get_fontsize() - 0.5))
        chars = len(text)
        while too_wide() and chars > 8:
            chars = int(chars * 0.8)
            title.set_text("\n".join(textwrap.wrap(text, chars)))


def encode(fig: Figure) -> str:
    """The figure as a base64 PNG string (titles fitted to their panels first)."""
    fit_titles(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return base64.b64encode(buf.getvalue()).decode("ascii")
