"""The generic ``bound`` and ``scaling`` checks on synthetic data with known truth.

Each check passes on the true claim, fails on a wrong one (negative controls), keeps its
false-alarm rate at the boundary of the claim, and rejects bad configuration.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bounds.core import Bound, Prediction, Source, Tightness
from verify.case import _validate_checks
from verify.checks import CHECKS
from verify.checks.verdict import PointData
from verify.evaluate import _finalise
from verify.schema import CaseError

from .conftest import context_all_tested

ALPHA = 0.01


class PowerLaw(Bound):
    """Predicts ``count <= 2 m^(4/5)``, ``fraction = m^exponent`` and the exponent itself."""

    id = "test.power_law"
    source = Source("synthetic", "test", "exact")
    tightness = Tightness.UPPER_EXACT

    def __init__(self, exponent: float = -0.2) -> None:
        self.exponent = exponent

    def predict(self, params, calibration=None) -> Prediction:
        m = params["m"]
        return Prediction(
            extra={
                "count_bound": 2 * m**0.8,
                "fraction": m**self.exponent,
                "fraction_exponent": self.exponent,
            }
        )


def make_points(rng, widths=(256, 1024, 4096, 16384), reps=6, slope=-0.2, noise=0.05, scale=1.0):
    points = []
    for m in widths:
        fraction = scale * m**slope * np.exp(noise * rng.standard_normal(reps))
        count = m**0.8 * (1 + 0.1 * rng.random((reps, 20)))  # a curve over 20 steps
        points.append(
            PointData(
                key=f"m{m}",
                label=f"m={m}",
                params={"m": m},
                curves={"count": count},
                scalars={"fraction": fraction},
                cache={"grid_keys": {"m"}},
            )
        )
    return points


def run_check(points, cfg, bound=None, perturb=None):
    bound = bound or PowerLaw()
    ctx = context_all_tested("synthetic", bound, points, ALPHA, perturb)
    ((name, full),) = _validate_checks({"c": cfg}).items()
    verdicts = CHECKS[full["kind"]].run(ctx, name, full)
    _finalise(verdicts, ALPHA)
    return verdicts


COUNT = {"kind": "bound", "statistic": "count", "reduce": "max", "quantity": "count_bound"}
FRACTION = {"kind": "bound", "statistic": "fraction", "relation": "==", "rtol": 0.1}
SLOPE = {
    "kind": "scaling",
    "statistic": "fraction",
    "parameter": "m",
    "quantity": "fraction_exponent",
}


def statuses(verdicts):
    return [v.status for v in verdicts]


def test_bound_every_step_passes_and_fails_when_the_bound_is_too_small(rng):
    points = make_points(rng)
    cfg = COUNT | {"aggregate": "every"}
    assert set(statuses(run_check(points, cfg))) == {"pass"}
    assert set(statuses(run_check(points, cfg, perturb={"count_bound": 0.5}))) == {"fail"}


def test_bound_every_fails_on_a_single_violating_repetition(rng):
    points = make_points(rng)
    points[2].curves["count"][3, 7] = 3 * points[2].params["m"] ** 0.8
    verdicts = run_check(points, COUNT | {"aggregate": "every"})
    assert statuses(verdicts) == ["pass", "pass", "fail", "pass"]
    assert "rep 3" in verdicts[2].detail


def test_bound_equality_within_tolerance(rng):
    points = make_points(rng)
    assert set(statuses(run_check(points, FRACTION))) == {"pass"}
    off = make_points(rng, scale=1.3)  # 30 % above the prediction, tolerance 10 %
    assert set(statuses(run_check(off, FRACTION))) == {"fail"}
    below = make_points(rng, scale=0.7)
    assert set(statuses(run_check(below, FRACTION))) == {"fail"}


def test_bound_reports_evidence(rng):
    v = run_check(make_points(rng), FRACTION)[0]
    assert v.ci_low <= v.observed <= v.ci_high
    assert v.predicted == pytest.approx(256**-0.2)
    assert v.allowed == pytest.approx(1.1 * 256**-0.2)
    assert 0 <= v.p_value <= 1 and v.p_adjusted >= v.p_value


def test_scaling_passes_on_the_true_exponent_and_fails_on_a_wrong_one(rng):
    points = make_points(rng, slope=-0.23)
    (v,) = run_check(points, SLOPE)
    assert v.status == "pass" and v.ci_low < -0.23 < v.ci_high
    # the bound claims m^(-1/2): the observed -0.23 is significantly slower
    (wrong,) = run_check(points, SLOPE, bound=PowerLaw(-0.5))
    assert wrong.status == "fail"
    (perturbed,) = run_check(points, SLOPE, perturb={"fraction_exponent": 2.5})
    assert perturbed.status == "fail"


def test_scaling_equality_with_margin(rng):
    flat = make_points(rng, slope=0.0)
    cfg = SLOPE | {"relation": "==", "margin": 0.1}
    (v,) = run_check(flat, cfg, bound=PowerLaw(0.0))
    assert v.status == "pass"
    (lazy,) = run_check(make_points(rng, slope=-0.5), cfg, bound=PowerLaw(0.0))
    assert lazy.status == "fail"
    (up,) = run_check(make_points(rng, slope=0.5), cfg, bound=PowerLaw(0.0))
    assert up.status == "fail"


def test_scaling_groups_by_the_other_grid_parameters(rng):
    points = make_points(rng)
    other = make_points(rng, slope=-0.6)
    for pt in other:
        pt.key += "g"
        pt.params["gamma"] = 0.5
        pt.cache["grid_keys"] = {"m", "gamma"}
    for pt in points:
        pt.params["gamma"] = 1.0
        pt.cache["grid_keys"] = {"m", "gamma"}
    verdicts = run_check(points + other, SLOPE | {"relation": "==", "margin": 0.1})
    assert {v.params["gamma"]: v.status for v in verdicts} == {0.5: "fail", 1.0: "pass"}


def test_false_alarm_rate_at_the_boundary_of_the_claim_is_at_most_alpha(rng):
    """Data exactly on the claimed bound: each check rejects in at most ~alpha of trials."""
    trials, rejections = 400, {"bound": 0, "scaling": 0}
    cfg_bound = {"kind": "bound", "statistic": "fraction", "quantity": "fraction"}
    for _ in range(trials):
        points = make_points(rng, widths=(256, 4096), reps=5, noise=0.2)
        # mean of exp(noise Z) is exp(noise^2/2): put the mean exactly on the bound
        for pt in points:
            pt.scalars["fraction"] /= math.exp(0.2**2 / 2)
        rejections["bound"] += run_check(points[:1], cfg_bound)[0].status == "fail"
        rejections["scaling"] += run_check(points, SLOPE)[0].status == "fail"
    # binomial(400, 0.01): P(X > 10) < 0.01
    assert rejections["bound"] <= 10 and rejections["scaling"] <= 10, rejections


def test_missing_outputs_and_predictions_are_inconclusive_with_a_reason(rng):
    points = make_points(rng)
    v = run_check(points, {"kind": "bound", "statistic": "nope"})[0]
    assert v.status == "inconclusive" and "no output 'nope'" in v.detail
    v = run_check(points, {"kind": "bound", "statistic": "count"})[0]
    assert v.status == "inconclusive" and "reduce" in v.detail
    v = run_check(points, {"kind": "bound", "statistic": "fraction", "quantity": "x"})[0]
    assert v.status == "inconclusive" and "does not predict 'x'" in v.detail


@pytest.mark.parametrize(
    "cfg, message",
    [
        (
            {"kind": "scaling", "statistic": "a", "quantity": "b"},
            r"required key\(s\) missing: \[.parameter.\]",
        ),
        ({"kind": "bound", "statistic": "a", "relation": "<"}, "is not one of"),
        ({"kind": "bound", "statistic": "a", "rtol": -1.0}, "out of range"),
        ({"kind": "bound", "statistic": "a", "reduce": "median"}, "is not one of"),
    ],
)
def test_bad_check_configuration_is_rejected(cfg, message):
    with pytest.raises(CaseError, match=message):
        _validate_checks({"c": cfg})


def test_generated_exponent_mutant_strengthens_a_one_sided_claim():
    """'slope >= -2' must become a claim the data can contradict (>= +0.5), not the weaker
    '>= -5'; a two-sided '==' claim is scaled by 2.5."""
    from verify.case import load
    from verify.mutants import claim_mutants

    from .conftest import ROOT

    mutants = {m.name: m for m in claim_mutants(load(ROOT / "cases/qin2023_iterations.toml"))}
    assert mutants["iterations_wrong"].perturb == {"iterations_exponent": -0.25}
    width = {m.name: m for m in claim_mutants(load(ROOT / "cases/liao2022_ist_width.toml"))}
    assert width["floor_width_wrong"].perturb == {"floor_m_exponent": 2.5}
