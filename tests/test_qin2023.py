"""Shifted ReLU and sublinear activated-neuron identification (arXiv:2307.06565): kernel,
sparsity formula, sparse == dense step, the case end to end and its negative controls."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import bounds
from bounds.qin2023 import (
    ITERATIONS_EXPONENT,
    SPARSITY_EXPONENT,
    InitSparsity,
    finite_width_kernel,
    pair_tail_probability,
    shifted_relu_kernel,
    tail_probability,
    threshold,
)
from verify.case import load
from verify.checks import CHECKS
from verify.checks.verdict import FAIL, PASS, PointData
from verify.data import sphere
from verify.evaluate import _finalise, evaluate, point_data
from verify.schema import CaseError
from verify.trainers import shifted_relu as sr

from .conftest import ROOT, context_all_tested, quick_case_run, write_case

BOUND = bounds.get("qin2023.sparse_activation")
INIT = bounds.get("qin2023.init_sparsity")
RATE = bounds.get("qin2023.ntk_rate")
ITERATIONS = bounds.get("qin2023.iteration_bound")
CASE = ROOT / "cases" / "qin2023_sparse_activation.toml"
ITERATIONS_CASE = ROOT / "cases" / "qin2023_iterations.toml"
SMALL = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, global_seed: int):
    """The case in quick mode, trained once (seed shifted by the global seed)."""
    yield from quick_case_run(CASE, tmp_path_factory, global_seed)


# --------------------------------------------------------------------------- the bound
@pytest.mark.parametrize("b", [0.0, 0.7, 1.5, 2.04])
@pytest.mark.parametrize("rho", [-0.999, -0.6, -0.1, 0.0, 0.3, 0.8, 0.999])
def test_pair_tail_probability_matches_the_bivariate_normal_cdf(b, rho):
    exact = stats.multivariate_normal(cov=[[1.0, rho], [rho, 1.0]]).cdf([-b, -b])
    assert pair_tail_probability(b, np.array(rho)) == pytest.approx(exact, abs=2e-6)


def test_pair_tail_probability_limits():
    b = 1.3
    sf = tail_probability(b)
    np.testing.assert_allclose(pair_tail_probability(b, np.array([1.0, 0.0])), [sf, sf**2])
    assert pair_tail_probability(b, np.array(-1.0)) == 0.0


def test_kernel_matches_monte_carlo(rng):
    """``H^b`` is the mean of the finite-width Gram matrix over ``w ~ N(0, I)``."""
    X, _ = sphere(6, 5, rng)
    b = threshold(4096)
    target = shifted_relu_kernel(X, b)
    np.testing.assert_allclose(np.diag(target), tail_probability(b))
    assert np.linalg.eigvalsh(target)[0] > 0
    wide = finite_width_kernel(X, rng.standard_normal((400_000, 5)), b)
    assert np.abs(wide - target).max() < 5 * math.sqrt(tail_probability(b) / 400_000)


@given(st.integers(2, 10**12))
def test_active_fraction_bound_holds_at_every_width(m):
    """``Phi-bar(sqrt(0.4 log m)) <= exp(-b^2 / 2) = m^(-1/5)``."""
    assert tail_probability(threshold(m)) <= m**SPARSITY_EXPONENT * (1 + 1e-12)


def test_active_fraction_formula_and_reference_values(rng):
    assert SPARSITY_EXPONENT == -0.2
    assert tail_probability(threshold(256)) == pytest.approx(0.0682, abs=5e-5)
    assert tail_probability(threshold(16384)) == pytest.approx(0.0244, abs=5e-5)
    X, _ = sphere(4, 8, rng)
    m = 200_000
    b = threshold(m)
    fraction = (X @ rng.standard_normal((m, 8)).T > b).mean()
    assert fraction == pytest.approx(tail_probability(b), abs=4 * math.sqrt(0.02 / (4 * m)))


def test_preconditions_and_predictions():
    params = {"m": 1024, "threshold_coef": 0.4, "lambda_b": 0.03, "eta": 6.0, "n": 16, "d": 16}
    for bound in (INIT, BOUND, RATE):
        assert bound.preconditions(params) == []
    init = INIT.predict(params)
    assert init.get("active_fraction") == pytest.approx(tail_probability(threshold(1024)))
    assert init.get("active_fraction_bound") == pytest.approx(0.25)
    assert init.get("gradient_mismatch") == 0.0
    assert BOUND.predict(params).get("active_count_bound") == pytest.approx(512.0)
    pred = RATE.predict(params)
    assert pred.floor == 0.0 and pred.rate is None  # the rate needs calibration
    assert pred.get("lambda_b") == 0.03
    bad = {
        "threshold_coef": 0.3,
        "input_norm_error": 1e-3,
        "step_margin0": 0.9,
        "lambda_min_H0": 0.01,
        "lambda_b": 0.03,
    }
    assert len(BOUND.preconditions(params | bad)) == len(RATE.preconditions(params | bad)) == 4
    assert len(INIT.preconditions(params | bad)) == 2  # the model's own assumptions only
    assert BOUND.preconditions(params | {"lambda_b": 0.0})
    assert BOUND.requirements(params)["width_gap_at_least"] > 1e3
    with pytest.raises(ValueError, match="m >= 2"):
        threshold(1)


def test_provenance_says_which_claims_are_not_the_papers():
    """The linear rate is labelled as the neighbouring NTK literature's; the paper's own
    statement is the iteration bound; every source names the arXiv version."""
    for bound in (INIT, BOUND, RATE, ITERATIONS):
        assert "arXiv:2307.06565 " in str(bound.source) and "abstract only" in str(bound.source)
    assert "not from this paper" in str(RATE.source) and "1810.02054" in str(RATE.source)
    assert "O(M^2/eps^2)" in str(ITERATIONS.source)
    for bound in (INIT, BOUND):
        assert "2110.04622" in str(bound.source)  # where b and the m^(4/5) count come from


def test_iteration_bound_predictions_and_hypotheses():
    params = {"m": 1024, "threshold_coef": 0.4, "target_loss": 1e-3}
    assert ITERATIONS.preconditions(params) == []
    pred = ITERATIONS.predict(params)
    assert pred.get("iterations_exponent") == ITERATIONS_EXPONENT == -2.0
    assert pred.get("target_reached") == 1.0
    assert ITERATIONS.preconditions(params | {"target_loss": 0.0})
    assert ITERATIONS.preconditions(params | {"step_margin0": 0.5})


# --------------------------------------------------------------------------- the sparse step
@SMALL
@given(
    n=st.integers(1, 6),
    d=st.integers(1, 6),
    m=st.integers(2, 400),
    coef=st.sampled_from([0.0001, 0.1, 0.4, 1.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_sparse_step_equals_dense_step(n, d, m, coef, seed):
    """The index returns exactly the activated pairs, before and after steps, and the
    sparse residual and gradient equal the dense ones."""
    rng = np.random.default_rng(seed)
    X, y = sphere(n, d, rng)
    W = rng.standard_normal((m, d))
    a = rng.choice([-1.0, 1.0], size=m)
    b = threshold(m, coef)
    index = sr.ActiveNeuronIndex(X, W, b)
    for i in range(n):
        assert set(index.initial(i)) == set(np.flatnonzero(X[i] @ W.T > b))
    for _ in range(3):
        residual, rows, grad = sr.sparse_step(index, W, a, y)
        dense_residual, dense_grad, S = sr.dense_step(X, W, a, y, b)
        assert set(rows) == set(np.flatnonzero(S.any(axis=1)))
        full = np.zeros_like(W)
        full[rows] = grad
        np.testing.assert_allclose(residual, dense_residual, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(full, dense_grad, rtol=1e-12, atol=1e-12)
        W[rows] -= 2.0 * grad
        index.update(W)


def test_trainer_logs_and_converges(rng):
    """Reproducibility and divergence: the trainer contract (tests/test_trainer_contract.py)."""
    X, y = sphere(8, 8, rng)
    (out,) = sr.train(X, y, [rng], m=2048, eta=6.0, steps=120)
    assert out.curves["loss"].shape == (121,) == out.curves["active_count"].shape
    assert out.curves["loss"][-1] < 1e-6 * out.curves["loss"][0]
    s = out.scalars
    assert s["diverged_round"] == -1 and s["gradient_mismatch"] < 1e-12
    assert s["trajectory_mismatch"] < 1e-10 and s["step_margin0"] > 1
    assert out.curves["touched"][0] == s["touched_max"] < 2048  # the candidates only shrink
    assert np.all(np.diff(out.curves["touched"]) <= 0)
    with pytest.raises(ValueError, match="variant"):
        sr.train(X, y, [rng], m=64, eta=1.0, steps=2, variant="other")


# --------------------------------------------------------------------------- the case
def test_quick_case_passes_end_to_end(quick_run):
    case, run, *_ = quick_run
    verdicts = run.evaluation.verdicts
    assert not run.evaluation.failed, [v.detail for v in verdicts if v.status == FAIL]
    counted = {v.check for v in verdicts if v.counted and v.status == PASS}
    assert counted == set(case.checks)
    (slope,) = [v for v in verdicts if v.check == "sparsity_exponent"]
    assert slope.ci_high < -0.2  # the fitted exponent is below -1/5 with its CI


def test_report_has_a_figure_per_generic_check(quick_run):
    from reports.figures import case_figures
    from reports.store import load_case

    case, run, *_ = quick_run
    blocks = {b.title: b for b in case_figures(load_case(run.directory))}
    for name, cfg in case.checks.items():
        if cfg["kind"] in ("bound", "scaling"):
            (block,) = [b for t, b in blocks.items() if f": {name} — " in t]
            assert not block.skipped, block.caption


def checks_on(case, pts, names, bound=None):
    """Run the named checks of the case on point data (every point tested), each against
    ``bound`` or, by default, the bound the case file assigns it."""
    out = []
    for name in names:
        cfg = case.checks[name]
        own = bounds.get(cfg["bound"] or case.bounds[0])
        ctx = context_all_tested(case.name, bound or own, pts, case.false_alarm)
        out += CHECKS[cfg["kind"]].run(ctx, name, cfg)
    _finalise(out, case.false_alarm)
    return out


def test_wrong_exponent_fails(quick_run):
    """A bound m^(-1/2) instead of m^(-1/5): the CLI perturbation and a wrong bound fail."""
    case, _, points, results, data_params = quick_run
    ev = evaluate(case, points, results, data_params, {"active_fraction_exponent": 2.5})
    assert ev.failed
    (slope,) = [v for v in ev.verdicts if v.check == "sparsity_exponent"]
    assert slope.status == FAIL and slope.predicted == pytest.approx(-0.5)

    class HalfExponent(InitSparsity):
        def prediction_from(self, params, values, calibrated):
            pred = super().prediction_from(params, values, calibrated)
            pred.extra["active_fraction_bound"] = params["m"] ** -0.5
            pred.extra["active_fraction_exponent"] = -0.5
            return pred

    pdata = point_data(case, points, results, data_params)
    verdicts = checks_on(case, pdata, ["sparsity_bound", "sparsity_exponent"], HalfExponent())
    assert all(v.status == FAIL for v in verdicts if v.check == "sparsity_exponent")
    assert sum(v.status == FAIL for v in verdicts if v.check == "sparsity_bound") >= 6


def test_sparsity_claims_do_not_inherit_the_convergence_hypotheses(quick_run):
    """A width whose kernel at initialisation is too far from lambda_b is outside the
    convergence analysis (rate, active count during training) but the sparsity at
    initialisation and the exact sparse step are still tested there."""
    case, _, points, results, data_params = quick_run
    pdata = point_data(case, points, results, data_params)
    for pt in pdata:
        pt.params["lambda_min_H0"] = 1e-6  # every width fails the kernel hypothesis
    init = INIT
    assert init.preconditions(pdata[0].params) == [] and BOUND.preconditions(pdata[0].params)
    names = ["sparse_gradient", "sparsity_bound"]
    tested = checks_on(case, pdata, names, init)
    screened = checks_on(case, pdata, names, BOUND)
    assert tested and all(v.status == PASS and v.counted for v in tested)
    assert all(v.status == "outside-hypotheses" and not v.counted for v in screened)
    with pytest.raises(CaseError, match=r"checks\.rate\.bound: 'qin2023\.nope'"):
        load(
            write_case(
                case.path.parent / "bad.toml",
                CASE.read_text().replace(
                    '[checks.rate]\nbound = "qin2023.ntk_rate"',
                    '[checks.rate]\nbound = "qin2023.nope"',
                ),
            )
        )


def test_too_small_active_count_bound_fails(quick_run):
    case, _, points, results, data_params = quick_run
    ev = evaluate(case, points, results, data_params, {"active_count_bound": 0.05})
    counts = [v for v in ev.verdicts if v.check == "active_count"]
    assert ev.failed and all(v.status == FAIL for v in counts)


def broken_points(case, changes, variant: str, seed: int) -> list[PointData]:
    """Grid points ``case.base | change`` trained by a broken variant, 3 repetitions each,
    on the case's kind of data (16 points in d = 16)."""
    X, y = sphere(16, 16, np.random.default_rng(seed))
    pts = []
    for i, change in enumerate(changes):
        params = case.base | change
        rngs = [np.random.default_rng([seed, i, r]) for r in range(3)]
        out = sr.run(params, X, y, rngs, variant=variant)
        curves = {k: np.stack([o.curves[k] for o in out]) for k in out[0].curves}
        scalars = {k: np.array([o.scalars[k] for o in out]) for k in out[0].scalars}
        label = ", ".join(f"{k}={v}" for k, v in change.items())
        pt = PointData(f"p{i}", label, params | sr.data_params(X, y), curves, scalars, {})
        pt.cache["grid_keys"] = set(case.trainer.grid_keys)
        pts.append(pt)
    return pts


def test_trainer_dropping_activated_neurons_fails(global_seed):
    """A query that loses activated neurons: the sparse step is no longer the dense one,
    the trajectories part and the loss stalls."""
    case = load(CASE)
    changes = [{"m": m, "steps": 120} for m in (512, 2048)]
    pts = broken_points(case, changes, "drop_active", global_seed)
    verdicts = checks_on(case, pts, ["sparse_gradient", "sparse_trajectory", "floor"])
    assert {v.check for v in verdicts} == {"sparse_gradient", "sparse_trajectory", "floor"}
    assert all(v.status == FAIL for v in verdicts), [(v.check, v.status) for v in verdicts]


def test_too_fast_rate_fails(quick_run):
    """The calibrated rate can fail: a decay six times the calibrated prediction fails on
    held-out widths (quick mode: three repetitions, and on some seeds a calibration scatter
    of 0.2 that widens the prediction interval; the full case detects a factor 2)."""
    case, _, points, results, data_params = quick_run
    truth = evaluate(case, points, results, data_params)
    ev = evaluate(case, points, results, data_params, {"rate": 6.0})
    rates = [v for v in ev.verdicts if v.check == "rate" and v.role == "held-out"]
    before = [v for v in truth.verdicts if v.check == "rate" and v.role == "held-out"]
    assert ev.failed and any(v.status == FAIL for v in rates)
    assert all(v.status != FAIL for v in before)
    assert all(a.p_value < b.p_value for a, b in zip(rates, before, strict=True) if a.counted)


def test_mutate_applies_its_own_mutants_and_a_wrong_claim_per_check(quick_run):
    """``verify mutate`` on this case runs the mutants that mean something here (the
    broken activated-neuron query, not the masked trainer's), and one wrong claim per
    bound/scaling check; each is caught, or is identical to the truth (an upper bound of
    0 on the sparse-vs-dense mismatch cannot be made 10x smaller)."""
    from verify.mutants import claim_mutants, mutants_for, mutate

    case, run, *_ = quick_run
    names = {m.name for m in mutants_for(case)}
    assert "drop_active" in names and not names & {"no_averaging", "trend_reversed"}
    claims = [m.name for m in claim_mutants(case)]
    kinds = ("bound", "scaling")
    assert claims == [f"{c}_wrong" for c, cfg in case.checks.items() if cfg["kind"] in kinds]
    results = {r.mutant.name: r for r in mutate(case, run.directory.parent, claims)}
    assert not [n for n, r in results.items() if r.missed], results
    assert results["sparse_gradient_wrong"].equivalent
    assert results["sparsity_bound_wrong"].caught and results["active_count_wrong"].caught


# --------------------------------------------------------------------------- the paper's bound
@pytest.fixture(scope="module")
def iterations_run(tmp_path_factory: pytest.TempPathFactory, global_seed: int):
    """The iteration-bound case in quick mode, trained once."""
    yield from quick_case_run(ITERATIONS_CASE, tmp_path_factory, global_seed)


def test_trainer_stops_at_the_target_loss(rng):
    X, y = sphere(8, 8, rng)
    (full,) = sr.train(X, y, [np.random.default_rng(3)], m=1024, eta=6.0, steps=150)
    (stop,) = sr.train(
        X, y, [np.random.default_rng(3)], m=1024, eta=6.0, steps=150, target_loss=1e-4
    )
    t = int(stop.scalars["steps_to_target"])
    loss = full.curves["loss"]
    assert t == int(np.flatnonzero(loss <= 1e-4)[0]) and stop.scalars["target_reached"] == 1
    np.testing.assert_array_equal(stop.curves["loss"][: t + 1], loss[: t + 1])
    assert np.isnan(stop.curves["loss"][t + 1 :]).all()
    assert stop.scalars["cost_to_target"] == full.curves["touched"][:t].sum()
    assert full.scalars["target_reached"] == 0 and math.isnan(full.scalars["steps_to_target"])
    (short,) = sr.train(X, y, [rng], m=1024, eta=6.0, steps=3, target_loss=1e-9)
    assert short.scalars["target_reached"] == 0 and math.isnan(short.scalars["cost_to_target"])


def test_iteration_case_passes_with_a_slope_far_above_minus_two(iterations_run):
    """Lazy GD reaches eps in ~log(1/eps) iterations: slopes near -0.15, far above -2."""
    case, run, *_ = iterations_run
    verdicts = run.evaluation.verdicts
    assert not run.evaluation.failed, [v.detail for v in verdicts if v.status == FAIL]
    slopes = [v for v in verdicts if v.check in ("iterations", "cost")]
    assert len(slopes) == 4 and all(v.status == PASS and v.counted for v in slopes)
    assert all(-1.0 < v.observed < 0 for v in slopes), [v.observed for v in slopes]


def test_too_steep_exponent_claim_fails(iterations_run):
    """Claiming iterations grow no faster than eps^(-0.1) fails: the growth is measurable."""
    case, _, points, results, data_params = iterations_run
    ev = evaluate(case, points, results, data_params, {"iterations_exponent": 0.05})
    slopes = [v for v in ev.verdicts if v.check == "iterations"]
    assert ev.failed and all(v.status == FAIL for v in slopes)


def test_sublinear_method_fails_the_iteration_bound(global_seed):
    """GD with the decaying step eta / (t + 1): the loss falls like a small power of t, so
    small eps are out of reach within the budget and the reached eps cost more than 1/eps^2."""
    case = load(ITERATIONS_CASE)
    changes = [{"m": 1024, "target_loss": eps} for eps in (1e-1, 1e-2, 1e-3, 1e-4)]
    pts = broken_points(case, changes, "decaying_step", global_seed)
    verdicts = checks_on(case, pts, ["reached", "iterations"])
    assert any(v.status == FAIL for v in verdicts), [(v.check, v.status) for v in verdicts]
    X, y = sphere(16, 16, np.random.default_rng(global_seed))
    exact = [sr.run(p.params, X, y, [np.random.default_rng(0)])[0] for p in pts]
    assert all(o.scalars["target_reached"] == 1 for o in exact)  # the true GD reaches them all
