"""Masked-surrogate training in plain NumPy, written against the user-trainer protocol.

The algorithm of arXiv:2112.02668v1 (Algorithm 1; Theorem 3 for Bernoulli masks, Theorem 7
for IST's categorical masks): a one-hidden-layer ReLU network
``f(W, x) = (1/sqrt(m)) sum_r a_r relu(w_r.x)``, ``a_r`` uniform on {-1, +1} and fixed,
``w_r(0) ~ N(0, kappa^2 I)``.  Round k draws p masks (each neuron kept with probability xi,
or a uniformly random partition into p groups for ``scheme = "partition"``, keep
probability 1/p), runs tau gradient-descent steps of size eta on ``1/2 ||y - u^(l)||^2``
on every surrogate starting from ``W(k)``, and sets each neuron to the average of its
trained copies over the surrogates holding it (a neuron held by none keeps its weight).

Output convention (``params["scaling"]``): ``"inverted"`` (default) scales a surrogate's
output by ``1/xi`` and leaves the full network unscaled; ``"paper"`` leaves the surrogates
unscaled and scales the full network's output by ``xi`` (the paper's Section 3).

Use it as ``--trainer examples/trainers/numpy_masked.py:train``.  The keyword hooks of
:func:`masked_training` exist so that :mod:`examples.trainers.broken` can change one step
of the algorithm at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

#: ``masks(rng, m, keep, p, scheme, round) -> bool array (p, m)``
MaskDraw = Callable[[np.random.Generator, int, float, int, str, int], np.ndarray]
#: ``aggregate(W, total_change, holders) -> None`` (updates ``W`` in place)
Aggregate = Callable[[np.ndarray, np.ndarray, np.ndarray], None]


def draw_masks(
    rng: np.random.Generator, m: int, keep: float, p: int, scheme: str, round_: int
) -> np.ndarray:
    """p masks: independent Bernoulli(keep) per neuron, or a random partition (IST)."""
    if scheme == "partition":
        masks = np.zeros((p, m), dtype=bool)
        for l, group in enumerate(np.array_split(rng.permutation(m), p)):
            masks[l, group] = True
        return masks
    return rng.random((p, m)) < keep


def average(W: np.ndarray, total: np.ndarray, holders: np.ndarray) -> None:
    """Each held neuron moves by the mean change of its copies; the others stay."""
    held = holders > 0
    W[held] += total[held] / holders[held, None]


def masked_training(
    params: Mapping[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    *,
    masks: MaskDraw = draw_masks,
    aggregate: Aggregate = average,
    rescale: bool = True,
) -> np.ndarray:
    """Loss ``||y - u_k||^2`` of the full network after rounds 0..rounds for one seed."""
    m, d = int(params["m"]), X.shape[1]
    p, tau, rounds = int(params["p"]), int(params["tau"]), int(params["rounds"])
    eta, scheme = float(params["eta"]), params.get("scheme", "bernoulli")
    keep = 1.0 / p if scheme == "partition" else float(params["xi"])
    factor = keep if rescale else 1.0
    if params.get("scaling", "inverted") == "paper":
        surrogate_scale, full_scale = 1.0 / math.sqrt(m), factor / math.sqrt(m)
    else:
        surrogate_scale, full_scale = 1.0 / (factor * math.sqrt(m)), 1.0 / math.sqrt(m)
    rng = np.random.default_rng(seed)
    W = float(params["kappa"]) * rng.standard_normal((m, d))
    a = rng.choice([-1.0, 1.0], size=m)

    def loss() -> float:
        res = y - full_scale * (np.maximum(X @ W.T, 0.0) @ a)
        return float(res @ res)

    out = [loss()]
    for k in range(rounds):
        total = np.zeros_like(W)
        holders = np.zeros(m)
        for mask in masks(rng, m, keep, p, scheme, k):
            idx = np.flatnonzero(mask)
            W_l, a_l = W[idx].copy(), a[idx]
            for _ in range(tau):
                pre = X @ W_l.T
                err = surrogate_scale * (np.maximum(pre, 0.0) @ a_l) - y
                # gradient of 1/2 ||y - u||^2 in w_r: scale * a_r * sum_i err_i 1{w_r.x_i > 0} x_i
                W_l -= (eta * surrogate_scale) * (((pre > 0) * err[:, None]).T @ X) * a_l[:, None]
            total[idx] += W_l - W[idx]
            holders[idx] += 1.0
        aggregate(W, total, holders)
        out.append(loss())
    return np.array(out)


def train(
    params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, seeds: Sequence[int]
) -> np.ndarray:
    """The protocol's entry point: one row of losses per seed, shape ``(len(seeds), rounds + 1)``."""
    return np.stack([masked_training(params, X, y, s) for s in seeds])
