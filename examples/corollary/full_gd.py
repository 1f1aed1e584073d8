"""A corollary contributed from outside the package: full-batch gradient descent.

Liao & Kyrillidis, arXiv:2112.02668v1, Theorem 3, eq. (7), at xi = 1, p = tau = 1 (every
neuron in the one surrogate: full-batch gradient descent).  Then theta = 1 and every term of
B1 vanishes ((1 - xi)^2 = theta - xi^2 = tau - 1 = 0), so for all k <= K

    ||y - u_k||^2 <= (1 - eta lambda0 / 4)^k ||y - u_0||^2,

i.e. the worst per-round contraction ``max_k (L_k / L_0)^(1/k)`` is at most
``1 - eta lambda0 / 4`` (no expectation left: without masks the run is deterministic given
its initialisation).  The theorem's step size is ``eta = O(lambda0 / n^2)`` with an
unspecified constant; this corollary states the explicit ``eta lambda_max(H_inf) <= 1``
instead and reports points beyond it as outside its hypotheses.

Used by ``case.toml`` beside this file (``plugins = ["full_gd.py"]``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import bounds
from verify import trainers

FULL_GD = {"xi": 1.0, "p": 1, "tau": 1, "scheme": "bernoulli"}
masked = trainers.get("masked_shallow")


def worst_contraction(loss: np.ndarray) -> float:
    """``max_{k >= 1} (L_k / L_0)^(1/k)``: the slowest average contraction of any prefix."""
    k = np.arange(1, loss.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (loss[1:] / loss[0]) ** (1.0 / k)
    return float(np.max(ratios)) if np.isfinite(ratios).all() else np.inf


def run(
    params: Mapping[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    rngs: Sequence[np.random.Generator],
    init_rngs: Sequence[np.random.Generator] | None = None,
    **kw: Any,
) -> list:
    """The masked trainer with one all-ones mask per round, plus the corollary's statistic."""
    outputs = masked.run({**params, **FULL_GD}, X, y, rngs, init_rngs, **kw)
    for out in outputs:
        out.scalars["worst_contraction"] = worst_contraction(out.curves["loss"])
    return outputs


trainers.register(
    dataclasses.replace(
        masked,
        name="full_gd",
        description="full-batch gradient descent: the masked trainer at xi = 1, p = tau = 1",
        schema={s: masked.schema[s] for s in ("data", "model", "training")},
        run=run,
        memory_bytes=lambda params, reps: masked.memory_bytes({**params, **FULL_GD}, reps),
        grid_sections=("model", "training"),
        derive=lambda params: params,
    )
)


@bounds.register
class FullGradientDescent(bounds.Bound):
    """Theorem 3 of arXiv:2112.02668v1 at xi = 1, p = tau = 1 (see the module docstring)."""

    id = "corollary.full_gd"
    source = bounds.Source(
        "arXiv:2112.02668v1 (Liao & Kyrillidis)",
        "Theorem 3, eq. (7), at xi = 1, p = tau = 1",
        "B1 = 0, theta = 1; step size eta * lambda_max(H_inf) <= 1 instead of O(lambda0 / n^2)",
    )
    tightness = bounds.Tightness.UPPER_EXACT
    predicts = ("contraction",)

    def preconditions(self, params: Mapping[str, Any]) -> list[str]:
        step = params["eta"] * params["lambda_max"]
        return [f"eta * lambda_max(H_inf) = {step:.3g} > 1"] if step > 1 else []

    def predict(self, params: Mapping[str, Any], calibration: Any = None) -> bounds.Prediction:
        return bounds.Prediction(extra={"contraction": 1.0 - params["eta"] * params["lambda0"] / 4})
