"""Gradient descent on a shallow shifted-ReLU network with a sublinear activated-neuron
query (arXiv:2307.06565).

Model: ``f(W, x) = (1/sqrt(m)) sum_r a_r max(w_r.x - b, 0)``, ``b = sqrt(threshold_coef log m)``,
``a_r = +-1`` fixed, ``w_r(0) ~ N(0, I_d)``.  Loss ``L = 1/2 ||u - y||^2``; step
``W <- W - eta grad L`` with ``dL/dw_r = (1/sqrt(m)) a_r sum_i (u_i - y_i) 1{w_r.x_i > b} x_i``.

Every repetition runs two trajectories from the same initialisation:

* the **sparse** one, the algorithm under test: each step asks an
  :class:`ActiveNeuronIndex` for the activated pairs ``(i, r)`` (``w_r.x_i > b``) and
  computes the output and the gradient over them only; its loss is the logged ``loss``;
* the **dense** reference: the textbook step over all ``m`` neurons.

At every step the dense gradient is also evaluated at the sparse trajectory's weights.
``gradient_mismatch`` is the largest entry of ``|sparse - dense gradient|`` over the run
divided by the largest entry of the dense gradient over the run (the gradient's own scale:
near convergence the residual, hence the gradient, is at rounding level and a step-wise
ratio would compare rounding with rounding); ``trajectory_mismatch`` is the largest entry
of ``|W_sparse(t) - W_dense(t)|`` over the run divided by the dense trajectory's largest
movement ``|W_dense(t) - W(0)|``.  Both are 0 up to rounding for an exact sparse step.

Outputs per repetition: curves (index 0 = initialisation, one entry per step) ``loss``,
``active_count`` (the largest number of activated neurons over the inputs, counted densely
at the sparse trajectory's weights: the claim, independent of the index) and ``touched``
(neurons the sparse step processed); scalars ``active_fraction0`` (mean over inputs of the
activated fraction at init), ``active_fraction0_max``, ``tail_probability`` (``Phi-bar(b)``),
``threshold``, ``gradient_mismatch``, ``trajectory_mismatch``, ``touched_max``, ``lambda_b``
(analytic ``lambda_min(H^b)``), ``lambda_min_H0`` (of the repetition's ``H(0)``),
``lambda_min_H0_gmean`` (the geometric mean of ``lambda_min_H0`` over the point's
repetitions, the same in each: the typical kernel the mean decay of the rate check is
compared with), ``step_margin0`` (``1 / (eta
lambda_max(H(0)))``), ``max_movement`` and ``diverged_round`` (first step whose loss is not
finite or above :data:`~verify.trainers.outputs.DIVERGENCE_FACTOR` times the initial loss, -1 if none; training
stops there and later entries are NaN).

With ``target_loss = eps > 0`` (the paper's iteration bound) a run stops at the first step
whose loss is ``<= eps`` (later entries NaN) and reports ``steps_to_target`` (that step; NaN
if not reached), ``target_reached`` (1 or 0) and ``cost_to_target`` (neurons the sparse step
processed, summed over the steps before it: the total cost).

Broken variants for the negative controls: ``variant="drop_active"`` is a query that loses
each activated neuron it returns with probability :data:`DROP_FRACTION` per step;
``variant="decaying_step"`` takes the step ``eta / (t + 1)`` at step ``t`` (a sublinear
method: the loss falls like a power of ``t``, so the iterations to reach ``eps`` grow
faster than ``1/eps^2``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bounds.ntk import data_params
from bounds.qin2023 import (
    THRESHOLD_COEF,
    finite_width_kernel,
    lambda_b,
    tail_probability,
    threshold,
)

from ..data import data_schema, make_data
from ..schema import Spec, positive_float, positive_int
from . import Trainer, register
from .outputs import RunOutput, grid_run, has_diverged

SCHEMA = {
    "data": data_schema(n=16, d=16, max_n=10_000),
    "model": {
        "m": positive_int(1024, maximum=4_194_304),
        "threshold_coef": positive_float(THRESHOLD_COEF),
    },
    "training": {
        "eta": positive_float(6.0),
        "steps": positive_int(300, maximum=1_000_000),
        # eps of the paper's iteration bound: > 0 stops each run at the first step with
        # loss <= eps (0: run all steps)
        "target_loss": Spec(float, 0.0, lambda v: v >= 0 and math.isfinite(v), "number >= 0"),
    },
}

VARIANTS = ("exact", "drop_active", "decaying_step")
#: probability that the broken query loses an activated neuron, per returned neuron and step
DROP_FRACTION = 0.1
#: a repetition whose loss exceeds this multiple of its initial loss has diverged


class ActiveNeuronIndex:
    """Which neurons each input activates (``w_r.x_i > b``), in time sublinear in ``m``.

    Built once from the initial weights: the projections ``x_i.w_r`` of every input sorted
    per input (``O(n m log m)``, like the preprocessing of a half-space reporting structure),
    so the activated set of input ``i`` at initialisation is a suffix of its order found by
    binary search (:meth:`initial`).  The union of these sets is the *candidate set* ``C``.

    During training the index holds the candidates' projections only, and
    :meth:`query` is a vectorised threshold over them (``O(n |C|)``).  This is exact
    because a neuron that activates no input has a zero gradient, so it never moves and
    never activates an input again: the candidate set can only shrink, and neurons that
    leave it are pruned for good.  :meth:`update` recomputes the candidates' projections
    after a step (``O(n d |C|)``).  At the paper's threshold ``|C| <= sum_i |A_i| ~
    n m^(4/5)``, so a step costs ``O(n d |C|)``, not ``O(n d m)``.
    """

    def __init__(self, X: np.ndarray, W: np.ndarray, b: float) -> None:
        self.X = X
        self.b = b
        P = X @ W.T
        self.order = np.argsort(P, axis=1)
        self.sorted = np.take_along_axis(P, self.order, axis=1)
        self.candidates = np.unique(np.concatenate([self.initial(i) for i in range(len(X))]))
        self.projections = P[:, self.candidates]

    def initial(self, i: int) -> np.ndarray:
        """Neurons input ``i`` activates at initialisation: ``O(log m + |A_i|)``."""
        start = int(np.searchsorted(self.sorted[i], self.b, side="right"))
        return self.order[i, start:]

    def query(self, lose: np.ndarray | None = None) -> np.ndarray:
        """Activity ``(n, |C|)`` of the candidates, after pruning those activating no input.

        ``lose`` (the broken variant only) marks candidates the query fails to return.
        """
        active = self.projections > self.b
        if lose is not None:
            active[:, lose] = False
        keep = active.any(axis=0)
        if not keep.all():
            self.candidates = self.candidates[keep]
            self.projections = self.projections[:, keep]
            active = active[:, keep]
        return active

    def update(self, W: np.ndarray) -> None:
        """Recompute the candidates' projections after their weights changed."""
        self.projections = self.X @ W[self.candidates].T


def sparse_step(
    index: ActiveNeuronIndex,
    W: np.ndarray,
    a: np.ndarray,
    y: np.ndarray,
    lose: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residual ``u - y``, the candidates and their gradient rows, from the activated pairs
    only (``W`` is read through the index's projections; nothing of size ``m`` is touched)."""
    active = index.query(lose)
    rows = index.candidates
    scale = 1.0 / math.sqrt(W.shape[0])
    coef = a[rows] * scale
    excess = np.where(active, index.projections - index.b, 0.0)
    residual = excess @ coef - y
    grad = coef[:, None] * ((active * residual[:, None]).T @ index.X)
    return residual, rows, grad


def dense_step(
    X: np.ndarray, W: np.ndarray, a: np.ndarray, y: np.ndarray, b: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residual, the full gradient ``(m, d)`` and the activity ``(m, n)``, over all neurons."""
    Z = W @ X.T
    S = Z > b
    coef = a / math.sqrt(W.shape[0])
    residual = coef @ np.where(S, Z - b, 0.0) - y
    grad = coef[:, None] * ((S * residual) @ X)
    return residual, grad, S


def train_one(
    X: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    m: int,
    threshold_coef: float,
    eta: float,
    steps: int,
    target_loss: float = 0.0,
    variant: str = "exact",
) -> RunOutput:
    """One repetition: initialisation and (for the broken variant) losses from ``rng``."""
    n, d = X.shape
    b = threshold(m, threshold_coef)
    W0 = rng.standard_normal((m, d))
    a = 2.0 * rng.integers(0, 2, size=m) - 1.0
    W, Wd = W0.copy(), W0.copy()
    index = ActiveNeuronIndex(X, W, b)

    T = steps + 1
    loss = np.full(T, np.nan)
    count = np.full(T, np.nan)
    touched = np.full(T, np.nan)
    #: largest |sparse - dense| gradient entry and |dense| entry; weight gap and movement
    grad_gap = grad_scale = traj_gap = moved = 0.0
    diverged = reached = -1
    S0 = None
    for t in range(T):
        lose = None
        if variant == "drop_active":
            lose = rng.random(index.candidates.size) < DROP_FRACTION
        residual, rows, grad = sparse_step(index, W, a, y, lose)
        _, dense_grad, S = dense_step(X, W, a, y, b)
        if t == 0:
            S0 = S
        loss[t] = 0.5 * float(residual @ residual)
        count[t] = S.sum(axis=0).max()
        touched[t] = rows.size
        if has_diverged(loss[t], loss[0]):
            diverged = t
            break
        full = np.zeros_like(W)
        full[rows] = grad
        grad_gap = max(grad_gap, float(np.abs(full - dense_grad).max()))
        grad_scale = max(grad_scale, float(np.abs(dense_grad).max()))
        traj_gap = max(traj_gap, float(np.abs(W - Wd).max()))
        moved = max(moved, float(np.abs(Wd - W0).max()))
        if target_loss > 0 and loss[t] <= target_loss:
            reached = t
            break
        if t == steps:
            break
        step = eta / (t + 1) if variant == "decaying_step" else eta
        W[rows] -= step * grad
        index.update(W)
        _, dgrad, _ = dense_step(X, Wd, a, y, b)
        Wd -= step * dgrad
    if diverged >= 0:
        loss[diverged:] = np.nan
    H0 = finite_width_kernel(X, W0, b)
    eig = np.linalg.eigvalsh(H0)
    per_input = S0.sum(axis=0) / m
    return RunOutput(
        curves={"loss": loss, "active_count": count, "touched": touched},
        scalars={
            "active_fraction0": float(per_input.mean()),
            "active_fraction0_max": float(per_input.max()),
            "tail_probability": tail_probability(b),
            "threshold": b,
            "gradient_mismatch": _ratio(grad_gap, grad_scale) if diverged < 0 else math.nan,
            "trajectory_mismatch": _ratio(traj_gap, moved) if diverged < 0 else math.nan,
            "touched_max": float(np.nanmax(touched)),
            "lambda_b": lambda_b(X, m, threshold_coef),
            "lambda_min_H0": float(eig[0]),
            "step_margin0": 1.0 / (eta * float(eig[-1])) if eig[-1] > 0 else math.inf,
            "max_movement": float(np.linalg.norm(W - W0, axis=1).max()),
            "diverged_round": float(diverged),
            "steps_to_target": float(reached) if reached >= 0 else math.nan,
            "target_reached": float(reached >= 0),
            "cost_to_target": float(np.sum(touched[:reached])) if reached >= 0 else math.nan,
        },
    )


def _ratio(gap: float, scale: float) -> float:
    """``gap / scale``; 0 when both vanish (nothing moved, nothing differs)."""
    if scale > 0:
        return gap / scale
    return 0.0 if gap == 0 else math.inf


def train(
    X: np.ndarray,
    y: np.ndarray,
    rngs: Sequence[np.random.Generator],
    *,
    m: int,
    threshold_coef: float = THRESHOLD_COEF,
    eta: float,
    steps: int,
    target_loss: float = 0.0,
    variant: str = "exact",
) -> list[RunOutput]:
    """Train ``len(rngs)`` independent repetitions; see the module docstring."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if m < 2:
        raise ValueError(f"m must be >= 2 (b = sqrt(coef log m) > 0), got {m}")
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    outputs = [
        train_one(
            X,
            y,
            rng,
            m=m,
            threshold_coef=threshold_coef,
            eta=eta,
            steps=steps,
            target_loss=target_loss,
            variant=variant,
        )
        for rng in rngs
    ]
    eigs = np.array([out.scalars["lambda_min_H0"] for out in outputs])
    typical = float(np.exp(np.mean(np.log(eigs)))) if np.all(eigs > 0) else math.nan
    for out in outputs:
        out.scalars["lambda_min_H0_gmean"] = typical
    return outputs


run = grid_run(
    train,
    SCHEMA,
    ("model", "training"),
    doc="""Every draw comes from the point's own ``rngs`` (independent across widths, so the
    width scaling fits independent samples); ``init_rngs`` is not used.""",
)


def memory_bytes(params: Mapping[str, Any], reps: int) -> float:
    """Three weight copies and the gradients, the dense pre-activations with their masks
    and products, and the index's sorted projections with their order (one repetition at
    a time)."""
    n, d, m = params["n"], params["d"], params["m"]
    return 8.0 * m * (5 * d + 4 * n) + 16.0 * n * m


SHIFTED_RELU = register(
    Trainer(
        name="shifted_relu",
        description="shallow shifted-ReLU net, GD with a sublinear activated-neuron query "
        "(arXiv:2307.06565)",
        schema=SCHEMA,
        make_data=make_data,
        data_params=data_params,
        run=run,
        memory_bytes=memory_bytes,
        grid_sections=("model", "training"),
        measured_params=("lambda_b", "lambda_min_H0", "lambda_min_H0_gmean", "step_margin0"),
    )
)
