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

    @njit(cache=True, fastmath=False)
    def _load(W, lo, b, WT):  # pragma: no cover - compiled
        """``WT[k, t] = W[lo + t, k]``: a block of rows, coordinates as rows (in cache)."""
        d = W.shape[1]
        for t in range(b):
            for k in range(d):
                WT[k, t] = W[lo + t, k]

    @njit(cache=True, fastmath=False)
    def _preactivate(WT, b, XT, i, z):  # pragma: no cover - compiled
        """``z[t] = w_t . x_i`` for the block's rows t, summed over the d coordinates in order."""
        d = XT.shape[0]
        for t in range(b):
            z[t] = 0.0
        for k in range(d):
            x = XT[k, i]
            for t in range(b):
                z[t] += x * WT[k, t]

    @njit(cache=True, fastmath=False)
    def _reduce(lanes):  # pragma: no cover - compiled
        """``out[..., i] = sum_t lanes[..., i, t]``, in lane order."""
        J, n, L = lanes.shape
        out = np.zeros((J, n), dtype=lanes.dtype)
        for j in range(J):
            for i in range(n):
                s = lanes[j, i, 0]
                for t in range(1, L):
                    s += lanes[j, i, t]
                out[j, i] = s
        return out

    @njit(cache=True, fastmath=False)
    def _unpack(keep, lo, b, held):  # pragma: no cover - compiled
        """``held[l, t] = keep[l, lo + t]`` as 0.0 / 1.0, for the block's rows."""
        for l in range(keep.shape[0]):
            for t in range(b):
                held[l, t] = keep[l, lo + t]

    @njit(cache=True, fastmath=False)
    def _round(W, a, X, XT, keep, err, step, average, nxt):  # pragma: no cover - compiled
        """One round of tau = 1 in place on ``W``, fused with the next round's forward pass.

        ``keep[l, r]`` (uint8) says whether neuron r is in surrogate l of this round (no
        training when ``keep`` has no rows), ``err[l]`` is surrogate l's output error at the
        round's start and ``step = eta s`` (``s`` the surrogates' output scale).  With
        ``average`` a neuron held by c surrogates moves by the mean of its c copies' steps
        ``-step a_r sum_i err_li 1[z_ri > 0] x_i``, otherwise by their sum.  Then, at the
        new weights, returns the raw ReLU sums ``sum_r a_r relu(w_r . x_i)`` of the full
        network (row 0) and of every surrogate ``nxt[j]`` of the next round (row 1 + j).
        """
        m, d = W.shape
        n = X.shape[0]
        p = keep.shape[0]
        q = nxt.shape[0]
        lanes = np.zeros((1 + q, n, LANES))
        WT = np.empty((d, LANES), dtype=XT.dtype)
        G = np.empty((d, LANES), dtype=XT.dtype)
        e = np.empty((n, LANES), dtype=XT.dtype)
        held = np.empty((max(p, q), LANES), dtype=XT.dtype)
        c = np.empty(LANES, dtype=XT.dtype)
        z = np.empty(LANES, dtype=XT.dtype)
        v = np.empty(LANES)
        for lo in range(0, m, LANES):
            b = min(LANES, m - lo)
            _load(W, lo, b, WT)
            if p > 0:
                _unpack(keep, lo, b, held)
                c[:b] = 0.0
                e[:, :b] = 0.0
                for l in range(p):
                    for t in range(b):
                        c[t] += held[l, t]
                    for i in range(n):
                        el = err[l, i]
                        for t in range(b):
                            e[i, t] += held[l, t] * el
                G[:, :b] = 0.0
                for i in range(n):
                    _preactivate(WT, b, XT, i, z)
                    for t in range(b):
                        z[t] = e[i, t] if z[t] > 0.0 else 0.0
                    for k in range(d):
                        x = X[i, k]
                        for t in range(b):
                            G[k, t] += z[t] * x
                for t in range(b):
                    c[t] = step * a[lo + t] / (c[t] if average and c[t] > 1.0 else 1.0)
                for k in range(d):
                    for t in range(b):
                        WT[k, t] -= c[t] * G[k, t]
                for t in range(b):
                    for k in range(d):
                        W[lo + t, k] = WT[k, t]
            if q > 0:
                _unpack(nxt, lo, b, held)
            for i in range(n):
                _preactivate(WT, b, XT, i, z)
                for t in range(b):
                    v[t] = a[lo + t] * (z[t] if z[t] > 0.0 else 0.0)
                    lanes[0, i, t] += v[t]
                for j in range(q):
                    for t in range(b):
                        lanes[1 + j, i, t] += held[j, t] * v[t]
        return _reduce(lanes)


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
    return _round(W, a, X, np.ascontiguousarray(X.T), keep, err, W.dtype.type(step), average, nxt)
