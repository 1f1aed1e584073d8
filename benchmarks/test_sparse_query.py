"""Cost per step of the sparse shifted-ReLU step against the dense step (arXiv:2307.06565).

The paper's performance claim: with the threshold ``b = sqrt(0.4 log m)`` a gradient step
that only visits the activated neurons costs in proportion to their number, about
``m^(4/5)`` per input, instead of ``m``.  Measured here, on one core, over widths
``m = 2^10 ... 2^16`` (16 inputs on the unit sphere of R^16, as in the case):

* the per-step time of the sparse step of :mod:`verify.trainers.shifted_relu` (query of the
  :class:`~verify.trainers.shifted_relu.ActiveNeuronIndex`, output and gradient over the
  activated pairs, update of the moved neurons and of their projections) and of the dense
  step over all ``m`` neurons, from the same training state;
* the log-log slopes in ``m`` of both times, with the slopes of the mean number of
  activated neurons per input and of the neurons the sparse step touches (the index's
  candidates: the union of the inputs' activated sets) for reference.

As in :mod:`benchmarks.test_bench`, every number is a ratio or a slope within one run;
absolute times are never asserted.  Only robust properties are asserted (the sparse step is
the dense step; the touched set grows sublinearly); the performance targets are printed as
PASS/MISS measurements.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from bounds.qin2023 import threshold
from verify.checks.stats import slope_with_ci
from verify.data import sphere
from verify.trainers.shifted_relu import ActiveNeuronIndex, dense_step, sparse_step

from .conftest import TargetLog

pytestmark = pytest.mark.bench

WIDTHS = tuple(2**k for k in range(10, 17))
N, D = 16, 16
ETA = 6.0
#: GD steps taken before timing (the index has pruned the neurons that left every set)
WARMUP = 5
#: steps per timed call, and interleaved repeats (the fastest is kept)
STEPS = 16
REPEATS = 5
#: the sparse time's slope must stay this far below the dense time's
SLOPE_GAP_TARGET = 0.1
#: the sparse time's slope within this of the touched neurons' slope
SLOPE_TOLERANCE = 0.15


class State:
    """One network trained by the sparse or the dense step, from a shared initialisation."""

    def __init__(self, X: np.ndarray, y: np.ndarray, m: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.X, self.y, self.b = X, y, threshold(m)
        self.W = rng.standard_normal((m, X.shape[1]))
        self.a = 2.0 * rng.integers(0, 2, size=m) - 1.0
        self.index = ActiveNeuronIndex(X, self.W, self.b)

    def sparse(self) -> None:
        _, rows, grad = sparse_step(self.index, self.W, self.a, self.y)
        self.W[rows] -= ETA * grad
        self.index.update(self.W)

    def dense(self) -> None:
        _, grad, _ = dense_step(self.X, self.W, self.a, self.y, self.b)
        self.W -= ETA * grad


def per_step(step, steps: int = STEPS) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


@pytest.fixture(scope="module")
def measurements() -> dict[int, dict[str, float]]:
    """Per width: best per-step times of both steps, activated and touched neuron counts."""
    X, y = sphere(N, D, np.random.default_rng(0))
    out = {}
    for m in WIDTHS:
        sparse, dense = State(X, y, m, m), State(X, y, m, m)
        for _ in range(WARMUP):
            sparse.sparse()
            dense.dense()
        times = {"sparse": math.inf, "dense": math.inf}
        for _ in range(REPEATS):
            times["sparse"] = min(times["sparse"], per_step(sparse.sparse))
            times["dense"] = min(times["dense"], per_step(dense.dense))
        activity = X @ sparse.W.T > sparse.b
        out[m] = times | {
            "active_per_input": float(activity.sum(axis=1).mean()),
            "touched": float(sparse.index.candidates.size),
            "weight_gap": float(np.abs(sparse.W - dense.W).max()),
        }
    return out


def slope(values: dict[int, float]) -> tuple[float, float, float]:
    s, _, _, (lo, hi) = slope_with_ci(
        np.log(np.array(list(values), dtype=float)), np.log(np.array(list(values.values())))
    )
    return s, lo, hi


def test_sparse_step_cost_scales_with_the_activated_neurons(
    measurements: dict[int, dict[str, float]], targets: TargetLog
) -> None:
    print("\n     m   sparse ms   dense ms   dense/sparse   active/input   touched")
    for m, row in measurements.items():
        print(
            f"{m:6d}   {1e3 * row['sparse']:9.3f}   {1e3 * row['dense']:8.3f}   "
            f"{row['dense'] / row['sparse']:12.2f}   {row['active_per_input']:12.1f}   "
            f"{row['touched']:7.0f}"
        )
    slopes = {
        key: slope({m: row[key] for m, row in measurements.items()})
        for key in ("sparse", "dense", "active_per_input", "touched")
    }
    for key, (s, lo, hi) in slopes.items():
        print(f"slope of log {key} vs log m: {s:.3f} [{lo:.3f}, {hi:.3f}]")
    sparse, dense = slopes["sparse"][0], slopes["dense"][0]
    touched, active = slopes["touched"][0], slopes["active_per_input"][0]
    targets.record(
        "qin2023: dense slope - sparse slope (log time vs log m)",
        dense - sparse,
        f">= {SLOPE_GAP_TARGET}",
        dense - sparse >= SLOPE_GAP_TARGET,
    )
    targets.record(
        "qin2023: |sparse time slope - touched neurons slope|",
        abs(sparse - touched),
        f"<= {SLOPE_TOLERANCE}",
        abs(sparse - touched) <= SLOPE_TOLERANCE,
    )
    largest = measurements[WIDTHS[-1]]
    targets.record(
        f"qin2023: dense / sparse time per step at m = {WIDTHS[-1]}",
        largest["dense"] / largest["sparse"],
        "> 1",
        largest["dense"] > largest["sparse"],
        "x",
    )
    # robust properties: the activated and touched sets grow sublinearly (~ m^(4/5))
    assert active < 0.9 and touched < 0.95
    assert all(row["touched"] < m for m, row in measurements.items())


def test_sparse_and_dense_states_coincide(measurements: dict[int, dict[str, float]]) -> None:
    """The timed sparse and dense trajectories are the same trajectory (to rounding)."""
    for m, row in measurements.items():
        assert row["weight_gap"] < 1e-10, m
