"""Bernoulli masks of the masked-surrogate trainer as a counter-based stream (SplitMix64).

A round of arXiv:2112.02668 (Algorithm 1) keeps neuron r in surrogate l with probability xi,
independently.  Drawing the ``p m`` uniforms of a round from the repetition's NumPy
generator costs 3.5 ns each (``rng.random``: 14 ms a round at p = 4, m = 10^6, more than
the rest of a fused round), and the fused kernel would have to read them back from memory.
Instead each round takes **one** 64-bit key from the repetition's generator
(``rng.integers(0, 2**64, dtype=uint64)``, so the generator's state advances by one draw per
round and every mask still derives from the seed of (case, grid point, repetition)), and
the keep decision of (l, r) is a pure function of the key:

    ``z = mix(key + (l m + r + 1) GAMMA)``, kept iff ``(z >> 11) < ceil(xi 2^53)``,

i.e. output ``l m + r + 1`` of the SplitMix64 generator seeded with ``key`` (Steele, Lea &
Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014; the generator of
Java's ``SplittableRandom`` and the seeder of xoshiro), turned into a uniform on [0, 1) with
53 bits exactly as NumPy's ``Generator.random`` turns a 64-bit output into a double
(``(z >> 11) 2^-53 < xi`` is the integer comparison above).  Being random access, the fused
kernel evaluates it in registers for the neurons it is updating; :func:`membership` is the
same function for whole rounds (numba, or NumPy without it: integer arithmetic, identical).

Two rounds' streams overlap only if their keys lie within ``p m`` steps of ``GAMMA`` of each
other: probability about ``p m / 2^63`` per pair of rounds (5e-13 at p = 4, m = 10^6).
"""

from __future__ import annotations

import math

import numpy as np

from .numba_support import AVAILABLE, njit

#: SplitMix64's increment (the odd integer closest to 2^64 / golden ratio) and mixing constants
GAMMA = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)
S30, S27, S31, S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


def draw_key(rng: np.random.Generator) -> np.uint64:
    """A round's key: one draw of the repetition's generator."""
    return rng.integers(0, 2**64, dtype=np.uint64, endpoint=False)


def threshold(xi: float) -> np.uint64:
    """``ceil(xi 2^53)`` clipped to [0, 2^53]: a 53-bit uniform ``u`` is kept iff ``u < it``."""
    if not 0.0 <= xi <= 1.0:
        raise ValueError(f"a keep probability must lie in [0, 1], got {xi}")
    return np.uint64(min(2**53, math.ceil(xi * 2.0**53)))


def _mix(z):
    """SplitMix64's output function, on a uint64 or a uint64 array (wraps modulo 2^64); the
    same source is compiled as :func:`mix` for the kernels."""
    z = (z ^ (z >> S30)) * MIX1
    z = (z ^ (z >> S27)) * MIX2
    return z ^ (z >> S31)


def _membership_numpy(key: np.uint64, m: int, p: int, T: np.uint64) -> np.ndarray:
    positions = np.arange(1, p * m + 1, dtype=np.uint64)
    z = _mix(np.uint64(key) + positions * GAMMA)
    return ((z >> S11) < T).reshape(p, m)


if njit is not None:
    #: :func:`_mix` compiled, inlined into the kernels
    mix = njit(cache=True, inline="always")(_mix)

    @njit(cache=True)
    def _membership_numba(key, m, p, T):  # pragma: no cover - compiled
        out = np.empty((p, m), dtype=np.bool_)
        for l in range(p):
            base = key + GAMMA * np.uint64(l * m + 1)
            row = out[l]
            for r in range(m):
                row[r] = (mix(base + GAMMA * np.uint64(r)) >> S11) < T
        return out


def membership(
    key: np.uint64, m: int, p: int, xi: float, *, compiled: bool | None = None
) -> np.ndarray:
    """The ``(p, m)`` boolean masks of the round with this key (row l: surrogate l).

    ``compiled`` chooses the numba loop (default: when numba is available) or the NumPy
    arrays; both are the same integer arithmetic and return the same masks.
    """
    T = threshold(xi)
    key = np.uint64(key)
    if compiled is None:
        compiled = AVAILABLE
    if compiled:
        return _membership_numba(key, m, p, T)
    return _membership_numpy(key, m, p, T)


def index_lists(key: np.uint64, m: int, p: int, xi: float) -> list[np.ndarray]:
    """The neurons of each surrogate of the round with this key (:func:`membership`)."""
    return [np.flatnonzero(row) for row in membership(key, m, p, xi)]
