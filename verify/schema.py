"""Declarative parameter specifications used to validate case files strictly."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class CaseError(ValueError):
    """Bad input in a case file: the message names the file, the key and what is allowed."""


@dataclass(frozen=True)
class Spec:
    """One parameter: its type, default and allowed range (``allowed`` says it in words)."""

    kind: type | tuple[type, ...]
    default: Any = None
    check: Callable[[Any], bool] | None = None
    allowed: str = ""
    choices: Sequence[Any] | None = None
    required: bool = False
    #: left out of a point's parameters when not given (a key added to a schema later: the
    #: parameters, hence the seeds and stored results, of existing cases do not change)
    omit_default: bool = False

    def validate(self, where: str, value: Any) -> Any:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds:
            raise CaseError(f"{where}: expected {self._type_name()}, got {value!r}")
        if not isinstance(value, kinds):
            raise CaseError(f"{where}: expected {self._type_name()}, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise CaseError(f"{where}: must be finite, got {value!r}; allowed: {self.allowed}")
        if self.choices is not None and value not in self.choices:
            raise CaseError(f"{where}: {value!r} is not one of {list(self.choices)}")
        if self.check is not None and not self.check(value):
            raise CaseError(f"{where}: {value!r} is out of range; allowed: {self.allowed}")
        return value

    def _type_name(self) -> str:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        return " or ".join(k.__name__ for k in kinds)


def positive_int(default: int | None = None, maximum: int | None = None, **kw: Any) -> Spec:
    allowed = f"integer >= 1{f' and <= {maximum}' if maximum else ''}"
    return Spec(
        int,
        default,
        lambda v: v >= 1 and (maximum is None or v <= maximum),
        allowed,
        **kw,
    )


def positive_float(default: float | None = None, **kw: Any) -> Spec:
    return Spec(float, default, lambda v: v > 0, "number > 0", **kw)


def unit_interval(default: float | None = None, **kw: Any) -> Spec:
    return Spec(float, default, lambda v: 0 < v <= 1, "number in (0, 1]", **kw)
