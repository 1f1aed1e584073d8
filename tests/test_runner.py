import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from verify.case import load
from verify.executors import Task, run_task, seeded_generators
from verify.grid import expand
from verify.runner import run_case
from verify.store import read_points

from .conftest import ROOT, TINY, write_case


def frames(run):
    points = expand(run.case)
    return read_points(run.directory, [p.key for p in points]).sort_values(["point_key", "rep"])


def test_resume_skips_finished_points(tmp_path):
    case = load(write_case(tmp_path / "c.toml", TINY))
    first = run_case(case, tmp_path / "r", show_progress=False)
    second = run_case(case, tmp_path / "r", show_progress=False)
    assert first.trained == 6 and second.trained == 0 and second.reused == 6
    pd.testing.assert_frame_equal(
        frames(first).drop(columns="wall_time_s"), frames(second).drop(columns="wall_time_s")
    )


OUTPUTS = ("loss", "lambda_min_H0", "max_movement", "seed")


def assert_same_numbers(a: pd.DataFrame, b: pd.DataFrame) -> None:
    for col in OUTPUTS:
        if col == "loss":
            assert a[col].map(list).tolist() == b[col].map(list).tolist()
        else:
            assert a[col].tolist() == b[col].tolist(), col


def test_serial_and_process_runs_are_bit_identical(tmp_path):
    case = load(write_case(tmp_path / "c.toml", TINY))
    serial = frames(run_case(case, tmp_path / "a", "serial", show_progress=False))
    parallel = frames(run_case(case, tmp_path / "b", "process", jobs=2, show_progress=False))
    assert_same_numbers(serial, parallel)


def test_dask_run_is_bit_identical_to_serial(tmp_path):
    pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
    case = load(write_case(tmp_path / "c.toml", TINY))
    serial = frames(run_case(case, tmp_path / "a", "serial", show_progress=False))
    dask = frames(run_case(case, tmp_path / "b", "dask", jobs=2, show_progress=False))
    assert_same_numbers(serial, dask)


def test_seeds_depend_on_point_parameters_not_position(tmp_path):
    case = load(write_case(tmp_path / "c.toml", TINY))
    reordered = load(write_case(tmp_path / "d.toml", TINY.replace("p = [1, 2, 3]", "p = [3, 1]")))
    a = {p.key: p for p in expand(case)}
    b = {p.key: p for p in expand(reordered)}
    assert set(b) < set(a)
    for key, pt in b.items():
        assert pt.entropy == a[key].entropy
    other = load(write_case(tmp_path / "e.toml", TINY.replace('name = "tiny"', 'name = "other"')))
    assert other.seed_entropy != case.seed_entropy


def test_repetitions_and_points_draw_independent_masks(tmp_path):
    case = load(write_case(tmp_path / "c.toml", TINY))
    p1, p2 = expand(case)[:2]
    t = [
        Task(
            "tiny",
            "masked_shallow",
            p.key,
            p.params,
            (case.seed_entropy, p.entropy),
            7,
            2,
            None,
            None,
        )
        for p in (p1, p2)
    ]
    (r1, i1), (r2, i2) = seeded_generators(t[0]), seeded_generators(t[1])
    assert r1[0].random() != r1[1].random()
    assert seeded_generators(t[0])[0][0].random() != r2[0].random()
    assert i1[0].random() == i2[0].random()  # shared initialisation (same m, kappa)


def test_run_task_is_deterministic(tmp_path):
    case = load(write_case(tmp_path / "c.toml", TINY))
    from verify.grid import data_rng, init_entropy

    X, y = case.trainer.make_data(case.data, data_rng(case), tmp_path)
    pt = expand(case)[0]
    task = Task(
        "tiny",
        "masked_shallow",
        pt.key,
        {**case.data, **pt.params},
        (case.seed_entropy, pt.entropy),
        init_entropy(case, pt),
        2,
        X,
        y,
    )
    a, b = run_task(task)[1], run_task(task)[1]
    assert a["loss"].map(list).tolist() == b["loss"].map(list).tolist()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_kill_9_mid_grid_then_rerun_resumes_without_duplicates(tmp_path):
    text = TINY.replace("rounds = 40", "rounds = 400").replace("m = 60", "m = 400")
    path = write_case(tmp_path / "c.toml", text)
    out = tmp_path / "r"
    cmd = [
        sys.executable,
        "-m",
        "verify",
        "run",
        str(path),
        "--out",
        str(out),
        "--no-report",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((out / "tiny").glob("*.parquet"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.name for p in (out / "tiny").glob("*.parquet")}
    assert 1 <= len(done_before) < 6
    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode in (0, 1), rerun.stderr
    assert f"{6 - len(done_before)} trained, {len(done_before)} reused" in rerun.stdout
    case = load(path)
    table = read_points(out / "tiny", [p.key for p in expand(case)])
    assert len(table) == 12 and not table.duplicated(["point_key", "rep"]).any()
    assert not list((out / "tiny").glob(".*.tmp"))  # temp files of the killed run are cleaned


def test_changing_repetitions_or_data_recomputes(tmp_path):
    case = load(write_case(tmp_path / "c.toml", TINY))
    run_case(case, tmp_path / "r", show_progress=False)
    more = load(write_case(tmp_path / "c.toml", TINY.replace("repetitions = 2", "repetitions = 3")))
    again = run_case(more, tmp_path / "r", show_progress=False)
    assert again.trained == 6 and len(frames(again)) == 18
    other_data = load(write_case(tmp_path / "c.toml", TINY.replace("n = 6", "n = 7")))
    assert run_case(other_data, tmp_path / "r", show_progress=False).trained == 6


def test_a_fresh_worker_resolves_mutant_trainers():
    """A process or Dask worker that never imported verify.mutants still finds its trainers."""
    code = (
        "from verify.user_trainer import resolve; from verify import trainers; "
        "assert 'masked_shallow~no_averaging' not in trainers.trainers(); "
        "print(resolve('masked_shallow~no_averaging').name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "masked_shallow~no_averaging"


def test_independent_repetitions_are_tasks_of_their_own(tmp_path):
    """Where the trainer declares a point's repetitions independent (TINY's fused points:
    tau = 1, p > 1), each repetition is a task; the point's table put together from them
    equals the one-task table in every number, whatever order the tasks finish in; the
    other points stay one task."""
    from verify.grid import data_rng
    from verify.runner import PointPieces, make_task, point_tasks
    from verify.trainers import fused_kernels

    if not fused_kernels.AVAILABLE:
        pytest.skip("numba is not installed: no point has independent repetitions")
    case = load(write_case(tmp_path / "c.toml", TINY))
    X, y = case.trainer.make_data(case.data, data_rng(case), tmp_path)
    split = {}
    for pt in expand(case):
        tasks = point_tasks(case, pt, X, y)
        fused = pt.params["tau"] == 1 and pt.params["p"] > 1
        assert [t.reps for t in tasks] == ([(0,), (1,)] if fused else [None]), pt.label
        if fused:
            split[pt.key] = (tasks, make_task(case, pt, X, y))
    assert len(split) == 2
    for key, (tasks, whole) in split.items():
        pieces = PointPieces(tasks)
        first, second = (run_task(t)[1] for t in reversed(tasks))
        assert pieces.add(key, first) is None
        joined = pieces.add(key, second)
        alone = run_task(whole)[1]
        assert joined["rep"].tolist() == [0, 1]
        assert_same_numbers(joined, alone)
        pd.testing.assert_frame_equal(
            joined.drop(columns="wall_time_s"), alone.drop(columns="wall_time_s")
        )


def test_point_pieces_refuse_tasks_that_declare_different_outputs():
    """A point's tasks must agree on the outputs they declare; a mismatch is an error, not
    a table with holes."""
    from verify.result_schema import OUTPUTS_KEY
    from verify.runner import PointPieces
    from verify.schema import CaseError

    tasks = [Task("c", "t", "k", {}, (0, 0), 0, 2, None, None, (), (r,)) for r in (0, 1)]
    pieces = PointPieces(tasks)
    a, b = pd.DataFrame({"rep": [0]}), pd.DataFrame({"rep": [1]})
    a.attrs[OUTPUTS_KEY] = {"curves": ["loss"], "scalars": []}
    b.attrs[OUTPUTS_KEY] = {"curves": ["loss"], "scalars": ["extra"]}
    assert pieces.add("k", b) is None
    with pytest.raises(CaseError, match="declared different outputs"):
        pieces.add("k", a)
