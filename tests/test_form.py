"""The functional-form check (lack of fit of a calibrated form) on synthetic calibrations
with known scatter: passes when the form fits, fails when the scatter is too large or the
form is wrong, keeps its false-alarm rate at the boundary, rejects bad configuration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bounds.core import Bound, LogLinearForm, Source, Term, Tightness
from verify.checks import CHECKS
from verify.checks.form import sd_interval
from verify.checks.framework import Context
from verify.evaluate import _finalise
from verify.schema import CaseError

from .conftest import ROOT, write_case

ALPHA = 0.01
FORM = LogLinearForm(
    name="rate",
    terms=(
        Term("eta", lambda q: q["eta"]),
        Term("tau", lambda q: q["tau"], exponent=None, default=1.0),
    ),
)
GRID = [{"eta": e, "tau": t} for e in (0.01, 0.02, 0.05) for t in (1, 2, 4, 8)]


class Linear(Bound):
    id = "test.linear_rate"
    source = Source("synthetic", "test", "form")
    tightness = Tightness.UPPER_CALIBRATED
    forms = {"rate": FORM}


def calibrate(rng, sd: float, eta_power: float = 1.0):
    obs = [
        3.0 * q["eta"] ** eta_power * q["tau"] ** 0.9 * math.exp(sd * rng.standard_normal())
        for q in GRID
    ]
    return FORM.calibrate(GRID, np.array(obs))


def run_form(calibration, tol: float = 0.2, perturb=None, errors=None):
    ctx = Context(
        "t",
        Linear(),
        [],
        {},
        {},
        {"rate": calibration} if calibration is not None else {},
        errors or {},
        perturb or {},
        ALPHA,
    )
    cfg = {"kind": "form", "quantity": "rate", "max_log_sd": tol}
    (v,) = CHECKS["form"].run(ctx, "rate_form", cfg)
    _finalise([v], ALPHA)
    return v


def test_a_form_that_fits_passes_and_reports_its_scatter(rng):
    v = run_form(calibrate(rng, sd=0.05))
    assert v.status == "pass" and v.counted
    assert v.ci_low < v.observed < v.ci_high and 0.025 < v.observed < 0.1 and v.allowed == 0.2
    assert "on 10 dof" in v.detail  # 12 points, 2 fitted constants


def test_scatter_beyond_the_accepted_one_fails(rng):
    assert run_form(calibrate(rng, sd=0.6)).status == "fail"


def test_a_wrong_form_fails_even_with_little_noise(rng):
    """Rates proportional to eta^2 against a form fixing eta^1: the residuals carry the
    misfit (a factor 5 over the eta range) and the check rejects the form."""
    v = run_form(calibrate(rng, sd=0.02, eta_power=2.0))
    assert v.status == "fail" and v.observed > 0.3


def test_perturbing_the_accepted_scatter_is_a_negative_control(rng):
    cal = calibrate(rng, sd=0.15)
    assert run_form(cal).status == "pass"
    assert run_form(cal, perturb={"form": 0.2}).status == "fail"


def test_false_alarm_rate_at_the_boundary_is_at_most_alpha(rng):
    """Scatter exactly at max_log_sd: the chi-square test rejects in about alpha of trials."""
    trials = 400
    rejected = sum(run_form(calibrate(rng, sd=0.2)).status == "fail" for _ in range(trials))
    assert stats.binomtest(rejected, trials, ALPHA, alternative="greater").pvalue > 0.01


def test_sd_interval_covers_the_true_sd(rng):
    hits = 0
    for _ in range(400):
        x = 0.3 * rng.standard_normal(8)
        lo, hi = sd_interval(float(x.std(ddof=1)), 7)
        hits += lo <= 0.3 <= hi
    assert stats.binomtest(hits, 400, 0.95).pvalue > 0.01


def test_no_calibration_or_no_residual_dof_is_inconclusive(rng):
    assert run_form(None, errors={"rate": "no usable calibration point"}).status == ("inconclusive")
    two = FORM.calibrate(GRID[:2], np.array([0.1, 0.2]))
    v = run_form(two)
    assert v.status == "inconclusive" and "no residual degrees of freedom" in v.detail


def test_case_rejects_a_form_check_of_an_uncalibrated_quantity(tmp_path):
    from verify.case import load

    text = (ROOT / "cases" / "smoke.toml").read_text()
    text = text.replace('quantity = "envelope_rate"', 'quantity = "loss"')
    with pytest.raises(CaseError, match=r"checks\.envelope_form\.quantity: 'loss'.*allowed"):
        load(write_case(tmp_path / "bad.toml", text))
