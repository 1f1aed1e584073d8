"""Figures of the generic checks: observed vs predicted (``bound``), fitted vs predicted
exponent (``scaling``) with the log-log data behind each slope."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter

from reports.figures.common import STATUS_COLOURS, FigureBlock, encode, new_figure, short_label
from reports.store import CaseResults

#: one colour per group of the log-log panel (the verdict colours are on the slope panel)
GROUP_COLOURS = ("#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f")


def _shown_status(rows: pd.DataFrame) -> np.ndarray:
    return np.where(rows["role"] == "calibration", "calibration", rows["status"]).astype(str)


def bound_figures(case: CaseResults) -> list[FigureBlock]:
    """One panel per ``bound`` check: every point's observed mean (CI) against its prediction."""
    v = case.verdicts
    rows_all = v[v["kind"] == "bound"] if not v.empty else v
    blocks = []
    for check, rows in rows_all.groupby("check", sort=True):
        title = f"{case.name}: {check} — observed vs predicted"
        obs, pred = rows["observed"].to_numpy(float), rows["predicted"].to_numpy(float)
        ok = np.isfinite(obs) & np.isfinite(pred)
        if not ok.any():
            blocks.append(
                FigureBlock(title, "Skipped: no point has an observed and a predicted value.")
            )
            continue
        logs = bool((obs[ok] > 0).all() and (pred[ok] > 0).all())
        fig = new_figure(6.0, 4.6)
        ax = fig.subplots()
        lo = np.where(np.isfinite(rows["ci_low"].to_numpy(float)), rows["ci_low"], obs)
        hi = np.where(np.isfinite(rows["ci_high"].to_numpy(float)), rows["ci_high"], obs)
        if logs:
            lo = np.where(lo > 0, lo, obs)
        shown = _shown_status(rows)
        for status in sorted(set(shown[ok])):
            sel = ok & (shown == status)
            ax.errorbar(
                pred[sel],
                obs[sel],
                yerr=[obs[sel] - lo[sel], hi[sel] - obs[sel]],
                fmt="o",
                ms=5,
                capsize=2,
                lw=0.8,
                color=STATUS_COLOURS.get(status, "k"),
                label=status,
            )
        allowed = rows["allowed"].to_numpy(float)
        order = np.argsort(pred)
        sel = order[ok[order] & np.isfinite(allowed[order])]
        if sel.size:
            ax.plot(pred[sel], allowed[sel], color="k", ls=":", lw=1, label="allowed")
        span = np.concatenate([pred[ok], obs[ok]])
        ax.plot(
            [span.min(), span.max()], [span.min(), span.max()], "k--", lw=1, label="= predicted"
        )
        if logs:
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):  # minor ticks at 2 and 5 only: labels never overlap
                axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
                axis.set_minor_formatter(
                    LogFormatterSciNotation(labelOnlyBase=False, minor_thresholds=(3, 3))
                )
        quantity = str(rows["quantity"].iloc[0])
        ax.set_xlabel(f"predicted {quantity}")
        ax.set_ylabel("observed (mean over repetitions, 95% CI)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        claim = str(rows["claim"].iloc[0]) or "as stated in the verdict table"
        caption = (
            f"Claim: {claim}. One marker per grid point, coloured by verdict; dotted: the "
            "largest (or smallest) value the claim allows including its tolerance."
        )
        blocks.append(FigureBlock(title, caption, encode(fig)))
    return blocks


def _group_labels(params: pd.Series) -> list[str]:
    """A label per group naming only the parameters that differ between the groups."""
    groups = [p if isinstance(p, dict) else {} for p in params]
    keys = sorted({k for g in groups for k in g})
    varying = [k for k in keys if len({repr(g.get(k)) for g in groups}) > 1]
    return [short_label(g, varying) for g in groups]


def scaling_figures(case: CaseResults) -> list[FigureBlock]:
    """One figure per ``scaling`` check: the log-log data per group and the slopes' CIs."""
    v = case.verdicts
    rows_all = v[v["kind"] == "scaling"] if not v.empty else v
    blocks = []
    for check, rows in rows_all.groupby("check", sort=True):
        statistic, parameter = (str(rows[c].iloc[0]) for c in ("statistic", "parameter"))
        title = f"{case.name}: {check} — {statistic} vs {parameter}"
        fig = new_figure(10.0, 4.4)
        left, right = fig.subplots(1, 2)
        pts = case.points
        have_data = not pts.empty and statistic in pts and parameter in pts
        shown = _shown_status(rows)
        labels = _group_labels(rows["params"])
        for i, (_, row) in enumerate(rows.iterrows()):
            colour = STATUS_COLOURS.get(shown[i], "k")
            group = row["params"] if isinstance(row["params"], dict) else {}
            label = labels[i]
            lo, hi = float(row["ci_low"]), float(row["ci_high"])
            if math.isfinite(float(row["observed"])):
                right.errorbar(
                    [row["observed"]],
                    [i],
                    xerr=[[row["observed"] - lo], [hi - row["observed"]]],
                    fmt="o",
                    color=colour,
                    capsize=3,
                )
            right.plot([row["predicted"]], [i], marker="|", color="k", ms=14)
            if have_data:
                sel = pd.Series(True, index=pts.index)
                for k, x in group.items():
                    if k in pts:
                        sel &= pts[k].astype(str) == str(x)
                data = pts.loc[sel, [parameter, statistic]].astype(float)
                data = data[(data[statistic] > 0) & np.isfinite(data[statistic])]
                if not data.empty:
                    means = data.groupby(parameter)[statistic].mean()
                    line = GROUP_COLOURS[i % len(GROUP_COLOURS)]
                    left.plot(
                        means.index, means.to_numpy(), "o-", color=line, alpha=0.8, label=label
                    )
                    left.scatter(data[parameter], data[statistic], s=6, color=line, alpha=0.3)
        right.set_yticks(range(len(rows)))
        right.set_yticklabels(labels, fontsize=7)
        right.set_xlabel(f"log-log slope of {statistic} in {parameter} (95% CI); |: predicted")
        right.grid(True, axis="x", alpha=0.3)
        if have_data:
            left.set_xscale("log")
            left.set_yscale("log")
            left.xaxis.set_minor_formatter(NullFormatter())
            ticks = sorted({float(x) for x in pts[parameter] if np.isfinite(float(x))})
            left.set_xticks(ticks, [f"{x:g}" for x in ticks])
            left.set_xlabel(parameter)
            left.set_ylabel(f"{statistic} (dots: repetitions, line: mean)")
            left.grid(True, which="both", alpha=0.3)
            if len(rows) <= 8:
                left.legend(fontsize=7)
        else:
            left.set_axis_off()
            left.text(0.5, 0.5, f"{statistic} is not a stored scalar", ha="center", va="center")
        caption = (
            f"Left: {statistic} against {parameter} on log-log axes, one colour per group of the "
            "other grid parameters. Right: the fitted slope with its 95% CI per group (coloured "
            "by verdict) and the predicted exponent (black tick)."
        )
        blocks.append(FigureBlock(title, caption, encode(fig)))
    return blocks
