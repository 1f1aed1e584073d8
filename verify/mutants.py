"""Mutation testing: wrong bounds and broken trainers that the checks must reject.

``python -m verify mutate CASE`` trains the case once, then
* re-evaluates the stored curves against each *bound mutant* (a prediction made wrong
  after calibration: rate too fast, floor too small, trend reversed, theta miscounted,
  width scaling missing), and
* retrains the case with each *trainer mutant* (no per-neuron averaging, masks ignored,
  no ``1/xi`` rescaling) and evaluates the true bound on those curves.
A mutant is *caught* when at least one counted check of the case fails.  Mutant trainers
run with the case's own seeds (same data, initialisations and masks), so a mutant that
computes exactly what the true trainer computes on this grid -- e.g. ``no_averaging`` when
no neuron is ever in two surrogates (p = 1, or a partition) -- gives identical results and
is reported as *equivalent*: no check could catch it there, and it does not count as missed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import trainers
from .case import Case
from .checks.convergence import structural_mutation
from .evaluate import evaluate
from .grid import expand
from .runner import run_case
from .store import read_points
from .trainers.masked_shallow_family import MASKED_SHALLOW, run


@dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    perturb: Mapping[str, float] | None = None  # bound mutants via prediction transforms
    trainer: str | None = None  # trainer mutants: name of a registered mutant trainer


def _mutant_trainer(name: str, variant: str, override: Mapping[str, Any]) -> str:
    full = f"masked_shallow~{name}"

    def run_mutant(params, X, y, rngs, init_rngs=None):
        return run({**params, **override}, X, y, rngs, init_rngs, variant=variant)

    trainers.register(dataclasses.replace(MASKED_SHALLOW, name=full, run=run_mutant))
    return full


MUTANTS: tuple[Mutant, ...] = (
    Mutant("rate_too_fast", "per-round contraction squared (2x the decay exponent)", {"rate": 2.0}),
    Mutant("floor_too_small", "neighbourhood 10x too small", {"floor": 0.1}),
    Mutant(
        "trend_reversed", "floor claimed increasing in p and decreasing in tau", {"trend": -1.0}
    ),
    Mutant("wrong_theta", "rate uses p*xi (unclipped) instead of 1-(1-xi)^p", {"theta": 1.0}),
    Mutant(
        "missing_sqrt_m",
        "floor without the 1/sqrt(m) output scaling (x sqrt(m) / m0)",
        {"sqrt_m": 1.0},
    ),
    Mutant(
        "no_averaging",
        "trainer sums a neuron's trained copies instead of averaging",
        trainer=_mutant_trainer("no_averaging", "no_averaging", {}),
    ),
    Mutant(
        "masks_ignored",
        "trainer trains the full network in every surrogate",
        trainer=_mutant_trainer("masks_ignored", "exact", {"xi": 1.0, "scheme": "bernoulli"}),
    ),
    Mutant(
        "no_rescaling",
        "trainer drops the surrogates' 1/xi output scaling",
        trainer=_mutant_trainer("no_rescaling", "no_rescaling", {}),
    ),
)


@dataclass
class MutantResult:
    mutant: Mutant
    caught: bool
    failures: dict[str, int]
    equivalent: bool = False  # identical to the truth on this case's grid

    @property
    def missed(self) -> bool:
        return not self.caught and not self.equivalent


def mutate(
    case: Case, out: Path, names: Sequence[str] | None = None, quick: bool = False
) -> list[MutantResult]:
    """Run every (or the named) mutant against ``case``; results in mutant order."""
    chosen = [m for m in MUTANTS if names is None or m.name in names]
    base = run_case(case, out, quick=quick, show_progress=False)
    points = expand(base.case)
    data_params = _data_params(base)
    results = read_points(base.directory, [p.key for p in points])
    out_rows = []
    for mutant in chosen:
        if mutant.trainer is None:
            ev = evaluate(base.case, points, results, data_params, mutant.perturb)
            equivalent = _same_predictions(mutant.perturb or {}, [p.params for p in points])
        else:
            mcase = dataclasses.replace(
                case,
                name=f"{case.name}~{mutant.name}",
                trainer=trainers.get(mutant.trainer),
                seed_name=case.seed_name or case.name,
            )
            mrun = run_case(mcase, out, quick=quick, show_progress=False)
            ev = mrun.evaluation
            equivalent = _same_curves(
                results, read_points(mrun.directory, list(results.point_key.unique()))
            )
        fails: dict[str, int] = {}
        for v in ev.verdicts:
            if v.status == "fail" and v.role != "calibration":
                fails[v.check] = fails.get(v.check, 0) + 1
        out_rows.append(MutantResult(mutant, bool(fails), fails, equivalent and not fails))
    return out_rows


#: mutation keys that change a prediction's form rather than scale it by a constant
STRUCTURAL = ("theta", "sqrt_m")


def _same_predictions(perturb: Mapping[str, float], grid: list[Mapping[str, Any]]) -> bool:
    """The wrong bound predicts exactly what the true one does at every grid point."""
    if any(v != 1.0 for k, v in perturb.items() if k not in STRUCTURAL):
        return False
    return all(
        math.isclose(structural_mutation(perturb, q, params), 1.0, rel_tol=1e-12)
        for params in grid
        for q in ("rate", "envelope_rate", "floor")
    )


def _same_curves(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Every repetition of every point has the same loss curve (bit for bit)."""
    a, b = (f.sort_values(["point_key", "rep"]).reset_index(drop=True) for f in (a, b))
    if len(a) != len(b) or list(a.point_key) != list(b.point_key):
        return False
    return all(
        np.array_equal(np.asarray(x, float), np.asarray(y, float), equal_nan=True)
        for x, y in zip(a["loss"], b["loss"], strict=True)
    )


def _data_params(run) -> dict[str, Any]:
    import json

    return json.loads((run.directory / "case.json").read_text())["data_params"]
