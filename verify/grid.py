"""Grid expansion and seed derivation.

Every random draw of a run comes from ``SeedSequence((case entropy, point entropy, rep))``:
the case entropy hashes the case name and its ``seed``; the point entropy hashes the point's
parameters (not its position), so adding, removing or reordering grid points and the
order or process in which they run never change any other point's numbers.  The
initial network comes from ``(case entropy, init parameters, rep)``: repetition r of all
points with the same init parameters (e.g. m, kappa) starts from the same network
(common random numbers), so differences between points come from their own parameters.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

DATA_TAG = 0xDA7A


class _Trainer(Protocol):
    derive: Callable[[dict[str, Any]], dict[str, Any]]
    init_keys: tuple[str, ...]
    make_data: Callable[..., tuple[np.ndarray, np.ndarray]]
    data_params: Callable[[np.ndarray, np.ndarray], dict[str, Any]]


class Case(Protocol):
    """What expansion and seeding read of a case (:class:`verify.case.Case` has it; this
    module does not import that one, which validates its grid with :func:`expand`)."""

    trainer: _Trainer
    base: dict[str, Any]
    grid: Mapping[str, Sequence[Any]]
    points: Sequence[Mapping[str, Any]]
    data: Mapping[str, Any]
    calibration: Mapping[str, Any]
    path: Any
    seed_entropy: int

    @property
    def seed_entropy(self) -> int: ...


@dataclass(frozen=True)
class GridPoint:
    """One parameter set of a case; ``levels`` locates it in the Cartesian grid."""

    params: dict[str, Any]
    levels: tuple[int, ...]
    index: int

    @property
    def key(self) -> str:
        """Stable identifier: a hash of the canonical parameters."""
        return params_hash(self.params)[:16]

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))

    @property
    def entropy(self) -> int:
        return int(params_hash(self.params)[:32], 16)


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def expand(case: Case, limit: int | None = None) -> list[GridPoint]:
    """Cartesian product of ``[grid]`` over the base parameters, then the explicit points.

    Duplicates (after the trainer's derivations, e.g. IST's xi = 1/p) are dropped.
    Stops early once more than ``limit`` points exist.
    """
    keys = list(case.grid)
    out: list[GridPoint] = []
    seen: set[str] = set()

    def add(params: dict[str, Any], levels: tuple[int, ...]) -> None:
        params = case.trainer.derive(dict(params))
        h = params_hash(params)
        if h not in seen:
            seen.add(h)
            out.append(GridPoint(params, levels, len(out)))

    ranges = [range(len(case.grid[k])) for k in keys]
    for levels in itertools.product(*ranges):
        add(
            {**case.base, **{k: case.grid[k][i] for k, i in zip(keys, levels, strict=True)}}, levels
        )
        if limit is not None and len(out) > limit:
            return out
    for j, pt in enumerate(case.points):
        add({**case.base, **pt}, (j,))
    return out


def init_entropy(case: Case, point: GridPoint) -> int:
    """Entropy of the initialisation: only the trainer's init parameters of the point."""
    keys = {k: point.params[k] for k in case.trainer.init_keys}
    return int(params_hash(keys)[:32], 16)


#: the grid parameter that selects the data set (its ``[data] seed``): data as a grid axis
DATA_AXIS = "data_seed"


def data_seed(case: Case, point: GridPoint | None = None) -> int:
    """The data seed of a point: its ``data_seed`` on the grid, else the case's ``[data] seed``."""
    params = point.params if point is not None else {}
    return int(params.get(DATA_AXIS, case.data.get("seed", 0)))


def data_rng(case: Case, seed: int | None = None) -> np.random.Generator:
    """The data set is part of the problem: one draw per data seed, shared by its points."""
    seed = int(case.data.get("seed", 0)) if seed is None else seed
    return np.random.default_rng(np.random.SeedSequence([case.seed_entropy, DATA_TAG, seed]))


def datasets(
    case: Case, points: list[GridPoint]
) -> dict[str, tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    """``point key -> (X, y, data params)``: one data set per data seed of the grid."""
    made: dict[int, tuple[np.ndarray, np.ndarray, dict[str, Any]]] = {}
    out = {}
    for pt in points:
        seed = data_seed(case, pt)
        if seed not in made:
            X, y = case.trainer.make_data(case.data, data_rng(case, seed), case.path.parent)
            made[seed] = (X, y, case.trainer.data_params(X, y))
        out[pt.key] = made[seed]
    return out


def calibration_mask(case: Case, points: list[GridPoint]) -> list[bool]:
    """Which points calibrate the unknown constants (the rest are held out).

    ``checkerboard`` (default): parity of the sum of level indices, so every level of
    every grid dimension appears on both sides; ``where``: points matching all listed values.
    """
    cal = case.calibration
    if cal["split"] == "where":
        return [all(pt.params.get(k) in v for k, v in cal["where"].items()) for pt in points]
    return [sum(pt.levels) % 2 == 0 for pt in points]
