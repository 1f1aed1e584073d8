"""RMDA trainer, identification checks and the Huang & Lee (arXiv:2112.02612) bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import bounds
from verify.checks import CHECKS
from verify.checks.verdict import FAIL, PASS, PointData
from verify.evaluate import _finalise
from verify.trainers import rmda

from .conftest import context_all_tested

DATA = {"n": 2000, "d": 40, "k": 3, "informative": 8, "signal": 1.5}
TRAINING = {
    "lam": 0.02,
    "steps": 2000,
    "batch": 64,
    "eta": 0.1,
    "c": 0.01,
    "eta_proxsgd": 0.1,
    "mu": 0.1,
    "log_every": 10,
}
REPS = 5


@pytest.fixture(scope="module")
def problem() -> tuple[np.ndarray, np.ndarray]:
    # the data set is part of the problem (fixed); the runs' minibatches follow the global seed
    return rmda.make_data(DATA, np.random.default_rng(0), None)


@pytest.fixture(scope="module")
def runs(problem, global_seed: int) -> list[rmda.RunOutput]:
    X, y = problem
    rngs = [np.random.default_rng([global_seed, 2112, r]) for r in range(REPS)]
    return rmda.train(X, y, rngs, **TRAINING)


def point(outputs: list[rmda.RunOutput]) -> PointData:
    curves = {c: np.vstack([o.curves[c] for o in outputs]) for c in outputs[0].curves}
    scalars = {s: np.array([o.scalars[s] for o in outputs]) for s in outputs[0].scalars}
    return PointData("p0", "p0", dict(TRAINING), curves, scalars)


def verdicts(outputs: list[rmda.RunOutput], kind: str, **cfg):
    bound = bounds.get("huang2022.rmda_identification")
    pt = point(outputs)
    ctx = context_all_tested("test", bound, [pt], 0.01)
    spec = CHECKS[kind]
    full = {k: s.default for k, s in spec.params.items()} | cfg
    out = spec.run(ctx, kind, full)
    _finalise(out, 0.01)
    return out


def test_fista_solution_is_optimal(problem):
    X, y = problem
    lam = TRAINING["lam"]
    W, residual, _ = rmda.limit_point(X, y, lam)
    assert residual < 1e-9
    Y = rmda.one_hot(y, 3)
    G = rmda.gradient(X, Y, W)
    norms = np.linalg.norm(W, axis=1)
    unit = lam * math.sqrt(3)
    active = norms > 0
    # stationarity: grad_g f = -lam sqrt(k) W_g / ||W_g|| on active groups, ||grad_g f|| <= lam sqrt(k) else
    np.testing.assert_allclose(G[active], -unit * W[active] / norms[active, None], atol=1e-8)
    assert np.all(np.linalg.norm(G[~active], axis=1) < unit)
    assert rmda.nondegeneracy_margin(X, Y, W, lam) > 0.05
    assert (~active).sum() == DATA["d"] - DATA["informative"]


def test_rmda_identifies_on_every_seed_with_zero_flips(runs):
    T = np.array([o.scalars["identification_step_rmda"] for o in runs])
    flips = np.array([o.scalars["flips_after_identification_rmda"] for o in runs])
    assert np.isfinite(T).all() and (T <= 0.75 * TRAINING["steps"]).all(), T
    assert (flips == 0).all()
    for o in runs:  # after T the mismatch curve is identically 0 (curve index = step)
        t = int(o.scalars["identification_step_rmda"])
        assert not o.curves["pattern_mismatch_rmda"][t:].any()
    psgd = np.array([o.scalars["flips_after_identification_proxsgd"] for o in runs])
    assert (psgd > 100).all()  # the baseline's pattern keeps changing after RMDA's T


def test_identification_check_passes_rmda_and_fails_the_proxsgd_control(runs):
    (rm,) = verdicts(runs, "identification", method="rmda")
    assert rm.status == PASS and rm.p_value == 1.0
    (ps,) = verdicts(runs, "identification", method="proxsgd")
    assert ps.status == FAIL and ps.p_value == 0.0, ps.detail


def test_objective_convergence_check(runs):
    gap, slope = verdicts(runs, "objective_convergence", method="rmda")
    assert gap.status == PASS and gap.observed < 5e-3
    assert slope.status == PASS and slope.observed < 0
    (tight, _) = verdicts(runs, "objective_convergence", method="rmda", tolerance=1e-5)
    assert tight.status == FAIL  # the gap is ~1e-3, far above this tolerance


def test_degenerate_limit_point_is_outside_hypotheses(runs):
    (v,) = verdicts(runs, "identification", min_active_norm=10.0)
    assert v.status == "outside-hypotheses" and "kink" in v.detail


def test_bound_preconditions():
    bound = bounds.get("huang2022.rmda_identification")
    assert bound.preconditions(TRAINING) == []
    bad = bound.preconditions({**TRAINING, "lam": 0.0, "c": 1.5})
    assert len(bad) == 2
    assert bound.predict(TRAINING).get("flips_after_identification") == 0.0


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, (6, 3), elements=st.floats(-10, 10, allow_subnormal=False)),
    st.floats(0.0, 20.0),
)
def test_block_soft_thresholding(W, threshold):
    out = rmda.group_prox(W, threshold)
    norms = np.linalg.norm(W, axis=1)
    small = norms <= threshold
    assert np.all(out[small] == 0.0)
    big = ~small
    # surviving groups keep their direction and lose exactly `threshold` of their norm
    np.testing.assert_allclose(np.linalg.norm(out[big], axis=1), norms[big] - threshold, atol=1e-9)
    np.testing.assert_allclose(
        out[big] * norms[big, None], W[big] * (norms[big] - threshold)[:, None], atol=1e-7
    )
    # prox optimality: out minimises threshold ||V||_{2,1} + ||V - W||^2 / 2 vs perturbations
    obj = lambda V: threshold * np.linalg.norm(V, axis=1).sum() + 0.5 * ((V - W) ** 2).sum()  # noqa: E731
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert obj(out) <= obj(out + 1e-3 * rng.standard_normal(W.shape)) + 1e-12


def test_broken_rmda_fails_both_checks(problem, runs, global_seed):
    """RMDA whose prox thresholds at the step's eta*lam (not the dual average's
    alpha_t/beta_t*lam) neither identifies W*'s zero groups nor reaches F(W*)."""
    X, y = problem
    rngs = [np.random.default_rng([global_seed, 2112, r]) for r in range(REPS)]
    broken = rmda.train(X, y, rngs, variant="step_threshold", **TRAINING)
    (ident,) = verdicts(broken, "identification", method="rmda")
    gap, _ = verdicts(broken, "objective_convergence", method="rmda")
    assert ident.status == FAIL and gap.status == FAIL, (ident.detail, gap.detail)
    with pytest.raises(ValueError, match="variant"):
        rmda.train(X, y, rngs, variant="nope", **TRAINING)


def test_mutate_runs_the_rmda_mutants_and_catches_them(tmp_path, global_seed):
    """``verify mutate`` on the RMDA case runs only its own mutants (the broken prox and
    identification claimed for ProxSGD) and catches both."""
    from verify.case import load
    from verify.mutants import mutants_for, mutate

    from .conftest import ROOT, write_case

    text = (ROOT / "cases" / "huang2022_rmda.toml").read_text()
    name = 'name = "huang2022_rmda"'
    text = text.replace(name, f"{name}\nseed = {global_seed}", 1)
    case = load(write_case(tmp_path / "c.toml", text))
    assert {m.name for m in mutants_for(case)} == {"step_threshold", "proxsgd_identifies"}
    results = mutate(case, tmp_path / "r", quick=True)
    assert all(r.caught for r in results), [(r.mutant.name, r.failures) for r in results]
