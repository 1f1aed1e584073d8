"""Figure 4: fitted per-round log-decay (with CI) against the predicted one."""

from __future__ import annotations

import numpy as np

from reports.figures.common import STATUS_COLOURS, FigureBlock, encode, new_figure
from reports.store import CaseResults

MARKERS = ("o", "s", "^", "D", "v")


def rate_scatter(case: CaseResults) -> list[FigureBlock]:
    """Observed vs predicted per-round log-decay of every rate row, coloured by verdict."""
    title = f"{case.name}: fitted vs predicted per-round rate"
    v = case.verdicts
    rows = v[v["kind"] == "rate"]
    if rows.empty:
        return [FigureBlock(title, "No rate checks were run for this case.")]
    obs, pred = rows["observed"].to_numpy(float), rows["predicted"].to_numpy(float)
    ok = np.isfinite(obs) & np.isfinite(pred) & (obs > 0) & (pred > 0)
    if not ok.any():
        return [
            FigureBlock(
                title,
                "Skipped: no rate row has a positive observed and predicted log-decay (log axes).",
            )
        ]
    fig = new_figure(6.4, 5.0)
    ax = fig.subplots()
    lo, hi = rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)
    lo = np.where(np.isfinite(lo) & (lo > 0), lo, obs * 1e-3)
    hi = np.where(np.isfinite(hi), np.maximum(hi, obs), obs)
    shown = np.where(rows["role"] == "calibration", "calibration", rows["status"])
    bounds = sorted(set(rows["bound"]))
    for b_i, bound in enumerate(bounds):
        for status in sorted(set(shown)):
            sel = ok & (rows["bound"].to_numpy() == bound) & (shown == status)
            if not sel.any():
                continue
            label = f"{status} ({bound})" if len(bounds) > 1 else status
            ax.errorbar(
                pred[sel],
                obs[sel],
                yerr=[obs[sel] - lo[sel], hi[sel] - obs[sel]],
                fmt=MARKERS[b_i % len(MARKERS)],
                color=STATUS_COLOURS.get(status, "k"),
                ms=5,
                capsize=2,
                lw=0.8,
                label=label,
                alpha=0.85,
            )
    span = np.concatenate([pred[ok], obs[ok]])
    line = np.array([span.min() / 1.5, span.max() * 1.5])
    ax.plot(line, line, color="k", lw=1, ls="--", label="observed = predicted")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predicted log-decay per round  −log ρ")
    ax.set_ylabel("fitted log-decay per round (with CI)")
    ax.set_title("per-round rate: fitted vs predicted")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    dropped = int((~ok).sum())
    note = f" {dropped} row(s) without positive values are not shown." if dropped else ""
    caption = (
        "Each marker is one grid point's rate check; points above the dashed line decay faster "
        "than predicted (consistent with the bound), below it slower." + note
    )
    return [FigureBlock(title, caption, encode(fig))]
