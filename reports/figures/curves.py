"""Figure 1: training-loss curves per grid point against the predicted envelope and floor."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from reports.figures.common import (
    STATUS_COLOURS,
    FigureBlock,
    encode,
    new_figure,
    order_params,
    short_label,
    sort_values,
    value_key,
)
from reports.store import CaseResults, loss_matrix

MAX_PANELS = 24
COLUMNS = 6
BOUND_COLOURS = ("#c62828", "#6a1b9a", "#00838f", "#ef6c00")
BOUND_STYLES = ("--", "-.", ":", (0, (5, 1)))


def loss_curve_figures(case: CaseResults) -> list[FigureBlock]:
    """Small multiples of mean loss with a min–max band, one panel per point, ≤ 24 per figure."""
    title = f"{case.name}: training loss per grid point"
    if case.points.empty or "loss" not in case.points:
        return [FigureBlock(title, "No loss curves are stored for this case.")]
    keys = _ordered_keys(case)
    size = math.ceil(len(keys) / math.ceil(len(keys) / MAX_PANELS))  # balanced pages
    pages = [keys[i : i + size] for i in range(0, len(keys), size)]
    bounds = sorted(set(case.verdicts.loc[case.verdicts["kind"] == "envelope", "bound"]))
    blocks = []
    for n, page in enumerate(pages, 1):
        suffix = f" ({n}/{len(pages)})" if len(pages) > 1 else ""
        png = _draw_page(case, page, bounds)
        caption = (
            "Mean full-network training loss over repetitions (solid) with its min–max band; "
            "dashed: predicted envelope ρ^k·L0 + B with L0 the mean initial loss; dotted: "
            "predicted floor B. Panel titles are coloured by the envelope verdict (green pass, "
            "red fail, orange inconclusive, grey outside hypotheses, blue calibration point)."
        )
        blocks.append(FigureBlock(title + suffix, caption, png))
    return blocks


def _ordered_keys(case: CaseResults) -> list[str]:
    params = case.point_params()
    varying = order_params(case.varying_params)
    ranks = {
        p: {value_key(v): i for i, v in enumerate(sort_values(pp.get(p) for pp in params.values()))}
        for p in varying
    }

    def rank(key: str) -> tuple:
        return tuple(ranks[p].get(value_key(params[key].get(p)), 0) for p in varying) + (key,)

    return sorted(params, key=rank)


def _draw_page(case: CaseResults, keys: list[str], bounds: list[str]) -> str:
    cols = min(COLUMNS, math.ceil(math.sqrt(1.5 * len(keys))))
    rows = math.ceil(len(keys) / cols)
    fig = new_figure(2.9 * cols + 0.5, 2.4 * rows + 0.9)
    axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
    params = case.point_params()
    varying = case.varying_params
    by_key = {k: g for k, g in case.points.groupby("point_key")}
    env = case.verdicts[case.verdicts["kind"] == "envelope"]
    for i, ax in enumerate(axes.flat):
        if i >= len(keys):
            ax.set_visible(False)
            continue
        key = keys[i]
        _draw_panel(ax, by_key[key], env[env["point_key"] == key], bounds)
        ax.set_title(short_label(params[key], varying), fontsize=8, color=_title_colour(env, key))
        if i % cols == 0:
            ax.set_ylabel("training loss (log)")
        if i >= len(keys) - cols:
            ax.set_xlabel("round k")
            ax.xaxis.set_tick_params(labelbottom=True)
    handles = [
        Line2D([], [], color="#1f77b4", label="mean loss"),
        Patch(color="#1f77b4", alpha=0.25, label="min–max over repetitions"),
    ]
    for j, b in enumerate(bounds):
        colour, style = BOUND_COLOURS[j % 4], BOUND_STYLES[j % 4]
        handles.append(Line2D([], [], color=colour, ls=style, label=f"envelope {b}"))
        handles.append(Line2D([], [], color=colour, ls=":", lw=1, label=f"floor {b}"))
    fig.legend(handles=handles, loc="outside upper center", ncols=min(4, len(handles)), fontsize=8)
    return encode(fig)


def _draw_panel(ax: Axes, rows: pd.DataFrame, env: pd.DataFrame, bounds: list[str]) -> None:
    loss = loss_matrix(rows)
    loss = np.where(np.isfinite(loss) & (loss > 0), loss, np.nan)  # log axis: positives only
    ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
    if loss.size == 0 or not np.isfinite(loss).any():
        ax.text(0.5, 0.5, "no finite loss", ha="center", transform=ax.transAxes, fontsize=8)
        return
    k = np.arange(loss.shape[1])
    with warnings.catch_warnings():  # rounds after every repetition diverged are all-NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(loss, axis=0)
        low = np.nanmin(loss, axis=0)
        high = np.nanmax(loss, axis=0)
    ax.fill_between(k, low, high, color="#1f77b4", alpha=0.25, lw=0)
    ax.plot(k, mean, color="#1f77b4", lw=1.4, zorder=3)
    l0 = float(np.nanmean(loss[:, 0])) if np.isfinite(loss[:, 0]).any() else math.nan
    data_lo, data_hi = np.nanmin(low), np.nanmax(high)
    for j, b in enumerate(bounds):
        rows_b = env[env["bound"] == b]
        if rows_b.empty:
            continue
        rate = float(rows_b["predicted_rate"].iloc[0])
        floor = float(rows_b["predicted_floor"].iloc[0])
        colour, style = BOUND_COLOURS[j % 4], BOUND_STYLES[j % 4]
        base = floor if math.isfinite(floor) else 0.0
        if math.isfinite(rate) and math.isfinite(l0):
            with np.errstate(all="ignore"):
                envelope = np.power(rate, k) * l0 + base
            ax.plot(k, np.where(envelope > 0, envelope, np.nan), color=colour, ls=style, lw=1.2)
        if math.isfinite(floor) and floor > 0:
            ax.axhline(floor, color=colour, ls=":", lw=1)
            data_lo = min(data_lo, floor)
    ax.set_ylim(data_lo / 2, data_hi * 2)
    diverged = rows["diverged_round"].to_numpy(float) if "diverged_round" in rows else np.array([])
    n_div = int((diverged >= 0).sum())
    if n_div:
        ax.text(
            0.98,
            0.95,
            f"{n_div} diverged",
            ha="right",
            va="top",
            color="#c62828",
            transform=ax.transAxes,
            fontsize=7,
        )


def _title_colour(env: pd.DataFrame, key: str) -> str:
    rows = env[env["point_key"] == key]
    if rows.empty:
        return "black"
    tested = set(rows.loc[rows["role"] != "calibration", "status"])
    for status in ("fail", "inconclusive", "outside-hypotheses", "pass"):
        if status in tested:
            return STATUS_COLOURS[status]
    return STATUS_COLOURS["calibration"]
