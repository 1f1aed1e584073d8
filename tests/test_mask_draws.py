"""The counter-based Bernoulli masks (verify/trainers/mask_draws.py): the compiled and NumPy
expansions agree, a round costs one draw of the repetition's generator, and the masks are
Bernoulli(xi), independent across surrogates, neurons and rounds (with a negative control
for each test of independence)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from verify.trainers import mask_draws
from verify.trainers.mask_draws import draw_key, membership, threshold
from verify.trainers.masked_shallow import draw_masks
from verify.trainers.numba_support import AVAILABLE

#: significance of each statistical check (fixed seeds: each outcome is deterministic)
ALPHA = 1e-4


@pytest.mark.skipif(not AVAILABLE, reason="numba is not installed")
@pytest.mark.parametrize("m,p,xi", [(1, 1, 0.5), (1000, 4, 0.9), (777, 3, 0.0), (500, 2, 1.0)])
def test_compiled_and_numpy_expansions_agree(m, p, xi, global_seed):
    key = draw_key(np.random.default_rng(global_seed))
    fast = membership(key, m, p, xi, compiled=True)
    slow = membership(key, m, p, xi, compiled=False)
    assert fast.shape == (p, m) and np.array_equal(fast, slow)


def test_keep_probability_edges_and_bad_input():
    key = np.uint64(12345)
    assert not membership(key, 100, 2, 0.0).any()
    assert membership(key, 100, 2, 1.0).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        threshold(1.5)


def test_a_round_costs_one_draw_of_the_generator(global_seed):
    """Every mask still derives from the repetition's seed, one key per round."""
    rng, ref = np.random.default_rng(global_seed), np.random.default_rng(global_seed)
    first = draw_masks(rng, 300, 0.5, 3, "bernoulli")
    key = draw_key(ref)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(first, mask_draws.index_lists(key, 300, 3, 0.5), strict=True)
    )
    assert rng.random() == ref.random()


def _dependence(a: np.ndarray, b: np.ndarray) -> float:
    """p-value of the chi-square test of independence of two boolean samples."""
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    return stats.chi2_contingency(table).pvalue


@pytest.mark.parametrize("xi", [0.3, 0.9])
def test_masks_are_independent_bernoulli(xi, global_seed):
    rng = np.random.default_rng(global_seed)
    m, p = 100_000, 3
    now, nxt = membership(draw_key(rng), m, p, xi), membership(draw_key(rng), m, p, xi)
    for row in now:
        assert stats.binomtest(int(row.sum()), m, xi).pvalue > ALPHA
    assert _dependence(now[0], now[1]) > ALPHA  # surrogates of one round
    assert _dependence(now[0, :-1], now[0, 1:]) > ALPHA  # neighbouring neurons
    assert _dependence(now[0], nxt[0]) > ALPHA  # consecutive rounds


def test_independence_checks_detect_dependent_masks(global_seed):
    """Negative controls: a key reused for two rounds, and the stream without SplitMix64's
    output mixing (a bare Weyl sequence, whose neighbouring outputs are correlated)."""
    rng = np.random.default_rng(global_seed)
    m, xi = 100_000, 0.5
    key = draw_key(rng)
    again = membership(key, m, 1, xi)[0]
    assert _dependence(again, membership(key, m, 1, xi)[0]) < ALPHA
    positions = np.arange(1, m + 1, dtype=np.uint64)
    weyl = ((key + positions * mask_draws.GAMMA) >> mask_draws.S11) < threshold(xi)
    assert _dependence(weyl[:-1], weyl[1:]) < ALPHA
