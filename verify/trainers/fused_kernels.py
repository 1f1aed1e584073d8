"""Fused one-pass rounds of the masked-surrogate trainer (arXiv:2112.02668, Alg. 1, tau = 1), in numba.

For small ``n d`` (the wide networks of the exact-theorem cases: n = 8, d = 4, m = 10^6) a
round of the blocked passes of :mod:`verify.trainers.blocked_kernels` is dominated by
memory traffic and NumPy calls: gathering every surrogate's copies, the activity pattern,
the scatter of the averaged copies, one forward pass for the loss.  With one local step
the whole round is one pass over the weights.  Every surrogate l holding neuron r takes its
gradient at the round's starting weight, so the mean of r's trained copies moves it by

    ``-(eta s a_r / c_r) sum_i 1[w_r . x_i > 0] x_i sum_{l holds r} err_li``

(``s`` the surrogates' output scale, ``c_r`` the number of surrogates holding r,
``err_l = s u^(l) - y`` surrogate l's output error at the round's start), the average of
the reference loop's copies up to rounding.  :func:`fused_round` computes this for a block
of neurons in cache (their n pre-activations, activity, error sums and gradients), writes
the new weights and, while they are in cache, accumulates the raw ReLU sums
``sum_r a_r relu(w_r . x_i)`` of the full network (the next loss) and of every surrogate of
the next round (its errors).  The blocked passes stay for ``tau > 1`` and large ``n d``.

Reduction order is fixed: a pass takes its rows :data:`LANES` at a time (one per vector
lane, so the loops over rows vectorise without reassociating any sum), row r is added to
lane ``r % LANES`` in row order, and the lanes are added in lane order at the end (sums in
float64 also for float32 weights).  The result depends only on the inputs, not on the
executor, the process or a rerun, and the lanes keep the rounding of a sum over 10^6 rows
at the level of a sum over 10^4.  Compiled with ``@njit(cache=True, fastmath=False)``:
no reassociation, so the fixed order is the order.

numba is a runtime dependency (a measured 1.3x-4.5x per round over the blocked passes); where
it cannot be imported, or with ``MASKVERIFY_NUMBA=0`` in the environment, :data:`AVAILABLE`
is False and the trainer uses the blocked NumPy passes (tested both ways).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

#: rows processed together, one per SIMD lane position: row r of a pass is summed into
#: lane ``r % LANES``, in row order, and the lanes are added in lane order at the end
LANES = 64

#: ``n d`` up to which the fused rounds are used.  Measured (tau = 1, p = 4, one thread,
#: ``benchmarks/test_fused.py``): faster than the blocked passes at every measured point,
#: n d = 32 to 1024 (the bench regime), m = 16000 and 10^5, xi = 0.25 and 1 (1.3x to
#: 4.5x), and at p = 1, xi = 1 (1.0x-1.9x); beyond the measured range the blocked BLAS
#: passes are kept, and so are they where they update the output incrementally (disjoint
#: masks, keep < 0.6: 0.4x-0.9x for the fused rounds, which always pass over all m).
MAX_ND = 1024

try:  # pragma: no cover - exercised by whichever environment runs the tests
    if os.environ.get("MASKVERIFY_NUMBA", "1") == "0":
        raise ImportError("disabled by MASKVERIFY_NUMBA=0")
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

#: whether the fused passes can be used (numba importable and not disabled)
AVAILABLE = njit is not None


def use_fused(n: int, d: int) -> bool:
    """The crossover rule: fused passes when numba is available and ``n d <= MAX_ND``."""
    return AVAILABLE and n * d <= MAX_ND


if njit is not None:

    @njit(cache=True, fastmath=False, error_model="numpy")
    def _round(W, a, X, keep, err, step, average, nxt):  # pragma: no cover - compiled
        """One round of tau = 1 in place on ``W``, fused with the next round's forward pass.

        ``keep[l, r]`` (uint8) says whether neuron r is in surrogate l of this round (no
        training when ``keep`` has no rows), ``err[l]`` is surrogate l's output error at the
        round's start and ``step = eta s`` (``s`` the surrogates' output scale).  With
        ``average`` a neuron held by c surrogates moves by the mean of its c copies' steps
        ``-step a_r sum_i err_li 1[z_ri > 0] x_i``, otherwise by their sum.  Then, at the
        new weights, returns the raw ReLU sums ``sum_r a_r relu(w_r . x_i)`` of the full
        network (row 0) and of every surrogate ``nxt[j]`` of the next round (row 1 + j).

        Every innermost loop runs over the :data:`LANES` rows of a block (a partial last
        block is zero-padded: its padded rows have ``a = 0`` and add exact zeros) through
        one-dimensional views, so that the loops compile to contiguous SIMD loads and
        stores (indexing the 2-d scratch arrays inside the loop compiled to gathers, 3x
        slower); every sum keeps its order (sums over coordinates in coordinate order,
        over rows lane-wise, lanes in lane order).
        """
        m, d = W.shape
        n = X.shape[0]
        p = keep.shape[0]
        q = nxt.shape[0]
        L = LANES
        lanes = np.zeros((1 + q, n, L))
        WT = np.zeros((d, L), dtype=X.dtype)
        G = np.empty((d, L), dtype=X.dtype)
        e = np.empty((n, L), dtype=X.dtype)
        Z = np.empty((n, L), dtype=X.dtype)
        held = np.zeros((max(p, q), L), dtype=X.dtype)
        c = np.empty(L, dtype=X.dtype)
        av = np.zeros(L, dtype=X.dtype)
        v = np.empty(L)
        for lo in range(0, m, L):
            b = min(L, m - lo)
            if b < L:
                WT[:, :] = 0.0
                av[:] = 0.0
                held[:, :] = 0.0
            for t in range(b):
                av[t] = a[lo + t]
                for k in range(d):
                    WT[k, t] = W[lo + t, k]
            if p > 0:
                for l in range(p):
                    hl = held[l]
                    kl = keep[l]
                    for t in range(b):
                        hl[t] = kl[lo + t]
                c[:] = 0.0
                e[:, :] = 0.0
                for l in range(p):
                    hl = held[l]
                    for t in range(L):
                        c[t] += hl[t]
                    for i in range(n):
                        el = err[l, i]
                        ei = e[i]
                        for t in range(L):
                            ei[t] += hl[t] * el
                G[:, :] = 0.0
                for i in range(n):
                    zi = Z[i]
                    zi[:] = 0.0
                    for k in range(d):
                        x = X[i, k]
                        wk = WT[k]
                        for t in range(L):
                            zi[t] += x * wk[t]
                    ei = e[i]
                    for t in range(L):
                        zi[t] = ei[t] if zi[t] > 0.0 else 0.0
                    for k in range(d):
                        x = X[i, k]
                        gk = G[k]
                        for t in range(L):
                            gk[t] += zi[t] * x
                for t in range(L):
                    c[t] = step * av[t] / (c[t] if average and c[t] > 1.0 else 1.0)
                for k in range(d):
                    wk = WT[k]
                    gk = G[k]
                    for t in range(L):
                        wk[t] -= c[t] * gk[t]
                for t in range(b):
                    for k in range(d):
                        W[lo + t, k] = WT[k, t]
            if q > 0:
                for j in range(q):
                    hj = held[j]
                    nj = nxt[j]
                    for t in range(b):
                        hj[t] = nj[lo + t]
            for i in range(n):
                zi = Z[i]
                zi[:] = 0.0
                for k in range(d):
                    x = X[i, k]
                    wk = WT[k]
                    for t in range(L):
                        zi[t] += x * wk[t]
                l0 = lanes[0, i]
                for t in range(L):
                    zz = zi[t]
                    v[t] = av[t] * (zz if zz > 0.0 else 0.0)
                    l0[t] += v[t]
                for j in range(q):
                    lj = lanes[1 + j, i]
                    hj = held[j]
                    for t in range(L):
                        lj[t] += hj[t] * v[t]
        J = 1 + q
        out = np.zeros((J, n))
        for j in range(J):
            for i in range(n):
                s = lanes[j, i, 0]
                for t in range(1, L):
                    s += lanes[j, i, t]
                out[j, i] = s
        return out


def membership(masks: Sequence[np.ndarray], m: int) -> np.ndarray:
    """The index lists of a round's surrogates as a ``(p, m)`` 0/1 (uint8) matrix."""
    keep = np.zeros((len(masks), m), dtype=np.uint8)
    for l, idx in enumerate(masks):
        keep[l, idx] = 1
    return keep


def fused_round(
    W: np.ndarray,
    a: np.ndarray,
    X: np.ndarray,
    keep: np.ndarray,
    err: np.ndarray,
    step: float,
    average: bool,
    nxt: np.ndarray,
) -> np.ndarray:
    """One masked round with tau = 1 on ``W`` in place, one pass over the weights.

    See :func:`_round`: ``keep`` are this round's surrogates (``membership``; zero rows for
    a forward pass only), ``err`` their output errors at the round's start, ``nxt`` the
    next round's surrogates.  Returns ``(1 + len(nxt), n)`` raw ReLU sums at the new
    weights, accumulated in float64: the full network's, then the next surrogates'.
    """
    X = np.ascontiguousarray(X, dtype=W.dtype)
    err = np.ascontiguousarray(err, dtype=W.dtype).reshape(len(keep), X.shape[0])
    return _round(W, a, X, keep, err, W.dtype.type(step), average, nxt)
