"""Convergence bounds as pure functions: provenance, preconditions, predictions.

``bounds.get("liao2022.theorem1")`` returns a registered :class:`~bounds.core.Bound`;
``bounds.registry()`` lists them all.  No training code lives here.

Every module of this package is imported (a new paper's module registers its bounds
without being named anywhere), then the ``maskverify.bounds`` entry points of installed
distributions (:mod:`bounds.plugins`).
"""

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
from .plugins import import_entry_points, import_package

#: modules that register nothing (``strategies`` needs the ``test`` extra)
NOT_REGISTERING = ("strategies",)
import_package(__name__, skip=NOT_REGISTERING)
import_entry_points("maskverify.bounds")

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
