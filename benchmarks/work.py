"""Products per round of the masked algorithm and of its dense 0/1-mask rendering.

The unit is one product over all m neurons: ``n d m`` multiply-adds.  These counts are
what an implementation must compute, not what it spends: a ratio of measured times against
a ratio of these counts separates the algorithms' difference in work from the
implementations' difference in efficiency.
"""

from __future__ import annotations

from verify.trainers.masked_shallow import RESYNC, REUSE_KEEP, fused_rounds, incremental_rounds


def dense_products(p: int, tau: int) -> float:
    """A dense rendering (0/1 masks multiply, nothing is skipped: what a JAX user writes):
    the full network's loss, then tau forward and tau backward products per surrogate."""
    return 1 + 2 * tau * p


def trainer_products(n: int, d: int, xi: float, p: int, tau: int) -> float:
    """The trainer's round with Bernoulli masks at keep probability ``xi``.

    With one local step (fused rounds) a neuron's surrogates' gradients combine into one
    product for the neurons held by any surrogate (``theta = 1 - (1 - xi)^p``) and the
    next loss is the forward pass at the new weights: ``1 + theta``.  Otherwise the loss
    pass over all m and each surrogate's tau steps over its ``xi m`` neurons, the first
    forward shared with the loss pass from keep probability ``REUSE_KEEP``:
    ``1 + p xi (2 tau - 1)`` (else ``2 tau``); with one surrogate below
    ``INCREMENTAL_KEEP`` no loss pass but the kept neurons' forward pass at their new
    weights and a full one every ``RESYNC`` rounds: ``xi (2 tau + 1) + 1 / RESYNC``.
    """
    if fused_rounds(n, d, tau, p, "bernoulli", xi):
        return 1 + 1 - (1 - xi) ** p
    if incremental_rounds(p, "bernoulli", xi):
        return xi * (2 * tau + 1) + 1 / RESYNC
    first = 2 * tau - 1 if xi >= REUSE_KEEP else 2 * tau
    return 1 + p * xi * first


def work_ratio(n: int, d: int, xi: float, p: int, tau: int) -> float:
    """Dense products over the trainer's: the trainer's speed-up at equal efficiency."""
    return dense_products(p, tau) / trainer_products(n, d, xi, p, tau)
