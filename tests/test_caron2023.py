"""Asymmetrical node scaling (arXiv:2302.01002): scalings, kernel, trainer, case and controls."""

from __future__ import annotations

import numpy as np
import pytest

import bounds
from bounds.caron2023 import node_scalings, theta_infinity
from verify.case import load
from verify.checks import CHECKS
from verify.checks.verdict import FAIL, PASS, PointData
from verify.data import sphere
from verify.evaluate import _finalise, evaluate, point_data
from verify.trainers import node_scaling as ns

from .conftest import ROOT, context_all_tested, quick_case_run

BOUND = bounds.get("caron2023.node_scaling")
CASE = ROOT / "cases" / "caron2023_node_scaling.toml"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory, global_seed: int):
    """The case in quick mode, trained once (seed shifted by the global seed)."""
    yield from quick_case_run(CASE, tmp_path_factory, global_seed)


# --------------------------------------------------------------------------- model
@pytest.mark.parametrize("m", [1, 7, 250, 4000])
@pytest.mark.parametrize("gamma", [1.0, 0.5, 0.2, 1e-3])
@pytest.mark.parametrize("alpha", [0.5, 1.0, 3.0])
def test_node_scalings_sum_to_one_and_decrease(m, gamma, alpha):
    lam = node_scalings(m, gamma, alpha)
    assert lam.shape == (m,) and np.all(lam > 0)
    np.testing.assert_allclose(lam.sum(), 1.0, rtol=1e-12)
    assert np.all(np.diff(lam) <= 1e-15)
    if gamma == 1.0:
        np.testing.assert_allclose(lam, 1.0 / m)
    assert lam.min() >= gamma / m * (1 - 1e-12)


@pytest.mark.parametrize(("m", "gamma", "alpha"), [(0, 1.0, 0.5), (5, 0.0, 0.5), (5, 1.5, 0.5)])
def test_node_scalings_reject_bad_input(m, gamma, alpha):
    with pytest.raises(ValueError, match="gamma in"):
        node_scalings(m, gamma, alpha)


def test_kernel_is_the_gram_matrix_of_the_output_jacobian(rng):
    X, _ = sphere(5, 4, rng)
    lam = node_scalings(7, 0.3, 0.5)
    (W,), (a,) = ns.init_weights([rng], 7, 4, 2.0)
    _, _, S = ns.forward(X, W[None], (np.sqrt(lam) * a)[None])
    # du_i / dw_j = sqrt(lambda_j) a_j 1{w_j.x_i >= 0} x_i / sqrt(d)
    J = (np.sqrt(lam) * a)[None, :, None] * S[0].T[:, :, None] * X[:, None, :] / 2.0
    J = J.reshape(5, -1)
    np.testing.assert_allclose(ns.kernel(X, S, lam)[0], J @ J.T, atol=1e-14)


def test_analytic_kernel_matches_a_wide_network(rng):
    """``Theta_inf = H_inf / d`` for w ~ N(0, 2 I) and unit-norm inputs, at every gamma."""
    X, _ = sphere(6, 5, rng)
    target = theta_infinity(X)
    m = 200_000
    W = rng.normal(scale=np.sqrt(2.0), size=(1, m, 5))
    S = (W @ X.T >= 0).astype(float)
    wide = ns.kernel(X, S, node_scalings(m, 1.0, 0.5))[0]
    assert np.linalg.norm(wide - target) / np.linalg.norm(target) < 0.01
    # gamma < 1: a single draw stays random, but its mean over initialisations is Theta_inf
    W = rng.normal(scale=np.sqrt(2.0), size=(2000, 40, 5))
    S = (W @ X.T >= 0).astype(float)
    draws = ns.kernel(X, S, node_scalings(40, 0.3, 0.5))
    single = np.linalg.norm(draws - target, axis=(1, 2)) / np.linalg.norm(target)
    assert np.median(single) > 0.15
    assert np.linalg.norm(draws.mean(axis=0) - target) / np.linalg.norm(target) < 0.03


def test_gradient_matches_finite_differences(rng):
    X, y = sphere(5, 4, rng)
    lam = node_scalings(6, 0.4, 0.5)
    W, a = ns.init_weights([rng, rng], 6, 4, 2.0)
    coef = np.sqrt(lam)[None] * a

    def loss(V):
        u, _, _ = ns.forward(X, V, coef)
        return 0.5 * np.sum((u - y) ** 2, axis=1)

    u, _, S = ns.forward(X, W, coef)
    grad = ns.gradient(X, S, coef, u - y)
    np.testing.assert_allclose(grad, numeric_gradient(loss, W), rtol=1e-6, atol=1e-9)


def numeric_gradient(loss, W: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of ``loss`` (one value per repetition) in every entry of
    ``W (R, m, d)``."""
    numeric = np.zeros_like(W)
    for idx in np.ndindex(W.shape[1:]):
        E = np.zeros_like(W)
        E[(slice(None), *idx)] = eps
        numeric[(slice(None), *idx)] = (loss(W + E) - loss(W - E)) / (2 * eps)
    return numeric


def train_small(rngs, **overrides):
    X, y = sphere(8, 8, np.random.default_rng(1))
    params = dict(
        m=300,
        gamma=0.5,
        alpha=0.5,
        init_variance=2.0,
        top_k=5,
        eta=4.0,
        steps=300,
        log_every=3,
        prune_fraction=0.9,
    )
    return ns.train(X, y, rngs, **(params | overrides))


def test_trainer_converges_and_logs(rng):
    """Reproducibility and divergence: the trainer contract (tests/test_trainer_contract.py)."""
    out = train_small([rng, rng])
    for o in out:
        assert o.curves["loss"].shape == (101,) == o.curves["kernel_lambda_min"].shape
        assert o.curves["loss"][-1] < 1e-4 * o.curves["loss"][0]
        assert o.scalars["diverged_round"] == -1
        assert o.scalars["top_movement"] <= o.scalars["max_movement"]
        assert 0 < o.scalars["worst_decay"] and 0 <= o.scalars["pruned_risk"]
        assert o.scalars["step_margin0"] > 1
    with pytest.raises(ValueError, match="variant"):
        train_small([rng], variant="other")


def test_bound_preconditions_and_predictions():
    params = {"gamma": 0.5, "alpha": 0.5, "lambda0": 0.01, "eta": 8.0, "n": 16, "d": 16}
    assert BOUND.preconditions(params) == []
    pred = BOUND.predict(params)
    assert pred.get("kernel_lower") == pytest.approx(0.0025)
    assert pred.get("movement_exponent") == 0.0 == pred.get("concentration_exponent")
    assert pred.floor == 0.0 and pred.rate is None  # the rate needs calibration
    sym = BOUND.predict(params | {"gamma": 1.0})
    assert sym.get("movement_exponent") == -0.5 and sym.get("pruned_risk") == 1.0
    bad = BOUND.preconditions(
        params | {"gamma": 1.5, "step_margin0": 0.8, "lambda_min_sym0": 0.001}
    )
    assert len(bad) == 3
    assert BOUND.requirements(params | {"m": 1000})["width_gap_at_least"] > 1


# --------------------------------------------------------------------------- the case
def test_quick_case_passes_end_to_end(quick_run):
    case, run, *_ = quick_run
    verdicts = run.evaluation.verdicts
    assert not run.evaluation.failed, [v.detail for v in verdicts if v.status == FAIL]
    counted = {v.check for v in verdicts if v.counted and v.status == PASS}
    assert counted == set(case.checks)
    movement = [v for v in verdicts if v.check == "movement"]
    assert len(movement) == 3  # one slope per gamma


def test_report_has_a_figure_per_generic_check(quick_run):
    """The generic checks get their own figures: observed vs predicted per ``bound`` check,
    log-log data and slope intervals per ``scaling`` check."""
    from reports.figures import case_figures
    from reports.store import load_case

    case, run, *_ = quick_run
    blocks = {b.title: b for b in case_figures(load_case(run.directory))}
    for name, cfg in case.checks.items():
        if cfg["kind"] in ("bound", "scaling"):
            (block,) = [b for t, b in blocks.items() if f": {name} — " in t]
            assert not block.skipped, block.caption


def test_perturbed_kernel_bound_fails(quick_run):
    case, _, points, results, data_params = quick_run
    ev = evaluate(case, points, results, data_params, {"kernel_lower": 10.0})
    assert ev.failed
    kernel = [v for v in ev.verdicts if v.check == "kernel"]
    assert kernel and all(v.status == FAIL for v in kernel)


def scaling_verdicts(case, pts, check):
    ctx = context_all_tested(case.name, BOUND, pts, case.false_alarm)
    out = CHECKS["scaling"].run(ctx, check, case.checks[check])
    _finalise(out, case.false_alarm)
    return out


def test_symmetric_model_labelled_asymmetric_fails_the_movement_check(quick_run):
    case, _, points, results, data_params = quick_run
    pdata = [pt for pt in point_data(case, points, results, data_params) if pt.params["gamma"] == 1]
    (true,) = scaling_verdicts(case, pdata, "movement")
    assert true.status == PASS
    for pt in pdata:
        pt.params["gamma"] = 0.5
    (relabelled,) = scaling_verdicts(case, pdata, "movement")
    assert relabelled.status == FAIL and relabelled.predicted == 0.0
    assert relabelled.ci_high < -0.3


def test_trainer_ignoring_the_scalings_fails(global_seed):
    """A gradient that uses ``1/sqrt(m)`` for every node keeps gamma < 1 in the lazy regime."""
    case = load(CASE)
    X, y = sphere(16, 16, np.random.default_rng(global_seed))
    pts = []
    for m in (250, 1000, 4000):
        params = case.base | {"m": m, "gamma": 0.2, "steps": 150}
        rngs = [np.random.default_rng([global_seed, m, r]) for r in range(3)]
        out = ns.run(params, X, y, rngs, variant="unscaled_gradient")
        scalars = {k: np.array([o.scalars[k] for o in out]) for k in out[0].scalars}
        pts.append(PointData(f"m{m}", f"m={m}", params | ns.data_params(X, y), {}, scalars, {}))
    for pt in pts:
        pt.cache["grid_keys"] = set(case.trainer.grid_keys)
    (v,) = scaling_verdicts(case, pts, "top_movement")
    assert v.status == FAIL and v.observed < -0.3


def test_mutate_catches_a_wrong_claim_per_check(quick_run):
    """One wrong claim per bound/scaling check (a lower bound 10x too large, an exponent
    2.5x too large) is caught by ``verify mutate``.  A pruned risk 1.5x off needs the full
    case's repetitions (caught there at 3 points); quick mode only runs it."""
    from verify.mutants import claim_mutants, mutants_for, mutate

    case, run, *_ = quick_run
    names = {m.name for m in mutants_for(case)}
    assert "unscaled_gradient" in names and "no_rescaling" not in names
    claims = [m.name for m in claim_mutants(case)]
    results = mutate(case, run.directory.parent, claims)
    assert len(results) == len(claims) >= 5
    missed = [r.mutant.name for r in results if not r.caught]
    assert set(missed) <= {"pruning_wrong"}, [(r.mutant.name, r.failures) for r in results]


# --------------------------------------------------------------------------- the authors' setting
SIMULATION = ROOT / "cases" / "long" / "caron2023_simulation.toml"


@pytest.fixture(scope="module")
def simulation_run(tmp_path_factory: pytest.TempPathFactory, global_seed: int):
    """The authors' simulation setting in quick mode (500 of its 50000 steps)."""
    yield from quick_case_run(SIMULATION, tmp_path_factory, global_seed)


def test_simulation_case_is_the_authors_setting():
    """n = 100, d = 50, m = 2000, w ~ N(0, 2I), learning rate 1 on the mean squared error
    (eta = 2/n on 1/2 ||u - y||^2), the authors' (alpha, gamma) pairs and target."""
    case = load(SIMULATION)
    base, data = case.base, case.data
    assert (data["n"], data["d"], base["m"], base["init_variance"]) == (100, 50, 2000, 2.0)
    assert base["eta"] == pytest.approx(2.0 / data["n"]) and base["steps"] == 50_000
    assert {(p.get("alpha", base["alpha"]), p["gamma"]) for p in case.points} == {
        (0.5, 1.0),
        (0.7, 0.5),
        (0.5, 0.2),
    }
    X, y = ns.make_data(data, np.random.default_rng(0), SIMULATION.parent)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0)
    noise = y - np.mean(5 * np.sin(np.pi * X), axis=1)
    assert abs(noise.std() - 0.1) < 0.03 and abs(noise.mean()) < 0.05


def test_mean_squared_error_step_is_eta_two_over_n(rng):
    """One GD step with learning rate 1 on (1/n) sum (u - y)^2 is the trainer's step with
    eta = 2/n on 1/2 ||u - y||^2."""
    X, y = sphere(10, 6, rng)
    lam = node_scalings(40, 0.5, 0.7)
    W, a = ns.init_weights([rng], 40, 6, 2.0)
    coef = np.sqrt(lam)[None] * a

    def mse(V):
        u, _, _ = ns.forward(X, V, coef)
        return np.mean((u - y) ** 2, axis=1)

    u, _, S = ns.forward(X, W, coef)
    step = (2.0 / len(y)) * ns.gradient(X, S, coef, u - y)
    np.testing.assert_allclose(step, numeric_gradient(mse, W), rtol=1e-6, atol=1e-10)


def test_scalings_are_the_papers_not_the_codes_zero_indexed_ones():
    """The code's ``a/p + (1 - a) zipfian.pmf(arange(p), 1/alpha, p)`` starts at j = 0,
    where the pmf is 0: its nodes 1..m-1 are the paper's nodes 1..m-1 shifted by one, its
    node 0 gets only gamma/m and its scalings do not sum to 1.  The trainer uses the
    paper's j = 1..m."""
    from scipy import stats

    m, gamma, alpha = 2000, 0.2, 0.5
    code = gamma / m + (1 - gamma) * stats.zipfian.pmf(np.arange(m), 1 / alpha, m)
    ours = node_scalings(m, gamma, alpha)
    np.testing.assert_allclose(code[1:], ours[:-1], rtol=1e-10)
    assert code[0] == pytest.approx(gamma / m) and ours[0] > 100 * code[0]
    assert code.sum() < 1 - 1e-8 and ours.sum() == pytest.approx(1.0)


def test_simulation_quick_run_passes_and_its_kernel_control_fails(simulation_run):
    """At 500 steps the per-step guarantee and the kernel bound hold at the authors'
    three (alpha, gamma); a kernel bound 10x too large fails.  (The pruning claim needs
    the full 50000 steps: README, measured risks.)"""
    case, run, points, results, data_params = simulation_run
    verdicts = run.evaluation.verdicts
    assert not run.evaluation.failed, [v.detail for v in verdicts if v.status == FAIL]
    for check in ("loss_decay", "kernel"):
        mine = [v for v in verdicts if v.check == check]
        assert len(mine) == 3 and all(v.status == PASS and v.counted for v in mine)
    ev = evaluate(case, points, results, data_params, {"kernel_lower": 10.0})
    assert all(v.status == FAIL for v in ev.verdicts if v.check == "kernel")
