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

from bounds.plugins import import_package

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


# every module of this package registers its check kinds when imported (bounds.plugins)
import_package(__name__)
