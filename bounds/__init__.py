"""Convergence bounds as pure functions: provenance, preconditions, predictions.

``bounds.get("liao2022.theorem1")`` returns a registered :class:`~bounds.core.Bound`;
``bounds.registry()`` lists them all.  No training code lives here.
"""

from . import caron2023, liao2022, qin2023  # noqa: F401  (registers its bounds)
from .core import (
    Bound,
    CalibratedForm,
    CalibrationError,
    LogLinearForm,
    Prediction,
    Source,
    Term,
    Tightness,
    Trend,
    get,
    register,
    registry,
)
from .huang2022 import RMDAIdentification  # noqa: F401  (registers its bound)

__all__ = [
    "Bound",
    "CalibratedForm",
    "CalibrationError",
    "LogLinearForm",
    "Prediction",
    "Source",
    "Term",
    "Tightness",
    "Trend",
    "get",
    "register",
    "registry",
]
