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
the next round (its errors).  The weights are held transposed, ``(d, m)``, so each
coordinate of a block is one contiguous stream.  The masks are not read from memory: each
surrogate's keep decision for neuron r is evaluated in the kernel from the round's key
(:mod:`verify.trainers.mask_draws`), the same decisions as :func:`~verify.trainers.
mask_draws.membership`.  Up to :data:`UNROLL_MAX_ND` and :data:`UNROLL_MAX_P` the round
runs as a kernel generated for the case's (n, d, p) (:mod:`verify.trainers.unrolled_kernels`:
a neuron's pre-activations, error sums and gradient in registers), the same sums bit for
bit; beyond, the loops of :func:`_round`.  The blocked passes stay for ``tau > 1``, large
``n d`` and partitions.

Reduction order is fixed: a pass takes its rows :data:`LANES` at a time (one per vector
lane, so the loops over rows vectorise without reassociating any sum), row r is added to
lane ``r % LANES`` in row order, and the lanes are added in lane order at the end (sums in
float64 also for float32 weights).  The result depends only on the inputs, not on the
executor, the process or a rerun, and the lanes keep the rounding of a sum over 10^6 rows
at the level of a sum over 10^4.  Compiled with ``@njit(cache=True, fastmath=False)``:
no reassociation, so the fixed order is the order.

numba is a runtime dependency (a measured 1.3x-4.5x per round over the blocked passes, and the
unrolled kernels 1.6x-2.3x the loops at n = 8, d = 4); where it cannot be imported, or with
``MASKVERIFY_NUMBA=0`` in the environment, :data:`AVAILABLE` is False
(:mod:`verify.trainers.numba_support`) and the trainer uses the blocked NumPy passes (tested
both ways).  numba's cache does not track the functions a kernel calls: the unrolled
kernels' file names carry a hash of their sources; after editing :func:`~verify.trainers.
mask_draws.mix`, clear the ``__pycache__`` of this module.
"""

from __future__ import annotations

import numpy as np

from . import unrolled_kernels
from .mask_draws import GAMMA, S11, threshold
from .numba_support import AVAILABLE, njit

#: rows processed together, one per SIMD lane position: row r of a pass is summed into
#: lane ``r % LANES``, in row order, and the lanes are added in lane order at the end
LANES = 64

#: ``n d`` up to which the fused rounds are used.  Measured (tau = 1, p = 4, one thread,
#: ``benchmarks/RESULTS.md``, "Fused one-pass rounds"): faster than the blocked passes at every measured point,
#: n d = 32 to 1024 (the bench regime), m = 16000 and 10^5, xi = 0.25 and 1 (1.3x to
#: 4.5x; re-measured against the compiled block passes: 64 x 16, m = 16000, p = 2 and 4,
#: xi = 0.5 and 1, 1.1x-2.7x); beyond the measured range the blocked BLAS passes are kept,
#: and so are they where they update the output incrementally (disjoint masks, keep < 0.6:
#: 0.4x-0.9x for the fused rounds, which always pass over all m) and, with one surrogate,
#: above :data:`SINGLE_MAX_ND`.
MAX_ND = 1024

#: largest ``n d`` and number of surrogates (and n + p <= 64) for which a kernel unrolled for the
#: case's n, d and p is generated (:mod:`verify.trainers.unrolled_kernels`): every pre-activation,
#: error sum and gradient of a neuron in registers.  Larger sizes use the loops of
#: :func:`_round` (same sums, same order, same results bit for bit).
UNROLL_MAX_ND = 128
UNROLL_MAX_P = 8

#: neuron-rounds (m x repetitions x rounds) from which a run compiles an unrolled kernel it
#: does not have yet: compiling one takes 7-40 s (measured: 7.4 s at n = 8, d = 4, p = 4 on a
#: quiet machine, 14 s under load; 33 s at 16 x 8, p = 4 under load) and saves about 17 ns per neuron-round (n = 8, d = 4, p = 4,
#: 35 -> 18 ms per round at m = 10^6), so it pays from about 10^9.  A kernel compiled once is
#: cached on disk (:mod:`verify.trainers.unrolled_kernels`) and used by every later run.
#: Either kernel gives the same numbers bit for bit: the choice changes only the speed.
UNROLL_MIN_WORK = 10**9


#: ``n d`` up to which the fused rounds are used with one surrogate (p = 1).  Measured with
#: the compiled block passes (tau = 1, p = 1, m = 16000, one thread, ms per round of 5
#: repetitions, blocked / fused): 8 x 4: 7.2 / 2.0; 16 x 8: 7.0 / 6.4; 32 x 8: 14.0 / 15.1;
#: 16 x 16: 10.0 / 12.3; 32 x 16: 12.2-12.8 / 18.7-21.0; 64 x 16: 18.8-25.0 / 32.7-48.3
#: (xi = 0.8-1: the blocked round is one forward and one backward product; from p = 2 on the
#: fused round, one pass for all p surrogates, wins: 64 x 16, xi = 1, p = 2: 62.9 / 36.2)
SINGLE_MAX_ND = 128


def use_fused(n: int, d: int, scheme: str = "bernoulli", p: int = 2) -> bool:
    """The crossover rule: fused passes for Bernoulli masks when numba is available and
    ``n d <= MAX_ND``, and for one surrogate only up to ``n d <= SINGLE_MAX_ND``."""
    limit = MAX_ND if p > 1 else SINGLE_MAX_ND
    return AVAILABLE and scheme == "bernoulli" and n * d <= limit


if njit is not None:
    from .mask_draws import mix

    @njit(cache=True, fastmath=False, error_model="numpy")
    def _round(WT, a, X, key, p, nkey, q, T, err, step, average):  # pragma: no cover - compiled
        """One round of tau = 1 in place on the transposed weights ``WT`` (d x m), fused
        with the next round's forward pass.

        Surrogate l of this round (``l < p``; no training when ``p = 0``) holds neuron r iff
        the mask stream of ``key`` keeps (l, r) (:mod:`verify.trainers.mask_draws`: output
        ``l m + r + 1`` of SplitMix64 seeded with ``key``, 53 bits below ``T``); ``err[l]``
        is its output error at the round's start and ``step = eta s`` (``s`` the surrogates'
        output scale).  With ``average`` a neuron held by c surrogates moves by the mean of
        its c copies' steps ``-step a_r sum_i err_li 1[z_ri > 0] x_i``, otherwise by their
        sum.  Then, at the new weights, returns the raw ReLU sums ``sum_r a_r relu(w_r . x_i)``
        of the full network (row 0) and of the q surrogates of the next round (key
        ``nkey``; row 1 + j).

        Every innermost loop runs over the :data:`LANES` neurons of a block copied from
        ``WT`` into one-dimensional scratch rows (a partial last block zero-padded: its padded
        rows have ``a = 0``, are held by no surrogate and add exact zeros), so that the loops
        compile to contiguous SIMD loads and stores with a constant trip count; every sum keeps its order (over
        coordinates in coordinate order, over surrogates in surrogate order, over neurons
        lane-wise, lanes in lane order), in the weights' precision (lanes in float64).
        """
        d, m = WT.shape
        n = X.shape[0]
        L = LANES
        zero = np.zeros(1, dtype=X.dtype)[0]
        one = np.ones(1, dtype=X.dtype)[0]
        cap = one if average else np.inf * one  # c > cap never holds: the copies are summed
        lanes = np.zeros((1 + q, n, L))
        WB = np.zeros((d, L), dtype=X.dtype)  # the block's weights, zero-padded
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
                WB[:, :] = zero
                av[:] = zero
                held[:, :] = zero
            av[:b] = a[lo : lo + b]
            for k in range(d):
                WB[k, :b] = WT[k, lo : lo + b]
            if p > 0:
                _hold(held, key, p, m, lo, b, T)
                c[:] = zero
                e[:, :] = zero
                for l in range(p):
                    hl = held[l]
                    for t in range(L):
                        c[t] += hl[t]
                    for i in range(n):
                        el = err[l, i]
                        ei = e[i]
                        for t in range(L):
                            ei[t] += hl[t] * el
                G[:, :] = zero
                for i in range(n):
                    zi = Z[i]
                    zi[:] = zero
                    for k in range(d):
                        x = X[i, k]
                        wk = WB[k]
                        for t in range(L):
                            zi[t] += x * wk[t]
                    ei = e[i]
                    for t in range(L):
                        zi[t] = ei[t] if zi[t] > zero else zero
                    for k in range(d):
                        x = X[i, k]
                        gk = G[k]
                        for t in range(L):
                            gk[t] += zi[t] * x
                for t in range(L):
                    c[t] = step * av[t] / (c[t] if c[t] > cap else one)
                for k in range(d):
                    wk = WB[k]
                    gk = G[k]
                    for t in range(L):
                        wk[t] -= c[t] * gk[t]
                    WT[k, lo : lo + b] = WB[k, :b]
            _hold(held, nkey, q, m, lo, b, T)
            for i in range(n):
                zi = Z[i]
                zi[:] = zero
                for k in range(d):
                    x = X[i, k]
                    wk = WB[k]
                    for t in range(L):
                        zi[t] += x * wk[t]
                l0 = lanes[0, i]
                for t in range(L):
                    zz = zi[t]
                    v[t] = av[t] * (zz if zz > zero else zero)
                    l0[t] += v[t]
                for j in range(q):
                    lj = lanes[1 + j, i]
                    hj = held[j]
                    for t in range(L):
                        lj[t] += hj[t] * v[t]
        return lane_totals(lanes)

    @njit(cache=True, fastmath=False)
    def _hold(held, key, count, m, lo, b, T):  # pragma: no cover - compiled
        """Rows ``0 .. count - 1`` of ``held``: 1 where surrogate l of the round with this key
        holds neuron ``lo + t`` (``t < b``; :mod:`verify.trainers.mask_draws`), else 0."""
        for l in range(count):
            hl = held[l]
            base = key + GAMMA * np.uint64(l * m + lo + 1)
            for t in range(b):
                hl[t] = 1.0 if (mix(base + GAMMA * np.uint64(t)) >> S11) < T else 0.0

    @njit(cache=True, fastmath=False)
    def lane_totals(lanes):  # pragma: no cover - compiled
        """``lanes[j, i]`` summed over its lanes in lane order: ``(J, n)``."""
        J, n, L = lanes.shape
        out = np.zeros((J, n))
        for j in range(J):
            for i in range(n):
                s = lanes[j, i, 0]
                for t in range(1, L):
                    s += lanes[j, i, t]
                out[j, i] = s
        return out


def fused_round(
    WT: np.ndarray,
    a: np.ndarray,
    X: np.ndarray,
    key: np.uint64,
    p: int,
    nkey: np.uint64,
    q: int,
    xi: float,
    err: np.ndarray,
    step: float,
    average: bool,
    unroll: bool = False,
    words: unrolled_kernels.Words | None = None,
) -> np.ndarray:
    """One masked round with tau = 1 on the transposed weights ``WT`` (d x m, C-contiguous)
    in place, one pass over the weights.

    See :func:`_round`: ``p`` surrogates drawn from ``key`` (``p = 0``: a forward pass
    only), ``err`` their ``(p, n)`` output errors at the round's start, ``q`` surrogates of
    the next round drawn from ``nkey``, all with keep probability ``xi``.  Returns
    ``(1 + q, n)`` raw ReLU sums at the new weights, accumulated in float64: the full
    network's, then the next surrogates'.  With ``unroll`` (and sizes within
    :func:`unrolled`) the round runs the kernel generated for (n, d, p): the same sums bit
    for bit, faster.  It needs ``words`` (:class:`~verify.trainers.unrolled_kernels.Words`),
    which every call rewrites with the activity at the new weights and the holders of the
    round ``nkey`` and the next call reads instead of recomputing them: pass the same
    object with the same weights every call, starting with a forward pass (``p = 0``),
    each call's ``key`` the previous call's ``nkey``.
    """
    n, d = X.shape
    if WT.shape[0] != d or not WT.flags.c_contiguous:
        raise ValueError(f"the weights must be a C-contiguous ({d}, m) array, got {WT.shape}")
    X = np.ascontiguousarray(X, dtype=WT.dtype)
    err = np.ascontiguousarray(err, dtype=WT.dtype).reshape(p, n)
    args = (np.uint64(key), p, np.uint64(nkey), q, threshold(xi))
    tail = (WT.dtype.type(step), average)
    P = max(p, q)
    if unroll and unrolled(n, d, P):
        if (
            words is None
            or words.bits.shape != (WT.shape[1],)
            or words.bits.dtype != unrolled_kernels.word_dtype(n, P)
        ):
            raise ValueError("the unrolled kernel needs the words of the previous call")
        if p > 0 and words.key != np.uint64(key):
            raise ValueError(
                f"the words hold the holders of round key {words.key}, not of this round's {key}"
            )
        full = np.zeros((P, n), dtype=WT.dtype)
        full[:p] = err
        sums = unrolled_kernels.kernel(n, d, P)(WT, a, X, *args, full, *tail, words.bits)
        words.key = np.uint64(nkey) if q > 0 else None
        return sums
    return _round(WT, a, X, *args, err, *tail)


def unrolled(n: int, d: int, p: int) -> bool:
    """Whether a kernel unrolled for this size is generated (:data:`UNROLL_MAX_ND`,
    :data:`UNROLL_MAX_P`)."""
    return 0 < p <= UNROLL_MAX_P and n * d <= UNROLL_MAX_ND and n + p <= 64


def use_unrolled(n: int, d: int, p: int, work: int) -> bool:
    """Whether a run of ``work`` neuron-rounds uses the unrolled kernel: sizes within
    :func:`unrolled`, and the kernel already compiled or ``work >= UNROLL_MIN_WORK``."""
    if not unrolled(n, d, p):
        return False
    return work >= UNROLL_MIN_WORK or unrolled_kernels.compiled(n, d, p)
