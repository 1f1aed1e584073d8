"""What every trainer returns and how every trainer records divergence.

A trainer's ``run`` returns one :class:`RunOutput` per repetition: curves (one value per
logged step, step 0 included) apart from scalars, so the result schema
(:mod:`verify.result_schema`) knows each output's role from the trainer itself.  A
repetition has diverged at the first logged step whose loss is not finite or exceeds
:data:`DIVERGENCE_FACTOR` times its initial loss (:func:`has_diverged`); trainers record that
step as the scalar ``diverged_round`` (-1 if none), which every check reads as a failure
inside the hypotheses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: a repetition whose loss exceeds this multiple of its initial loss has diverged
DIVERGENCE_FACTOR = 1e6


@dataclass
class RunOutput:
    """Per-repetition output: curves (one value per round, round 0 included) and scalars."""

    curves: dict[str, np.ndarray]
    scalars: dict[str, float] = field(default_factory=dict)


def divergence_limit(initial: float | np.ndarray) -> float | np.ndarray:
    """The loss above which a repetition that started at ``initial`` has diverged."""
    return DIVERGENCE_FACTOR * np.maximum(initial, 1e-300)


def has_diverged(loss: float | np.ndarray, initial: float | np.ndarray) -> bool | np.ndarray:
    """Not finite, or above :func:`divergence_limit` (elementwise for arrays)."""
    with np.errstate(invalid="ignore"):
        out = ~np.isfinite(loss) | (loss > divergence_limit(initial))
    return bool(out) if np.ndim(out) == 0 else out


#: which generators a trainer's ``train`` draws from (see :func:`grid_run`)
DRAWS = ("rngs", "init_or_rngs", "both")


def grid_run(
    train: Callable[..., list[RunOutput]],
    schema: Mapping[str, Mapping[str, Any]],
    sections: Sequence[str],
    draws: str = "rngs",
    doc: str = "",
) -> Callable[..., list[RunOutput]]:
    """The ``Trainer.run`` adapter: ``run(params, X, y, rngs, init_rngs=None, variant=...)``
    calls ``train(X, y, generators, variant=variant, **params)`` with the point's values of
    the schema's ``sections`` (a key left out of the point, e.g. an omitted default, is left
    to ``train``'s own default).

    ``draws``: ``rngs`` passes the point's own generators; ``init_or_rngs`` the
    initialisation generators when given (shared by points with equal ``init_keys``), else
    the point's; ``both`` passes ``rngs=`` and ``init_rngs=`` as keywords.
    """
    if draws not in DRAWS:
        raise ValueError(f"draws must be one of {DRAWS}, got {draws!r}")
    keys = tuple(k for s in sections for k in schema[s])

    def run(
        params: Mapping[str, Any],
        X: np.ndarray,
        y: np.ndarray,
        rngs: Sequence[np.random.Generator],
        init_rngs: Sequence[np.random.Generator] | None = None,
        variant: str = "exact",
    ) -> list[RunOutput]:
        values = {k: params[k] for k in keys if k in params}
        if draws == "both":
            return train(X, y, rngs=rngs, init_rngs=init_rngs, variant=variant, **values)
        generators = (init_rngs or rngs) if draws == "init_or_rngs" else rngs
        return train(X, y, generators, variant=variant, **values)

    run.__doc__ = doc or grid_run.__doc__
    return run
