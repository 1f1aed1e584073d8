"""Trainers, one per model family, each with the parameter schema its case files use.

A trainer is registered with :func:`register` and declares
* ``schema``: TOML section -> key -> :class:`~verify.schema.Spec` (validated strictly),
* ``grid_keys``: which keys may vary over a grid,
* ``make_data(params, rng)``: the data set (``X, y``) shared by every grid point,
* ``data_params(X, y)``: data-derived quantities the bounds need (e.g. lambda0),
* ``run(params, X, y, rngs)``: one :class:`RunOutput` per repetition,
* ``memory_bytes(params, reps)``: peak memory estimate, to reject grids too large;
* ``measured_params``: scalar outputs a bound reads as parameters of the point (measured
  hypotheses such as an eigenvalue at initialisation, or width-dependent constants computed
  by the trainer); the point gets their minimum over the repetitions (conservative for
  eigenvalue-type quantities); ``measured_max``: the same for outputs whose maximum over the
  repetitions is the conservative one (e.g. a distance from the initialisation);
* ``independent_repetitions(params, X)``: whether, at this point, ``run`` computes every
  repetition exactly (bit for bit) as it would with that repetition alone; the runner then
  trains each repetition as a task of its own, so a point's repetitions spread over the
  workers (default: never).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bounds.plugins import import_entry_points, import_package

from ..schema import CaseError, Spec
from .outputs import RunOutput

__all__ = ["RunOutput", "Trainer", "get", "register", "trainers"]


@dataclass(frozen=True)
class Trainer:
    name: str
    description: str
    schema: Mapping[str, Mapping[str, Spec]]
    make_data: Callable[
        [Mapping[str, Any], np.random.Generator, Path], tuple[np.ndarray, np.ndarray]
    ]
    data_params: Callable[[np.ndarray, np.ndarray], dict[str, float]]
    run: Callable[
        [Mapping[str, Any], np.ndarray, np.ndarray, Sequence[np.random.Generator]], list[RunOutput]
    ]
    memory_bytes: Callable[[Mapping[str, Any], int], float]
    grid_sections: tuple[str, ...] = ()
    derive: Callable[[dict[str, Any]], dict[str, Any]] = field(default=lambda p: p)
    #: parameters that determine the initialisation: repetition r of every grid point with
    #: the same values shares its initial network (common random numbers)
    init_keys: tuple[str, ...] = ()
    #: scalar outputs copied into the point's parameters (minimum over repetitions)
    measured_params: tuple[str, ...] = ()
    #: scalar outputs copied into the point's parameters (maximum over repetitions)
    measured_max: tuple[str, ...] = ()
    #: whether a point's repetitions may be trained apart, bit for bit (see the module doc)
    independent_repetitions: Callable[[Mapping[str, Any], np.ndarray], bool] = field(
        default=lambda params, X: False
    )

    @property
    def grid_keys(self) -> set[str]:
        return {k for s in self.grid_sections for k in self.schema[s]}


_TRAINERS: dict[str, Trainer] = {}


def register(trainer: Trainer) -> Trainer:
    _TRAINERS[trainer.name] = trainer
    return trainer


def get(name: str) -> Trainer:
    if name not in _TRAINERS:
        raise CaseError(f"trainer: unknown trainer {name!r}; known: {sorted(_TRAINERS)}")
    return _TRAINERS[name]


def trainers() -> dict[str, Trainer]:
    return dict(_TRAINERS)


# every module of this package, then the installed distributions' trainers (bounds.plugins)
import_package(__name__)
import_entry_points("maskverify.trainers")
