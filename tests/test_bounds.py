import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bounds
from bounds import liao2022
from bounds.core import CalibratedForm
from bounds.ntk import finite_width_gram, h_infinity, lambda0, theta
from bounds.strategies import masked_params, unit_sphere_data

FAST = settings(max_examples=40, deadline=None)


def default_calibration(form) -> CalibratedForm:
    """A form with its default exponents and C = 1 (the signs the theorem fixes)."""
    exps = tuple(t.exponent if t.exponent is not None else t.default for t in form.terms)
    return CalibratedForm(form, 0.0, exps, (), math.nan, 0, np.zeros((0, 0)), 0, ())


def test_registry_lists_the_flagship_bounds():
    ids = set(bounds.registry())
    assert {
        "liao2022.theorem1",
        "liao2022.dropout",
        "liao2022.multisample_dropout",
        "liao2022.ist",
    } <= ids
    for b in bounds.registry().values():
        assert b.source.paper and b.tightness
    with pytest.raises(KeyError, match="unknown bound id"):
        bounds.get("liao2022.nonexistent")


@FAST
@given(masked_params())
def test_valid_params_satisfy_the_theorem_and_predict_a_contraction(params):
    theorem = bounds.get("liao2022.theorem1")
    assert theorem.preconditions(params) == []
    cal = {q: default_calibration(f) for q, f in theorem.forms.items()}
    pred = theorem.predict(params, cal)
    assert 0 < pred.rate < 1
    assert pred.floor >= 0


@FAST
@given(masked_params(), st.integers(1, 8), st.integers(1, 8))
def test_floor_nonincreasing_in_p_and_nondecreasing_in_tau(params, dp, dtau):
    cal = default_calibration(liao2022.FLOOR_FORM)
    base = cal.predict(params)
    assert cal.predict({**params, "p": params["p"] + dp}) <= base
    assert cal.predict({**params, "tau": params["tau"] + dtau}) >= base


@FAST
@given(masked_params(p=st.just(1)))
def test_dropout_is_theorem1_at_p_equal_1(params):
    cal = {q: default_calibration(f) for q, f in liao2022.Theorem1.forms.items()}
    assert bounds.get("liao2022.dropout").predict(params, cal) == bounds.get(
        "liao2022.theorem1"
    ).predict(params, cal)
    assert bounds.get("liao2022.dropout").preconditions(params) == []
    assert bounds.get("liao2022.dropout").preconditions({**params, "p": 2})


@FAST
@given(masked_params(tau=st.just(1)))
def test_multisample_dropout_is_theorem1_at_tau_equal_1(params):
    cal = {q: default_calibration(f) for q, f in liao2022.Theorem1.forms.items()}
    ms = bounds.get("liao2022.multisample_dropout")
    assert ms.predict(params, cal) == bounds.get("liao2022.theorem1").predict(params, cal)
    assert ms.preconditions({**params, "tau": 2})


@FAST
@given(masked_params(scheme="partition"))
def test_ist_is_its_own_bound_with_theta_one(params):
    ist = bounds.get("liao2022.ist")
    assert ist.applies(params) and not bounds.get("liao2022.theorem1").applies(params)
    assert liao2022._theta(params) == 1.0
    assert ist.forms["floor"] is not liao2022.Theorem1.forms["floor"]
    assert default_calibration(ist.forms["floor"]).predict({**params, "p": 1}) == 0.0


def test_theta_is_probability_of_being_held():
    rng = np.random.default_rng(0)
    held = (rng.random((20000, 3)) < 0.3).any(axis=1).mean()
    assert abs(held - theta(0.3, 3)) < 0.01
    assert theta(1.0, 5) == 1.0


def test_h_infinity_closed_form_matches_monte_carlo_with_shrinking_error():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    H = h_infinity(X)
    errors = []
    for m in (500, 8000, 128000):
        W = rng.standard_normal((m, 4))
        errors.append(np.abs(finite_width_gram(X, W) - H).max())
        assert errors[-1] < 4.0 / math.sqrt(m)
    assert errors[-1] < errors[0]
    assert (
        abs(
            np.linalg.eigvalsh(finite_width_gram(X, rng.standard_normal((128000, 4))))[0]
            - lambda0(X)
        )
        < 4.0 / math.sqrt(128000) * 6
    )


@FAST
@given(unit_sphere_data())
def test_h_infinity_is_psd_with_half_diagonal(data):
    X, _ = data
    H = h_infinity(X)
    np.testing.assert_allclose(np.diag(H), 0.5)
    assert np.linalg.eigvalsh(H)[0] > -1e-12


def test_preconditions_reject_what_the_paper_excludes():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((8, 4))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    params = dict(
        bounds.ntk.data_params(X, rng.uniform(-1, 1, 8)),
        xi=0.5,
        p=2,
        tau=1,
        eta=0.01,
        kappa=1.0,
        m=1000,
        scheme="bernoulli",
    )
    theorem = bounds.get("liao2022.theorem1")
    assert theorem.preconditions(params) == []
    assert any("step size" in v for v in theorem.preconditions({**params, "eta": 10.0}))
    assert any("lambda0" in v for v in theorem.preconditions({**params, "lambda0": 0.0}))
    assert any("unit norm" in v for v in theorem.preconditions({**params, "input_norm_error": 0.1}))
    assert any(
        "finite-width" in v
        for v in theorem.preconditions({**params, "lambda_min_H0": params["lambda0"] / 10})
    )
    req = theorem.requirements(params)
    assert req["width_gap_at_least"] > 1  # honest: feasible widths are below the requirement


def test_calibration_recovers_a_known_power_law_and_predicts_held_out(rng):
    form = liao2022.FLOOR_FORM
    pts = [
        dict(kappa=1.0, xi=xi, p=p, tau=t, eta=0.05, m=1000, scheme="bernoulli")
        for xi in (0.25, 0.5, 0.75)
        for p in (1, 2, 4, 8)
        for t in (1, 2, 4)
    ]
    true = np.array(
        [3.0 * ((1 - q["xi"]) / q["xi"]) ** 0.8 * q["p"] ** -0.6 * q["tau"] ** 0.4 for q in pts]
    )
    noisy = true * np.exp(0.05 * rng.standard_normal(true.size))
    cal = form.calibrate(pts[::2], noisy[::2])
    exps = dict(zip([t.name for t in form.terms], cal.exponents, strict=True))
    assert abs(exps["p"] + 0.6) < 0.1 and abs(exps["tau"] - 0.4) < 0.1
    for q, v in zip(pts[1::2], true[1::2], strict=True):
        assert cal.limit(q, 0.01, "lower") < v < cal.limit(q, 0.01, "upper")


def test_calibration_fits_one_constant_per_initialisation_group(rng):
    """Common random numbers: all points of a width share one initial network per
    repetition, so their constant shifts together; a per-group constant removes the shift
    from the residuals and the held-out prediction follows its own group."""
    from bounds.core import LogLinearForm, Term

    form = LogLinearForm(
        "floor", (Term("p", lambda q: q["p"], None), Term("tau", lambda q: q["tau"]))
    )
    pts = [
        dict(kappa=1.0, xi=xi, p=p, tau=t, eta=0.05, m=m, scheme="bernoulli")
        for m in (1000, 4000)
        for xi in (0.25, 0.5, 0.75)
        for p in (1, 2, 4, 8)
        for t in (1, 2, 4)
    ]
    shift = {1000: 0.7, 4000: 1.4}
    true = np.array([shift[q["m"]] * q["p"] ** -0.6 * q["tau"] for q in pts])
    noisy = true * np.exp(0.02 * rng.standard_normal(true.size))
    pooled = form.calibrate(pts[::2], noisy[::2])
    grouped = form.calibrate(pts[::2], noisy[::2], group_keys=("m", "kappa"))
    assert grouped.sigma < 0.05 < pooled.sigma
    consts = grouped.describe()["init_group_constants"]
    assert consts["m=4000, kappa=1.0"] / consts["m=1000, kappa=1.0"] == pytest.approx(2.0, rel=0.05)
    for q, v in zip(pts[1::2], true[1::2], strict=True):
        assert grouped.predict(q) == pytest.approx(v, rel=0.08)
    unseen = dict(pts[0], m=16000)
    assert grouped.log_se(unseen) > 3 * grouped.log_se(pts[0])
