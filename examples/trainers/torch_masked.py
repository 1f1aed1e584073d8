"""Masked-surrogate training in PyTorch (autograd), written against the user-trainer protocol.

The same algorithm as :mod:`examples.trainers.numpy_masked` (arXiv:2112.02668v1,
Algorithm 1): p masks per round (Bernoulli(xi) per neuron, or a random partition into p
groups for ``scheme = "partition"``), tau local gradient steps of size eta on
``1/2 ||y - u^(l)||^2`` per surrogate from ``W(k)``, gradients by autograd, and each neuron
set to the mean of its trained copies over the surrogates holding it.  Output convention
``params["scaling"]``: ``"inverted"`` (surrogates scaled by ``1/xi``) or ``"paper"`` (full
network's output scaled by xi).  Randomness comes from a ``torch.Generator`` seeded with
each protocol seed, so its draws differ from NumPy's: only the loss distributions agree.

Needs the optional extra ``torch`` (``pip install -e '.[torch]'``); use it as
``--trainer examples/trainers/torch_masked.py:train``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def _masks(gen: torch.Generator, m: int, keep: float, p: int, scheme: str) -> list[torch.Tensor]:
    if scheme == "partition":
        return list(torch.tensor_split(torch.randperm(m, generator=gen), p))
    keep_mask = torch.rand((p, m), generator=gen, dtype=torch.float64) < keep
    return [torch.nonzero(row).flatten() for row in keep_mask]


def _run(params: Mapping[str, Any], X: torch.Tensor, y: torch.Tensor, seed: int) -> np.ndarray:
    m, d = int(params["m"]), X.shape[1]
    p, tau, rounds = int(params["p"]), int(params["tau"]), int(params["rounds"])
    eta, scheme = float(params["eta"]), params.get("scheme", "bernoulli")
    keep = 1.0 / p if scheme == "partition" else float(params["xi"])
    if params.get("scaling", "inverted") == "paper":
        surrogate_scale, full_scale = 1.0 / math.sqrt(m), keep / math.sqrt(m)
    else:
        surrogate_scale, full_scale = 1.0 / (keep * math.sqrt(m)), 1.0 / math.sqrt(m)
    gen = torch.Generator().manual_seed(seed)
    W = float(params["kappa"]) * torch.randn((m, d), generator=gen, dtype=torch.float64)
    a = 2.0 * torch.randint(0, 2, (m,), generator=gen).to(torch.float64) - 1.0

    def loss() -> float:
        with torch.no_grad():
            res = y - full_scale * (torch.relu(X @ W.T) @ a)
            return float(res @ res)

    out = [loss()]
    for _ in range(rounds):
        total = torch.zeros_like(W)
        holders = torch.zeros(m, dtype=torch.float64)
        for idx in _masks(gen, m, keep, p, scheme):
            W_l = W[idx].clone().requires_grad_(True)
            for _ in range(tau):
                u = surrogate_scale * (torch.relu(X @ W_l.T) @ a[idx])
                (grad,) = torch.autograd.grad(0.5 * ((y - u) ** 2).sum(), W_l)
                W_l = (W_l - eta * grad).detach().requires_grad_(True)
            total.index_add_(0, idx, W_l.detach() - W[idx])
            holders.index_add_(0, idx, torch.ones(len(idx), dtype=torch.float64))
        held = holders > 0
        W[held] += total[held] / holders[held, None]
        out.append(loss())
    return np.array(out)


def train(
    params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, seeds: Sequence[int]
) -> np.ndarray:
    """The protocol's entry point: one row of losses per seed, shape ``(len(seeds), rounds + 1)``."""
    Xt = torch.as_tensor(X, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: threads only add overhead
    try:
        return np.stack([_run(params, Xt, yt, int(s)) for s in seeds])
    finally:
        torch.set_num_threads(threads)
