"""The exact statements of arXiv:2112.02668v1 (Theorem 3, Corollaries 4-6, Theorem 7).

Formulas against values worked out by hand from the printed page, the convention mapping,
the hypotheses screens, and the exact checks on a real run with negative controls.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bounds
from bounds import liao2022 as L
from verify.evaluate import evaluate
from verify.grid import data_rng, expand
from verify.runner import run_case

from .conftest import write_case

POINT = dict(
    n=8, d=4, m=1000, rounds=10, p=2, tau=2, kappa=1.0, xi=0.5, eta=0.01, lambda0=0.1,
    lambda_max=1.0, label_bound=0.5, scheme="bernoulli", scaling="paper",
)


def test_b1_terms_as_printed():
    """Hand computation at n=8, d=4, m=1000, xi=0.5, p=2, tau=2, kappa=1, eta=0.01 and
    lambda_min(H_inf)=0.1, so lambda0 = xi * 0.1 = 0.05, theta = 0.75, theta - xi^2 = 0.5,
    C1 = 4 * 0.75^2 * 0.5 * 8 / 2 = 4.5."""
    v = L.paper_view(POINT)
    assert (v.lambda0, v.theta, L.c1(v)) == pytest.approx((0.05, 0.75, 4.5))
    expected = {
        "width": 64 * 0.25 * 512 * 4 / (1000 * 0.0025),  # 13107.2
        "step_mask": 68 * 0.01 * 2 * 0.5 * 512 / (2 * 0.05),  # 3481.6
        "mask": 0.5 * 8 / (6 * 4 * 2),  # 0.08333
        "local_drift": 1 * 2 * 4.5 / (24 * 4),  # 0.09375
        "local_step2": 8 * 1e-4 * 1 * 4096 * 2 * 4.5 / 0.0025,  # 11796.48
        "local_step": 4 * 0.01 * 1 * 2 * 8 * 4.5,  # 2.88
    }
    assert L.b1_terms(v) == pytest.approx(expected)
    assert L.contraction(v) == pytest.approx(1 - 0.25 * 0.01 * 0.75 * 2 * 0.05)


def test_b1_limits():
    full = L.paper_view({**POINT, "xi": 1.0})
    assert L.b1(full) == 0.0  # full GD: no masking error
    one = L.b1_terms(L.paper_view({**POINT, "tau": 1}))
    assert one["local_drift"] == one["local_step2"] == one["local_step"] == 0.0
    wide = L.b1_terms(L.paper_view({**POINT, "m": 10_000}))
    assert wide["width"] == pytest.approx(L.b1_terms(L.paper_view(POINT))["width"] / 10)


@settings(max_examples=50, deadline=None)
@given(
    xi=st.floats(0.05, 1.0),
    p=st.integers(1, 8),
    tau=st.integers(1, 4),
    eta=st.floats(1e-4, 0.1),
    scheme=st.sampled_from(["bernoulli", "partition"]),
)
def test_bounds_are_the_same_statement_in_both_conventions(xi, p, tau, eta, scheme):
    """An inverted run (eta, y) is the paper run (eta / xi^2, xi y) with losses / xi^2: every
    exact bound, written in the paper's convention, maps accordingly."""
    inverted = {**POINT, "xi": xi, "p": p, "tau": tau, "eta": eta, "scheme": scheme}
    inverted["scaling"] = "inverted"
    keep = 1.0 / p if scheme == "partition" else xi
    paper = {**inverted, "scaling": "paper", "eta": eta / keep**2}
    paper["label_bound"] = keep * POINT["label_bound"]
    bound = bounds.get("liao2022.theorem7" if scheme == "partition" else "liao2022.theorem3")
    a, b = bound.predict(inverted), bound.predict(paper)
    assert a.rate == pytest.approx(b.rate, rel=1e-12)
    if scheme == "bernoulli":
        assert a.floor == pytest.approx(b.floor / keep**2, rel=1e-12)
    else:
        assert a.extra["envelope_prefactor"] == pytest.approx(
            b.extra["envelope_prefactor"] / keep**2, rel=1e-12
        )


def test_corollaries_as_printed():
    v = L.paper_view({**POINT, "tau": 1})
    cor5 = L.Corollary5.forms["floor"].terms[0].feature({**POINT, "tau": 1})
    cor6 = L.Corollary6.forms["floor"].terms[0].feature({**POINT, "tau": 1})
    # paper convention, loss factor 1: (1-xi)^2/(nK) + (theta - xi^2)/p vs (theta - xi)/p
    assert cor5 == pytest.approx(0.25 / 80 + 0.5 / 2)
    assert cor6 == pytest.approx(0.25 / 80 + 0.25 / 2)
    assert L.Corollary4.forms["floor"].terms[0].feature(POINT) == pytest.approx(0.5)
    assert bounds.get("liao2022.corollary5").predict({**POINT, "tau": 1}).rate == pytest.approx(
        L.contraction(v)
    )
    # the corollaries' printed assumptions are screened, and named
    reasons = bounds.get("liao2022.corollary4").structural(POINT)
    assert any("max{K, d} <= n" in r for r in reasons)  # K = 10 > n = 8
    over = bounds.get("liao2022.corollary6").structural({**POINT, "rounds": 50, "kappa": 0.3})
    assert any("max{K, d, p} <= n" in r for r in over)
    assert any("kappa = n^(-1/2)" in r for r in over)
    assert any("p = tau = 1" in r for r in reasons)


def test_theorem7_as_printed():
    params = {**POINT, "scheme": "partition", "p": 4, "tau": 3}
    pred = bounds.get("liao2022.theorem7").predict(params)
    lam = 0.1 / 4  # lambda0 = lambda_min(xi H_inf) with xi = 1/p
    assert pred.rate == pytest.approx(0.5 + 0.5 * (1 - 0.01 * lam / 2) ** 3)
    C = 0.5 + 1.0
    assert pred.extra["envelope_prefactor"] == pytest.approx(C**2 * 8)
    feature = L.Theorem7.forms["floor"].terms[0].feature(params)
    assert feature == pytest.approx(3 * 9 * 512 * 4 / (lam**2 * 1000))


def test_requirements_are_ratios_with_constant_one():
    req = bounds.get("liao2022.theorem3").requirements({**POINT, "max_movement": 0.1})
    v = L.paper_view(POINT)
    first = 8**4 / (1.0 * 0.5 * 0.75 * 0.05**4)
    second = 8 * 100 * L.b1(v) / (0.75 * 0.05**2)
    assert req["width_required"] == pytest.approx(10 / 0.1 * max(first, second, 100 * 2))
    assert req["step_required"] == pytest.approx(0.05 / (8 * 8 * 2))
    assert req["movement_ratio"] == pytest.approx(0.1 / (1.0 * 0.05 / 64))


def test_kernel_event_screens_the_point():
    bound = bounds.get("liao2022.theorem3")
    ok = {**POINT, "eta": 1e-3, "masked_ntk_min": 0.03}
    assert bound.preconditions(ok) == []
    bad = {**ok, "masked_ntk_min": 0.02}  # < lambda0 / 2 = 0.025
    assert any("Theorem 2's event fails" in r for r in bound.preconditions(bad))
    missing = {k: v for k, v in ok.items() if k != "masked_ntk_min"}
    assert any("not measured" in r for r in bound.preconditions(missing))


EXACT = """
name = "exact"
bounds = ["liao2022.theorem3"]
repetitions = 3
[data]
n = 8
d = 4
[model]
m = 20000
kappa = 0.35355339059327373
scaling = "paper"
[training]
eta = 0.15
rounds = 600
monitor_every = 30
[masking]
xi = 0.9
p = 4
[grid]
xi = [0.9, 1.0]
[checks.envelope]
[checks.rate]
[checks.floor]
tail = 100
"""


@pytest.fixture(scope="module")
def exact_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("exact")
    case = __import__("verify.case", fromlist=["load"]).load(write_case(tmp / "c.toml", EXACT))
    run = run_case(case, tmp / "out", show_progress=False)
    return case, run


def test_exact_checks_pass_without_calibration_and_flag_vacuity(exact_run):
    case, run = exact_run
    verdicts = run.evaluation.verdicts
    assert {v.role for v in verdicts} == {"test"}
    assert not [v for v in verdicts if v.status == "fail"]
    envelopes = [v for v in verdicts if v.kind == "envelope"]
    assert envelopes and all(v.status == "pass" for v in envelopes)
    # xi = 0.9 at this step: B1 (its eta-term) exceeds the initial loss; xi = 1: B1 = 0
    masked = [v for v in verdicts if v.params["xi"] == 0.9 and v.kind == "envelope"]
    assert masked and all(v.vacuous for v in masked)
    full = [v for v in verdicts if v.params["xi"] == 1.0 and v.kind == "envelope"]
    assert full and not any(v.vacuous for v in full)
    rows = {r["point_key"]: r for r in run.evaluation.vacuity}
    assert all(math.isfinite(r["width_ratio"]) and r["width_ratio"] < 1e-6 for r in rows.values())
    decays = [r["observed_over_exact_decay"] for r in rows.values()]
    assert all(d > 1 for d in decays if math.isfinite(d)) and any(map(math.isfinite, decays))


@pytest.mark.parametrize(
    "perturb, kinds",
    [({"rate": 100.0}, {"envelope", "rate"}), ({"floor": 1e-6, "rate": 30.0}, {"envelope"})],
)
def test_exact_checks_fail_on_a_wrong_bound(exact_run, perturb, kinds):
    """Negative control: a contraction 100x too fast (``rate=100``: rho^100) fails the envelope and
    the decay check at the full-GD point, where B1 = 0 makes the bound tight enough to see it."""
    case, run = exact_run
    from verify.store import read_points

    points = expand(case)
    results = read_points(run.directory, [pt.key for pt in points])
    X, y = case.trainer.make_data(case.data, data_rng(case), case.path.parent)
    ev = evaluate(case, points, results, case.trainer.data_params(X, y), perturb)
    failed = {v.kind for v in ev.verdicts if v.status == "fail"}
    assert kinds <= failed


def test_report_shows_the_vacuity_map(exact_run):
    """The HTML report carries the vacuity table and one heatmap per exact bound; the
    Markdown summary the table."""
    from reports.figures.vacuity import vacuity_heatmaps
    from reports.html import html_report
    from reports.markdown import markdown_summary
    from reports.store import load_case

    case, run = exact_run
    stored = load_case(run.directory)
    blocks = vacuity_heatmaps(stored)
    assert [b.skipped for b in blocks] == [False]
    assert "Vacuity map of the exact bounds" in html_report([stored], figures=False)
    table = markdown_summary([stored])
    assert "| `liao2022.theorem3` | 2 | 1 |" in table  # 2 points, 1 vacuous (xi = 0.9)


def test_exact_bound_mutants_are_caught_or_reported_not_testable(exact_run):
    """Item 8: a B1 term dropped, 1/4 -> 1, theta -> xi^p, lambda0 without xi.  On this grid the
    bound is vacuous at xi = 0.9 and the data sit far inside it at xi = 1, so each mutant is
    reported *not testable* with the slack the bound would need -- never equivalent, never a
    silent miss.  The same machinery catches a mutant that tightens the bound enough."""
    from verify.mutants import Mutant, mutate

    case, run = exact_run
    results = mutate(case, run.directory.parent)
    exact = {r.mutant.name: r for r in results if r.mutant.exact}
    assert set(exact) == set(bounds.liao2022.EXACT_MUTATIONS)
    for r in exact.values():
        assert not r.equivalent and not r.missed
        assert r.caught or ("vacuous at 1 of" in r.not_testable and "inside the bound" in r.not_testable)
    quarter = exact["quarter_to_one"].not_testable
    assert "rate: data" in quarter and "tightens it 4" in quarter
    strong = Mutant("decay_x100", "decay 100x", {"rate": 100.0}, needs=("envelope", "rate"), exact=True)
    import verify.mutants as mutants

    original = mutants.mutants_for
    try:
        mutants.mutants_for = lambda c: [strong]
        (caught,) = mutate(case, run.directory.parent)
    finally:
        mutants.mutants_for = original
    assert caught.caught and not caught.not_testable


@pytest.mark.slow
def test_exact_checks_false_alarm_rate_over_100_seeds(tmp_path):
    """The exact checks' family-wise false alarms over 100 independent seeds (data,
    initialisations and masks), at the case's budget of 1%: binomial test of the count."""
    from scipy import stats

    from verify.case import load

    failed = 0
    text = EXACT.replace("m = 20000", "m = 4000").replace("rounds = 600", "rounds = 300")
    for seed in range(100):
        path = write_case(tmp_path / f"c{seed}.toml", f"seed = {seed}\n" + text)
        run = run_case(load(path), tmp_path / "out", show_progress=False)
        if run.evaluation.failed:
            failed += 1
            print(f"seed {seed}: false alarm in", sorted({v.check for v in run.evaluation.verdicts if v.status == "fail"}))
    print(f"false alarms: {failed} / 100")
    assert stats.binomtest(failed, 100, 0.01, alternative="greater").pvalue > 0.01


def test_data_set_as_a_grid_axis(tmp_path):
    """``data_seed`` on the grid: one data set per seed (different lambda0), each point trained
    and evaluated on its own, reproducibly; an unknown data seed value is bad input."""
    from verify.case import load
    from verify.grid import datasets
    from verify.schema import CaseError

    from .conftest import TINY

    text = TINY.replace("p = [1, 2, 3]\ntau = [1, 2]", "p = [1, 2]\ndata_seed = [0, 1, 2]")
    case = load(write_case(tmp_path / "c.toml", text))
    points = expand(case)
    data = datasets(case, points)
    lam = {pt.params["data_seed"]: data[pt.key][2]["lambda0"] for pt in points}
    assert len(set(lam.values())) == 3
    run = run_case(case, tmp_path / "out", show_progress=False)
    seen = {v.params["data_seed"]: v.params["lambda0"] for v in run.evaluation.verdicts}
    assert seen == pytest.approx(lam)
    again = run_case(case, tmp_path / "again", show_progress=False)
    assert [v.observed for v in again.evaluation.verdicts] == pytest.approx(
        [v.observed for v in run.evaluation.verdicts], nan_ok=True
    )
    with pytest.raises(CaseError, match="data_seed"):
        load(write_case(tmp_path / "bad.toml", text.replace("[0, 1, 2]", "[0, -1]")))


def test_vacuity_command_maps_a_region_without_training():
    import subprocess
    import sys

    from .conftest import ROOT

    case = str(ROOT / "cases/long/liao2022_theorem3_nonvacuous.toml")
    run = [sys.executable, "-m", "verify", "vacuity", case]
    ok = subprocess.run([*run, "--grid", "xi=0.9,0.99"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "1 of 2 points non-vacuous" in ok.stdout  # xi = 0.99 at m = 10^4, not xi = 0.9
    bad = subprocess.run([*run, "--grid", "nope=1"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "not a grid parameter" in bad.stderr
