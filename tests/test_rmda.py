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


def point(outputs: list[rmda.RunOutput], **params) -> PointData:
    """The repetitions as one grid point, with the trainer's measured hypotheses (minimum
    or maximum over the repetitions, as the evaluation does) among its parameters."""
    curves = {c: np.vstack([o.curves[c] for o in outputs]) for c in outputs[0].curves}
    scalars = {s: np.array([o.scalars[s] for o in outputs]) for s in outputs[0].scalars}
    measured = {k: float(scalars[k].min()) for k in rmda.RMDA.measured_params}
    measured |= {k: float(scalars[k].max()) for k in rmda.RMDA.measured_max}
    return PointData("p0", "p0", dict(TRAINING) | measured | params, curves, scalars)


def verdicts(outputs: list[rmda.RunOutput], kind: str, params=None, **cfg):
    bound = bounds.get("huang2022.rmda_identification")
    pt = point(outputs, **(params or {}))
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


def test_provenance_names_the_venue_the_code_and_the_unverified_numbering():
    source = str(bounds.get("huang2022.rmda_identification").source)
    assert "arXiv:2112.02612" in source and "ICLR 2022" in source
    assert "RMDA/Optimizer/rmda.py" in source and "restart" in source
    assert "unverified" in source and "RAMDA" in source


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


# --------------------------------------------------------------------------- the official code
class OfficialRMDA:
    """A transcription (numpy, float64) of the authors' ``RMDA.step`` (``zihsyuan1214/rmda``,
    ``RMDA/Optimizer/rmda.py``) with ``prox_glasso`` (``RMDA/ProxFn/prox_fns.py``) for one
    2-D parameter in the framework's ``(out, in)`` layout: groups are its columns."""

    def __init__(self, p: np.ndarray, lr: float, momentum: float, lambda_: float) -> None:
        self.p, self.lr, self.momentum, self.lambda_ = p.copy(), lr, momentum, lambda_
        self.iteration, self.accum = 0.0, 0.0
        self.initial_point: np.ndarray | None = None
        self.gradient_buffer: np.ndarray | None = None

    @staticmethod
    def prox_glasso(p: np.ndarray, lambda_: float, alpha: float) -> None:
        lambda_alpha = lambda_ * alpha * (p.size / p.shape[1]) ** 0.5
        temp = np.maximum(np.linalg.norm(p, axis=0, keepdims=True) - lambda_alpha, 0.0)
        p *= temp / (temp + lambda_alpha)

    def step(self, grad: np.ndarray) -> np.ndarray:
        scaling = (self.iteration + 1) ** 0.5
        stepsize = self.lr * scaling
        self.accum += stepsize
        alpha = self.accum / scaling
        if self.initial_point is None:
            self.initial_point = self.p.copy()
        if self.gradient_buffer is None:
            self.gradient_buffer = np.zeros_like(grad)
        self.gradient_buffer += stepsize * grad
        p_tilde = self.initial_point - (1 / scaling) * self.gradient_buffer
        if self.lambda_ != 0:
            self.prox_glasso(p_tilde, self.lambda_, alpha)
        if self.momentum != 1.0:
            self.p = self.p * (1 - self.momentum) + self.momentum * p_tilde
        else:
            self.p = p_tilde.copy()
        self.iteration += 1
        return p_tilde


@pytest.mark.parametrize("c", [0.01, 0.3, 1.0])
def test_rmda_step_matches_the_official_optimizer(c):
    """Same minibatches, same numbers to rounding: W~_t and W_t of every step, from a
    nonzero initial point (the official W_0 is the point the optimizer first sees)."""
    rng = np.random.default_rng(7)
    X, y = rmda.make_data({"n": 300, "d": 8, "k": 3, "informative": 3, "signal": 2.0}, rng, None)
    Y = rmda.one_hot(y, 3)
    lam, eta = 0.05, 0.1
    W0 = 0.3 * rng.standard_normal((8, 3))
    ours = rmda.RMDAState.start(W0)
    theirs = OfficialRMDA(W0.T, lr=eta, momentum=c, lambda_=lam)
    gap = 0.0
    zeros = 0
    for _ in range(300):
        batch = rng.integers(0, 300, size=16)
        W_tilde = rmda.rmda_step(
            ours, rmda.gradient(X[batch], Y[batch], ours.W), eta, c, lam * 3**0.5
        )
        # the framework's gradient of the mean cross-entropy for a (k, d) weight
        official = theirs.step(rmda.gradient(X[batch], Y[batch], theirs.p.T).T)
        gap = max(gap, np.abs(W_tilde - official.T).max(), np.abs(ours.W - theirs.p.T).max())
        assert np.array_equal(rmda.zero_pattern(W_tilde), ~np.any(official != 0, axis=0))
        zeros += int(rmda.zero_pattern(W_tilde).sum())
    assert gap < 1e-12, gap
    assert zeros > 0  # the prox did threshold groups to exactly zero


def test_train_records_the_official_trajectorys_patterns(problem, global_seed):
    """End to end: ``train``'s RMDA mismatch curve is the official optimizer's, on the same
    minibatch indices (drawn as ``train`` draws them)."""
    X, y = problem
    cfg = TRAINING | {"steps": 300, "c": 0.1}
    rngs = [np.random.default_rng([global_seed, 2112, r]) for r in range(2)]
    (out, _) = rmda.train(X, y, rngs, **cfg)
    Y = rmda.one_hot(y, 3)
    idx = np.random.default_rng([global_seed, 2112, 0]).integers(0, len(y), size=(300, 64))
    W_star, *_ = rmda.limit_point(X, y, cfg["lam"])
    target = rmda.zero_pattern(W_star)
    theirs = OfficialRMDA(np.zeros((3, X.shape[1])), lr=cfg["eta"], momentum=0.1, lambda_=0.02)
    mismatch = [target.sum()]
    for b in idx:
        p_tilde = theirs.step(rmda.gradient(X[b], Y[b], theirs.p.T).T)
        mismatch.append((rmda.zero_pattern(p_tilde.T) != target).sum())
    np.testing.assert_array_equal(out.curves["pattern_mismatch_rmda"], mismatch)


def test_official_restart_changes_the_trajectory():
    """The scheduler's restart (t, alpha, V reset, W_0 = current point) is not a no-op, so
    the trainer, which has none, runs the analysed algorithm and not the scheduled one."""
    rng = np.random.default_rng(3)
    X, y = rmda.make_data({"n": 200, "d": 6, "k": 3, "informative": 2, "signal": 2.0}, rng, None)
    Y = rmda.one_hot(y, 3)
    plain = OfficialRMDA(np.zeros((3, 6)), lr=0.1, momentum=0.1, lambda_=0.05)
    restarted = OfficialRMDA(np.zeros((3, 6)), lr=0.1, momentum=0.1, lambda_=0.05)
    for t in range(100):
        batch = rng.integers(0, 200, size=16)
        if t == 50:  # MultiStepParam at a milestone with gamma = 1: restart only
            restarted.iteration, restarted.accum = 0, 0.0
            restarted.initial_point = restarted.p.copy()
            restarted.gradient_buffer = np.zeros_like(restarted.p)
        for opt in (plain, restarted):
            opt.step(rmda.gradient(X[batch], Y[batch], opt.p.T).T)
    assert np.abs(plain.p - restarted.p).max() > 1e-3


# --------------------------------------------------------------------------- hypotheses
def test_step_conditions():
    from bounds.huang2022 import step_conditions_hold, step_ratio

    t = np.arange(1, 100_001)
    ratio = step_ratio(t)
    assert ratio[-1] * t[-1] == pytest.approx(1.5, rel=1e-3)  # s_t / alpha_t ~ 3 / (2t)
    # sum s_t/alpha_t grows like 1.5 log t (diverges); the tail of sum (s_t/alpha_t)^2 ~ 2.25/t
    assert ratio[1000:].sum() == pytest.approx(1.5 * math.log(100), rel=1e-2)
    assert np.sum(ratio[1000:] ** 2) == pytest.approx(2.25 * (1e-3 - 1e-5), rel=1e-2)
    assert step_conditions_hold(0.5) and step_conditions_hold(-1.0)
    assert not step_conditions_hold(-1.5)
    bound = bounds.get("huang2022.rmda_identification")
    assert bound.preconditions(TRAINING | {"schedule_power": -2.0})
    with pytest.raises(ValueError, match="1-based"):
        step_ratio(0)


def test_nondegeneracy_gap_is_measured_and_screens(problem, runs):
    """The gap lam sqrt(|g|) - ||grad_g f(W*)|| over the zero groups is positive here and
    reported on every run; a point whose gap is not above W*'s accuracy is outside the
    theorem's hypotheses (identification is not claimed there)."""
    X, y = problem
    W, residual, _ = rmda.limit_point(X, y, TRAINING["lam"])
    Y = rmda.one_hot(y, 3)
    gap = rmda.nondegeneracy_gap(X, Y, W, TRAINING["lam"])
    unit = TRAINING["lam"] * math.sqrt(3)
    margin = rmda.nondegeneracy_margin(X, Y, W, TRAINING["lam"])
    assert gap == pytest.approx(unit * margin, rel=1e-12) and gap > 1e3 * residual
    assert all(o.scalars["nondegeneracy_gap"] == gap for o in runs)
    (v,) = verdicts(runs, "identification", method="rmda")
    assert v.status == PASS
    for bad in (0.0, -1e-3, residual / 2):
        (v,) = verdicts(runs, "identification", params={"nondegeneracy_gap": bad})
        assert v.status == "outside-hypotheses" and "nondegeneracy" in v.detail
    bound = bounds.get("huang2022.rmda_identification")
    assert bound.preconditions(TRAINING | {"gradient_bound": math.inf})
    consts = rmda.sample_constants(X)
    assert consts["sample_smoothness"] == pytest.approx(np.max(np.sum(X**2, axis=1)) / 2)
