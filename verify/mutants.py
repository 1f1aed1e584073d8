"""Mutation testing: wrong bounds and broken trainers that the checks must reject.

``python -m verify mutate CASE`` trains the case once, then
* re-evaluates the stored curves against each *bound mutant* (a prediction made wrong
  after calibration: rate too fast, floor too small, trend reversed, theta miscounted,
  width scaling missing), and
* retrains the case with each *trainer mutant* (no per-neuron averaging, masks ignored,
  no ``1/xi`` rescaling) and evaluates the true bound on those curves.
A mutant is *caught* when at least one counted check of the case fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import trainers
from .case import Case
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
        trainer=_mutant_trainer("masks_ignored", "exact", {"xi": 1.0}),
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
        else:
            mcase = dataclasses.replace(
                case, name=f"{case.name}~{mutant.name}", trainer=trainers.get(mutant.trainer)
            )
            ev = run_case(mcase, out, quick=quick, show_progress=False).evaluation
        fails: dict[str, int] = {}
        for v in ev.verdicts:
            if v.status == "fail" and v.role != "calibration":
                fails[v.check] = fails.get(v.check, 0) + 1
        out_rows.append(MutantResult(mutant, bool(fails), fails))
    return out_rows


def _data_params(run) -> dict[str, Any]:
    import json

    return json.loads((run.directory / "case.json").read_text())["data_params"]
