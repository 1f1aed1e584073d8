"""A plain, unvectorised implementation of masked training: the trainer's oracle.

For each round, for each repetition, for each surrogate, for each local step: compute the
surrogate's full pre-activations times its 0/1 mask and the gradient, then average the
trained copies per neuron.  Same random draws, in the same order, as the trainer.
"""

from __future__ import annotations

import math

import numpy as np

from verify.trainers.masked_shallow import draw_masks, init_weights


def reference_train(X, y, *, m, kappa, eta, rounds, xi, p, tau, scheme, seeds):
    n, d = X.shape
    keep = 1.0 / p if scheme == "partition" else xi
    losses = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        W, a = init_weights(rng, m, d, kappa)
        curve = [_loss(X, y, W, a)]
        for _ in range(rounds):
            masks = draw_masks(rng, m, xi, p, scheme)
            total = np.zeros_like(W)
            count = np.zeros(m)
            for idx in masks:
                mask = np.zeros(m)
                mask[idx] = 1.0
                Wl = W.copy()
                for _ in range(tau):
                    Z = X @ Wl.T
                    u = (np.maximum(Z, 0) * mask * a).sum(axis=1) / (keep * math.sqrt(m))
                    err = u - y
                    grad = ((err[:, None] * (Z > 0) * mask * a).T @ X) / (keep * math.sqrt(m))
                    Wl = Wl - eta * grad
                total += (Wl - W) * mask[:, None]
                count += mask
            held = count > 0
            W = W.copy()
            W[held] += total[held] / count[held, None]
            curve.append(_loss(X, y, W, a))
        losses.append(np.array(curve))
    return losses


def _loss(X, y, W, a):
    u = np.maximum(X @ W.T, 0) @ a / math.sqrt(W.shape[0])
    return float(np.sum((y - u) ** 2))
