"""The trainer contract, checkable on any registered trainer (like scikit-learn's
``check_estimator``)::

    from verify import trainers
    from verify.testing import check_trainer

    check_trainer(trainers.get("my_trainer"))        # AssertionError naming the broken rule

Every rule is also a function of :data:`CHECKS` (``check(trainer, params)``), so a test suite
can report them one by one.  The rules are what the rest of the suite relies on:

* ``reproducible``: the same seeds give the same numbers, bit for bit;
* ``order_independent``: a repetition's numbers depend only on its own generators (the
  repetitions given in reverse order give the reversed outputs), and training another point
  first changes nothing (no state is carried between calls);
* ``independent_repetitions``: where the trainer declares a point's repetitions
  independent (``Trainer.independent_repetitions``: the runner then trains each one as a
  task of its own), each repetition trained alone gives the numbers it gives trained with
  the others, bit for bit;
* ``common_init``: with ``init_keys`` declared, two points that differ only in another grid
  parameter start from the same network when given the same initialisation generators and
  different training generators (equal initial values of every curve);
* ``divergence``: at an absurd step size every repetition reports ``diverged_round`` >= 1,
  its first curve is finite before that round and NaN from it on; at the default step size
  ``diverged_round`` is -1;
* ``memory``: ``memory_bytes(params, reps)`` plus :data:`OVERHEAD_BYTES` (interpreter
  objects and small temporaries, which the estimates leave out) is an upper bound of the
  peak of the memory allocated during ``run`` (measured with :mod:`tracemalloc`, after a
  warm-up call), at the given parameters and at the width and data size scaled up by
  :data:`MEMORY_SCALE` (where the arrays dominate);
* ``outputs``: one output per repetition, the same curve and scalar names for every
  repetition (the declaration :func:`verify.result_schema.outputs_of` records), no output
  named like a parameter or a bookkeeping column, every curve one-dimensional with one value
  per logged round (``horizon + 1``, or ``horizon // log_every + 1``), every scalar a number, and every declared
  ``measured_params`` present as a scalar.

The parameter set is :func:`tiny_params` unless given: the schema's defaults with the
width, the horizon and the data size shrunk, so the contract runs in about a second.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .result_schema import SchemaError, outputs_of
from .trainers import RunOutput, Trainer

__all__ = ["CHECKS", "check_trainer", "tiny_params"]

#: caps applied to the schema defaults by :func:`tiny_params`
TINY = {"m": 48, "rounds": 12, "steps": 12, "n": 24, "log_every": 1, "top_k": 4}
#: names of the keys that set the number of rounds (the first present is the horizon)
HORIZONS = ("rounds", "steps")
#: step-size keys are those starting with this; the divergence rule multiplies them
STEP_PREFIX = "eta"
ABSURD_STEP = 1e8
REPETITIONS = 3
#: memory the estimates may leave out: interpreter objects and small temporaries
OVERHEAD_BYTES = 2**20
#: factors applied to the width and the data size for the second memory measurement
MEMORY_SCALE = {"m": 64, "n": 16}


def tiny_params(trainer: Trainer, **overrides: Any) -> dict[str, Any]:
    """Every schema default (data section included), shrunk by :data:`TINY`, derived."""
    params: dict[str, Any] = {}
    for specs in trainer.schema.values():
        for key, spec in specs.items():
            value = spec.default
            if key in TINY and isinstance(value, int) and not isinstance(value, bool):
                value = min(value, TINY[key])
            params[key] = value
    params.update(overrides)
    return trainer.derive(params)


def generators(seed: int, reps: int, tag: int) -> list[np.random.Generator]:
    return [np.random.default_rng(np.random.SeedSequence([seed, tag, r])) for r in range(reps)]


def _data(trainer: Trainer, params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    data = {k: params[k] for k in trainer.schema.get("data", {})}
    return trainer.make_data(data, np.random.default_rng(12345), Path.cwd())


def _run(
    trainer: Trainer,
    params: Mapping[str, Any],
    seed: int = 0,
    init_seed: int | None = None,
    reps: int = REPETITIONS,
) -> list[RunOutput]:
    """Train with the generators of ``seed`` (initialisation: of ``init_seed``, default the same)."""
    X, y = _data(trainer, params)
    init = generators(seed if init_seed is None else init_seed, reps, 2)
    return trainer.run(params, X, y, generators(seed, reps, 1), init)


def _same(a: RunOutput, b: RunOutput) -> str:
    """Why two outputs differ ('' if they are identical, NaN equal to NaN)."""
    for kind, x, y in (("curve", a.curves, b.curves), ("scalar", a.scalars, b.scalars)):
        if set(x) != set(y):
            return f"{kind} names differ: {sorted(x)} vs {sorted(y)}"
        for name in x:
            if not np.array_equal(np.asarray(x[name]), np.asarray(y[name]), equal_nan=True):
                return f"{kind} {name!r} differs"
    return ""


def _all_same(first: list[RunOutput], second: list[RunOutput], what: str) -> None:
    assert len(first) == len(second), f"{what}: {len(first)} vs {len(second)} outputs"
    for r, (a, b) in enumerate(zip(first, second, strict=True)):
        why = _same(a, b)
        assert not why, f"{what}: repetition {r}: {why}"


def check_reproducible(trainer: Trainer, params: Mapping[str, Any]) -> None:
    _all_same(_run(trainer, params), _run(trainer, params), "same seeds, second run")
    other = _run(trainer, params, seed=1)
    assert any(_same(a, b) for a, b in zip(_run(trainer, params), other, strict=True)), (
        "other seeds give the same numbers: the seeds are not used"
    )


def _other_point(trainer: Trainer, params: Mapping[str, Any]) -> dict[str, Any]:
    """The point with one non-initialisation grid parameter changed (a step size if any)."""
    keys = sorted(k for k in trainer.grid_keys if k not in trainer.init_keys)
    key = next((k for k in keys if k.startswith(STEP_PREFIX)), None)
    if key is None:
        key = next(k for k in keys if isinstance(params[k], float))
    return trainer.derive({**params, key: params[key] / 2})


def check_order_independent(trainer: Trainer, params: Mapping[str, Any]) -> None:
    forward = _run(trainer, params)
    X, y = _data(trainer, params)
    rngs, init = generators(0, REPETITIONS, 1), generators(0, REPETITIONS, 2)
    backward = trainer.run(params, X, y, rngs[::-1], init[::-1])
    _all_same(forward, backward[::-1], "repetitions in reverse order")
    _run(trainer, _other_point(trainer, params))
    _all_same(forward, _run(trainer, params), "after training another point")


def check_independent_repetitions(trainer: Trainer, params: Mapping[str, Any]) -> None:
    X, y = _data(trainer, params)
    if not trainer.independent_repetitions(params, X):
        return
    together = _run(trainer, params)
    for r in range(REPETITIONS):  # fresh generators: repetition r's streams of _run
        rngs, init = generators(0, REPETITIONS, 1), generators(0, REPETITIONS, 2)
        alone = trainer.run(params, X, y, rngs[r : r + 1], init[r : r + 1])
        assert len(alone) == 1, f"one repetition given, {len(alone)} outputs returned"
        why = _same(together[r], alone[0])
        assert not why, f"declared independent, but repetition {r} trained alone: {why}"


def check_common_init(trainer: Trainer, params: Mapping[str, Any]) -> None:
    if not trainer.init_keys:
        return
    other = _other_point(trainer, params)  # its own training draws, the same init draws
    pairs = zip(_run(trainer, params), _run(trainer, other, seed=1, init_seed=0), strict=True)
    for r, (a, b) in enumerate(pairs):
        for name in a.curves:
            assert a.curves[name][0] == b.curves[name][0], (
                f"repetition {r}: curve {name!r} starts at {a.curves[name][0]!r} and "
                f"{b.curves[name][0]!r} at two points with the same {trainer.init_keys}"
            )


def _divergence(outputs: list[RunOutput], absurd: bool) -> None:
    for r, out in enumerate(outputs):
        assert "diverged_round" in out.scalars, f"repetition {r}: no scalar 'diverged_round'"
        k = out.scalars["diverged_round"]
        curve = np.asarray(
            next(iter(out.curves.values())) if "loss" not in out.curves else out.curves["loss"]
        )
        if not absurd:
            assert k == -1, f"repetition {r}: diverged at round {k} at the default step size"
            continue
        assert k >= 1 and float(k).is_integer(), (
            f"repetition {r}: diverged_round = {k} at step sizes x{ABSURD_STEP:g}"
        )
        k = int(k)
        assert np.isfinite(curve[:k]).all(), f"repetition {r}: non-finite values before round {k}"
        assert np.isnan(curve[k:]).all(), f"repetition {r}: values after divergence at round {k}"


def check_divergence(trainer: Trainer, params: Mapping[str, Any]) -> None:
    steps = [k for k in params if k.startswith(STEP_PREFIX) and isinstance(params[k], float)]
    assert steps, f"no step-size parameter ({STEP_PREFIX}...) in {sorted(params)}"
    absurd = trainer.derive({**params, **{k: params[k] * ABSURD_STEP for k in steps}})
    _divergence(_run(trainer, params), absurd=False)
    _divergence(_run(trainer, absurd), absurd=True)


def peak_bytes(call: Callable[[], object]) -> int:
    """Peak of the memory allocated (and traced) while ``call`` runs, above the start."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if started:
            tracemalloc.stop()
    return peak - before


def check_memory(trainer: Trainer, params: Mapping[str, Any]) -> None:
    larger = trainer.derive(
        {**params, **{k: params[k] * f for k, f in MEMORY_SCALE.items() if k in params}}
    )
    for point in (params, larger):
        X, y = _data(trainer, point)

        def call(point: Mapping[str, Any] = point, X: np.ndarray = X, y: np.ndarray = y) -> None:
            rngs, init = generators(0, REPETITIONS, 1), generators(0, REPETITIONS, 2)
            trainer.run(point, X, y, rngs, init)

        call()  # warm-up: compiled kernels, caches
        peak = peak_bytes(call)
        estimate = trainer.memory_bytes(point, REPETITIONS)
        sizes = {k: point[k] for k in MEMORY_SCALE if k in point}
        assert peak <= estimate + OVERHEAD_BYTES, (
            f"at {sizes}: measured peak {peak / 2**20:.2f} MiB > memory_bytes "
            f"{estimate / 2**20:.2f} MiB + {OVERHEAD_BYTES / 2**20:g} MiB ({REPETITIONS} repetitions)"
        )


def _lengths(params: Mapping[str, Any]) -> set[int]:
    horizon = next((params[k] for k in HORIZONS if k in params), None)
    assert horizon is not None, f"no horizon parameter (one of {HORIZONS}) in {sorted(params)}"
    return {horizon + 1, horizon // params.get("log_every", 1) + 1}


def check_outputs(trainer: Trainer, params: Mapping[str, Any]) -> None:
    outputs = _run(trainer, params)
    assert len(outputs) == REPETITIONS, f"{len(outputs)} outputs for {REPETITIONS} repetitions"
    lengths = _lengths(params)
    for r, out in enumerate(outputs):
        assert isinstance(out, RunOutput), f"repetition {r}: {type(out).__name__}, not RunOutput"
    try:  # the declaration the result schema records: the same names in every repetition
        declared = outputs_of(outputs)
    except SchemaError as exc:
        raise AssertionError(f"outputs do not fit the result schema: {exc}") from None
    for r, out in enumerate(outputs):
        for name, curve in out.curves.items():
            shape = np.shape(curve)
            assert len(shape) == 1 and shape[0] in lengths, (
                f"repetition {r}: curve {name!r} has shape {shape}; expected one of {lengths}"
            )
        for name, value in out.scalars.items():
            assert isinstance(value, float | int) and not isinstance(value, bool), (
                f"repetition {r}: scalar {name!r} is {type(value).__name__}, not a number"
            )
        measured = (*trainer.measured_params, *getattr(trainer, "measured_max", ()))
        missing = [k for k in measured if k not in out.scalars]
        assert not missing, f"repetition {r}: declared measured parameters missing: {missing}"
    clash = sorted(set(declared.curves + declared.scalars) & set(params))
    assert not clash, f"outputs named like parameters of the point (columns clash): {clash}"


CHECKS: dict[str, Callable[[Trainer, Mapping[str, Any]], None]] = {
    "reproducible": check_reproducible,
    "order_independent": check_order_independent,
    "independent_repetitions": check_independent_repetitions,
    "common_init": check_common_init,
    "divergence": check_divergence,
    "memory": check_memory,
    "outputs": check_outputs,
}


def check_trainer(trainer: Trainer, params: Mapping[str, Any] | None = None) -> None:
    """Run every rule of the contract; ``AssertionError`` names the trainer and the rule."""
    params = dict(params) if params is not None else tiny_params(trainer)
    for name, check in CHECKS.items():
        try:
            check(trainer, params)
        except AssertionError as exc:
            raise AssertionError(f"trainer {trainer.name!r} breaks {name!r}: {exc}") from None
