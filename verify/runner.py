"""Run a case: expand its grid, train the points not yet stored, evaluate the checks."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import bounds

from .case import Case
from .evaluate import Evaluation, evaluate
from .executors import Task, execute
from .grid import GridPoint, data_rng, datasets, expand, init_entropy
from .progress import progress_bar
from .result_schema import BOOKKEEPING, OUTPUTS_KEY, Outputs, ResultSchema, declared_outputs
from .schema import CaseError
from .store import (
    code_version,
    environment,
    fingerprint,
    is_done,
    now,
    read_points,
    remove_stale_temporaries,
    write_json,
    write_point,
    write_table,
)
from .vacuity import term_fits


@dataclass
class CaseRun:
    case: Case
    directory: Path
    evaluation: Evaluation
    trained: int
    reused: int
    wall_time_s: float


def case_directory(out: Path, case: Case, quick: bool) -> Path:
    return out / (f"{case.name}-quick" if quick else case.name)


def make_task(
    case: Case,
    point: GridPoint,
    X: np.ndarray,
    y: np.ndarray,
    reps: tuple[int, ...] | None = None,
) -> Task:
    """The picklable task that trains the repetitions ``reps`` of ``point`` (default: all of
    them), in any process."""
    return Task(
        case.name,
        case.trainer.name,
        point.key,
        {**case.data, **point.params},
        (case.seed_entropy, point.entropy),
        init_entropy(case, point),
        case.repetitions,
        X,
        y,
        case.plugins,
        reps,
    )


def point_tasks(case: Case, point: GridPoint, X: np.ndarray, y: np.ndarray) -> list[Task]:
    """The tasks of one point: one per repetition where the trainer declares its repetitions
    independent at this point (``Trainer.independent_repetitions``: the same numbers as one
    task, so every executor stores the same point), otherwise one for all of them."""
    params = {**case.data, **point.params}
    if case.repetitions > 1 and case.trainer.independent_repetitions(params, X):
        return [make_task(case, point, X, y, (r,)) for r in range(case.repetitions)]
    return [make_task(case, point, X, y)]


class PointPieces:
    """The tables of a point's tasks, put together (in repetition order) when the last one
    arrives, whatever the order the executor returns them in."""

    def __init__(self, tasks: list[Task]) -> None:
        self.expected = Counter(task.key for task in tasks)
        self.frames: dict[str, list[pd.DataFrame]] = {}

    def add(self, key: str, frame: pd.DataFrame) -> pd.DataFrame | None:
        """Keep one task's rows; the point's whole table once all its tasks are in."""
        frames = self.frames.setdefault(key, [])
        frames.append(frame)
        if len(frames) < self.expected[key]:
            return None
        del self.frames[key]
        if len(frames) == 1:
            return frames[0]
        declared = {json.dumps(f.attrs.get(OUTPUTS_KEY), sort_keys=True) for f in frames}
        if len(declared) != 1:
            raise CaseError(f"{key}: the repetitions' tasks declared different outputs")
        whole = pd.concat(frames, ignore_index=True).sort_values("rep", kind="stable")
        whole = whole.reset_index(drop=True)
        whole.attrs[OUTPUTS_KEY] = frames[0].attrs.get(OUTPUTS_KEY)
        return whole


def run_case(
    case: Case,
    out: Path,
    executor: str = "serial",
    jobs: int = 1,
    quick: bool = False,
    perturb: Mapping[str, float] | None = None,
    show_progress: bool = True,
) -> CaseRun:
    start = time.perf_counter()
    if quick:
        case = case.with_quick()
    points = expand(case)
    data = datasets(case, points)
    X, y = case.trainer.make_data(case.data, data_rng(case), case.path.parent)
    data_params = case.trainer.data_params(X, y)
    per_point = {key: params for key, (_, _, params) in data.items()}
    directory = case_directory(out, case, quick)
    remove_stale_temporaries(directory)
    prints = {
        pt.key: fingerprint(
            {
                "params": pt.params,
                "data": case.data,
                "repetitions": case.repetitions,
                "seed": case.seed_entropy,
                "trainer": case.trainer.name,
            }
        )
        for pt in points
    }
    todo = [pt for pt in points if not is_done(directory, pt.key, prints[pt.key])]
    tasks = [task for pt in todo for task in point_tasks(case, pt, *data[pt.key][:2])]
    with progress_bar(
        len(tasks) if show_progress else 0, f"{case.name}: {len(points) - len(todo)} stored"
    ) as bar:
        pieces = PointPieces(tasks)

        def done(key: str, frame: pd.DataFrame) -> None:
            whole = pieces.add(key, frame)
            if whole is not None:
                write_point(directory, key, whole, prints[key])
            bar.update(1)

        execute(tasks, executor, jobs, done)
    results = read_points(directory, [pt.key for pt in points])
    schema = result_schema(case, points, declared_outputs(results))
    evaluation = evaluate(case, points, results, data_params, perturb, per_point)
    write_table(directory / "verdicts.parquet", evaluation.frame())
    wall = time.perf_counter() - start
    write_json(
        directory / "case.json",
        _metadata(case, points, data_params, evaluation, perturb, wall)
        | {"schema": schema.to_json()},
    )
    return CaseRun(case, directory, evaluation, len(todo), len(points) - len(todo), wall)


def result_schema(case: Case, points: list[GridPoint], outputs: Outputs) -> ResultSchema:
    """The roles of the case's result columns: parameters (data settings, then the points'
    parameters), grid axes, the trainer's declared outputs, bookkeeping."""
    names = dict.fromkeys(case.data)
    for pt in points:
        names |= dict.fromkeys(pt.params)
    return ResultSchema(
        trainer=case.trainer.name,
        # a data key such as ``seed`` shares its name with a bookkeeping column, which wins
        parameters=tuple(n for n in names if n not in BOOKKEEPING),
        grid=tuple(case.grid),
        curves=outputs.curves,
        scalars=outputs.scalars,
    )


def _metadata(
    case: Case,
    points,
    data_params,
    evaluation: Evaluation,
    perturb: Mapping[str, float] | None,
    wall: float,
) -> dict[str, Any]:
    provenance = {}
    for bound_id in case.bounds:
        b = bounds.get(bound_id)
        example = next((pt for pt in points), None)
        provenance[bound_id] = b.describe() | {
            "trends": [f"{t.quantity} {t.direction} in {t.parameter}: {t.note}" for t in b.trends],
            "requirements_example": b.requirements({**data_params, **example.params})
            if example
            else {},
            "doc": (type(b).__doc__ or "").strip(),
        }
    return {
        "name": case.name,
        "description": case.description,
        "path": str(case.path),
        "trainer": case.trainer.name,
        "bounds": list(case.bounds),
        "repetitions": case.repetitions,
        "false_alarm": case.false_alarm,
        "grid": case.grid,
        "base": case.base,
        "data": case.data,
        "points": [pt.key for pt in points],
        "data_params": data_params,
        "provenance": provenance,
        "calibration": evaluation.calibration,
        "vacuity": evaluation.vacuity,
        "vacuity_term_fits": term_fits(
            [r for r in evaluation.vacuity if r["bound"].endswith("theorem3")]
        ),
        "environment": environment()
        | {"date": now(), "seed_entropy": str(case.seed_entropy), "code_version": code_version()},
        "wall_time_s": wall,
        "perturb": dict(perturb or {}),
    }
