"""The neural tangent kernel of a one-hidden-layer ReLU network and derived constants.

Shared by every bound about shallow ReLU networks in the NTK (lazy) regime.
"""

from __future__ import annotations

import math

import numpy as np


def cosine_matrix(X: np.ndarray) -> np.ndarray:
    """Gram matrix ``X X^T`` clipped to [-1, 1] (inputs are unit norm)."""
    return np.clip(X @ X.T, -1.0, 1.0)


def h_infinity(X: np.ndarray) -> np.ndarray:
    """Infinite-width NTK Gram matrix of the hidden layer (Du et al. 2019, eq. (3)).

    ``H_ij = E_w[x_i.x_j 1{w.x_i >= 0, w.x_j >= 0}] = x_i.x_j (pi - arccos(x_i.x_j)) / (2 pi)``
    for unit-norm inputs and ``w ~ N(0, I)``.  The cosine is clipped before arccos.
    """
    G = cosine_matrix(X)
    return G * (math.pi - np.arccos(G)) / (2.0 * math.pi)


def lambda0(X: np.ndarray) -> float:
    """``lambda_0 = lambda_min(H_inf)``: positive iff no two inputs are parallel."""
    return float(np.linalg.eigvalsh(h_infinity(X))[0])


def finite_width_gram(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Finite-width NTK Gram ``H(W)_ij = x_i.x_j (1/m) sum_r 1{w_r.x_i >= 0} 1{w_r.x_j >= 0}``.

    Its expectation over ``w_r ~ N(0, kappa^2 I)`` is :func:`h_infinity` for any kappa.
    """
    S = (X @ W.T >= 0).astype(float)
    return cosine_matrix(X) * (S @ S.T) / W.shape[0]


def theta(xi: float, p: int) -> float:
    """Probability that a neuron is kept by at least one of ``p`` Bernoulli(xi) masks."""
    return 1.0 - (1.0 - xi) ** p


def init_kernel_width(n: int, lam0: float, delta: float) -> float:
    """Width above which ``||H(0) - H_inf||_2 <= lambda_0 / 4`` with probability ``1 - delta``.

    Du et al. 2019, Lemma 3.1 (``m = Omega(n^2 log(n/delta) / lambda_0^2)``) with the
    constant made explicit by Hoeffding's inequality on each entry (entries lie in
    [-1, 1]) and a union bound over the ``n^2`` entries, then ``||.||_2 <= ||.||_F``:
    ``m >= 32 n^2 log(2 n^2 / delta) / lambda_0^2``.  A *necessary part* of the
    masked-training theorem's width requirement, which is larger still.
    """
    return 32.0 * n**2 * math.log(2.0 * n**2 / delta) / lam0**2


def data_params(X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Data-dependent quantities the bounds need: ``n, d, lambda0, lambda_max, ...``."""
    return kernel_data_params(h_infinity(X), X, y)


def kernel_data_params(K: np.ndarray, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """``lambda0`` and ``lambda_max`` of the kernel Gram matrix ``K`` with the input checks."""
    eig = np.linalg.eigvalsh(K)
    G = X @ X.T
    off = np.abs(G[~np.eye(len(X), dtype=bool)]) if len(X) > 1 else np.zeros(1)
    return {
        "n": int(X.shape[0]),
        "d": int(X.shape[1]),
        "lambda0": float(eig[0]),
        "lambda_max": float(eig[-1]),
        "label_bound": float(np.max(np.abs(y))),
        "label_norm2": float(y @ y),
        "input_norm_error": float(np.max(np.abs(np.linalg.norm(X, axis=1) - 1.0))),
        "max_abs_cosine": float(off.max()),
    }
