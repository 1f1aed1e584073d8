"""Shared fixtures of the performance benchmarks (``tox -e bench``).

Every timing runs with BLAS pinned to one thread, as the executors run a grid-point task,
so that the trainer, the baselines and the GEMM reference are compared on one core.
Measurements against the performance targets are collected with :func:`targets` and
printed as one PASS/MISS table at the end of the session; only the robust properties are
asserted by the tests themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from verify.case import Case, load
from verify.grid import data_rng

ROOT = Path(__file__).resolve().parent.parent
BENCH_CASE = ROOT / "cases" / "bench.toml"


@dataclass(frozen=True)
class Target:
    """One performance target: what was measured, against what, and whether it was met."""

    name: str
    measured: float
    target: str
    met: bool
    unit: str = ""

    @property
    def status(self) -> str:
        return "PASS" if self.met else "MISS"

    def line(self) -> str:
        value = f"{self.measured:.3g}{self.unit}"
        return f"{self.status:4s}  {self.name:<58s} {value:>10s}   target {self.target}"


class TargetLog:
    """The session's target measurements, in the order they were recorded."""

    def __init__(self) -> None:
        self.rows: list[Target] = []

    def record(self, name: str, measured: float, target: str, met: bool, unit: str = "") -> Target:
        """Record a measurement, print it at once and return it."""
        row = Target(name, float(measured), target, bool(met), unit)
        self.rows.append(row)
        print(row.line())
        return row


TARGETS = pytest.StashKey[TargetLog]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[TARGETS] = TargetLog()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """Print every recorded target measurement as one table."""
    log = config.stash.get(TARGETS, None)
    if log is None or not log.rows:
        return
    terminalreporter.section("performance targets (measured in this run)")
    for row in log.rows:
        terminalreporter.write_line(row.line())
    missed = sum(not row.met for row in log.rows)
    terminalreporter.write_line(f"{len(log.rows) - missed} met, {missed} missed")


@pytest.fixture
def targets(request: pytest.FixtureRequest) -> TargetLog:
    """Where a test records its measurements against the performance targets."""
    return request.config.stash[TARGETS]


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread() -> Iterator[None]:
    """Pin BLAS to one thread for the whole session (as each executor task does)."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="session")
def bench_case() -> Case:
    """The benchmark case, ``cases/bench.toml``."""
    return load(BENCH_CASE)


@pytest.fixture(scope="session")
def bench_data(bench_case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The benchmark case's data set, drawn exactly as a run of the case draws it."""
    return bench_case.trainer.make_data(bench_case.data, data_rng(bench_case), BENCH_CASE.parent)
