"""Full-batch gradient descent on a shallow ReLU network with asymmetrical node scaling
(arXiv:2302.01002).

Model: ``f(x) = sum_j sqrt(lambda_j) a_j relu(w_j.x / sqrt(d))``, ``a_j = +-1`` fixed,
``w_j(0) ~ N(0, init_variance I)``, scalings ``lambda_j`` from
:func:`bounds.caron2023.node_scalings` (decreasing in j).  Loss ``L = 1/2 ||u - y||^2``;
step ``w_j <- w_j - eta dL/dw_j`` with
``dL/dw_j = sqrt(lambda_j) a_j sum_i r_i 1{w_j.x_i >= 0} x_i / sqrt(d)``, ``r = u - y``.

All repetitions train together (weights ``(R, m, d)``).  Every ``log_every`` steps (step 0
included) the loss and ``lambda_min`` of the empirical tangent kernel
``Theta_t = (X X^T / d) o (S^T diag(lambda) S)`` (``S_ji = 1{w_j(t).x_i >= 0}``; ``a_j^2 = 1``)
are logged -- ``S`` comes from the forward pass of that step, so the kernel costs one
``n x m x n`` product.

Scalar outputs per repetition:

* ``max_movement`` / ``top_movement``: ``max_j ||w_j(T) - w_j(0)||`` over all nodes / over
  the ``top_k`` largest-scaling nodes (the first ``top_k``: the scalings decrease in j);
* ``kernel_deviation0``: ``||Theta_0 - Theta_inf||_F / ||Theta_inf||_F``;
* ``pruned_risk``: after training, remove the ``prune_fraction`` nodes with the *smallest*
  scalings (increasing ``lambda_j``; ties at ``gamma = 1`` in index order, which is random
  with respect to the weights) without retraining or rescaling, and report the training
  risk ``||u_pruned - y||^2 / ||y||^2`` (1 = no better than predicting 0);
* ``worst_decay``: ``min_k -log(L_k / L_0) / k`` (per step) over the logged steps with
  ``L_k > 1e-20 L_0`` (the worst-case linear rate of the whole run);
* measured hypotheses: ``lambda_min_sym0`` (``lambda_min(H(W(0))) / d`` of the symmetric
  part) and ``step_margin0`` (``2 / (eta lambda_max(Theta_0))``);
* ``diverged_round``: first logged step whose loss is not finite or above
  :data:`~verify.trainers.outputs.DIVERGENCE_FACTOR` times the initial loss (``-1`` if none); training stops there.

Data: the shared sphere or file data, or ``kind = "sine"``, the authors' simulation target
(``juho-lee/asymmetrical_scaling``, ``simulations/sample_data.py``): ``x_i`` uniform on the
unit sphere, ``y_i = mean_k 5 sin(pi x_ik) + noise * N(0, 1)`` (``noise`` = 0.1 there).
The authors train with learning rate 1 on the *mean* squared error
``(1/n) sum_i (u_i - y_i)^2``, which is gradient descent on ``1/2 ||u - y||^2`` with
``eta = 2 / n``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bounds.caron2023 import data_params, node_scalings, theta_infinity

from ..data import data_schema, sphere
from ..data import make_data as shared_data
from ..schema import Spec, positive_float, positive_int, unit_interval
from . import Trainer, register
from .outputs import RunOutput, grid_run, has_diverged

SCHEMA = {
    "data": data_schema(n=16, d=16, max_n=10_000)
    | {
        "kind": Spec(str, "sphere", choices=("sphere", "file", "sine")),
        "noise": Spec(float, 0.1, lambda v: 0 <= v < math.inf, "number >= 0"),
    },
    "model": {
        "m": positive_int(1000, maximum=1_000_000),
        "gamma": unit_interval(1.0),
        "alpha": positive_float(0.5),
        "init_variance": positive_float(2.0),
        "top_k": positive_int(5, maximum=1_000_000),
    },
    "training": {
        "eta": positive_float(8.0),
        "steps": positive_int(400, maximum=1_000_000),
        "log_every": positive_int(1, maximum=1_000_000),
        "prune_fraction": Spec(float, 0.9, lambda v: 0 <= v < 1, "number in [0, 1)"),
    },
}

#: losses below this fraction of the initial loss are at rounding level: not used for rates
RESOLUTION = 1e-20
#: the variants used by the tests' broken-trainer control
VARIANTS = ("exact", "unscaled_gradient")


def make_data(
    params: Mapping[str, Any], rng: np.random.Generator, base: Path
) -> tuple[np.ndarray, np.ndarray]:
    """The shared data kinds, or the authors' simulation target (``kind = "sine"``)."""
    if params["kind"] != "sine":
        return shared_data(params, rng, base)
    X, _ = sphere(params["n"], params["d"], rng)
    y = np.mean(5.0 * np.sin(np.pi * X), axis=1) + params["noise"] * rng.standard_normal(len(X))
    return X, y


def init_weights(
    init_rngs: Sequence[np.random.Generator], m: int, d: int, variance: float
) -> tuple[np.ndarray, np.ndarray]:
    """``W (R, m, d)`` with i.i.d. ``N(0, variance)`` entries and signs ``a (R, m)``."""
    W = np.stack([g.standard_normal((m, d)) for g in init_rngs]) * math.sqrt(variance)
    a = np.stack([g.choice([-1.0, 1.0], size=m) for g in init_rngs])
    return W, a


def kernel(X: np.ndarray, S: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """``Theta = (X X^T / d) o (S^T diag(lam) S)`` for activity patterns ``S (R, m, n)``."""
    SL = S * lam[None, :, None]
    return (X @ X.T / X.shape[1])[None] * (np.swapaxes(SL, 1, 2) @ S)


def forward(
    X: np.ndarray, W: np.ndarray, coef: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Outputs ``u (R, n)``, pre-activations ``Z (R, m, n)`` and patterns ``S`` (float 0/1)."""
    Z = W @ (X.T / math.sqrt(X.shape[1]))
    S = (Z >= 0).astype(Z.dtype)
    u = np.einsum("rm,rmn->rn", coef, Z * S)
    return u, Z, S


def gradient(X: np.ndarray, S: np.ndarray, coef: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """``dL/dW (R, m, d)`` of ``1/2 ||u - y||^2`` given the patterns and ``r = u - y``."""
    return coef[:, :, None] * ((S * residual[:, None, :]) @ X) / math.sqrt(X.shape[1])


def train(
    X: np.ndarray,
    y: np.ndarray,
    init_rngs: Sequence[np.random.Generator],
    m: int,
    gamma: float,
    alpha: float,
    init_variance: float,
    top_k: int,
    eta: float,
    steps: int,
    log_every: int,
    prune_fraction: float,
    variant: str = "exact",
) -> list[RunOutput]:
    """Train every repetition (one initialisation generator each); see the module docstring.

    ``variant="unscaled_gradient"`` is a deliberately wrong trainer for negative controls:
    its gradient ignores the node scalings (uses ``a_j / sqrt(m)`` for every node).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    n, d = X.shape
    R = len(init_rngs)
    lam = node_scalings(m, gamma, alpha)
    W0, a = init_weights(init_rngs, m, d, init_variance)
    W = W0.copy()
    coef = np.sqrt(lam)[None, :] * a
    grad_coef = a / math.sqrt(m) if variant == "unscaled_gradient" else coef
    theta_inf = theta_infinity(X)

    n_log = steps // log_every + 1
    loss = np.full((R, n_log), np.nan)
    kmin = np.full((R, n_log), np.nan)
    diverged = np.full(R, -1)
    live = np.ones(R, dtype=bool)
    deviation = np.full(R, np.nan)
    sym0 = np.full(R, np.nan)
    margin0 = np.full(R, np.nan)
    for t in range(steps + 1):
        u, _, S = forward(X, W, coef)
        r = u - y[None, :]
        if t % log_every == 0:
            k = t // log_every
            loss[:, k] = np.where(live, 0.5 * np.sum(r * r, axis=1), np.nan)
            K = kernel(X, S, lam)
            eig = np.linalg.eigvalsh(K)
            kmin[:, k] = np.where(live, eig[:, 0], np.nan)
            if t == 0:
                deviation = np.linalg.norm(K - theta_inf, axis=(1, 2)) / np.linalg.norm(theta_inf)
                sym = kernel(X, S, np.full(m, 1.0 / m))
                sym0 = np.linalg.eigvalsh(sym)[:, 0]
                margin0 = 2.0 / (eta * eig[:, -1])
            bad = live & has_diverged(loss[:, k], loss[:, 0])
            diverged[bad] = k
            live &= ~bad
            loss[bad, k] = np.nan
        if t == steps or not live.any():
            break
        W[live] -= eta * gradient(X, S[live], grad_coef[live], r[live])

    move = np.linalg.norm(W - W0, axis=2)  # (R, m): lambda is decreasing in j
    k_top = min(top_k, m)
    keep = max(1, int(math.ceil((1.0 - prune_fraction) * m)))
    u_pruned, _, _ = forward(X, W[:, :keep], coef[:, :keep])
    pruned_risk = np.sum((u_pruned - y) ** 2, axis=1) / np.sum(y**2)
    outputs = []
    for r in range(R):
        curve = loss[r]
        ok = np.isfinite(curve) & (curve > RESOLUTION * curve[0])
        idx = np.flatnonzero(ok[1:]) + 1
        worst = (
            float(np.min(-np.log(curve[idx] / curve[0]) / (idx * log_every)))
            if idx.size
            else math.nan
        )
        outputs.append(
            RunOutput(
                curves={"loss": curve, "kernel_lambda_min": kmin[r]},
                scalars={
                    "max_movement": float(move[r].max()),
                    "top_movement": float(move[r, :k_top].max()),
                    "kernel_deviation0": float(deviation[r]),
                    "pruned_risk": float(pruned_risk[r]) if diverged[r] < 0 else math.nan,
                    "worst_decay": worst if diverged[r] < 0 else math.nan,
                    "lambda_min_sym0": float(sym0[r]),
                    "step_margin0": float(margin0[r]),
                    "diverged_round": float(diverged[r]),
                },
            )
        )
    return outputs


run = grid_run(
    train,
    SCHEMA,
    ("model", "training"),
    draws="init_or_rngs",
    doc="""Full-batch GD is deterministic given the initialisation: every draw comes from
    ``init_rngs`` (shared by points with equal ``m`` and ``init_variance``, so the gamma
    values of a width start from the same weights); without them, from ``rngs``.""",
)


def memory_bytes(params: Mapping[str, Any], reps: int) -> float:
    """Weights (two copies, gradient), pre-activations, patterns and their products, and the
    n x n kernels (tangent, symmetric, eigenvalue workspace) of every repetition."""
    n, d, m = params["n"], params["d"], params["m"]
    return 8.0 * reps * (m * (4 * d + 5 * n) + 3 * n * n)


NODE_SCALING = register(
    Trainer(
        name="node_scaling",
        description="shallow ReLU net with asymmetrical node scaling, full-batch GD "
        "(arXiv:2302.01002)",
        schema=SCHEMA,
        make_data=make_data,
        data_params=data_params,
        run=run,
        memory_bytes=memory_bytes,
        grid_sections=("model", "training"),
        init_keys=("m", "init_variance"),
        measured_params=("lambda_min_sym0", "step_margin0"),
    )
)
