"""Executors: run grid-point tasks serially, in worker processes, or on a Dask cluster.

The Dask executor starts a local cluster of ``jobs`` worker processes, or connects to an
existing cluster (:class:`DaskCluster`: ``--scheduler ADDRESS`` or ``--scheduler-file
PATH``).  Workers only compute: a task travels to a worker with its data and comes back as
a table, and the client process writes the store, so workers need no shared filesystem
(only the same installed package).

A task trains the repetitions of one grid point (all of them, or one, where the trainer
declares its repetitions independent: the point's repetitions then spread over the
workers); its numbers depend only on the task's inputs (seeds come from the case, the point
and the repetition), never on the executor, the worker or the order.  BLAS is pinned to one thread per task so that results are
bit-identical across executors and workers do not oversubscribe the cores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .schema import CaseError

EXECUTORS = ("serial", "process", "dask")


@dataclass(frozen=True)
class Task:
    """Everything needed to train one grid point, picklable."""

    case: str
    trainer: str
    key: str
    params: dict[str, Any]
    entropy: tuple[int, int]  # (case entropy, point entropy)
    init_entropy: int  # hash of the trainer's init parameters (common random numbers)
    repetitions: int
    X: np.ndarray
    y: np.ndarray
    #: modules the worker imports before resolving ``trainer`` (the case's ``plugins``)
    plugins: tuple[str, ...] = ()
    #: the repetitions this task trains (``None``: all ``repetitions`` of the point)
    reps: tuple[int, ...] | None = None

    def indices(self) -> tuple[int, ...]:
        """The repetition numbers this task trains, in order."""
        return tuple(range(self.repetitions)) if self.reps is None else self.reps


INIT_TAG = 0x1417


def seeded_generators(task: Task) -> tuple[list[np.random.Generator], list[np.random.Generator]]:
    """Per repetition: the training generator (case, point, rep) and the initialisation
    generator (case, init parameters, rep), shared by points with the same init parameters."""
    case_entropy, point_entropy = task.entropy
    rngs = [
        np.random.default_rng(np.random.SeedSequence([case_entropy, point_entropy, r]))
        for r in task.indices()
    ]
    init = [
        np.random.default_rng(
            np.random.SeedSequence([case_entropy, INIT_TAG, task.init_entropy, r])
        )
        for r in task.indices()
    ]
    return rngs, init


def run_task(task: Task) -> tuple[str, pd.DataFrame]:
    """Train the task's repetitions of its point and return their tidy rows."""
    from bounds.plugins import import_plugin

    from .result_schema import OUTPUTS_KEY, outputs_of
    from .store import environment
    from .user_trainer import resolve

    for spec in task.plugins:  # a fresh worker process has not imported them yet
        import_plugin(spec)
    # a user trainer (``--trainer SPEC``) is re-imported by name in a fresh worker
    trainer = resolve(task.trainer)
    rngs, init_rngs = seeded_generators(task)
    start = time.perf_counter()
    with threadpool_limits(limits=1):
        outputs = trainer.run(task.params, task.X, task.y, rngs, init_rngs)
    elapsed = time.perf_counter() - start
    declared = outputs_of(outputs)  # raises if repetitions disagree
    env = environment()
    rows = []
    if len(outputs) != len(task.indices()):
        raise CaseError(
            f"trainer {task.trainer!r} returned {len(outputs)} runs for "
            f"{len(task.indices())} repetitions at {task.key}"
        )
    for r, out in zip(task.indices(), outputs, strict=True):
        row: dict[str, Any] = {"case": task.case, "point_key": task.key, "rep": r}
        row.update(task.params)
        row.update({name: curve.tolist() for name, curve in out.curves.items()})
        row.update(out.scalars)
        row["seed"] = f"{task.entropy[0]}:{task.entropy[1]}:{r}"
        row["wall_time_s"] = elapsed / len(outputs)
        row.update(env)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs[OUTPUTS_KEY] = declared.to_json()  # pickled with the frame to the client
    return task.key, frame


@dataclass(frozen=True)
class DaskCluster:
    """An existing Dask cluster, by its scheduler's address or its scheduler file."""

    address: str | None = None
    scheduler_file: str | None = None

    def __post_init__(self) -> None:
        if (self.address is None) == (self.scheduler_file is None):
            raise CaseError("--scheduler / --scheduler-file: give exactly one of them")

    def scheduler_address(self) -> str:
        """The scheduler's address, read from the scheduler file if that is how it was named."""
        if self.address is not None:
            return self.address
        try:
            info = json.loads(Path(str(self.scheduler_file)).read_text(encoding="utf-8"))
            return str(info["address"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CaseError(
                f"--scheduler-file {self.scheduler_file}: not a readable Dask scheduler file "
                f"({type(exc).__name__}: {exc})"
            ) from None

    def describe(self) -> str:
        """How the cluster was named on the command line."""
        if self.address is not None:
            return f"--scheduler {self.address}"
        return f"--scheduler-file {self.scheduler_file}"


def execute(
    tasks: Sequence[Task],
    executor: str | DaskCluster,
    jobs: int,
    on_done: Callable[[str, pd.DataFrame], None],
) -> None:
    """Run every task, calling ``on_done`` in the main process as each finishes.

    ``executor`` is one of :data:`EXECUTORS` or a :class:`DaskCluster` to connect to
    (``jobs`` is then the cluster's business).
    """
    if isinstance(executor, DaskCluster):
        if tasks:
            _execute_dask(tasks, jobs, on_done, executor)
        return
    if executor not in EXECUTORS:
        raise CaseError(f"--executor: {executor!r} is not one of {list(EXECUTORS)}")
    if executor == "serial" or (executor == "process" and jobs <= 1) or not tasks:
        for task in tasks:
            on_done(*run_task(task))
        return
    if executor == "process":
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for key, frame in _as_completed(pool, tasks):
                on_done(key, frame)
        return
    _execute_dask(tasks, jobs, on_done)


def _as_completed(
    pool: ProcessPoolExecutor, tasks: Sequence[Task]
) -> Iterator[tuple[str, pd.DataFrame]]:
    pending: set[Future] = {pool.submit(run_task, t) for t in tasks}
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for fut in done:
            yield fut.result()


#: seconds to wait for an existing cluster's scheduler before giving up
CONNECT_TIMEOUT = 20


def _execute_dask(
    tasks: Sequence[Task],
    jobs: int,
    on_done: Callable[[str, pd.DataFrame], None],
    cluster: DaskCluster | None = None,
) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise CaseError("--executor dask needs the optional extra: pip install '.[dask]'") from None
    with ExitStack() as stack:
        if cluster is None:
            local = LocalCluster(
                n_workers=max(1, jobs), threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = stack.enter_context(Client(stack.enter_context(local)))
        else:
            address = cluster.scheduler_address()
            try:
                client = stack.enter_context(Client(address, timeout=CONNECT_TIMEOUT))
            except (OSError, TimeoutError, ValueError) as exc:
                raise CaseError(
                    f"{cluster.describe()}: cannot connect to the Dask scheduler at {address} ({exc})"
                ) from None
        futures = client.map(run_task, list(tasks), pure=False)
        for fut in as_completed(futures):
            on_done(*fut.result())
