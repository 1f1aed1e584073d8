"""Shared fixtures.  ``MASKVERIFY_SEED`` (or ``--global-seed``) changes every seed the
tests use, so the suite can be run for any seed, not one lucky one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--global-seed", type=int, default=None, help="seed offset for all tests")


@pytest.fixture(scope="session")
def global_seed(request: pytest.FixtureRequest) -> int:
    opt = request.config.getoption("--global-seed")
    return int(opt if opt is not None else os.environ.get("MASKVERIFY_SEED", "0"))


@pytest.fixture
def rng(global_seed: int) -> np.random.Generator:
    return np.random.default_rng(global_seed)


#: a case small enough to train in about a second (6 points, 2 repetitions)
TINY = """
name = "tiny"
bounds = ["liao2022.theorem1"]
repetitions = 2
[data]
n = 6
d = 3
[model]
m = 60
[training]
eta = 0.05
rounds = 40
[masking]
xi = 0.5
[grid]
p = [1, 2, 3]
tau = [1, 2]
[checks.floor]
tail = 10
"""


def write_case(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def context_all_tested(name: str, bound, points, alpha: float, perturb=None):
    """A check context where every point is tested (no calibration), with the bound's own
    preconditions screening the points."""
    from verify.checks.framework import Context

    return Context(
        name,
        bound,
        points,
        {pt.key: "test" for pt in points},
        {pt.key: bound.preconditions(pt.params) for pt in points},
        {},
        {},
        perturb or {},
        alpha,
    )


def quick_case_run(path: Path, tmp_path_factory: pytest.TempPathFactory, global_seed: int):
    """Train a case file in quick mode once, its seed shifted by the global seed.

    Yields ``(case, run, points, results, data_params)``; removes the results afterwards.
    """
    import json

    from verify.case import load
    from verify.grid import expand
    from verify.runner import run_case
    from verify.store import read_points

    name = load(path).name
    tmp = tmp_path_factory.mktemp(name)
    text = path.read_text().replace(f'name = "{name}"', f'name = "{name}"\nseed = {global_seed}', 1)
    case = load(write_case(tmp / "case.toml", text)).with_quick()
    run = run_case(case, tmp / "results", executor="process", jobs=2, show_progress=False)
    points = expand(case)
    results = read_points(run.directory, [p.key for p in points])
    data_params = json.loads((run.directory / "case.json").read_text())["data_params"]
    yield case, run, points, results, data_params
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, global_seed: int):
    """The smoke case trained once per session (seed shifted by the global seed)."""
    from verify.case import load
    from verify.runner import run_case

    tmp = tmp_path_factory.mktemp("smoke")
    text = (ROOT / "cases" / "smoke.toml").read_text()
    text = text.replace('name = "smoke"', f'name = "smoke"\nseed = {global_seed}', 1)
    case_path = write_case(tmp / "smoke.toml", text)
    case = load(case_path)
    run = run_case(case, tmp / "results", show_progress=False)
    yield case, run
    shutil.rmtree(tmp, ignore_errors=True)
