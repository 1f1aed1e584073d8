"""The quantities that convergence checks observe and bounds predict: one table.

Each :class:`Quantity` says what it measures, how it is observed on stored curves
(:mod:`verify.checks.observations`), on which side a bound constrains it, under which key
a bound's uncalibrated prediction carries it (:meth:`bounds.core.Prediction.get`), which
``--perturb`` key scales its prediction and which check kind's settings observe it.  A
bound's calibrated form (``Bound.forms``) is named after the quantity it predicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .observations import observe_decay, observe_envelope_decay, observe_floor
from .stats import Estimate
from .verdict import PointData

#: ``upper``: the bound caps the observation (fail if above); ``lower``: the observation must
#: reach the bound (fail if below, e.g. a decay at least as fast as predicted)
SIDES = ("upper", "lower")


@dataclass(frozen=True)
class Quantity:
    name: str
    measures: str
    observer: Callable[[PointData, Mapping[str, Any]], Estimate]
    side: str
    #: key of the bound's uncalibrated prediction (:meth:`bounds.core.Prediction.get`)
    prediction: str
    #: ``--perturb`` key multiplying the prediction (the negative controls)
    perturb: str
    #: the check kind whose observation settings (tail, fit_fraction, ...) are used
    settings: str

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"quantity {self.name}: side must be one of {SIDES}")

    @property
    def alternative(self) -> str:
        """The one-sided alternative under which the bound is violated."""
        return "greater" if self.side == "upper" else "less"


QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in (
        Quantity(
            "floor",
            "tail-mean loss: the neighbourhood the loss settles in",
            observe_floor,
            "upper",
            prediction="floor",
            perturb="floor",
            settings="floor",
        ),
        Quantity(
            "rate",
            "per-round log-decay -log(rho) of the linear phase",
            observe_decay,
            "lower",
            prediction="decay",
            perturb="rate",
            settings="rate",
        ),
        Quantity(
            "envelope_rate",
            "largest per-round log-decay whose envelope rho^k L0 + B covers the descent",
            observe_envelope_decay,
            "lower",
            prediction="envelope_rate",
            perturb="rate",
            settings="envelope",
        ),
    )
}


def quantity(name: str) -> Quantity:
    """The quantity called ``name``; ``KeyError`` naming the known ones otherwise."""
    try:
        return QUANTITIES[name]
    except KeyError:
        raise KeyError(f"no observed quantity {name!r}; known: {sorted(QUANTITIES)}") from None
