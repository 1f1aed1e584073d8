"""Vacuity heatmap: an exact bound's error term over the initial loss, over two grid parameters.

Cells below 1 (blue) are where the exact bound says something; cells at or above 1 (red)
are where it is vacuous.  Read from the ``vacuity`` map of ``case.json``.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import TwoSlopeNorm

from reports.figures.common import FigureBlock, encode, new_figure, sort_values, symbol, value_key
from reports.store import CaseResults

PREFERRED_AXES = ("xi", "p")


def vacuity_heatmaps(case: CaseResults) -> list[FigureBlock]:
    """One heatmap per exact bound of the case (worst case over the other parameters)."""
    rows = case.meta.get("vacuity") or []
    params = case.point_params()
    blocks = []
    for bound in sorted({r["bound"] for r in rows}):
        mine = [
            (params[r["point_key"]], r["bound_floor_over_L0"])
            for r in rows
            if r["bound"] == bound and r["point_key"] in params and "bound_floor_over_L0" in r
        ]
        title = f"{case.name} · {bound}: error term / initial loss"
        free = [
            k
            for k in case.varying_params
            if len({value_key(p.get(k)) for p, _ in mine}) > 1
        ]
        if not mine or not free:
            blocks.append(FigureBlock(title, "Skipped: no grid parameter varies for this bound."))
            continue
        x, y = _axes(free)
        caption = (
            "B / L0 per grid point (the bound's explicit error term over the observed initial "
            "loss): below 1 (blue) the exact bound is non-vacuous, at or above 1 (red) any "
            "loss curve satisfies it."
        )
        rest = [symbol(k) for k in free if k not in (x, y)]
        if rest:
            caption += f" Cells show the largest value over {', '.join(rest)}."
        blocks.append(FigureBlock(title, caption, encode(_draw(mine, x, y))))
    return blocks


def _axes(free: list[str]) -> tuple[str, str | None]:
    if all(p in free for p in PREFERRED_AXES):
        return PREFERRED_AXES[1], PREFERRED_AXES[0]
    return free[0], (free[1] if len(free) > 1 else None)


def _draw(points: list[tuple[dict, float]], x: str, y: str | None):
    xs = sort_values(p.get(x) for p, _ in points)
    ys = sort_values(p.get(y) for p, _ in points) if y else [None]
    col = {value_key(v): i for i, v in enumerate(xs)}
    row = {value_key(v): i for i, v in enumerate(ys)}
    grid = np.full((len(ys), len(xs)), np.nan)
    for p, ratio in points:
        r, c = row[value_key(p.get(y))], col[value_key(p.get(x))]
        if math.isfinite(ratio):
            grid[r, c] = ratio if math.isnan(grid[r, c]) else max(grid[r, c], ratio)
    logs = np.log10(np.where(grid > 0, grid, np.nan))
    span = max(float(np.nanmax(np.abs(logs))) if np.isfinite(logs).any() else 0.0, 0.5)
    fig = new_figure(max(4.0, 0.9 * len(xs) + 2.5), max(2.6, 0.6 * len(ys) + 1.8))
    ax = fig.subplots()
    image = ax.imshow(
        logs, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -span, span), aspect="auto", origin="lower"
    )
    fig.colorbar(image, ax=ax, label="log10 (B / L0)")
    for r in range(len(ys)):
        for c in range(len(xs)):
            value = grid[r, c]
            text = "0" if value == 0 else ("" if math.isnan(value) else f"{value:.2g}")
            ax.text(c, r, text, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(xs)), [f"{v:g}" if isinstance(v, float) else str(v) for v in xs])
    ax.set_yticks(
        range(len(ys)), [f"{v:g}" if isinstance(v, float) else str(v) for v in ys] if y else [""]
    )
    ax.set_xlabel(symbol(x))
    ax.set_ylabel(symbol(y) if y else "")
    ax.set_title("exact error term / initial loss", fontsize=10)
    return fig
