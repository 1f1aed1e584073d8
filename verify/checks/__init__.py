"""Statistical checks: turn stored curves plus a bound's prediction into verdicts.

Each check kind is registered in :data:`CHECKS` with the parameters a case file may set
(validated strictly) and a function producing :class:`~verify.checks.verdict.Verdict`
rows with a one-sided p-value for the null hypothesis "the bound holds here".  The
grid-level evaluation (:mod:`verify.evaluate`) adjusts all p-values of a case with Holm's
method at the case's ``false_alarm`` budget; a verdict is ``fail`` when its adjusted
p-value is at most that budget.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..schema import Spec

__all__ = ["CHECKS", "CheckKind"]


@dataclass(frozen=True)
class CheckKind:
    name: str
    description: str
    params: Mapping[str, Spec]
    run: Callable[..., list[Any]]
    per_point: bool = True


CHECKS: dict[str, CheckKind] = {}


def register(kind: CheckKind) -> CheckKind:
    CHECKS[kind.name] = kind
    return kind


from . import claims, convergence, form  # noqa: E402,F401  (register their check kinds)
from .identification import identification_check  # noqa: E402,F401  (registers its kinds)
