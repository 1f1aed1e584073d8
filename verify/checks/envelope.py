"""Check kind ``envelope``: the mean loss under ``rho^k L0 + B`` at every round."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import CheckKind, register
from .framework import Context, mark_vacuous, point_verdicts
from .observations import OBSERVE
from .predictions import predicted
from .stats import one_sided_p, t_estimate
from .verdict import Verdict


def envelope_check(ctx: Context, name: str, cfg: Mapping[str, Any]) -> list[Verdict]:
    """The mean loss under ``rho^k L0 + B`` over the whole run.

    Rounds are cut into ``blocks`` consecutive blocks; in each, the relative excess
    ``(L_k - env_k) / env_k`` is averaged over ``batches`` sub-batches per repetition and
    t-tested (one-sided) over those samples; Bonferroni over the blocks.

    Uses the per-repetition initial loss (the theorem bounds the expectation over masks
    given the initialisation) and the one-sided prediction limits of rate and floor at
    level ``false_alarm / (number of tested points)``.
    """
    out = []
    for pt, v in point_verdicts(ctx, name, "envelope", "envelope", out):
        rate = predicted(ctx, "envelope_rate", pt.params)
        floor = predicted(ctx, "floor", pt.params)
        if isinstance(rate, str) or isinstance(floor, str):
            v.detail = rate if isinstance(rate, str) else floor
            continue
        B = floor.limit if floor.value > 0 else cfg["floor_atol"]
        delta = rate.limit
        curves = pt.curves[cfg["curve"]]
        R, T = curves.shape
        # a statement whose envelope starts from a stated constant (e.g. C^2 n), not from L0
        prefactor = ctx.bound.predict(pt.params).get("envelope_prefactor")
        start = curves[:, :1] if prefactor is None else np.full((R, 1), prefactor)
        envelope = np.exp(-delta * np.arange(T))[None, :] * start + B
        v.predicted_rate, v.predicted_floor = math.exp(-delta), B
        mark_vacuous(v, float(envelope.mean(axis=0)[-1]), float(curves[:, 0].mean()))
        ratio = curves.mean(axis=0) / envelope.mean(axis=0)
        worst = int(np.argmax(ratio[1:])) + 1
        v.predicted, v.allowed = 1.0, 1.0
        blocks = np.array_split(np.arange(1, T), min(cfg["blocks"], T - 1))
        p_blocks, ratios = [], []
        for block in blocks:
            excess = (curves[:, block] - envelope[:, block]) / envelope[:, block]
            size = max(1, len(block) // cfg["batches"])
            usable = excess[:, : size * (len(block) // size)]
            samples = usable.reshape(R, -1, size).mean(axis=2).ravel()
            est = t_estimate(samples)
            ratios.append(est)
            if est.ok and est.se > 0:
                p_blocks.append(one_sided_p(est.value / est.se, est.dof, "greater"))
            else:
                p_blocks.append(float(est.value > 0) if math.isfinite(est.value) else math.nan)
        j = int(np.nanargmin(p_blocks))
        v.p_value = float(min(1.0, len(blocks) * p_blocks[j]))
        # observed: mean loss / envelope over the least favourable block, with its CI
        v.observed = 1 + ratios[j].value
        v.ci_low, v.ci_high = 1 + ratios[j].low, 1 + ratios[j].high
        v.detail = (
            f"worst round {worst}: mean loss / envelope = {ratio[worst]:.3g}; least favourable "
            f"block rounds {blocks[j][0]}-{blocks[j][-1]}: relative excess "
            f"{ratios[j].value:+.3g}"
        )
    return out


register(
    CheckKind(
        "envelope", "mean loss under rate^k L0 + floor at every round", OBSERVE, envelope_check
    )
)
