"""Figure 3: heatmap of slack (observed / predicted) of one check over two grid parameters."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.patches import Rectangle

from reports.figures.common import (
    FigureBlock,
    encode,
    new_figure,
    order_params,
    sort_values,
    symbol,
    value_key,
)
from reports.figures.floor import grid_params, varying
from reports.store import CaseResults

PREFERRED_AXES = ("xi", "p")
#: For these quantities a slack above 1 is the good side (faster decay than predicted).
HIGHER_IS_BETTER = ("rate",)


def slack_heatmaps(case: CaseResults, bound: str) -> list[FigureBlock]:
    """One heatmap per per-point check of the bound that has finite slacks."""
    v = case.verdicts
    rows = v[(v["bound"] == bound) & ~v["kind"].isin(["trend", "scaling", "form"])]
    blocks = []
    for check in sorted(set(rows["check"])):
        sub = rows[rows["check"] == check]
        title = f"{case.name} · {bound}: slack of the {check} check"
        if not np.isfinite(sub["slack"].to_numpy(float)).any():
            blocks.append(FigureBlock(title, f"Skipped: the {check} check has no finite slack."))
            continue
        free = varying(sub, grid_params(case))
        if not free:
            blocks.append(FigureBlock(title, "Skipped: no grid parameter varies for this check."))
            continue
        x, y = choose_axes(sub, free)
        blocks.append(
            FigureBlock(title, _caption(free, x, y, sub), encode(_draw(sub, x, y, check)))
        )
    return blocks


def choose_axes(rows: pd.DataFrame, free: list[str]) -> tuple[str, str | None]:
    """(x, y): ξ × p if both vary, else the two parameters with the most distinct values."""
    if all(p in free for p in PREFERRED_AXES):
        return PREFERRED_AXES[1], PREFERRED_AXES[0]
    count = {p: len({value_key(d.get(p)) for d in rows["params"]}) for p in free}
    ranked = sorted(free, key=lambda p: (-count[p], order_params(free).index(p)))
    return ranked[0], (ranked[1] if len(ranked) > 1 else None)


def _draw(rows: pd.DataFrame, x: str, y: str | None, check: str):
    xs = sort_values(d.get(x) for d in rows["params"])
    ys = sort_values(d.get(y) for d in rows["params"]) if y else [None]
    xi = {value_key(v): i for i, v in enumerate(xs)}
    yi = {value_key(v): i for i, v in enumerate(ys)}
    grid = np.full((len(ys), len(xs)), np.nan)
    failed = np.zeros_like(grid, dtype=bool)
    present = np.zeros_like(grid, dtype=bool)
    worst = min if _quantity(rows) in HIGHER_IS_BETTER else max
    for d, slack, status, role in zip(
        rows["params"], rows["slack"], rows["status"], rows["role"], strict=True
    ):
        r, c = yi[value_key(d.get(y))], xi[value_key(d.get(x))]
        if math.isfinite(slack):
            grid[r, c] = slack if math.isnan(grid[r, c]) else worst(grid[r, c], slack)
        failed[r, c] |= status == "fail" and role != "calibration"
        present[r, c] = True
    logs = np.log10(np.where(grid > 0, grid, np.nan))
    span = max(float(np.nanmax(np.abs(logs))) if np.isfinite(logs).any() else 0.0, 0.05)
    quantity = _quantity(rows)
    cmap = "RdBu" if quantity in HIGHER_IS_BETTER else "RdBu_r"
    fig = new_figure(max(4.0, 0.9 * len(xs) + 2.5), max(2.6, 0.6 * len(ys) + 1.8))
    ax = fig.subplots()
    image = ax.imshow(
        logs, cmap=cmap, norm=TwoSlopeNorm(0.0, -span, span), aspect="auto", origin="lower"
    )
    fig.colorbar(image, ax=ax, label="log10 slack (observed / predicted)")
    for r in range(len(ys)):
        for c in range(len(xs)):
            if not present[r, c]:
                continue  # no grid point here
            text = "n/a" if math.isnan(grid[r, c]) else f"{grid[r, c]:.3g}"
            dark = np.isfinite(logs[r, c]) and abs(logs[r, c]) > 0.6 * span
            ax.text(
                c,
                r,
                text + (" ✗" if failed[r, c] else ""),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else "black",
                fontweight="bold" if failed[r, c] else "normal",
            )
            if failed[r, c]:
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, ec="#c62828", lw=2))
    ax.set_xticks(range(len(xs)), [_show(v) for v in xs])
    ax.set_yticks(range(len(ys)), [_show(v) for v in ys] if y else [""])
    ax.set_xlabel(symbol(x))
    ax.set_ylabel(symbol(y) if y else "")
    shown = f" ({quantity})" if quantity and quantity != check else ""
    ax.set_title(f"slack of the {check} check{shown}", fontsize=10)
    return fig


def _caption(free: list[str], x: str, y: str | None, rows: pd.DataFrame) -> str:
    rest = [symbol(p) for p in free if p not in (x, y)]
    higher = _quantity(rows) in HIGHER_IS_BETTER
    good = "above" if higher else "below"
    agg = (
        f" Cells aggregate the other parameters ({', '.join(rest)}) by the worst case "
        f"({'minimum' if higher else 'maximum'})."
        if rest
        else ""
    )
    return (
        f"Slack = observed / predicted per grid point; values {good} 1 (blue) are on the safe "
        f"side of the prediction. Red-framed cells with ✗ hold a failing tested point; n/a: no "
        f"finite slack (e.g. a zero prediction); blank: no grid point.{agg}"
    )


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _quantity(rows: pd.DataFrame) -> str:
    return str(rows["quantity"].iloc[0]) if len(rows) else ""
