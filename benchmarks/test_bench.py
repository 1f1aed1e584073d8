"""Performance benchmarks of the vectorised masked-surrogate trainer (``tox -e bench``).

Every number is a ratio measured within one run: the trainer of
:mod:`verify.trainers.masked_shallow` against plain loops written in this file (NumPy, and
PyTorch eager when it is installed), against the machine's own float64 GEMM rate, and
against itself at other grid points or executors.  Absolute times are never asserted.

Only robust properties are asserted (the baselines compute the trainer's algorithm; the
trainer beats the plain NumPy loop; float32 follows float64; Dask reproduces serial runs
bit for bit).  The quantitative performance targets are printed as PASS/MISS measurements and
summarised at the end of the session.

Work is counted in *surrogate steps*: one local GD step on one surrogate of one
repetition, so a round of a point costs ``repetitions * p * tau`` of them.  Per-round
times exclude the fixed cost of a call (initialisation, final kernel eigenvalues): each
is ``(t(rounds) - t(0)) / rounds``, the best of :data:`REPEATS` interleaved repeats.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pytest_benchmark.fixture import BenchmarkFixture
from threadpoolctl import threadpool_limits

import bounds
from verify.case import Case, load
from verify.grid import expand
from verify.runner import run_case
from verify.store import read_points
from verify.trainers.masked_shallow import draw_masks, init_weights, train

from .conftest import TargetLog
from .work import trainer_products

pytestmark = pytest.mark.bench

#: the representative subset of the bench grid that is timed: every width and keep
#: probability, with the cheapest and the most expensive (p, tau)
WIDTHS = (1000, 4000, 16000)
KEEPS = (0.25, 0.5, 1.0)
SURROGATE_STEPS = ((1, 1), (4, 4))
SUBSET = [(m, xi, p, tau) for m in WIDTHS for xi in KEEPS for p, tau in SURROGATE_STEPS]

#: rounds timed per call, by width (the per-round cost is what is compared)
TRAINER_ROUNDS = {1000: 6, 4000: 3, 16000: 1}
BASELINE_ROUNDS = {1000: 3, 4000: 1, 16000: 1}
#: interleaved repeats of every timing; the fastest is kept
REPEATS = 3

#: the performance targets.  The earlier 8x (12x in float32) over the plain loop is withdrawn
#: (at xi = 1 the loop does the same matrix products): the ratios to the loop are only
#: required to exceed 1; the machine's limits and JAX are the yardsticks
#: (``benchmarks/test_limits.py``)
NUMPY_TARGET = 1.0
TORCH_TARGET = 3.0
FLOAT32_TARGET = 1.0
GEMM_FRACTION_TARGET = 0.50
XI_COST_TARGET = 0.30
SLOPE_TOLERANCE = 0.15
PROCESS_TARGET = 1.7

GEMM_SIZE = 2000

Trainer = Callable[..., np.ndarray]


# --------------------------------------------------------------------------- baselines


def naive_numpy_train(
    X: np.ndarray,
    y: np.ndarray,
    *,
    m: int,
    kappa: float,
    eta: float,
    rounds: int,
    xi: float,
    p: int,
    tau: int,
    rngs: Sequence[np.random.Generator],
) -> np.ndarray:
    """The plain loop: full ``n x m`` pre-activations times a 0/1 mask for every surrogate.

    For each round, for each repetition, for each of the p surrogates, for each of the tau
    local steps: the surrogate's output ``(1/(xi sqrt(m))) sum_r mask_r a_r relu(w_r.x)``,
    its error and its gradient over all m neurons; then every neuron held by at least one
    surrogate moves by the average of its trained copies.  The full network's loss is
    logged after every round.  Same random draws, in the same order, as the trainer.
    Returns the loss curves, shape ``(rounds + 1, repetitions)``.
    """
    n, d = X.shape
    nets = [init_weights(rng, m, d, kappa) for rng in rngs]
    scale = 1.0 / (xi * math.sqrt(m))
    loss = np.empty((rounds + 1, len(rngs)))
    for r, (W, a) in enumerate(nets):
        loss[0, r] = np.sum((y - np.maximum(X @ W.T, 0.0) @ a / math.sqrt(m)) ** 2)
    for k in range(1, rounds + 1):
        for r, rng in enumerate(rngs):
            W, a = nets[r]
            total = np.zeros_like(W)
            count = np.zeros(m)
            for idx in draw_masks(rng, m, xi, p, "bernoulli"):
                mask = np.zeros(m)
                mask[idx] = 1.0
                Wl = W.copy()
                for _ in range(tau):
                    Z = X @ Wl.T
                    u = (np.maximum(Z, 0.0) * mask * a).sum(axis=1) * scale
                    err = u - y
                    grad = ((err[:, None] * (Z > 0) * mask * a).T @ X) * scale
                    Wl = Wl - eta * grad
                total += (Wl - W) * mask[:, None]
                count += mask
            held = count > 0
            W = W.copy()
            W[held] += total[held] / count[held, None]
            nets[r] = (W, a)
            loss[k, r] = np.sum((y - np.maximum(X @ W.T, 0.0) @ a / math.sqrt(m)) ** 2)
    return loss


def naive_torch_train(
    X: np.ndarray,
    y: np.ndarray,
    *,
    m: int,
    kappa: float,
    eta: float,
    rounds: int,
    xi: float,
    p: int,
    tau: int,
    rngs: Sequence[np.random.Generator],
) -> np.ndarray:
    """:func:`naive_numpy_train` in PyTorch eager mode (float64, masks drawn by NumPy)."""
    import torch

    n, d = X.shape
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    nets = []
    for rng in rngs:
        W, a = init_weights(rng, m, d, kappa)
        nets.append((torch.from_numpy(W), torch.from_numpy(a)))
    scale = 1.0 / (xi * math.sqrt(m))
    loss = np.empty((rounds + 1, len(rngs)))

    def full_loss(W: Any, a: Any) -> float:
        return float(torch.sum((yt - torch.relu(Xt @ W.T) @ a / math.sqrt(m)) ** 2))

    for r, (W, a) in enumerate(nets):
        loss[0, r] = full_loss(W, a)
    for k in range(1, rounds + 1):
        for r, rng in enumerate(rngs):
            W, a = nets[r]
            total = torch.zeros_like(W)
            count = torch.zeros(m, dtype=W.dtype)
            for idx in draw_masks(rng, m, xi, p, "bernoulli"):
                mask = torch.zeros(m, dtype=W.dtype)
                mask[torch.from_numpy(idx)] = 1.0
                Wl = W.clone()
                for _ in range(tau):
                    Z = Xt @ Wl.T
                    u = (torch.relu(Z) * mask * a).sum(dim=1) * scale
                    err = u - yt
                    grad = ((err[:, None] * (Z > 0) * mask * a).T @ Xt) * scale
                    Wl = Wl - eta * grad
                total += (Wl - W) * mask[:, None]
                count += mask
            held = count > 0
            W = W.clone()
            W[held] += total[held] / count[held, None]
            nets[r] = (W, a)
            loss[k, r] = full_loss(W, a)
    return loss


def vectorised_train(dtype: str) -> Trainer:
    """The trainer under test, returning loss curves shaped like the baselines'."""

    def run(X: np.ndarray, y: np.ndarray, **params: Any) -> np.ndarray:
        outputs = train(X, y, scheme="bernoulli", dtype=dtype, **params)
        return np.stack([out.curves["loss"] for out in outputs], axis=1)

    return run


# --------------------------------------------------------------------------- timing helpers


def generators(reps: int, seed: int = 0) -> list[np.random.Generator]:
    """Fresh, independent generators, one per repetition."""
    return [np.random.default_rng([seed, r]) for r in range(reps)]


def seconds(fn: Callable[[], object]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pedantic_seconds(benchmark: BenchmarkFixture, fn: Callable[[], object], rounds: int) -> float:
    """Time ``fn`` through pytest-benchmark and return the fastest call's wall time.

    The durations are taken around the call itself, so the result is the same whether
    pytest-benchmark is enabled (``rounds`` calls) or disabled (one call).
    """
    durations: list[float] = []

    def timed() -> None:
        durations.append(seconds(fn))

    benchmark.pedantic(timed, rounds=rounds, iterations=1, warmup_rounds=0)
    return min(durations)


@dataclass(frozen=True)
class Setting:
    """The fixed parameters of the benchmark: data, kappa, eta and repetitions."""

    X: np.ndarray
    y: np.ndarray
    kappa: float
    eta: float
    reps: int

    def per_round(
        self, runs: dict[str, tuple[Trainer, int]], m: int, xi: float, p: int, tau: int
    ) -> dict[str, float]:
        """Seconds per round at one point of each ``name: (trainer, rounds)``.

        The fixed cost of a call is excluded: ``(t(rounds) - t(0)) / rounds``, each time the
        best of :data:`REPEATS` repeats, the trainers interleaved within every repeat.
        """
        params = {"m": m, "kappa": self.kappa, "eta": self.eta, "xi": xi, "p": p, "tau": tau}
        best = {(name, r): math.inf for name, (_, rounds) in runs.items() for r in (0, rounds)}
        for _ in range(REPEATS):
            for name, r in best:
                fn = runs[name][0]
                t = seconds(
                    lambda fn=fn, r=r: fn(
                        self.X, self.y, rounds=r, rngs=generators(self.reps), **params
                    )
                )
                best[name, r] = min(best[name, r], t)
        return {
            name: max(best[name, rounds] - best[name, 0], 1e-9) / rounds
            for name, (_, rounds) in runs.items()
        }

    def steps_per_round(self, p: int, tau: int) -> int:
        """Surrogate steps of one round: repetitions * p * tau."""
        return self.reps * p * tau

    def useful_flops_per_round(self, m: int, xi: float, p: int, tau: int) -> float:
        """``4 n d k`` per surrogate step for k selected neurons (k = xi m on average)."""
        n, d = self.X.shape
        return 4.0 * n * d * (xi * m) * self.steps_per_round(p, tau)


@dataclass
class PointTiming:
    """Seconds per round at one point of the subset."""

    m: int
    xi: float
    p: int
    tau: int
    trainer64: float
    trainer32: float
    numpy_loop: float


def geometric_mean(values: Sequence[float]) -> float:
    """Geometric mean of positive numbers."""
    return float(np.exp(np.mean(np.log(values))))


def total_ratio(
    setting: Setting, timings: dict[tuple[int, float, int, int], PointTiming], name: str
) -> float:
    """Surrogate steps per second over the whole subset, against the NumPy loop.

    Every point counts with one round, so this is the loop's total time over the trainer's.
    """
    loop = sum(row.numpy_loop for row in timings.values())
    return loop / sum(getattr(row, name) for row in timings.values())


def label(m: int, xi: float, p: int, tau: int) -> str:
    """A point of the subset, as printed in tables."""
    return f"m={m:<5d} xi={xi:<4g} p={p} tau={tau}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def setting(bench_case: Case, bench_data: tuple[np.ndarray, np.ndarray]) -> Setting:
    """The bench case's data and fixed parameters."""
    X, y = bench_data
    return Setting(X, y, bench_case.base["kappa"], bench_case.base["eta"], bench_case.repetitions)


@pytest.fixture(scope="module")
def gemm() -> dict[str, float]:
    """float64 GEMM rate (FLOP/s) of a 2000 x 2000 matmul on one thread and on all cores."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((2, GEMM_SIZE, GEMM_SIZE))
    flops = 2.0 * GEMM_SIZE**3
    A @ B  # warm-up
    one = flops / min(seconds(lambda: A @ B) for _ in range(3))
    with threadpool_limits(limits=os.cpu_count()):
        A @ B
        every = flops / min(seconds(lambda: A @ B) for _ in range(3))
    return {"one_thread": one, "all_threads": every}


@pytest.fixture(scope="module")
def torch() -> Any:
    """The optional PyTorch module; skips the test (before any timing) when it is missing."""
    return pytest.importorskip(
        "torch", reason="PyTorch is optional (pip install '.[bench]')", exc_type=ImportError
    )


@pytest.fixture(scope="module")
def timings(setting: Setting) -> dict[tuple[int, float, int, int], PointTiming]:
    """Per-round times of the trainer (float64, float32) and the NumPy loop on the subset."""
    out = {}
    for m, xi, p, tau in SUBSET:
        runs = {
            "trainer64": (vectorised_train("float64"), TRAINER_ROUNDS[m]),
            "trainer32": (vectorised_train("float32"), TRAINER_ROUNDS[m]),
            "numpy_loop": (naive_numpy_train, BASELINE_ROUNDS[m]),
        }
        out[m, xi, p, tau] = PointTiming(m, xi, p, tau, **setting.per_round(runs, m, xi, p, tau))
    return out


# --------------------------------------------------------------------------- benchmarks


def test_baselines_compute_the_trainers_algorithm(setting: Setting) -> None:
    """The plain loops reproduce the trainer's loss curves, so the timings compare equal work."""
    params = {"m": 300, "kappa": setting.kappa, "eta": setting.eta, "rounds": 4}
    params |= {"xi": 0.5, "p": 3, "tau": 2}
    expected = vectorised_train("float64")(setting.X, setting.y, rngs=generators(3), **params)
    numpy_loop = naive_numpy_train(setting.X, setting.y, rngs=generators(3), **params)
    np.testing.assert_allclose(numpy_loop, expected, rtol=1e-9)
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    torch_loop = naive_torch_train(setting.X, setting.y, rngs=generators(3), **params)
    np.testing.assert_allclose(torch_loop, expected, rtol=1e-9)


def test_bench_case_is_inside_the_step_size_hypothesis(
    bench_case: Case, bench_data: tuple[np.ndarray, np.ndarray]
) -> None:
    """``cases/bench.toml`` loads and every grid point has ``eta lambda_max / xi < 1``."""
    bound = bounds.get("liao2022.theorem1")
    data_params = bench_case.trainer.data_params(*bench_data)
    points = expand(bench_case)
    assert len(points) == 36
    for pt in points:
        assert bound.preconditions({**data_params, **pt.params}) == [], pt.label


def test_gemm_rate(benchmark: BenchmarkFixture, gemm: dict[str, float]) -> None:
    """The machine's float64 GEMM rate, the yardstick of the trainer's FLOP rate."""
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((2, GEMM_SIZE, GEMM_SIZE))
    t = pedantic_seconds(benchmark, lambda: A @ B, rounds=3)
    benchmark.extra_info |= {"gflops_one_thread": gemm["one_thread"] / 1e9}
    print(
        f"\nfloat64 GEMM {GEMM_SIZE}x{GEMM_SIZE}: {2 * GEMM_SIZE**3 / t / 1e9:.1f} GFLOP/s "
        f"(one thread; fixture: {gemm['one_thread'] / 1e9:.1f}), "
        f"{gemm['all_threads'] / 1e9:.1f} GFLOP/s on {os.cpu_count()} threads"
    )


def test_trainer_beats_numpy_loop(
    benchmark: BenchmarkFixture,
    setting: Setting,
    gemm: dict[str, float],
    timings: dict[tuple[int, float, int, int], PointTiming],
    targets: TargetLog,
) -> None:
    """Surrogate steps per second of the trainer over the plain NumPy loop, point by point.

    ``ceiling`` is the ratio a trainer would reach if it did nothing but the useful
    arithmetic (``4 n d k`` FLOPs per surrogate step) at the one-thread GEMM rate.
    """
    m, xi, p, tau = 4000, 0.5, 4, 4
    rounds = TRAINER_ROUNDS[m]
    params = {"m": m, "kappa": setting.kappa, "eta": setting.eta, "xi": xi, "p": p, "tau": tau}
    t = pedantic_seconds(
        benchmark,
        lambda: train(setting.X, setting.y, rounds=rounds, rngs=generators(setting.reps), **params),
        rounds=2,
    )
    print(
        f"\ntrainer at {label(m, xi, p, tau)}: {rounds} rounds in {t:.3f} s (fixed cost included)"
    )
    print(
        f"{'point':<30s} {'trainer steps/s':>16s} {'loop steps/s':>13s} {'ratio':>7s} "
        f"{'ceiling':>8s}"
    )
    ratios, ceilings = [], []
    for (m, xi, p, tau), row in timings.items():
        steps = setting.steps_per_round(p, tau)
        ratio = row.numpy_loop / row.trainer64
        ratios.append(ratio)
        floor = setting.useful_flops_per_round(m, xi, p, tau) / gemm["one_thread"]
        ceilings.append(row.numpy_loop / floor)
        print(
            f"{label(m, xi, p, tau):<30s} {steps / row.trainer64:16.0f} "
            f"{steps / row.numpy_loop:13.0f} {ratio:7.2f} {ceilings[-1]:8.2f}"
        )
    mean = geometric_mean(ratios)
    print(
        f"geometric mean: {mean:.2f}x; at the GEMM rate (ceiling): "
        f"{geometric_mean(ceilings):.2f}x; total steps/s over the subset: "
        f"{total_ratio(setting, timings, 'trainer64'):.2f}x"
    )
    benchmark.extra_info |= {
        "numpy_loop_ratio_geomean": mean,
        "numpy_loop_ratio_min": min(ratios),
        "numpy_loop_ceiling_geomean": geometric_mean(ceilings),
    }
    targets.record(
        "trainer / numpy loop, geometric mean over subset",
        mean,
        f">= {NUMPY_TARGET:g}x",
        mean >= NUMPY_TARGET,
        "x",
    )
    targets.record(
        "trainer / numpy loop, slowest point of subset",
        min(ratios),
        f">= {NUMPY_TARGET:g}x",
        min(ratios) >= NUMPY_TARGET,
        "x",
    )
    slower = [label(*key) for key, row in timings.items() if row.trainer64 >= row.numpy_loop]
    assert mean > 1.0, (
        f"the trainer is slower than the plain NumPy loop: {mean:.2f}x over the subset "
        f"(slower at {len(slower)} of {len(timings)} points: {', '.join(slower)})"
    )


def test_float32_option(
    setting: Setting,
    timings: dict[tuple[int, float, int, int], PointTiming],
    targets: TargetLog,
) -> None:
    """``dtype = "float32"``: speed over the (float64) NumPy loop, and agreement with float64."""
    print(f"\n{'point':<30s} {'float32/loop':>12s} {'float32/float64':>16s}")
    ratios = []
    for key, row in timings.items():
        ratios.append(row.numpy_loop / row.trainer32)
        print(f"{label(*key):<30s} {ratios[-1]:12.2f} {row.trainer64 / row.trainer32:16.2f}")
    mean = geometric_mean(ratios)
    targets.record(
        "float32 trainer / numpy loop, geometric mean",
        mean,
        f">= {FLOAT32_TARGET:g}x",
        mean >= FLOAT32_TARGET,
        "x",
    )
    params = {"m": 1000, "kappa": setting.kappa, "eta": setting.eta, "rounds": 40}
    params |= {"xi": 0.5, "p": 4, "tau": 4}
    curves = {
        dtype: vectorised_train(dtype)(
            setting.X, setting.y, rngs=generators(setting.reps), **params
        )
        for dtype in ("float32", "float64")
    }
    deviation = float(np.max(np.abs(curves["float32"] / curves["float64"] - 1.0)))
    print(
        f"float32 vs float64 loss curves on the same draws: max relative deviation {deviation:.2e}"
    )
    assert deviation < 1e-3


#: cases whose checks are run on float32 and float64 curves: the bench case at m = 1000
#: (12 points, floor check) and the flagship Theorem 1 case in its quick form (36 points,
#: envelope, rate, floor and trend checks)
VERDICT_CASES = (("bench.toml", {"m = [1000, 4000, 16000]": "m = [1000]"}, False),)
VERDICT_CASES += (("liao2022_theorem1.toml", {}, True),)


def case_statuses(path: Path, dtype: str, out: Path, quick: bool) -> pd.Series:
    """Every verdict's status of a run of the case file in ``dtype``, by check and point."""
    case = load(path)
    run = run_case(case, out, "serial", quick=quick, show_progress=False)
    frame = run.evaluation.frame()
    frame["label"] = frame["label"].str.replace(f"dtype={dtype} ", "", regex=False)
    return frame.set_index(["bound", "check", "label", "quantity"])["status"].sort_index()


def test_float32_verdicts_match_float64(
    bench_case: Case, tmp_path: Path, targets: TargetLog
) -> None:
    """The checks' verdicts on curves trained in float32 and in float64, from the same seeds.

    Measured on :data:`VERDICT_CASES`; asserted only that no verdict moves between pass and
    fail (a flip between pass and inconclusive is recorded as a missed target).
    """
    cases_dir = bench_case.path.parent
    for name, edits, quick in VERDICT_CASES:
        text = (cases_dir / name).read_text(encoding="utf-8")
        for old, new in edits.items():
            assert old in text, (name, old)
            text = text.replace(old, new)
        text = re.sub(r'^dtype = ".*"\n', "", text, flags=re.M)
        statuses = {}
        for dtype in ("float64", "float32"):
            path = tmp_path / f"{dtype}_{name}"
            path.write_text(text.replace("[training]\n", f'[training]\ndtype = "{dtype}"\n', 1))
            statuses[dtype] = case_statuses(path, dtype, tmp_path / f"{dtype}_{name}.out", quick)
        f64, f32 = statuses["float64"], statuses["float32"]
        assert f64.index.equals(f32.index)
        changed = f64 != f32
        print(
            f"\n{name}{' (quick)' if quick else ''}: {len(f64)} verdicts, float64 "
            f"{f64.value_counts().to_dict()}, float32 {f32.value_counts().to_dict()}; "
            f"{int(changed.sum())} differ"
        )
        for key in f64.index[changed]:
            print(f"  {key[1]} {key[2]}: float64 {f64[key]}, float32 {f32[key]}")
        targets.record(
            f"float32 == float64 verdicts, {Path(name).stem} ({len(f64)})",
            float(changed.sum()),
            "0 differ",
            not changed.any(),
        )
        flips = changed & ((f64 == "fail") | (f32 == "fail"))
        assert not flips.any(), f"pass/fail verdicts change in float32: {list(f64.index[flips])}"


def test_trainer_vs_torch_eager(
    torch: Any,
    benchmark: BenchmarkFixture,
    setting: Setting,
    timings: dict[tuple[int, float, int, int], PointTiming],
    targets: TargetLog,
) -> None:
    """The trainer over the same plain loop in PyTorch eager mode (one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        m, xi, p, tau = 4000, 0.5, 4, 4
        params = {"m": m, "kappa": setting.kappa, "eta": setting.eta, "xi": xi, "p": p}
        pedantic_seconds(
            benchmark,
            lambda: naive_torch_train(
                setting.X, setting.y, rounds=1, tau=tau, rngs=generators(setting.reps), **params
            ),
            rounds=2,
        )
        print(f"\n{'point':<30s} {'torch steps/s':>14s} {'trainer/torch':>14s}")
        ratios = []
        for key in timings:
            m, xi, p, tau = key
            runs = {"torch": (naive_torch_train, BASELINE_ROUNDS[m])}
            per_round = setting.per_round(runs, m, xi, p, tau)["torch"]
            ratios.append(per_round / timings[key].trainer64)
            steps = setting.steps_per_round(p, tau)
            print(f"{label(*key):<30s} {steps / per_round:14.0f} {ratios[-1]:14.2f}")
    finally:
        torch.set_num_threads(threads)
    mean = geometric_mean(ratios)
    benchmark.extra_info |= {"torch_eager_ratio_geomean": mean}
    targets.record(
        "trainer / torch eager loop, geometric mean",
        mean,
        f">= {TORCH_TARGET:g}x",
        mean >= TORCH_TARGET,
        "x",
    )


def test_useful_flop_rate(
    setting: Setting,
    gemm: dict[str, float],
    timings: dict[tuple[int, float, int, int], PointTiming],
    targets: TargetLog,
) -> None:
    """Useful FLOP rate (``4 n d k`` per surrogate step) as a fraction of one-thread GEMM."""
    print()
    for p, tau in SURROGATE_STEPS:
        row = timings[16000, 1.0, p, tau]
        rate = setting.useful_flops_per_round(16000, 1.0, p, tau) / row.trainer64
        fraction = rate / gemm["one_thread"]
        print(
            f"{label(16000, 1.0, p, tau)}: {rate / 1e9:.2f} useful GFLOP/s "
            f"(GEMM {gemm['one_thread'] / 1e9:.1f} GFLOP/s on one thread)"
        )
        targets.record(
            f"useful FLOP rate / GEMM at m=16000 xi=1 p={p} tau={tau}",
            fraction,
            f">= {GEMM_FRACTION_TARGET:.0%}",
            fraction >= GEMM_FRACTION_TARGET,
        )


def test_cost_scales_with_xi(
    timings: dict[tuple[int, float, int, int], PointTiming],
    bench_data: tuple[np.ndarray, np.ndarray],
    targets: TargetLog,
) -> None:
    """A round at xi = 0.25 against a round at xi = 1, next to the ratio of their products
    (:func:`benchmarks.work.trainer_products`: the loss needs all m neurons every round)."""
    print()
    n, d = bench_data[0].shape
    for m in WIDTHS:
        for p, tau in SURROGATE_STEPS:
            ratio = timings[m, 0.25, p, tau].trainer64 / timings[m, 1.0, p, tau].trainer64
            ideal = trainer_products(n, d, 0.25, p, tau) / trainer_products(n, d, 1.0, p, tau)
            print(
                f"m={m:<5d} p={p} tau={tau}: round(xi=0.25) / round(xi=1) = {ratio:.3f} "
                f"(products: {ideal:.3f})"
            )
            if m == max(WIDTHS):
                targets.record(
                    f"cost(xi=0.25) / cost(xi=1) at m={m} p={p} tau={tau}",
                    ratio,
                    f"<= {XI_COST_TARGET:g}",
                    ratio <= XI_COST_TARGET,
                )


def test_cost_linear_in_m(
    timings: dict[tuple[int, float, int, int], PointTiming], targets: TargetLog
) -> None:
    """Log-log slope of the per-round cost against the width m, at each (xi, p, tau)."""
    print()
    for xi in KEEPS:
        for p, tau in SURROGATE_STEPS:
            cost = [timings[m, xi, p, tau].trainer64 for m in WIDTHS]
            slope = float(np.polyfit(np.log(WIDTHS), np.log(cost), 1)[0])
            targets.record(
                f"log-log slope of cost in m at xi={xi:g} p={p} tau={tau}",
                slope,
                f"1 +- {SLOPE_TOLERANCE:g}",
                abs(slope - 1.0) <= SLOPE_TOLERANCE,
            )


SCALING_CASE = """
name = "bench_scaling"
bounds = ["liao2022.theorem1"]
repetitions = 5
[data]
n = 64
d = 16
[model]
m = 4000
[training]
eta = 0.05
rounds = 60
[masking]
xi = 0.5
p = 2
tau = 2
[grid]
eta = [0.02, 0.03, 0.04, 0.05]
[checks.floor]
tail = 5
"""

TINY_CASE = """
name = "bench_tiny"
bounds = ["liao2022.theorem1"]
repetitions = 2
[data]
n = 8
d = 4
[model]
m = 100
[training]
eta = 0.05
rounds = 20
[masking]
xi = 0.5
[grid]
p = [1, 2]
tau = [1, 2]
[checks.floor]
tail = 5
"""


def write_case(path: Path, text: str) -> Case:
    """Write a case file and load it."""
    path.write_text(text, encoding="utf-8")
    return load(path)


def busy_work(size: int) -> float:
    """Plain single-threaded NumPy work (no BLAS), the machine's parallel-capacity probe."""
    x = np.linspace(0.0, 1.0, size)
    for _ in range(40):
        x = np.sin(x) + 0.5
    return float(x.sum())


def parallel_capacity(jobs: int = 4, size: int = 2_000_000) -> float:
    """Speed-up of two worker processes over one on equal jobs of :func:`busy_work`.

    Measured in the same run as the executor, so that a loaded or shared machine (other
    processes on the cores) shows up as a low reference rather than as an executor fault.
    """
    one = seconds(lambda: [busy_work(size) for _ in range(jobs)])
    with ProcessPoolExecutor(max_workers=2) as pool:
        pool.submit(busy_work, 10).result()  # workers started before timing
        two = seconds(lambda: list(pool.map(busy_work, [size] * jobs)))
    return one / two


def test_process_executor_scaling(
    benchmark: BenchmarkFixture, tmp_path: Path, targets: TargetLog
) -> None:
    """Wall time of a small grid (4 equal tasks) on one worker against two worker processes.

    ``--jobs 1`` runs the tasks in the main process; ``--jobs 2`` includes starting the
    pool, as a real run does.
    """
    case = write_case(tmp_path / "scaling.toml", SCALING_CASE)
    one = seconds(lambda: run_case(case, tmp_path / "one", "process", jobs=1, show_progress=False))
    outs = iter(range(1000))
    two = pedantic_seconds(
        benchmark,
        lambda: run_case(
            case, tmp_path / f"two{next(outs)}", "process", jobs=2, show_progress=False
        ),
        rounds=1,
    )
    speedup = one / two
    capacity = parallel_capacity()
    print(
        f"\nsmall grid: one worker {one:.2f} s, two worker processes {two:.2f} s; "
        f"the machine's own 2-process speed-up on plain NumPy work: {capacity:.2f}x"
    )
    benchmark.extra_info |= {"speedup_two_workers": speedup, "machine_capacity": capacity}
    targets.record(
        f"2 worker processes / 1 (machine reference {capacity:.2f}x)",
        speedup,
        f">= {PROCESS_TARGET:g}x",
        speedup >= PROCESS_TARGET,
        "x",
    )


def test_dask_matches_serial(tmp_path: Path, targets: TargetLog) -> None:
    """The Dask executor stores bit-identical loss curves to a serial run."""
    pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
    case = write_case(tmp_path / "tiny.toml", TINY_CASE)
    keys = [pt.key for pt in expand(case)]

    def stored(executor: str) -> pd.DataFrame:
        run = run_case(case, tmp_path / executor, executor, jobs=2, show_progress=False)
        return read_points(run.directory, keys).sort_values(["point_key", "rep"])

    serial, dask = stored("serial"), stored("dask")
    curves = [np.stack(frame["loss"].map(np.asarray).tolist()) for frame in (serial, dask)]
    same = curves[0].shape == curves[1].shape and np.array_equal(*curves, equal_nan=True)
    targets.record(
        f"dask == serial, loss curves of {len(serial)} runs", float(same), "bit-identical", same
    )
    assert same
    for col in ("lambda_min_H0", "lambda_min_Hend", "max_movement"):
        assert np.array_equal(serial[col], dask[col], equal_nan=True), col
