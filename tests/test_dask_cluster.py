"""``--executor dask --scheduler ADDRESS`` / ``--scheduler-file PATH``: a run on an existing
Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes started here, on
localhost) stores the same numbers, bit for bit, as a serial run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from verify.case import load
from verify.cli import main
from verify.executors import DaskCluster
from verify.runner import run_case
from verify.schema import CaseError

from .conftest import ROOT, TINY, write_case
from .test_runner import assert_same_numbers, frames

distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed")


def _dask(*args: str, log: Path) -> subprocess.Popen:
    """A ``dask`` command line in this interpreter, its output in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "dask", *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A scheduler on a free localhost port and two single-threaded worker processes."""
    tmp = tmp_path_factory.mktemp("cluster")
    file = tmp / "scheduler.json"
    procs = [
        _dask(
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(file),
            log=tmp / "scheduler.log",
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert file.exists(), (tmp / "scheduler.log").read_text()
        for w in range(2):
            procs.append(
                _dask(
                    "worker",
                    "--scheduler-file",
                    str(file),
                    "--nthreads",
                    "1",
                    "--nworkers",
                    "1",
                    "--no-dashboard",
                    "--local-directory",
                    str(tmp / f"worker{w}"),
                    log=tmp / f"worker{w}.log",
                )
            )
        with distributed.Client(scheduler_file=str(file), timeout=60) as client:
            client.wait_for_workers(2, timeout=90)
        address = json.loads(file.read_text())["address"]
        yield {"address": address, "file": str(file)}
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _workers_used(address: str, since: float) -> set[str]:
    with distributed.Client(address, timeout=30) as client:
        return {t["worker"] for t in client.get_task_stream(start=since)}


def test_existing_cluster_run_is_bit_identical_to_serial(cluster, tmp_path):
    """Both ways of naming the cluster; the tasks run on both workers (not in the client).

    The case mixes the fused rounds (tau = 1) and the blocked passes (tau = 2)."""
    case = load(write_case(tmp_path / "c.toml", TINY))
    serial = frames(run_case(case, tmp_path / "serial", "serial", show_progress=False))
    with distributed.Client(cluster["address"], timeout=30) as client:
        client.get_task_stream()  # the scheduler records the task stream from now on
    since = time.time()
    by_address = DaskCluster(address=cluster["address"])
    remote = frames(run_case(case, tmp_path / "addr", by_address, 2, show_progress=False))
    assert_same_numbers(serial, remote)
    assert len(_workers_used(cluster["address"], since)) == 2
    by_file = DaskCluster(scheduler_file=cluster["file"])
    again = frames(run_case(case, tmp_path / "file", by_file, 2, show_progress=False))
    assert_same_numbers(serial, again)


def test_bit_identity_check_sees_a_different_run(cluster, tmp_path):
    """Negative control: a run with another step size on the cluster is not 'identical'."""
    case = load(write_case(tmp_path / "c.toml", TINY))
    other = load(write_case(tmp_path / "o.toml", TINY.replace("eta = 0.05", "eta = 0.04")))
    serial = frames(run_case(case, tmp_path / "serial", "serial", show_progress=False))
    remote = DaskCluster(address=cluster["address"])
    changed = frames(run_case(other, tmp_path / "other", remote, 2, show_progress=False))
    with pytest.raises(AssertionError):
        assert_same_numbers(serial, changed)


def test_cli_runs_on_the_cluster(cluster, tmp_path):
    path = write_case(tmp_path / "c.toml", TINY)
    args = ["run", str(path), "--out", str(tmp_path / "r"), "--no-report", "--no-progress"]
    code = main([*args, "--executor", "dask", "--scheduler", cluster["address"]])
    assert code in (0, 1)  # trained and checked (the verdicts are not this test's business)
    assert any((tmp_path / "r").rglob("*.parquet"))


def test_cli_scheduler_errors(tmp_path, capsys):
    """One-line errors, exit 2, nothing written: no dask executor, both flags, no scheduler."""
    path = write_case(tmp_path / "c.toml", TINY)
    out = tmp_path / "r"
    base = ["run", str(path), "--out", str(out), "--no-report", "--no-progress"]
    assert main([*base, "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "need --executor dask" in capsys.readouterr().err
    both = ["--scheduler", "tcp://127.0.0.1:1", "--scheduler-file", str(tmp_path / "s.json")]
    assert main([*base, "--executor", "dask", *both]) == 2
    assert "exactly one" in capsys.readouterr().err
    missing = ["--scheduler-file", str(tmp_path / "missing.json")]
    assert main([*base, "--executor", "dask", *missing]) == 2
    err = capsys.readouterr().err
    assert "not a readable Dask scheduler file" in err and len(err.strip().splitlines()) == 1
    assert not any(out.rglob("*.parquet")) if out.exists() else True
    with pytest.raises(CaseError):
        DaskCluster()
