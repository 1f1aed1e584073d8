"""User trainers: any implementation of masked training, plugged in by name.

Protocol (stable).  A trainer is a Python callable named ``MODULE:FUNCTION`` (importable
from the current directory or an installed package) or ``path/to/file.py:FUNCTION``::

    train(params: dict, X: numpy.ndarray, y: numpy.ndarray, seeds: list[int]) -> numpy.ndarray

* ``params``: the grid point's model, training and masking values of the case
  (``m, kappa, eta, rounds, dtype, xi, p, tau, scheme`` and ``scaling``, the output
  convention: ``"inverted"`` = surrogates scaled by ``1/xi``, full network unscaled;
  ``"paper"`` = surrogates unscaled, full network's output scaled by xi).  For
  ``scheme = "partition"`` (IST) ``xi`` is already ``1/p``.
* ``X`` (n, d) with unit-norm rows and ``y`` (n,): the case's data set, the same for every
  point.
* ``seeds``: one non-negative integer below ``2**63`` per repetition.  The callable draws
  all its randomness (initialisation, masks) from them; the suite derives them from
  ``SeedSequence`` of (case, grid point, repetition), independent of the reference
  trainer's streams.
* returns an array of shape ``(len(seeds), rounds + 1)``: the full network's training loss
  ``||y - u_k||^2`` after each round (column 0 = initialisation), one row per seed.  A
  non-finite value or a loss above ``1e6`` times the initial one marks the repetition as
  diverged from that round on (as for the suite's own trainers).

:func:`with_trainer` turns a case into the same case trained by the user's callable
(results under ``<case>@<label>``, same data); :func:`resolve` re-creates the adapter by
name in any worker process, so process and Dask executors work too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import trainers
from .schema import CaseError
from .trainers.outputs import RunOutput, has_diverged

TrainFunction = Callable[[dict, np.ndarray, np.ndarray, list], Any]

#: trainer names of user callables: ``user:<source digest>:<base trainer>:<stream>:<spec>``
PREFIX = "user:"
#: the suite's trainers the protocol can stand in for (their checks read only the loss)
BASES = ("masked_shallow",)
#: spawn-key tag of the user's seeds below the reference trainer's (case, point, rep) seeds
SEED_TAG = 0x05E4
#: the tag of the reference sample of ``conform`` (the suite's trainer behind the protocol)
REFERENCE_TAG = 0x0EF0
DEFAULT_SCALING = "inverted"


def _split(spec: str) -> tuple[str, str]:
    target, sep, func = spec.rpartition(":")
    if not sep or not target or not func.isidentifier():
        raise CaseError(f"--trainer {spec!r}: expected MODULE:FUNCTION or path/to/file.py:FUNCTION")
    return target, func


def _is_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def normalise(spec: str) -> str:
    """The spec with a file path made absolute (so worker processes find the same file)."""
    target, func = _split(spec)
    return f"{Path(target).resolve()}:{func}" if _is_path(target) else spec


def load(spec: str) -> TrainFunction:
    """Import the callable named by ``spec``; :class:`CaseError` (one line) if impossible."""
    target, func = _split(spec)
    try:
        if _is_path(target):
            path = Path(target).resolve()
            if not path.is_file():
                raise CaseError(f"--trainer {spec!r}: no such file {target}")
            dotted = _package_name(path)
            name = (
                dotted or "maskverify_user_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
            )
            module = sys.modules.get(name)
            if dotted:
                module = importlib.import_module(dotted)
            elif module is None:
                loader = importlib.util.spec_from_file_location(name, path)
                if loader is None or loader.loader is None:
                    raise CaseError(f"--trainer {spec!r}: {target} is not a Python file")
                module = importlib.util.module_from_spec(loader)
                sys.modules[name] = module
                try:
                    loader.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(target)
    except CaseError:
        raise
    except Exception as exc:  # any import-time failure of user code is bad input
        raise CaseError(
            f"--trainer {spec!r}: cannot import {target}: {type(exc).__name__}: {exc}"
        ) from None
    fn = getattr(module, func, None)
    if not callable(fn):
        raise CaseError(f"--trainer {spec!r}: {target} has no callable {func!r}")
    return fn


def _package_name(path: Path) -> str:
    """The dotted module name of a file inside a package (a folder chain with
    ``__init__.py``), its root's parent put on ``sys.path``; "" for a loose file."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1:
        return ""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return ".".join(parts)


def _digest(fn: TrainFunction) -> str:
    """Hash of the callable's source file: edited code is retrained, never reused."""
    try:
        source = Path(inspect.getsourcefile(fn) or "").read_bytes()
    except (OSError, TypeError):
        source = repr(fn).encode()
    return hashlib.sha256(source).hexdigest()[:12]


def label(spec: str) -> str:
    """A short name for the results directory: ``file.FUNCTION`` or ``module.FUNCTION``."""
    target, func = _split(spec)
    stem = Path(target).stem if _is_path(target) else target
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{stem}.{func}")


def user_seeds(rngs: Sequence[np.random.Generator], tag: int = SEED_TAG) -> list[int]:
    """One integer seed per repetition, from a child of the repetition's ``SeedSequence``
    (``spawn_key + (tag,)``): independent of every stream the reference trainer draws, and
    of the seeds of any other tag."""
    out = []
    for rng in rngs:
        ss = rng.bit_generator.seed_seq
        child = np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, tag))
        out.append(int(child.generate_state(1, np.uint64)[0]) >> 1)
    return out


def protocol_params(params: Mapping[str, Any], keys: set[str]) -> dict[str, Any]:
    """The protocol's ``params``: the trainer's grid-section values of the point."""
    out = {k: params[k] for k in sorted(keys) if k in params}
    out.setdefault("scaling", DEFAULT_SCALING)
    return out


def call(
    fn: TrainFunction,
    spec: str,
    params: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    seeds: list[int],
) -> np.ndarray:
    """Call the user's trainer and check its output's type and shape (CaseError if wrong)."""
    try:
        raw = fn(dict(params), X.copy(), y.copy(), list(seeds))
    except CaseError:
        raise
    except Exception as exc:
        raise CaseError(
            f"--trainer {spec!r}: raised {type(exc).__name__}: {exc} (at {params})"
        ) from None
    try:
        losses = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise CaseError(
            f"--trainer {spec!r}: returned {type(raw).__name__}, not an array of losses"
        ) from None
    expected = (len(seeds), int(params["rounds"]) + 1)
    if losses.shape != expected:
        raise CaseError(
            f"--trainer {spec!r}: returned shape {losses.shape}; expected (len(seeds), "
            f"rounds + 1) = {expected}"
        )
    if (losses < 0).any():
        raise CaseError(f"--trainer {spec!r}: returned a negative loss ({losses.min():.3g})")
    return losses


def as_outputs(losses: np.ndarray) -> list[RunOutput]:
    """Per repetition: the loss curve, NaN from the round it diverged at, as the suite's
    trainers record it; ``nonfinite_round`` is the first round the user returned NaN/inf."""
    outputs = []
    for row in losses:
        curve = row.astype(float).copy()
        finite = np.isfinite(curve)
        nonfinite = int(np.argmin(finite)) if not finite.all() else -1
        bad = has_diverged(curve, curve[0])
        bad[0] = not finite[0]
        diverged = int(np.argmax(bad)) if bad.any() else -1
        if diverged >= 0:
            curve[diverged:] = np.nan
        outputs.append(
            RunOutput(
                curves={"loss": curve},
                scalars={"diverged_round": float(diverged), "nonfinite_round": float(nonfinite)},
            )
        )
    return outputs


def make_trainer(spec: str, base: str = "masked_shallow", tag: int = SEED_TAG) -> trainers.Trainer:
    """Register (once) and return the adapter of ``spec`` in the interface of ``base``;
    its seeds are the children ``tag`` of the case's (case, point, repetition) seeds."""
    fn = load(spec)
    name = f"{PREFIX}{_digest(fn)}:{base}:{tag}:{normalise(spec)}"
    known = trainers.trainers()
    if name in known:
        return known[name]
    original = trainers.get(base)
    keys = original.grid_keys

    def run(params, X, y, rngs, init_rngs=None):
        losses = call(fn, spec, protocol_params(params, keys), X, y, user_seeds(rngs, tag))
        return as_outputs(losses)

    return trainers.register(
        dataclasses.replace(
            original,
            name=name,
            description=f"user trainer {spec} in the interface of {base}",
            run=run,
            # the protocol returns losses only, and the user's initialisation is drawn from
            # each point's own seeds: no measured hypotheses, no common random numbers
            measured_params=(),
            measured_max=(),
            init_keys=(),
        )
    )


def resolve(name: str) -> trainers.Trainer:
    """The registered trainer ``name``; a user trainer is re-created from its name and a
    mutant trainer (``base~mutant``) registered by :mod:`verify.mutants`, in a worker
    process that did not inherit the registration."""
    known = trainers.trainers()
    if name not in known and "~" in name and not name.startswith(PREFIX):
        import verify.mutants  # noqa: F401  (registers every mutant trainer)
    if name in trainers.trainers() or not name.startswith(PREFIX):
        return trainers.get(name)
    _, base, tag, spec = name[len(PREFIX) :].split(":", 3)
    return make_trainer(spec, base, int(tag))


def with_trainer(case, spec: str, tag: int = SEED_TAG, name: str = ""):
    """``case`` trained by the user's callable: results under ``<case>@<name or label>``,
    the case's own data and seeds (the user's seeds are their children ``tag``)."""
    if case.trainer.name not in BASES:
        raise CaseError(
            f"--trainer: case {case.name!r} uses trainer {case.trainer.name!r}; the protocol "
            f"stands in for {list(BASES)} only"
        )
    return dataclasses.replace(
        case,
        name=f"{case.name}@{name or label(spec)}",
        trainer=make_trainer(spec, case.trainer.name, tag),
        seed_name=case.seed_name or case.name,
    )


def reference(
    params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, seeds: Sequence[int]
) -> np.ndarray:
    """The suite's own trainer behind the protocol (``--trainer verify.user_trainer:reference``):
    the control of the conformance test's false-alarm rate."""
    rngs = [np.random.default_rng(s) for s in seeds]
    params = dict(params)
    if "monitor_every" in params:  # only losses are returned: sample the proof events rarely
        params["monitor_every"] = max(params["monitor_every"], int(params["rounds"]))
    outputs = trainers.get("masked_shallow").run(params, X, y, rngs)
    return np.stack([out.curves["loss"] for out in outputs])
