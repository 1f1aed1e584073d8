"""Verdicts and the per-point data the checks read."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

PASS, FAIL, OUTSIDE, INCONCLUSIVE = "pass", "fail", "outside-hypotheses", "inconclusive"


@dataclass
class PointData:
    """Everything stored for one grid point: its parameters and all repetitions' outputs."""

    key: str
    label: str
    params: dict[str, Any]  # grid parameters + data-derived + measured hypotheses
    curves: dict[str, np.ndarray]  # name -> (repetitions, rounds + 1)
    scalars: dict[str, np.ndarray]  # name -> (repetitions,)
    cache: dict[Any, Any] = field(default_factory=dict)

    def divergence(self) -> str:
        """Empty if no repetition diverged, else which did and when."""
        rounds = self.scalars.get("diverged_round")
        if rounds is None:
            return ""
        bad = [(r, int(k)) for r, k in enumerate(rounds) if k >= 0]
        return "; ".join(f"repetition {r} diverged at round {k}" for r, k in bad)


@dataclass
class Verdict:
    """One tested hypothesis with its evidence."""

    case: str
    bound: str
    check: str
    kind: str
    point_key: str
    label: str
    params: dict[str, Any]
    role: str  # calibration | held-out | test
    status: str
    quantity: str
    observed: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    predicted: float = math.nan
    allowed: float = math.nan
    p_value: float = math.nan
    p_adjusted: float = math.nan
    detail: str = ""
    predicted_rate: float = math.nan
    predicted_floor: float = math.nan
    #: the bound never falls below the initial loss over the run: a pass says nothing
    vacuous: bool = False
    #: the output a claim is about (``bound``, ``scaling``, ``trend``), '' otherwise
    statistic: str = ""
    #: the grid parameter a grid-level verdict varies, '' for a per-point verdict
    parameter: str = ""
    #: the values of the other grid parameters of a grid-level verdict's group, in words
    group: str = ""
    #: the claim tested, in words (e.g. "mean max of loss <= envelope_bound")
    claim: str = ""

    @property
    def slack(self) -> float:
        if self.predicted and math.isfinite(self.predicted) and self.predicted != 0:
            return self.observed / self.predicted
        return math.nan

    @property
    def counted(self) -> bool:
        """Counts towards the family-wise test and the exit code."""
        return self.role != "calibration" and math.isfinite(self.p_value)

    def row(self) -> dict[str, Any]:
        import json

        out = asdict(self)
        out["params_json"] = json.dumps(out.pop("params"), sort_keys=True, default=str)
        out["slack"] = self.slack
        return out
