"""Broken masked-training implementations: negative controls of ``python -m verify conform``.

Each changes one step of :mod:`examples.trainers.numpy_masked` in a way that still gives a
plausible, decreasing loss curve.  ``conform`` must reject every one of them on a grid
where the change matters (``summing`` and ``mean_over_all`` equal the true algorithm when
no neuron is in two surrogates, p = 1; ``drop_rate`` equals it at xi = 0.5).

* ``summing``: a neuron's changes are summed over its surrogates instead of averaged.
* ``masks_ignored``: every surrogate is the full network (the masks are never applied),
  while the ``1/xi`` scaling is still applied.
* ``no_rescaling``: the convention's xi factor is dropped (inverted: surrogates not scaled
  by ``1/xi``; paper: full network not scaled by xi).
* ``stale_masks``: masks are redrawn only every other round (odd rounds reuse them).
* ``mean_over_all``: the change is averaged over all p surrogates (``np.mean`` over the
  stacked copies, not over the neuron's holders), so rarely held neurons barely move.
* ``drop_rate``: xi is read as the drop probability (neurons kept with ``1 - xi``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from .numpy_masked import draw_masks, masked_training


def _summed(W: np.ndarray, total: np.ndarray, holders: np.ndarray) -> None:
    W += total


def _over_all(p: int, W: np.ndarray, total: np.ndarray, holders: np.ndarray) -> None:
    W += total / p


def _all_kept(rng, m, keep, p, scheme, round_) -> np.ndarray:
    return np.ones((p, m), dtype=bool)


def _drop_rate(rng, m, keep, p, scheme, round_) -> np.ndarray:
    return draw_masks(rng, m, 1.0 - keep if scheme != "partition" else keep, p, scheme, round_)


class _StaleMasks:
    """Masks drawn on even rounds and reused on the following odd round."""

    def __init__(self) -> None:
        self.last: np.ndarray | None = None

    def __call__(self, rng, m, keep, p, scheme, round_) -> np.ndarray:
        if round_ % 2 == 0 or self.last is None:
            self.last = draw_masks(rng, m, keep, p, scheme, round_)
        return self.last


def _rows(params, X, y, seeds, **hooks) -> np.ndarray:
    return np.stack([masked_training(params, X, y, s, **hooks) for s in seeds])


def summing(params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, seeds: Sequence[int]):
    return _rows(params, X, y, seeds, aggregate=_summed)


def masks_ignored(params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, seeds: Sequence[int]):
    return _rows(params, X, y, seeds, masks=_all_kept)


def no_rescaling(params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, seeds: Sequence[int]):
    return _rows(params, X, y, seeds, rescale=False)


def stale_masks(params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, seeds: Sequence[int]):
    return np.stack([masked_training(params, X, y, s, masks=_StaleMasks()) for s in seeds])


def mean_over_all(params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, seeds: Sequence[int]):
    return _rows(params, X, y, seeds, aggregate=partial(_over_all, int(params["p"])))


def drop_rate(params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, seeds: Sequence[int]):
    return _rows(params, X, y, seeds, masks=_drop_rate)


#: every negative control, by name (the tests and the README table iterate over it)
BROKEN = {
    f.__name__: f
    for f in (summing, masks_ignored, no_rescaling, stale_masks, mean_over_all, drop_rate)
}
