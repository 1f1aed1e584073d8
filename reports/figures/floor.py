"""Figure 2: measured floor against p and τ, with CIs, beside the predicted floor (log–log)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from reports.figures.common import (
    FigureBlock,
    encode,
    new_figure,
    order_params,
    short_label,
    sort_values,
    symbol,
    value_key,
)
from reports.store import CaseResults

AXIS_PARAMS = ("p", "tau")
MAX_LEGEND = 16


def grid_params(case: CaseResults) -> list[str]:
    """The case's grid parameters: point-file parameter columns, else case.json's grid keys."""
    return list(case.param_columns) or list(case.meta.get("grid", {}))


def varying(rows: pd.DataFrame, params: list[str]) -> list[str]:
    """Parameters among ``params`` taking more than one value over the rows' params."""
    out = []
    for p in params:
        values = {value_key(d[p]) for d in rows["params"] if p in d}
        if len(values) > 1:
            out.append(p)
    return order_params(out)


def floor_figures(case: CaseResults, bound: str) -> list[FigureBlock]:
    """One figure per bound with a panel for each of p, τ that varies over the floor rows."""
    title = f"{case.name} · {bound}: floor vs p and τ"
    v = case.verdicts
    rows = v[(v["bound"] == bound) & (v["kind"] == "floor")]
    if rows.empty:
        return [FigureBlock(title, "No floor checks were run for this bound.")]
    free = varying(rows, grid_params(case))
    axes_params = [p for p in AXIS_PARAMS if p in free]
    if not axes_params:
        return [FigureBlock(title, "Skipped: neither p nor τ varies over the grid of this case.")]
    zero = rows["predicted"].to_numpy(float) == 0
    fig = new_figure(6.2 * len(axes_params) + 1.5, 4.6)
    axes = fig.subplots(1, len(axes_params), squeeze=False)[0]
    for ax, x in zip(axes, axes_params, strict=True):
        _draw(ax, rows[~zero], x, [p for p in free if p != x])
    caption = (
        "Markers: measured floor (tail-mean loss) with its confidence interval; filled for "
        "tested points, hollow for calibration points. Dashed lines with crosses: predicted "
        "floor. One colour per combination of the other grid parameters. Non-positive values "
        "cannot be shown on the log axes and are omitted."
    )
    if zero.any():
        caption += " " + _zero_note(rows[zero], free)
        axes[0].text(
            0.01,
            0.01,
            f"{int(zero.sum())} point(s) with predicted floor 0 not shown (see caption)",
            transform=axes[0].transAxes,
            fontsize=7,
            color="#555",
            va="bottom",
        )
    return [FigureBlock(title, caption, encode(fig))]


def _zero_note(rows: pd.DataFrame, free: list[str]) -> str:
    """The points whose predicted floor is exactly 0 (no masking noise), with what was measured:
    on the log axes they would stretch the range over many decades and hide the others."""
    shown = [
        f"{short_label(d, free)} (observed {o:.3g})"
        for d, o in zip(rows["params"], rows["observed"].to_numpy(float), strict=True)
    ]
    return f"Not shown, predicted floor 0 (log axes cannot show it): {'; '.join(shown)}."


def _draw(ax: Axes, rows: pd.DataFrame, x: str, others: list[str]) -> None:
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(rows["params"]):
        groups.setdefault(short_label(d, others), []).append(i)
    colours = _palette(len(groups))
    positive = (rows["observed"].to_numpy(float) > 0) | (rows["predicted"].to_numpy(float) > 0)
    if not positive.any():  # nothing a log axis can show (e.g. every floor inconclusive)
        ax.text(0.5, 0.5, "no positive floor to show", ha="center", transform=ax.transAxes)
        ax.set_title(f"floor vs {symbol(x)}")
        return
    for (label, idx), colour in zip(sorted(groups.items()), colours, strict=True):
        sub = rows.iloc[idx]
        xs = np.array([_num(d.get(x)) for d in sub["params"]])
        order = np.argsort(xs)
        sub, xs = sub.iloc[order], xs[order]
        obs = sub["observed"].to_numpy(float)
        lo, hi = sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float)
        ok = (xs > 0) & (obs > 0)
        yerr = np.vstack(
            [
                obs - np.clip(np.nan_to_num(lo, nan=obs), obs * 1e-3, None),
                np.clip(np.nan_to_num(hi, nan=obs) - obs, 0, None),
            ]
        )
        for tested in (True, False):
            sel = ok & ((sub["role"] != "calibration").to_numpy() == tested)
            if sel.any():
                ax.errorbar(
                    xs[sel],
                    obs[sel],
                    yerr=yerr[:, sel],
                    fmt="o",
                    color=colour,
                    mfc=colour if tested else "white",
                    ms=5,
                    capsize=3,
                    lw=1,
                )
        ax.plot(xs[ok], obs[ok], color=colour, lw=0.8, alpha=0.6)
        pred = sub["predicted"].to_numpy(float)
        okp = (xs > 0) & (pred > 0)
        ax.plot(xs[okp], pred[okp], color=colour, ls="--", marker="x", lw=1)
        ax.plot([], [], color=colour, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    xs_all = sort_values(d.get(x) for d in rows["params"])
    ticks = [_num(t) for t in xs_all if _num(t) > 0]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel(symbol(x))
    ax.set_ylabel("floor (loss)")
    ax.set_title(f"floor vs {symbol(x)}")
    ax.grid(True, which="major", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="k", ls="--", marker="x", label="predicted")]
    labels += ["predicted"]
    if len(handles) > MAX_LEGEND:
        handles, labels = handles[-1:], ["predicted"]
    ax.legend(
        handles,
        labels,
        fontsize=7,
        title=" ".join(map(symbol, others)) or None,
        title_fontsize=7,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
    )


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
