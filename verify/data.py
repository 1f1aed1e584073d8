"""Data sets: synthetic inputs on the unit sphere, or a user's own ``.npz`` / ``.csv`` file.

The theorems assume unit-norm inputs and bounded labels, so loaded inputs are
normalised to unit norm (rows that are exactly zero are rejected).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .schema import CaseError, Spec, positive_int


def data_schema(n: int = 16, d: int = 8, max_n: int = 100_000) -> dict[str, Spec]:
    """The ``[data]`` section shared by trainers on sphere or file data."""
    return {
        "kind": Spec(str, "sphere", choices=("sphere", "file")),
        "n": positive_int(n, maximum=max_n),
        "d": positive_int(d, maximum=100_000),
        "seed": Spec(int, 0, lambda v: v >= 0, "integer >= 0"),
        "path": Spec(str, ""),
    }


def make_data(
    params: Mapping[str, Any], rng: np.random.Generator, base: Path
) -> tuple[np.ndarray, np.ndarray]:
    """The case's data set: :func:`sphere` draws, or the file at ``path`` (relative to ``base``)."""
    if params["kind"] == "file":
        return load_file((base / params["path"]).resolve())
    return sphere(params["n"], params["d"], rng)


def sphere(n: int, d: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``x_i`` uniform on the unit sphere of R^d, ``y_i`` uniform on [-1, 1]."""
    X = rng.standard_normal((n, d))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, rng.uniform(-1.0, 1.0, n)


def load_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load ``X, y`` from an ``.npz`` (arrays ``X`` and ``y``) or a ``.csv`` (last column y).

    Inputs are normalised to unit norm, as the theorems require.
    """
    if not path.exists():
        raise CaseError(f"data.path: file {str(path)!r} does not exist")
    if path.suffix == ".npz":
        with np.load(path) as f:
            if "X" not in f or "y" not in f:
                raise CaseError(f"data.path: {path} must contain arrays 'X' and 'y'")
            X, y = np.asarray(f["X"], float), np.asarray(f["y"], float)
    elif path.suffix == ".csv":
        try:
            table = np.loadtxt(path, delimiter=",", ndmin=2)
        except ValueError:
            table = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=1)
        X, y = table[:, :-1], table[:, -1]
    else:
        raise CaseError(f"data.path: {path} must end in .npz or .csv")
    if X.ndim != 2 or y.shape != (X.shape[0],) or X.shape[0] < 2:
        raise CaseError(
            f"data.path: {path}: need X of shape (n, d) with n >= 2 and y of shape (n,)"
        )
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise CaseError(f"data.path: {path} contains NaN or infinite values")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if (norms == 0).any():
        raise CaseError(f"data.path: {path} has an all-zero input row; cannot normalise")
    return X / norms, y
