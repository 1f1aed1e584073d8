"""Compiled elementwise work of the blocked passes (:mod:`verify.trainers.blocked_kernels`).

The blocked passes spend their FLOPs in two BLAS products per block of neuron copies
(pre-activations ``Z_b = W_b X^T`` and the gradient ``1[Z_b > 0] E``); around them NumPy
makes several passes over the block: the activity ``Z_b > 0``, ``|Z_b|`` and a product
with it per coefficient vector for the ReLU sums, the conversion of the activity to 0/1
floats, the scaling and the subtraction of the step.  Measured at n = 64, d = 16 (blocks of
1024 copies, one thread): 65 us of NumPy passes against 140 us of the two products, plus a
product over all copies per step for the linear half of the ReLU sums.  Here each of them is
one compiled loop over the block while it is in cache:

* :func:`relu_sums`: ``act = Z_b > 0`` and, for every piece ``(target, coefficient row, lo,
  hi)`` of the block, ``sums[target] += sum_{r = lo}^{hi - 1} C[row, r] relu(z_r)``,
  accumulated from zero in row order and then added to ``sums[target]`` (a NaN
  pre-activation propagates, as ``np.maximum`` does);
* :func:`as_float`: the activity as 0/1 in the weights' precision;
* :func:`take_step`: ``W_b -= rate[:, None] * GE``.

Compiled with ``fastmath=False``: the sums are the loops' sums in the loops' order.  Used
where numba is available (:mod:`verify.trainers.numba_support`); otherwise the blocked passes
keep their NumPy expressions (the same quantities up to rounding, tested).
"""

from __future__ import annotations

import numpy as np

from .numba_support import AVAILABLE, njit

__all__ = ["AVAILABLE", "as_float", "relu_sums", "take_step"]

if njit is not None:

    @njit(cache=True, fastmath=False, error_model="numpy")
    def relu_sums(Z, C, act, pieces, sums):  # pragma: no cover - compiled
        """Activity of the block into ``act`` and its pieces' ReLU sums added to ``sums``.

        ``Z``: the block's ``(rows, n)`` pre-activations; ``C``: coefficient rows, each
        indexed like the block's rows; ``pieces``: ``(k, 4)`` integers ``(target, row of C,
        lo, hi)``; ``sums``: ``(targets, n)``, added to.
        """
        n = Z.shape[1]
        zero = np.zeros(1, dtype=Z.dtype)[0]
        acc = np.empty(n, dtype=sums.dtype)
        for j in range(pieces.shape[0]):
            target, row, lo, hi = pieces[j, 0], pieces[j, 1], pieces[j, 2], pieces[j, 3]
            acc[:] = 0.0
            for r in range(lo, hi):
                c = C[row, r]
                for i in range(n):
                    z = Z[r, i]
                    positive = z > zero
                    act[r, i] = positive
                    acc[i] += c * (z if positive or z != z else zero)
            for i in range(n):
                sums[target, i] += acc[i]

    @njit(cache=True, fastmath=False)
    def as_float(act, G):  # pragma: no cover - compiled
        """``G[r, i] = 1`` where ``act[r, i]``, else 0 (``G`` at least as many rows)."""
        one = np.ones(1, dtype=G.dtype)[0]
        zero = np.zeros(1, dtype=G.dtype)[0]
        for r in range(act.shape[0]):
            for i in range(act.shape[1]):
                G[r, i] = one if act[r, i] else zero

    @njit(cache=True, fastmath=False)
    def take_step(W, GE, rate):  # pragma: no cover - compiled
        """``W[r] -= rate[r] * GE[r]`` for every row of ``W``."""
        for r in range(W.shape[0]):
            f = rate[r]
            for k in range(W.shape[1]):
                W[r, k] -= f * GE[r, k]

else:  # pragma: no cover - the NumPy expressions of blocked_kernels are used instead
    relu_sums = as_float = take_step = None
