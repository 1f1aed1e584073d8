"""Grid-parameter display helpers: ordering, symbols, value keys and short point labels."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

#: Preferred order of parameters in labels and on axes.
PARAM_ORDER = ("xi", "p", "tau", "m", "kappa", "eta", "rounds", "scheme", "dtype")
PARAM_SYMBOLS = {
    "xi": "ξ",
    "tau": "τ",
    "kappa": "κ",
    "eta": "η",
    "gamma": "γ",
    "alpha": "α",
    "lam": "λ",
    "mu": "μ",
}
#: significant digits of a parameter value in labels
DIGITS = 3


def symbol(param: str) -> str:
    """Display name of a parameter (Greek letter where the paper uses one)."""
    return PARAM_SYMBOLS.get(param, param)


def order_params(params: Iterable[str]) -> list[str]:
    """Parameters in the preferred display order, unknown ones alphabetically after."""
    params = list(dict.fromkeys(params))
    known = [p for p in PARAM_ORDER if p in params]
    return known + sorted(p for p in params if p not in PARAM_ORDER)


def value_key(value: Any) -> str:
    """A hashable, type-insensitive key for a parameter value (1 and 1.0 agree)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return json.dumps(value, sort_keys=True, default=str)
    return repr(int(v)) if v.is_integer() else repr(v)


def sort_values(values: Iterable[Any]) -> list[Any]:
    """Distinct values, numerically sorted where possible."""
    unique = {value_key(v): v for v in values}
    return sorted(unique.values(), key=_numeric_first)


def short_label(params: Mapping[str, Any], keys: Iterable[str]) -> str:
    """``ξ=0.5 p=4 τ=1`` from the given keys present in ``params``."""
    parts = [f"{symbol(k)}={_show(params[k])}" for k in order_params(keys) if k in params]
    return " ".join(parts) or "all points"


def _show(value: Any) -> str:
    """A parameter value in a label: floats to :data:`DIGITS` significant digits (whole
    numbers without a decimal point), exponents without padding (``1e-5``)."""
    if not isinstance(value, float) or not math.isfinite(value):
        return str(value)
    if value.is_integer() and abs(value) < 10**6:
        return str(int(value))
    mantissa, _, exponent = f"{value:.{DIGITS}g}".partition("e")
    return f"{mantissa}e{int(exponent)}" if exponent else mantissa


def _numeric_first(value: Any) -> tuple[int, float, str]:
    try:
        v = float(value)
        return (0, v if not math.isnan(v) else math.inf, "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))
