"""RMDA vs ProxSGD on group-lasso multinomial logistic regression (arXiv:2112.02612).

Problem (Huang & Lee, ICLR 2022, Eq. (1)): ``min_W F(W) = f(W) + psi(W)`` with
``f(W) = (1/n) sum_i CE(softmax(x_i W), y_i)`` (``W`` is ``d x k``, no intercept) and the
group lasso ``psi(W) = lam sum_g sqrt(|g|) ||W_g||`` over the rows of ``W`` (one group per
feature, ``|g| = k``), whose prox is block soft-thresholding.

RMDA (Algorithm 1 of the paper), from ``W_0 = 0`` with ``V_0 = 0, alpha_0 = 0``
(:class:`RMDAState`, :func:`rmda_step`)::

    beta_t = sqrt(t),  s_t = eta beta_t,  alpha_t = alpha_{t-1} + s_t,
    V_t = V_{t-1} + s_t grad f_{xi_t}(W_{t-1}),
    W~_t = prox_{(alpha_t / beta_t) psi}(W_0 - V_t / beta_t),
    W_t = (1 - c) W_{t-1} + c W~_t.

This is the authors' optimizer step (``zihsyuan1214/rmda``, ``RMDA/Optimizer/rmda.py``: the
0-based ``iteration`` gives ``sqrt(iteration + 1) = sqrt(t)``; ``prox_glasso`` in
``RMDA/ProxFn/prox_fns.py`` thresholds each group -- a column of a ``(k, d)`` weight, a row
here -- at ``lam alpha_t / sqrt(t) sqrt(group size)``), checked against a transcription to
rounding in ``tests/test_rmda.py``.  Not copied: the code's ``MultiStepParam`` scheduler,
which at epoch milestones scales the step by ``gamma`` and ``c`` by ``1 / gamma`` and
restarts (``t``, ``alpha``, ``V`` reset, ``W_0`` = the current point); the theorem's
algorithm has no restarts (see :mod:`bounds.huang2022`).

ProxSGD with momentum (the paper's baseline): ``buf = (1 - mu) buf + mu g``,
``W = prox_{eta' psi}(W - eta' buf)``.  Both methods see the same minibatch sequence
(``batch`` indices drawn uniformly with replacement per step from the repetition's rng).

The limit point ``W*`` is a deterministic FISTA solve with adaptive restart, cached per
(data set, lam); its optimality residual is the norm of the gradient mapping
``L ||W - prox_{psi/L}(W - grad f(W) / L)||``.  The manifold of Theorem 2 is the zero
pattern of ``W*``; identification is a property of ``W~_t`` (not of ``W_t``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from bounds.huang2022 import step_ratio

from ..schema import Spec, positive_float, positive_int, unit_interval
from . import Trainer, register
from .outputs import RunOutput, grid_run

SCHEMA = {
    "data": {
        "n": positive_int(500, maximum=1_000_000),
        "d": positive_int(40, maximum=10_000),
        "k": Spec(int, 3, lambda v: 2 <= v <= 100, "integer in [2, 100]"),
        "informative": positive_int(8, maximum=10_000),
        "signal": positive_float(1.5),
        "seed": Spec(int, 0, lambda v: v >= 0, "integer >= 0"),
    },
    "model": {"lam": positive_float(0.02)},
    "training": {
        "steps": positive_int(2000, maximum=1_000_000),
        "batch": positive_int(32, maximum=1_000_000),
        "eta": positive_float(0.1),
        "c": unit_interval(0.01),
        "eta_proxsgd": positive_float(0.1),
        "mu": unit_interval(0.1),
        "log_every": positive_int(10, maximum=1_000_000),
    },
}

#: FISTA stops when the gradient-mapping norm falls below this (or after FISTA_MAX_ITER)
FISTA_TOL = 1e-10
FISTA_MAX_ITER = 100_000


# --------------------------------------------------------------------------- problem
def group_prox(W: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """Block soft-thresholding: ``prox_{t psi}`` with per-row threshold ``t lam sqrt(k)``.

    Each row ``W_g`` becomes ``max(0, 1 - threshold / ||W_g||) W_g``; rows with
    ``||W_g|| <= threshold`` become exactly zero.  ``W`` may carry leading batch axes
    (``(..., d, k)``); ``threshold`` broadcasts against ``(..., d)``.
    """
    norms = np.linalg.norm(W, axis=-1)
    scale = np.where(norms > threshold, 1.0 - threshold / np.maximum(norms, 1e-300), 0.0)
    return W * scale[..., None]


def psi(W: np.ndarray, lam: float) -> np.ndarray:
    """Group lasso ``lam sqrt(k) sum_g ||W_g||`` (over the last two axes)."""
    return lam * math.sqrt(W.shape[-1]) * np.linalg.norm(W, axis=-1).sum(axis=-1)


def softmax_residual(X: np.ndarray, Y: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``softmax(X W) - Y`` and the mean cross-entropy, batched over leading axes of W / X."""
    Z = X @ W
    Z = Z - Z.max(axis=-1, keepdims=True)
    E = np.exp(Z)
    S = E.sum(axis=-1, keepdims=True)
    loss = (np.log(S[..., 0]) - (Z * Y).sum(axis=-1)).mean(axis=-1)
    return E / S - Y, loss


def smooth_loss(X: np.ndarray, Y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``f(W)``: mean cross-entropy; ``W`` may be ``(reps, d, k)`` (one value per rep)."""
    return softmax_residual(X, Y, W)[1]


def gradient(X: np.ndarray, Y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``grad f(W) = X^T (softmax(X W) - Y) / n`` (batched over leading axes)."""
    R, _ = softmax_residual(X, Y, W)
    return np.swapaxes(X, -1, -2) @ R / X.shape[-2]


def objective(X: np.ndarray, Y: np.ndarray, W: np.ndarray, lam: float) -> np.ndarray:
    """``F(W) = f(W) + psi(W)`` (Eq. (1))."""
    return smooth_loss(X, Y, W) + psi(W, lam)


def objectives(XT: np.ndarray, YT: np.ndarray, Ws: np.ndarray, lam: float) -> np.ndarray:
    """``F(W)`` for a stack ``Ws`` ``(m, d, k)`` on the full data, class-major for speed.

    ``XT`` is ``X^T`` ``(d, n)`` and ``YT`` the one-hot labels ``(k, n)``; logits are laid out
    ``(m, k, n)`` so the log-sum-exp over the few classes is elementwise over long rows.
    """
    Z = np.swapaxes(Ws, 1, 2) @ XT
    top = Z.max(axis=1)
    lse = np.log(np.exp(Z - top[:, None, :]).sum(axis=1)) + top
    f = (lse - (Z * YT).sum(axis=1)).mean(axis=1)
    return f + psi(Ws, lam)


def one_hot(y: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k)[np.asarray(y, dtype=int)]


def lipschitz(X: np.ndarray) -> float:
    """Böhning's bound: the softmax loss Hessian is at most ``||X||_2^2 / (2 n)``."""
    return float(np.linalg.norm(X, 2) ** 2 / (2 * X.shape[0]))


def gradient_mapping_norm(X: np.ndarray, Y: np.ndarray, W: np.ndarray, lam: float) -> float:
    """Optimality residual ``L ||W - prox_{psi/L}(W - grad f(W)/L)||`` (0 iff W optimal)."""
    L = lipschitz(X)
    step = W - gradient(X, Y, W) / L
    return float(L * np.linalg.norm(W - group_prox(step, lam * math.sqrt(W.shape[1]) / L)))


def fista(X: np.ndarray, Y: np.ndarray, lam: float) -> tuple[np.ndarray, float, int]:
    """Deterministic FISTA with gradient-based adaptive restart; ``(W*, residual, iterations)``.

    Momentum restarts when ``<Z - W_new, W_new - W> > 0`` (O'Donoghue & Candes 2015), which
    keeps the iteration monotone-ish without comparing objective values at rounding level.
    """
    d, k = X.shape[1], Y.shape[1]
    L = lipschitz(X)
    thr = lam * math.sqrt(k) / L
    W = np.zeros((d, k))
    Z, t = W.copy(), 1.0
    for it in range(1, FISTA_MAX_ITER + 1):
        W_new = group_prox(Z - gradient(X, Y, Z) / L, thr)
        if float(np.vdot(Z - W_new, W_new - W)) > 0:
            t = 1.0
        t_new = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
        Z = W_new + ((t - 1.0) / t_new) * (W_new - W)
        W, t = W_new, t_new
        if it % 10 == 0:
            res = gradient_mapping_norm(X, Y, W, lam)
            if res < FISTA_TOL:
                return W, res, it
    return W, gradient_mapping_norm(X, Y, W, lam), FISTA_MAX_ITER


def min_active_norm(W: np.ndarray) -> float:
    """Smallest nonzero group norm of ``W*`` (``inf`` if all groups are zero).

    A tiny value means ``lam`` sits near a kink of the regularisation path: the manifold
    is then barely separated from a neighbouring one and identification, although
    finite, can take longer than any feasible run.
    """
    norms = np.linalg.norm(W, axis=1)
    return float(norms[norms > 0].min()) if (norms > 0).any() else math.inf


def _digest(X: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.sha256(np.ascontiguousarray(X).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


_DATA: dict[str, tuple[np.ndarray, np.ndarray]] = {}


@lru_cache(maxsize=64)
def _solve_cached(digest: str, lam: float) -> tuple[np.ndarray, float, int]:
    X, y = _DATA[digest]
    return fista(X, one_hot(y, int(y.max()) + 1), lam)


def limit_point(X: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, float, int]:
    """``W*`` for this data set and ``lam``, solved once per process (cached)."""
    digest = _digest(X, y)
    _DATA.setdefault(digest, (X, y))
    W, res, it = _solve_cached(digest, float(lam))
    return W.copy(), res, it


def nondegeneracy_gap(X: np.ndarray, Y: np.ndarray, W: np.ndarray, lam: float) -> float:
    """``min`` over zero groups of ``lam sqrt(k) - ||grad_g f(W*)||`` (``inf`` if none).

    Nondegeneracy of the identification theorem, ``-grad f(W*) in relint d psi(W*)``, is
    ``gap > 0``: on a zero group ``d psi`` is the ball of radius ``lam sqrt(k)``, whose
    relative interior is the open ball (on a nonzero group ``d psi`` is a point).
    """
    zero = np.linalg.norm(W, axis=1) == 0
    if not zero.any():
        return math.inf
    g = np.linalg.norm(gradient(X, Y, W)[zero], axis=1)
    return float(np.min(lam * math.sqrt(W.shape[1]) - g))


def sample_constants(X: np.ndarray) -> dict[str, float]:
    """Per-sample smoothness ``max_i ||x_i||^2 / 2`` of the softmax cross-entropy and the
    bound ``max_i sqrt(2) ||x_i||`` on its gradient (``||softmax - onehot|| <= sqrt(2)``):
    the L-smoothness and bounded-moment hypotheses, finite on a finite data set."""
    norms = np.linalg.norm(X, axis=1)
    return {
        "sample_smoothness": float(norms.max() ** 2 / 2),
        "gradient_bound": float(math.sqrt(2.0) * norms.max()),
    }


def nondegeneracy_margin(X: np.ndarray, Y: np.ndarray, W: np.ndarray, lam: float) -> float:
    """``min`` over zero groups of ``1 - ||grad_g f(W*)|| / (lam sqrt(k))``.

    Positive iff ``-grad f(W*)`` lies in the relative interior of ``d psi(W*)`` on the zero
    groups (the nondegeneracy condition of the paper's identification theorem); ``inf``
    when ``W*`` has no zero group.
    """
    zero = np.linalg.norm(W, axis=1) == 0
    if not zero.any():
        return math.inf
    g = np.linalg.norm(gradient(X, Y, W)[zero], axis=1)
    return float(np.min(1.0 - g / (lam * math.sqrt(W.shape[1]))))


# --------------------------------------------------------------------------- data
def make_data(
    params: Mapping[str, Any], rng: np.random.Generator, base: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features, a true weight with ``informative`` nonzero rows, softmax labels.

    Each informative row has norm ``signal`` and a random direction orthogonal to the
    all-ones vector (the softmax ignores that component), so no true group is nearly
    zero and ``W*`` is well separated from neighbouring sparsity patterns for moderate lam.
    """
    n, d, k = params["n"], params["d"], params["k"]
    X = rng.standard_normal((n, d))
    W_true = np.zeros((d, k))
    rows = rng.choice(d, size=min(params["informative"], d), replace=False)
    G = rng.standard_normal((rows.size, k))
    G -= G.mean(axis=1, keepdims=True)
    W_true[rows] = params["signal"] * G / np.linalg.norm(G, axis=1, keepdims=True)
    Z = X @ W_true
    P = np.exp(Z - Z.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(P, axis=1)).sum(axis=1)
    return X, np.minimum(y, k - 1).astype(np.int64)


def data_params(X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Sizes and the smoothness constant; ``W*`` depends on ``lam`` and is solved in ``run``."""
    return {
        "n": float(X.shape[0]),
        "d": float(X.shape[1]),
        "k": float(int(y.max()) + 1),
        "lipschitz": lipschitz(X),
    } | sample_constants(X)


# --------------------------------------------------------------------------- training
def zero_pattern(W: np.ndarray) -> np.ndarray:
    """Boolean ``(..., d)``: which groups (rows) are exactly zero."""
    return ~np.any(W != 0.0, axis=-1)


def pattern_statistics(patterns: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per repetition, from patterns ``(R, T, d)`` (step t = 1..T) and the target ``(d,)``.

    ``mismatch`` ``(R, T)``: groups whose zero status differs from the target's;
    ``changes`` ``(R, T)``: whether the pattern differs from the previous step's (step 1
    compares with ``W_0 = 0``, all groups zero); ``identification`` ``(R,)``: the first step
    from which the pattern equals the target at every later step (NaN if not at the end).
    """
    mismatch = (patterns != target).sum(axis=-1)
    first = np.ones_like(patterns[:, :1])
    previous = np.concatenate([first, patterns[:, :-1]], axis=1)
    changes = np.any(patterns != previous, axis=-1)
    T = patterns.shape[1]
    ident = np.full(patterns.shape[0], math.nan)
    for r in range(patterns.shape[0]):
        bad = np.flatnonzero(mismatch[r] > 0)
        if bad.size == 0:
            ident[r] = 1.0
        elif bad[-1] < T - 1:
            ident[r] = float(bad[-1] + 2)  # steps are 1-based
    return {"mismatch": mismatch, "changes": changes, "identification": ident}


def changes_after(changes: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Pattern changes strictly after step ``steps[r]`` (NaN where the step is NaN)."""
    t = np.arange(1, changes.shape[1] + 1)
    out = np.full(changes.shape[0], math.nan)
    for r, s in enumerate(steps):
        if math.isfinite(s):
            out[r] = float(changes[r, t > s].sum())
    return out


#: the exact algorithm and the broken one used by mutation testing
VARIANTS = ("exact", "step_threshold")


@dataclass
class RMDAState:
    """RMDA's state: initial point ``W_0``, iterate ``W_t``, dual average ``V_t``,
    ``alpha_t = sum_{i<=t} s_i`` and the step count ``t`` (arrays may carry a leading
    repetition axis)."""

    W0: np.ndarray
    W: np.ndarray
    V: np.ndarray
    alpha: float = 0.0
    t: int = 0

    @classmethod
    def start(cls, W0: np.ndarray) -> RMDAState:
        return cls(W0.copy(), W0.copy(), np.zeros_like(W0))


def rmda_step(
    state: RMDAState,
    grad: np.ndarray,
    eta: float,
    c: float,
    unit: float,
    variant: str = "exact",
) -> np.ndarray:
    """One RMDA step in place, given ``grad = grad f_{xi_t}(W_{t-1})``; returns ``W~_t``.

    ``unit = lam sqrt(|g|)``: the prox thresholds every group at ``alpha_t / beta_t * unit``
    (``variant="step_threshold"``: at ``eta * unit``, the broken prox of the mutants).
    """
    state.t += 1
    beta = math.sqrt(state.t)
    s = eta * beta
    state.alpha += s
    state.V += s * grad
    threshold = eta * unit if variant == "step_threshold" else state.alpha / beta * unit
    W_tilde = group_prox(state.W0 - state.V / beta, threshold)
    state.W = (1.0 - c) * state.W + c * W_tilde
    return W_tilde


def train(
    X: np.ndarray,
    y: np.ndarray,
    rngs: Sequence[np.random.Generator],
    lam: float,
    steps: int,
    batch: int,
    eta: float,
    c: float,
    eta_proxsgd: float,
    mu: float,
    log_every: int = 1,
    variant: str = "exact",
) -> list[RunOutput]:
    """RMDA and ProxSGD for every repetition at once (arrays ``(R, d, k)``).

    Zero patterns are recorded at every step; the full-data objective gaps (the costly
    part) at steps ``0, log_every, 2 log_every, ...``.  ``variant="step_threshold"`` is a
    deliberately wrong RMDA for mutation testing: its proximal step thresholds at the
    step's ``eta lam`` instead of the accumulated ``alpha_t / beta_t lam`` of the dual
    average (Huang & Lee, Algorithm 1), so the regulariser is effectively switched off.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    n, d = X.shape
    k = int(y.max()) + 1
    Y = one_hot(y, k)
    W_star, residual, _ = limit_point(X, y, lam)
    F_star = float(objective(X, Y, W_star, lam))
    margin = nondegeneracy_margin(X, Y, W_star, lam)
    gap = nondegeneracy_gap(X, Y, W_star, lam)
    active = min_active_norm(W_star)
    target = zero_pattern(W_star)
    R = len(rngs)
    idx = np.stack([g.integers(0, n, size=(steps, batch)) for g in rngs], axis=1)  # (T, R, b)
    unit = lam * math.sqrt(k)

    rm_state = RMDAState.start(np.zeros((R, d, k)))  # W_0 = 0
    P = np.zeros((R, d, k))  # ProxSGD iterate
    buf = np.zeros((R, d, k))
    pat_rmda = np.empty((R, steps, d), dtype=bool)
    pat_psgd = np.empty((R, steps, d), dtype=bool)
    gap_rmda = np.empty((R, steps // log_every + 1))
    gap_psgd = np.empty((R, steps // log_every + 1))
    gap_rmda[:, 0] = gap_psgd[:, 0] = float(objective(X, Y, np.zeros((d, k)), lam)) - F_star
    XT, YT = np.ascontiguousarray(X.T), np.ascontiguousarray(Y.T)
    for t in range(1, steps + 1):
        Xb, Yb = X[idx[t - 1]], Y[idx[t - 1]]  # (R, b, d), (R, b, k)
        W_tilde = rmda_step(rm_state, gradient(Xb, Yb, rm_state.W), eta, c, unit, variant)
        buf = (1.0 - mu) * buf + mu * gradient(Xb, Yb, P)
        P = group_prox(P - eta_proxsgd * buf, eta_proxsgd * unit)
        pat_rmda[:, t - 1] = zero_pattern(W_tilde)
        pat_psgd[:, t - 1] = zero_pattern(P)
        if t % log_every == 0:
            F = objectives(XT, YT, np.concatenate([rm_state.W, P]), lam) - F_star
            gap_rmda[:, t // log_every], gap_psgd[:, t // log_every] = F[:R], F[R:]

    rm = pattern_statistics(pat_rmda, target)
    ps = pattern_statistics(pat_psgd, target)
    flips_rmda = changes_after(rm["changes"], rm["identification"])
    flips_psgd_after = changes_after(ps["changes"], rm["identification"])
    flips_psgd_own = changes_after(ps["changes"], ps["identification"])
    ratio = step_ratio(np.arange(1, steps + 1))
    schedule = {
        "step_ratio_sum": float(ratio.sum()),
        "step_ratio_square_sum": float(np.sum(ratio**2)),
        "step_ratio_tail": float(steps * ratio[-1]),
    }
    outputs = []
    for r in range(R):
        outputs.append(
            RunOutput(
                curves={
                    "objective_gap_rmda": gap_rmda[r],
                    "objective_gap_proxsgd": gap_psgd[r],
                    "pattern_mismatch_rmda": np.concatenate([[target.sum()], rm["mismatch"][r]]),
                    "pattern_mismatch_proxsgd": np.concatenate([[target.sum()], ps["mismatch"][r]]),
                },
                scalars={
                    "identification_step_rmda": float(rm["identification"][r]),
                    "flips_after_identification_rmda": float(flips_rmda[r]),
                    "identification_step_proxsgd": float(ps["identification"][r]),
                    "flips_after_own_identification_proxsgd": float(flips_psgd_own[r]),
                    "flips_after_identification_proxsgd": float(flips_psgd_after[r]),
                    "flips_total_rmda": float(rm["changes"][r].sum()),
                    "flips_total_proxsgd": float(ps["changes"][r].sum()),
                    "fista_residual": residual,
                    "nondegeneracy_margin": margin,
                    "nondegeneracy_gap": gap,
                    "min_active_norm": active,
                    "zero_groups_star": float(target.sum()),
                }
                | schedule,
            )
        )
    return outputs


run = grid_run(
    train,
    SCHEMA,
    ("model", "training"),
    doc="Both methods start from ``W_0 = 0``, so ``init_rngs`` is unused.",
)


def memory_bytes(params: Mapping[str, Any], reps: int) -> float:
    """Data, per-step full-data logits, stored patterns and gaps (float64 / bool)."""
    n, d, k, T = params["n"], params["d"], params["k"], params["steps"]
    return 8.0 * (n * d + 6 * reps * n * k + 4 * reps * T) + 2.0 * reps * T * d


RMDA = register(
    Trainer(
        name="rmda_group_lasso",
        description="RMDA vs ProxSGD on group-lasso softmax regression (arXiv:2112.02612)",
        schema=SCHEMA,
        make_data=make_data,
        data_params=data_params,
        run=run,
        memory_bytes=memory_bytes,
        grid_sections=("model", "training"),
        measured_params=("nondegeneracy_gap",),
        measured_max=("fista_residual",),
    )
)
