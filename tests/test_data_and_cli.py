import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bounds
from bounds.strategies import masked_params
from verify.data import load_file
from verify.schema import CaseError

from .conftest import ROOT


def test_npz_and_csv_loaders_normalise_inputs(tmp_path, rng):
    X = rng.standard_normal((5, 3)) * 4
    y = rng.uniform(-1, 1, 5)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    np.savetxt(tmp_path / "d.csv", np.column_stack([X, y]), delimiter=",")
    for name in ("d.npz", "d.csv"):
        Xn, yn = load_file(tmp_path / name)
        np.testing.assert_allclose(np.linalg.norm(Xn, axis=1), 1.0)
        np.testing.assert_allclose(yn, y)
    np.savez(tmp_path / "bad.npz", X=np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(CaseError, match="all-zero"):
        load_file(tmp_path / "bad.npz")
    with pytest.raises(CaseError, match="does not exist"):
        load_file(tmp_path / "missing.csv")


@settings(max_examples=25, deadline=None)
@given(masked_params(xi=st.just(1.0)))
def test_readme_worked_example_full_gd_corollary_has_no_floor(params):
    """The README's example of property-testing a new corollary, kept true."""
    theorem = bounds.get("liao2022.theorem1")
    params["p"] = 1
    assert bounds.liao2022.FLOOR_FORM.is_zero(params)
    assert theorem.preconditions(params) == []


def _run_cli(args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "verify", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_cli_exit_codes_with_and_without_perturbation(smoke_run):
    case, run = smoke_run
    out = run.directory.parent
    base = ["run", str(case.path), "--out", str(out), "--no-report", "--no-progress"]
    ok = _run_cli(base)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 trained, 37 reused" in ok.stdout
    for perturb in ("floor=0.1", "rate=2"):
        bad = _run_cli([*base, "--perturb", perturb])
        assert bad.returncode == 1, (perturb, bad.stdout[-2000:])
        assert "FAIL" in bad.stdout
    assert _run_cli([*base, "--perturb", "floor=abc"]).returncode == 2
