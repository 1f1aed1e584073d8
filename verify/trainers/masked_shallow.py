"""Masked-surrogate training of a one-hidden-layer ReLU network (arXiv:2112.02668, Alg. 1).

Model: ``f(W, x) = (1/sqrt(m)) sum_r a_r relu(w_r.x)``, ``a_r`` fixed +-1, ``w_r(0) ~ N(0, kappa^2 I)``.
Round k: draw p masks (Bernoulli(xi) per neuron, or a random partition into p groups for
IST, where a neuron's keep probability is 1/p); on every surrogate run tau GD steps of
size eta on ``1/2 ||y - u^(l)||^2`` with ``u^(l) = (1/(xi sqrt(m))) sum_{r in mask l} a_r relu(w_r.x)``;
each neuron's new weight is the average of its trained copies over the surrogates that
hold it; neurons in no surrogate keep their weight.  After every round the *full*
network's loss ``||y - u(k)||^2`` is logged.

Vectorisation: the selected neurons of all surrogates of all repetitions are gathered
into one ``(K, d)`` matrix (K = total selected copies), so a local step is two large
matmuls ``X @ W_sel^T`` and ``D^T @ X`` plus a segment sum per surrogate; nothing is ever
computed for unselected neurons and no 0/1 mask multiplies a full matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from bounds.ntk import finite_width_gram

#: the exact algorithm and the broken variants used by mutation testing
VARIANTS = ("exact", "no_averaging", "no_rescaling")

#: a repetition whose loss exceeds this multiple of its initial loss has diverged
DIVERGENCE_FACTOR = 1e6


@dataclass
class RunOutput:
    """Per-repetition output: curves (one value per round, round 0 included) and scalars."""

    curves: dict[str, np.ndarray]
    scalars: dict[str, float] = field(default_factory=dict)


def init_weights(
    rng: np.random.Generator, m: int, d: int, kappa: float
) -> tuple[np.ndarray, np.ndarray]:
    """Hidden weights ``N(0, kappa^2 I)`` and output signs uniform on {-1, +1}."""
    W = kappa * rng.standard_normal((m, d))
    a = 2.0 * rng.integers(0, 2, size=m) - 1.0
    return W, a


def draw_masks(
    rng: np.random.Generator, m: int, xi: float, p: int, scheme: str
) -> list[np.ndarray]:
    """Indices of the neurons of each of the p surrogates of one round.

    ``bernoulli``: each neuron kept independently with probability xi in each surrogate.
    ``partition``: a uniformly random permutation split into p near-equal groups (IST).
    """
    if scheme == "partition":
        return np.array_split(rng.permutation(m), p)
    keep = rng.random((p, m)) < xi
    return [np.flatnonzero(row) for row in keep]


def full_loss(X: np.ndarray, y: np.ndarray, W: np.ndarray, a: np.ndarray, reps: int) -> np.ndarray:
    """``||y - u||^2`` of the full network for each repetition (W stacked as ``(reps*m, d)``)."""
    m = W.shape[0] // reps
    Z = X @ W.T
    np.maximum(Z, 0.0, out=Z)
    Z *= a
    u = Z.reshape(len(X), reps, m).sum(axis=2) / math.sqrt(m)
    r = u - y[:, None]
    return np.einsum("ir,ir->r", r, r)


def segment_sum(A: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Column sums of ``A`` over contiguous segments; empty segments give 0."""
    out = np.zeros((A.shape[0], len(starts)), dtype=A.dtype)
    nz = lengths > 0
    if nz.any():
        out[:, nz] = np.add.reduceat(A, starts[nz], axis=1)
    return out


def train(
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
    scheme: str = "bernoulli",
    rngs: Sequence[np.random.Generator],
    init_rngs: Sequence[np.random.Generator] | None = None,
    dtype: str = "float64",
    variant: str = "exact",
) -> list[RunOutput]:
    """Train ``len(rngs)`` independent repetitions at one parameter set, vectorised.

    Each repetition draws its initialisation from ``init_rngs[r]`` (default: ``rngs[r]``)
    and then, round by round, its masks from ``rngs[r]``, in the same order as the plain
    reference loop in the tests.

    ``variant`` selects a deliberately broken algorithm for mutation testing only
    (:mod:`verify.mutants`): ``no_averaging`` sums the trained copies of a neuron instead
    of averaging them, ``no_rescaling`` drops the surrogates' ``1/xi`` output scaling.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    R = len(rngs)
    ftype = np.dtype(dtype)
    X = np.asarray(X, dtype=ftype)
    y = np.asarray(y, dtype=ftype)
    n, d = X.shape
    keep = 1.0 / p if scheme == "partition" else xi
    inits = [init_weights(rng, m, d, kappa) for rng in (init_rngs or rngs)]
    W = np.concatenate([w for w, _ in inits]).astype(ftype)
    a = np.concatenate([s for _, s in inits]).astype(ftype)
    W0 = W.copy()
    scale = 1.0 / ((1.0 if variant == "no_rescaling" else keep) * math.sqrt(m))
    loss = np.full((rounds + 1, R), np.nan)
    loss[0] = full_loss(X, y, W, a, R)
    diverged = np.full(R, -1)
    limit = DIVERGENCE_FACTOR * np.maximum(loss[0], 1e-300)
    counts = np.empty(R * m, dtype=np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(1, rounds + 1):
            segs = [
                r * m + idx
                for r, rng in enumerate(rngs)
                for idx in draw_masks(rng, m, xi, p, scheme)
            ]
            lengths = np.array([len(s) for s in segs])
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            idx = np.concatenate(segs)
            owner = np.repeat(np.arange(len(segs)), lengths)
            a_sel = a[idx] * ftype.type(scale)
            W_sel = W[idx]
            for _ in range(tau):
                Z = X @ W_sel.T
                active = Z > 0
                np.maximum(Z, 0.0, out=Z)
                Z *= a_sel
                err = segment_sum(Z, starts, lengths) - y[:, None]
                D = err[:, owner]
                D *= active
                D *= a_sel
                W_sel -= ftype.type(eta) * (D.T @ X)
            delta = W_sel - W[idx]
            total = np.zeros_like(W)
            np.add.at(total, idx, delta)
            counts[:] = np.bincount(idx, minlength=R * m)
            held = counts > 0
            W[held] += (
                total[held] if variant == "no_averaging" else total[held] / counts[held, None]
            )
            loss[k] = full_loss(X, y, W, a, R)
            bad = (~np.isfinite(loss[k]) | (loss[k] > limit)) & (diverged < 0)
            diverged[bad] = k
    outputs = []
    for r in range(R):
        curve = loss[:, r].copy()
        if diverged[r] >= 0:
            curve[diverged[r] :] = np.nan
        W_r, W0_r = W[r * m : (r + 1) * m], W0[r * m : (r + 1) * m]
        movement = np.linalg.norm(W_r.astype(float) - W0_r, axis=1).max()
        outputs.append(
            RunOutput(
                curves={"loss": curve},
                scalars={
                    "diverged_round": float(diverged[r]),
                    "lambda_min_H0": _lambda_min(X, W0_r),
                    "lambda_min_Hend": _lambda_min(X, W_r) if diverged[r] < 0 else math.nan,
                    "max_movement": float(movement) if diverged[r] < 0 else math.nan,
                },
            )
        )
    return outputs


def _lambda_min(X: np.ndarray, W: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(finite_width_gram(X.astype(float), W.astype(float)))[0])
