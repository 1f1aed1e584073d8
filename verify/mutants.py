"""Mutation testing: wrong bounds and broken trainers that the checks must reject.

``python -m verify mutate CASE`` trains the case once, then
* re-evaluates the stored results against each *bound mutant*: a prediction made wrong
  after calibration (rate too fast, floor too small, trend reversed, theta miscounted,
  width scaling missing), a wrong claim in a check's configuration (identification
  claimed for ProxSGD), and one generated wrong claim per ``bound``/``scaling`` check
  (:func:`claim_mutants`), and
* retrains the case with each *trainer mutant* of its trainer (masked training: no
  per-neuron averaging, masks ignored, no ``1/xi`` rescaling; shifted ReLU: a query that
  loses activated neurons; node scaling: a gradient without the scalings; RMDA: a prox
  with the wrong threshold) and evaluates the true bound on those results.
A case runs only the mutants of its trainer and of the check kinds it has
(:func:`mutants_for`).  A mutant is *caught* when at least one counted check fails.
Mutant trainers run with the case's own seeds (same data, initialisations and masks), so
a mutant that computes exactly what the true trainer computes on this grid -- e.g.
``no_averaging`` when no neuron is ever in two surrogates (p = 1, or a partition) --
gives identical results and is reported as *equivalent*: no check could catch it there,
and it does not count as missed.  A bound mutant is equivalent when every verdict is
unchanged and a check that could see it reached a verdict (an upper bound of 0 cannot be
made 10x smaller); if no such check reached one, the grid cannot test it: a miss.
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

import bounds
from bounds.liao2022 import EXACT_MUTATIONS

from . import trainers
from .case import Case
from .checks.quantities import QUANTITIES
from .checks.verdict import FAIL, PASS
from .evaluate import evaluate
from .grid import datasets, expand
from .result_schema import declared_outputs
from .runner import run_case
from .store import read_points


@dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    perturb: Mapping[str, float] | None = None  # bound mutants via prediction transforms
    trainer: str | None = None  # trainer mutants: name of a registered mutant trainer
    #: trainers whose cases this mutant applies to (empty: any)
    trainers: tuple[str, ...] = ()
    #: check kinds a case needs for this bound mutant to mean anything (any of them)
    needs: tuple[str, ...] = ()
    #: the one check a generated claim mutant distorts
    check: str | None = None
    #: wrong claims made by a check's configuration: {check kind: {key: value}}
    config: Mapping[str, Mapping[str, Any]] | None = None
    #: a named wrong version of an exact bound (``Bound.mutations``): applies to the cases
    #: with such a bound; where it is not caught it is *not testable*, never equivalent
    exact: bool = False
    #: a wrong form of the prediction (``Bound.form_mutations``): applies to the cases with a
    #: bound that declares it
    form: bool = False

    def applies(self, case: Case) -> bool:
        if self.trainers and case.trainer.name not in self.trainers:
            return False
        if self.form and not set(self.perturb or {}) <= _form_mutations(case):
            return False
        if self.exact and not any(self.name in bounds.get(b).mutations for b in case.bounds):
            return False
        return not self.needs or any(c["kind"] in self.needs for c in case.checks.values())

    def sees(self, check: str, kind: str) -> bool:
        """Whether a verdict of this check could tell the mutant from the true bound."""
        return check == self.check if self.check else kind in self.needs


def _form_mutations(case: Case) -> set[str]:
    """The wrong-form perturbations the case's bounds declare (``Bound.form_mutations``)."""
    return {k for b in case.bounds for k in bounds.get(b).form_mutations}


def _mutant_trainer(base: str, name: str, variant: str, override: Mapping[str, Any]) -> str:
    """Register ``base`` trained with ``variant`` (and parameter ``override``) as a trainer."""
    full = f"{base}~{name}"
    original = trainers.get(base)

    def run_mutant(params, X, y, rngs, init_rngs=None):
        return original.run({**params, **override}, X, y, rngs, init_rngs, variant=variant)

    trainers.register(dataclasses.replace(original, name=full, run=run_mutant))
    return full


def _trainer_mutant(base: str, name: str, description: str, variant: str, **override) -> Mutant:
    return Mutant(
        name,
        description,
        trainer=_mutant_trainer(base, name, variant, override),
        trainers=(base,),
    )


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "rate_too_fast",
        "per-round contraction squared (2x the decay exponent)",
        {"rate": 2.0},
        needs=("rate", "envelope"),
    ),
    Mutant(
        "floor_too_small",
        "neighbourhood 10x too small",
        {"floor": 0.1},
        needs=("floor", "envelope"),
    ),
    Mutant(
        "trend_reversed",
        "floor claimed increasing in p and decreasing in tau",
        {"trend": -1.0},
        needs=("trend",),
    ),
    Mutant(
        "wrong_theta",
        "rate uses p*xi (unclipped) instead of 1-(1-xi)^p",
        {"theta": 1.0},
        form=True,
        needs=("rate", "envelope"),
    ),
    Mutant(
        "missing_sqrt_m",
        "floor without the 1/sqrt(m) output scaling (x sqrt(m) / m0)",
        {"sqrt_m": 1.0},
        form=True,
        needs=("floor", "envelope"),
    ),
    *(
        Mutant(name, f"exact bound: {what}", {name: 1.0}, needs=("envelope", "floor", "rate"),
               exact=True)
        for name, what in EXACT_MUTATIONS.items()
    ),
    _trainer_mutant(
        "masked_shallow",
        "no_averaging",
        "trainer sums a neuron's trained copies instead of averaging",
        "no_averaging",
    ),
    _trainer_mutant(
        "masked_shallow",
        "masks_ignored",
        "trainer trains the full network in every surrogate",
        "exact",
        xi=1.0,
        scheme="bernoulli",
    ),
    _trainer_mutant(
        "masked_shallow",
        "no_rescaling",
        "trainer drops the surrogates' 1/xi output scaling",
        "no_rescaling",
    ),
    _trainer_mutant(
        "rmda_group_lasso",
        "step_threshold",
        "RMDA's prox thresholds at eta*lam, not the dual average's alpha_t/beta_t*lam",
        "step_threshold",
    ),
    Mutant(
        "proxsgd_identifies",
        "identification claimed for ProxSGD (Theorem 2 is RMDA's)",
        config={"identification": {"method": "proxsgd"}},
        needs=("identification",),
    ),
    _trainer_mutant(
        "shifted_relu",
        "drop_active",
        "the activated-neuron query loses some activated neurons",
        "drop_active",
    ),
    _trainer_mutant(
        "node_scaling",
        "unscaled_gradient",
        "the gradient ignores the node scalings sqrt(lambda_j)",
        "unscaled_gradient",
    ),
)

#: how a generated claim mutant distorts a ``bound``/``scaling`` check's prediction
CLAIM_FACTORS = {"<=": 0.1, ">=": 10.0, "==": 1.5}
SCALING_FACTOR = 2.5  # an exponent -0.2 becomes -0.5


def claim_mutants(case: Case) -> list[Mutant]:
    """One wrong claim per ``bound``/``scaling`` check of the case: an upper bound 10x too
    small, a lower bound 10x too large, an identity or an exponent off by a factor."""
    out = []
    for name, cfg in case.checks.items():
        if cfg["kind"] not in ("bound", "scaling"):
            continue
        quantity = cfg["quantity"] or cfg["statistic"]
        factor = SCALING_FACTOR if cfg["kind"] == "scaling" else CLAIM_FACTORS[cfg["relation"]]
        if cfg["kind"] == "scaling" and cfg["relation"] != "==":
            factor = _stronger_exponent(case, quantity, cfg["relation"])
        out.append(
            Mutant(
                f"{name}_wrong",
                f"check {name!r}: prediction {quantity} x {factor:g} ({cfg['relation']} claim)",
                {quantity: factor},
                check=name,
            )
        )
    return out


def _stronger_exponent(case: Case, quantity: str, relation: str) -> float:
    """The factor that makes a one-sided exponent claim *stronger* (a wrong claim that can
    fail): ``>= e`` becomes ``>= 2.5 e`` for ``e > 0`` and ``>= -e/4`` (a positive exponent) for
    ``e < 0``; ``<=`` mirrored.  The exponent's sign is read at the case's first point."""
    points = expand(case)[:1]
    sign = 0.0
    if points:
        params = {**datasets(case, points)[points[0].key][2], **points[0].params}
        for bound_id in case.bounds:
            try:
                value = bounds.get(bound_id).predict(params).get(quantity)
            except (KeyError, TypeError, ValueError):
                continue  # the prediction needs a measured parameter: keep the default
            if value:
                sign = math.copysign(1.0, value)
                break
    grows = sign > 0 if relation == ">=" else sign < 0
    return SCALING_FACTOR if grows or sign == 0 else -1.0 / (1.6 * SCALING_FACTOR)


@dataclass
class MutantResult:
    mutant: Mutant
    caught: bool
    failures: dict[str, int]
    equivalent: bool = False  # identical to the truth on this case's grid
    #: why an exact-bound mutant could not be caught here (vacuous or too loose), with the
    #: slack the bound would need; '' otherwise
    not_testable: str = ""

    @property
    def missed(self) -> bool:
        return not self.caught and not self.equivalent and not self.not_testable


def mutants_for(case: Case) -> list[Mutant]:
    """The fixed mutants that apply to ``case`` and its generated claim mutants."""
    fixed = [m for m in MUTANTS if m.applies(case)]
    known = {m.name for m in fixed}
    return fixed + [m for m in claim_mutants(case) if m.name not in known]


def mutate(
    case: Case, out: Path, names: Sequence[str] | None = None, quick: bool = False
) -> list[MutantResult]:
    """Run every (or the named) mutant that applies to ``case``; results in mutant order."""
    chosen = [m for m in mutants_for(case) if names is None or m.name in names]
    base = run_case(case, out, quick=quick, show_progress=False)
    points = expand(base.case)
    data_params = _data_params(base)
    per_point = {key: params for key, (_, _, params) in datasets(base.case, points).items()}
    results = read_points(base.directory, [p.key for p in points])
    truth = base.evaluation
    out_rows = []
    for mutant in chosen:
        if mutant.trainer is None:
            ev = evaluate(
                _with_config(base.case, mutant.config or {}),
                points,
                results,
                data_params,
                mutant.perturb,
                per_point,
            )
            equivalent = _same_verdicts(truth, ev) and (
                _same_form(case, mutant.perturb or {}, [p.params for p in points])
                or _conclusive(mutant, truth)
            )
        else:
            mcase = dataclasses.replace(
                case,
                name=f"{case.name}~{mutant.name}",
                trainer=trainers.get(mutant.trainer),
                seed_name=case.seed_name or case.name,
            )
            mrun = run_case(mcase, out, quick=quick, show_progress=False)
            ev = mrun.evaluation
            equivalent = _same_outputs(
                results, read_points(mrun.directory, list(results.point_key.unique()))
            )
        fails: dict[str, int] = {}
        for v in ev.verdicts:
            if v.status == "fail" and v.role != "calibration":
                fails[v.check] = fails.get(v.check, 0) + 1
        # on a case whose bounds are all exact statements, an uncaught bound mutant is judged
        # by the bound's slack (not testable), never as equivalent
        exact_only = all(bounds.get(b).mutations for b in case.bounds)
        judged = mutant.exact or (exact_only and mutant.trainer is None and mutant.perturb)
        untestable = not_testable(mutant, truth, ev) if judged and not fails else ""
        out_rows.append(
            MutantResult(
                mutant, bool(fails), fails, equivalent and not fails and not judged, untestable
            )
        )
    return out_rows


def not_testable(mutant: Mutant, truth, mutated) -> str:
    """Why the data cannot see an exact-bound mutant: the share of vacuous verdicts and, for
    the others, how far inside the bound the data sit (the tightening a bound would need
    before the data could contradict it) against how much the mutant tightens it."""
    seen = [
        v
        for v in truth.verdicts
        if v.counted
        and v.status == PASS
        and v.kind in mutant.needs
        and math.isfinite(v.observed)
        and v.predicted != 0  # a zero floor cannot be tightened
    ]
    if not seen:
        return "no verdict of the exact bound was reached"
    other = {(v.check, v.point_key): v for v in mutated.verdicts}
    vacuous = sum(v.vacuous for v in seen)
    parts = [f"vacuous at {vacuous} of {len(seen)} verdicts"]
    for kind in ("envelope", "floor", "rate"):
        rows = [v for v in seen if v.kind == kind and not v.vacuous]
        if not rows:
            continue
        needed = min(_slack(v) for v in rows)
        moved = max(
            (_slack(v) / _slack(other[(v.check, v.point_key)]) for v in rows), default=math.nan
        )
        parts.append(f"{kind}: data {needed:.3g}x inside the bound, the mutant tightens it {moved:.3g}x")
    return "; ".join(parts)


def _slack(v) -> float:
    """How many times the bound would have to tighten before this verdict could fail."""
    if v.kind == "envelope":  # observed: mean loss / envelope in the least favourable block
        return 1.0 / max(v.observed, 1e-300)
    if v.kind == "floor":
        return v.predicted / max(v.observed, 1e-300) if v.predicted > 0 else math.inf
    return v.observed / v.predicted if v.predicted > 0 else math.inf  # decay: faster is safe


def _with_config(case: Case, config: Mapping[str, Mapping[str, Any]]) -> Case:
    """``case`` with the configuration of its checks of the given kinds overridden."""
    if not config:
        return case
    checks = {name: {**cfg, **config.get(cfg["kind"], {})} for name, cfg in case.checks.items()}
    return dataclasses.replace(case, checks=checks)


def _same_form(
    case: Case, perturb: Mapping[str, float], grid: list[Mapping[str, Any]]
) -> bool:
    """The wrong form predicts exactly what the true one does at every grid point (e.g.
    ``wrong_theta`` at p = 1, where p * xi = 1 - (1 - xi)^p): every key of ``perturb`` is a
    form mutation (``Bound.form_mutations``) of the case's bounds and no bound's
    prediction changes."""
    case_bounds = [bounds.get(b) for b in case.bounds]
    declared = {k for b in case_bounds for k in b.form_mutations}
    if not perturb or any(k not in declared for k in perturb):
        return False
    return all(
        math.isclose(b.mutation_factor(perturb, q, params), 1.0, rel_tol=1e-12)
        for b in case_bounds
        if set(perturb) <= set(b.form_mutations)
        for params in grid
        for q in QUANTITIES
    )


def _conclusive(mutant: Mutant, truth) -> bool:
    """Some check that could see the mutant reached a verdict: unchanged verdicts then mean
    the mutant is identical on this grid (an upper bound of 0 cannot be made 10x smaller),
    not that the grid is too small to test it (which is a miss)."""
    return any(v.status in (PASS, FAIL) and mutant.sees(v.check, v.kind) for v in truth.verdicts)


def _same_verdicts(truth, mutated) -> bool:
    """Every verdict is unchanged: status, prediction, allowance and p-value."""

    def key(v):
        return (v.check, v.point_key)

    other = {key(v): v for v in mutated.verdicts}
    for v in truth.verdicts:
        w = other.get(key(v))
        if w is None or w.status != v.status:
            return False
        for a, b in ((v.predicted, w.predicted), (v.allowed, w.allowed), (v.p_value, w.p_value)):
            if not (math.isclose(a, b, rel_tol=1e-9) or (math.isnan(a) and math.isnan(b))):
                return False
    return len(other) == len(truth.verdicts)


def _same_outputs(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Every declared output of every repetition of every point is the same (bit for bit)."""
    declared = declared_outputs(a)
    a, b = (f.sort_values(["point_key", "rep"]).reset_index(drop=True) for f in (a, b))
    if len(a) != len(b) or list(a.point_key) != list(b.point_key):
        return False
    columns = [c for c in declared.curves + declared.scalars if c in b.columns]
    return all(
        np.array_equal(np.asarray(x, float), np.asarray(y, float), equal_nan=True)
        for col in columns
        for x, y in zip(a[col], b[col], strict=True)
        if not isinstance(x, str)
    )


def _data_params(run) -> dict[str, Any]:
    import json

    return json.loads((run.directory / "case.json").read_text())["data_params"]
