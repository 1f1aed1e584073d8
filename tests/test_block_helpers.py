"""The compiled elementwise passes of the blocked kernels (verify/trainers/block_helpers.py)
against the NumPy expressions they replace, and the trainer with either."""

from __future__ import annotations

import numpy as np
import pytest

from verify.data import sphere
from verify.trainers import block_helpers
from verify.trainers.blocked_kernels import Kernels
from verify.trainers.masked_shallow import train

needs_numba = pytest.mark.skipif(not block_helpers.AVAILABLE, reason="numba is not installed")


def _batch(rng, n, d, sizes, dtype):
    X = rng.standard_normal((n, d)).astype(dtype)
    rows = sum(sizes)
    W = rng.standard_normal((rows, d)).astype(dtype)
    a = rng.choice([-1.0, 1.0], rows).astype(dtype)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return X, W, a, starts


@needs_numba
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 1e-4)])
@pytest.mark.parametrize("sizes,block", [((7, 130, 1), 50), ((300,), 64), ((5, 5), 1024)])
def test_compiled_passes_match_the_numpy_ones(sizes, block, dtype, rtol, global_seed):
    """Forward sums, activity, and a step with its forward pass at the new weights: the
    compiled and the NumPy passes agree (rounding), the activity exactly; negative control:
    a step with another error is caught."""
    rng = np.random.default_rng(global_seed)
    X, W, a, starts = _batch(rng, 6, 3, sizes, dtype)
    err = rng.standard_normal((len(sizes), 6)).astype(dtype)
    rate = (0.05 * a).astype(dtype)
    results = []
    for compiled in (True, False):
        k = Kernels(X, W.shape[0], block, compiled=compiled)
        blocks = k.plan(starts, W.shape[0])
        Wc, act = W.copy(), np.empty((W.shape[0], 6), bool)
        first = k.segment_forward(Wc, a, starts, blocks, act)
        full_act = np.empty_like(act)
        full = k.forward(Wc, [a, 2 * a], full_act)
        nxt = k.segment_step(Wc, a, rate, err, starts, blocks, act, forward_next=True)
        results.append((first, full, full_act, nxt, Wc, act))
    for mine, numpy in zip(*results, strict=True):
        if mine.dtype == bool:
            assert np.array_equal(mine, numpy)
        else:
            np.testing.assert_allclose(mine, numpy, rtol=rtol, atol=rtol)
    k = Kernels(X, W.shape[0], block, compiled=True)
    blocks = k.plan(starts, W.shape[0])
    Wc, act = W.copy(), np.empty((W.shape[0], 6), bool)
    k.segment_forward(Wc, a, starts, blocks, act)
    wrong = k.segment_step(Wc, a, rate, err[::-1] + 1, starts, blocks, act, forward_next=True)
    assert not np.allclose(wrong, results[1][3], rtol=rtol, atol=rtol)


@needs_numba
def test_compiled_relu_sums_propagate_nan_and_refuse_without_numba(monkeypatch):
    """A NaN pre-activation makes its sum NaN, as np.maximum does (divergence stays
    visible); a NumPy-only environment cannot ask for the compiled passes."""
    X = np.eye(2)
    W = np.array([[np.nan, 1.0], [1.0, -1.0]])
    for compiled in (True, False):
        sums = Kernels(X, 2, compiled=compiled).forward(W, [np.ones(2)])
        assert np.isnan(sums).all(), compiled  # nan * 0 = nan reaches every pre-activation
        finite = Kernels(X, 2, compiled=compiled).forward(W[1:], [np.ones(1)])
        assert finite.tolist() == [[1.0, 0.0]]
    monkeypatch.setattr(block_helpers, "AVAILABLE", False)
    with pytest.raises(ValueError, match="need numba"):
        Kernels(X, 2, compiled=True)


@needs_numba
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_trainer_with_compiled_and_numpy_block_passes_agree(monkeypatch, dtype, global_seed):
    """tau > 1 runs the blocked passes; their loss curves with and without the compiled
    elementwise passes agree to rounding."""
    X, y = sphere(16, 8, np.random.default_rng(global_seed))
    kw = dict(m=500, kappa=1.0, eta=0.05, rounds=15, xi=0.6, p=3, tau=3, dtype=dtype)
    seeds = [global_seed, global_seed + 1]
    compiled = train(X, y, rngs=[np.random.default_rng(s) for s in seeds], **kw)
    monkeypatch.setattr(block_helpers, "AVAILABLE", False)
    plain = train(X, y, rngs=[np.random.default_rng(s) for s in seeds], **kw)
    rtol = 1e-10 if dtype == "float64" else 1e-3
    for c, p in zip(compiled, plain, strict=True):
        np.testing.assert_allclose(c.curves["loss"], p.curves["loss"], rtol=rtol)
