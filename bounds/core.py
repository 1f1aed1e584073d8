"""Bound objects, their predictions, and calibration of unknown absolute constants.

A *bound* encodes one theorem or corollary: its provenance, a tightness label, the
hypotheses it needs (``preconditions``) and what it predicts (``predict``).

Many convergence theorems state a functional form with absolute constants that the
paper leaves unspecified ("there is a constant c > 0 such that ...").  Such a
quantity is described here by a :class:`LogLinearForm`::

    log q(params) = log C + sum_j e_j * log f_j(params)

where some exponents ``e_j`` are fixed by the theorem and the others (and ``C``) are
unknown.  :meth:`LogLinearForm.calibrate` fits the unknowns by least squares on the
observed values at a *calibration* subset of a grid and returns a
:class:`CalibratedForm` that predicts the quantity at held-out points together with
a one-sided prediction limit (the standard OLS prediction interval), so that a
held-out check tests the *functional form*, not a number fitted to the same data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from scipy import stats

Params = Mapping[str, Any]


class Tightness(StrEnum):
    """How a predicted quantity relates to the truth."""

    UPPER_EXACT = "exact upper bound: every constant from the paper, checked without calibration"
    EXACT_RATE_FORM_ERROR = (
        "exact upper bound on the rate (constants from the paper); error term the paper's "
        "O(.) form with its one constant calibrated"
    )
    SHAPE = (
        "diagnostic of the bound's shape, not a claim of the paper: the paper's terms with one "
        "constant calibrated"
    )
    UPPER_CALIBRATED = "upper bound, functional form only, constants calibrated on a grid subset"
    EXACT = "exact identity"
    HEURISTIC = "heuristic functional form (not the paper's expression), constants calibrated"
    QUALITATIVE = "qualitative claim (monotonicity / ordering)"


@dataclass(frozen=True)
class Source:
    """Where a bound comes from."""

    paper: str  # e.g. "arXiv:2112.02668 (Liao & Kyrillidis, TMLR 2022)"
    statement: str  # e.g. "Theorem 1"
    note: str = ""  # caveats: reconstructed statement, unknown constants, ...

    def __str__(self) -> str:
        text = f"{self.paper}, {self.statement}"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class Term:
    """One factor ``f(params) ** exponent`` of a log-linear form.

    ``exponent=None`` means the exponent is unknown and calibrated; ``default`` is
    used when the calibration grid does not vary this factor (it cannot be
    identified then).
    """

    name: str
    feature: Callable[[Params], float]
    exponent: float | None = 1.0
    default: float = 1.0
    sign: int = 0  # +1 / -1: the theorem fixes the exponent's sign (checked by trend checks)

    def value(self, params: Params) -> float:
        return float(self.feature(params))


@dataclass(frozen=True)
class LogLinearForm:
    """``q = C * prod_j f_j(params) ** e_j`` with ``C`` (and maybe some ``e_j``) unknown."""

    name: str
    terms: tuple[Term, ...]
    constant: float | None = None  # known C, else calibrated
    #: one constant per initialisation group (common random numbers); False: a single
    #: constant over the whole grid (a form whose claim is its dependence on a grouping key)
    grouped: bool = True

    def features(self, params: Params) -> np.ndarray:
        return np.array([t.value(params) for t in self.terms], dtype=float)

    def is_zero(self, params: Params) -> bool:
        """A factor is exactly zero (e.g. no masking noise at xi = 1): q = 0."""
        return any(t.value(params) == 0.0 for t in self.terms)

    def calibrate(
        self,
        points: list[Params],
        observed: np.ndarray,
        weights: np.ndarray | None = None,
        group_keys: tuple[str, ...] = (),
    ) -> CalibratedForm:
        """Fit the unknown constant and exponents by OLS in log space.

        Points where the form is exactly zero or the observation is not positive
        are ignored (their logarithm is undefined).  ``group_keys`` name the parameters
        that determine the initial network (common random numbers): with more than one
        group among the points the unknown constant is fitted per group (a fixed effect
        of the initialisation draw), the exponents are shared.
        """
        observed = np.asarray(observed, dtype=float)
        group_keys = group_keys if self.grouped else ()
        rows = [
            (self.features(p), o, group_label(p, group_keys))
            for p, o in zip(points, observed, strict=True)
            if not self.is_zero(p) and np.isfinite(o) and o > 0
        ]
        if not rows:
            raise CalibrationError(f"{self.name}: no usable calibration point")
        logf = np.log(np.array([r[0] for r in rows]))
        logy = np.log(np.array([r[1] for r in rows]))
        labels = [r[2] for r in rows]
        groups = tuple(sorted(set(labels))) if self.constant is None else ()
        if len(groups) < 2:
            groups = ()
        exponents = np.array([t.exponent if t.exponent is not None else np.nan for t in self.terms])
        free = [
            j for j, t in enumerate(self.terms) if t.exponent is None and np.ptp(logf[:, j]) > 1e-12
        ]
        for j, t in enumerate(self.terms):
            if t.exponent is None and j not in free:
                exponents[j] = t.default
        fixed = [j for j in range(len(self.terms)) if j not in free]
        target = logy - logf[:, fixed] @ exponents[fixed]
        if groups:
            intercepts = [[float(label == g) for g in groups] for label in labels]
        else:
            intercepts = [[1.0] for _ in rows]
        design = np.column_stack([np.array(intercepts)] + [logf[:, j] for j in free])
        if self.constant is not None:
            target = target - math.log(self.constant)
            design = design[:, 1:]
        n_obs, n_par = design.shape
        if n_par == 0:
            coef = np.zeros(0)
            resid = target
        else:
            if n_obs < n_par:
                raise CalibrationError(
                    f"{self.name}: {n_obs} calibration points for {n_par} unknowns"
                )
            coef, *_ = np.linalg.lstsq(design, target, rcond=None)
            resid = target - design @ coef
        dof = n_obs - n_par
        sigma = float(np.sqrt(resid @ resid / dof)) if dof > 0 else float("nan")
        xtx_inv = np.linalg.pinv(design.T @ design) if n_par else np.zeros((0, 0))
        n_int = 0 if self.constant is not None else max(1, len(groups))
        group_logc = tuple(float(c) for c in coef[:n_int]) if groups else ()
        log_c = (
            math.log(self.constant) if self.constant is not None else float(np.mean(coef[:n_int]))
        )
        free_coef = coef[n_int:]
        for j, e in zip(free, free_coef, strict=True):
            exponents[j] = e
        return CalibratedForm(
            form=self,
            log_constant=log_c,
            exponents=tuple(float(e) for e in exponents),
            free=tuple(free),
            sigma=sigma,
            dof=dof,
            xtx_inv=xtx_inv,
            n_points=n_obs,
            residuals=tuple(float(r) for r in resid),
            group_keys=group_keys if groups else (),
            groups=groups,
            group_log_constants=group_logc,
        )


def group_label(params: Params, keys: tuple[str, ...]) -> str:
    """The initialisation group of a parameter set (its values of ``keys``)."""
    return ", ".join(f"{k}={params.get(k)}" for k in keys)


class CalibrationError(ValueError):
    """The calibration subset cannot identify the unknown constants."""


@dataclass(frozen=True)
class CalibratedForm:
    """A :class:`LogLinearForm` with fitted constants and a prediction interval."""

    form: LogLinearForm
    log_constant: float
    exponents: tuple[float, ...]
    free: tuple[int, ...]
    sigma: float  # residual s.d. in log space
    dof: int
    xtx_inv: np.ndarray = field(repr=False)
    n_points: int
    residuals: tuple[float, ...] = field(repr=False)
    #: initialisation groups with their own constant (empty: one constant)
    group_keys: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    group_log_constants: tuple[float, ...] = ()

    @property
    def constant(self) -> float:
        return math.exp(self.log_constant)

    def _group_weights(self, params: Params) -> list[float]:
        """Indicator of the point's group; an unseen group gets the groups' average."""
        label = group_label(params, self.group_keys)
        if label in self.groups:
            return [float(label == g) for g in self.groups]
        return [1.0 / len(self.groups)] * len(self.groups)

    def _log_constant(self, params: Params) -> float:
        if not self.groups:
            return self.log_constant
        return float(np.dot(self._group_weights(params), self.group_log_constants))

    def _design_row(self, params: Params) -> np.ndarray:
        logf = np.log(self.form.features(params))
        row = [logf[j] for j in self.free]
        if self.form.constant is None:
            row = [*(self._group_weights(params) if self.groups else [1.0]), *row]
        return np.array(row)

    def predict(self, params: Params) -> float:
        """Point prediction (geometric-mean fit) at ``params``."""
        if self.form.is_zero(params):
            return 0.0
        logf = np.log(self.form.features(params))
        return float(np.exp(self._log_constant(params) + logf @ np.array(self.exponents)))

    def log_se(self, params: Params) -> float:
        """Standard error of a new observation's log around the fit (OLS prediction s.e.).

        For an initialisation group the calibration did not see, the spread of the
        groups' constants is added (a new draw of the initialisation).
        """
        if not np.isfinite(self.sigma) or self.dof <= 0 or self.form.is_zero(params):
            return float("nan")
        x0 = self._design_row(params)
        lever = float(x0 @ self.xtx_inv @ x0) if x0.size else 0.0
        between = 0.0
        if self.groups and group_label(params, self.group_keys) not in self.groups:
            between = float(np.var(self.group_log_constants, ddof=1))
        return math.sqrt(self.sigma**2 * (1.0 + lever) + between)

    def limit(self, params: Params, alpha: float, side: str) -> float:
        """One-sided ``1 - alpha`` prediction limit for a *new* observation.

        ``side="upper"`` gives the value a new observation stays below with
        probability ``1 - alpha`` under the fitted log-normal model; ``"lower"`` the
        value it stays above.  Uses Student's t with the residual degrees of freedom.
        """
        point = self.predict(params)
        if point == 0.0:
            return 0.0
        se = self.log_se(params)
        if not np.isfinite(se):
            return point
        q = float(stats.t.ppf(1.0 - alpha, self.dof)) * se
        return point * math.exp(q if side == "upper" else -q)

    def describe(self) -> dict[str, Any]:
        return {
            "quantity": self.form.name,
            "constant": self.constant,
            "exponents": {t.name: e for t, e in zip(self.form.terms, self.exponents, strict=True)},
            "calibrated_exponents": [self.form.terms[j].name for j in self.free],
            "log_residual_sd": self.sigma,
            "calibration_points": self.n_points,
            "dof": self.dof,
        } | (
            {
                "init_group_constants": {
                    g: math.exp(c)
                    for g, c in zip(self.groups, self.group_log_constants, strict=True)
                }
            }
            if self.groups
            else {}
        )


@dataclass(frozen=True)
class Prediction:
    """What a bound predicts at one parameter set.

    ``rate`` is the per-round contraction factor in (0, 1) of the linear phase, and
    ``floor`` the size of the neighbourhood the error converges to.  Either may be
    ``None`` when the bound does not predict it.  ``extra`` holds any other named
    predicted quantity (e.g. an active-neuron count).  ``calibrated`` is True when
    the numbers come from calibrated constants.
    """

    rate: float | None = None
    floor: float | None = None
    extra: dict[str, float] = field(default_factory=dict)
    calibrated: bool = False

    def get(self, name: str) -> float | None:
        if name in ("rate", "floor"):
            return getattr(self, name)
        return self.extra.get(name)


@dataclass(frozen=True)
class Trend:
    """A qualitative monotonicity claim: ``quantity`` is ``direction`` in ``parameter``.

    ``direction`` is ``"nonincreasing"`` or ``"nondecreasing"``.  For a categorical
    parameter, ``order`` maps its values to numbers (the claim then orders them).
    ``within`` names the parameters held fixed while the trend is measured.
    """

    quantity: str
    parameter: str
    direction: str
    order: tuple[tuple[str, float], ...] = ()
    note: str = ""

    def encode(self, value: Any) -> float:
        if self.order:
            return dict(self.order)[value]
        return math.log(float(value))

    def reversed(self) -> Trend:
        flip = {"nonincreasing": "nondecreasing", "nondecreasing": "nonincreasing"}
        return Trend(self.quantity, self.parameter, flip[self.direction], self.order, self.note)


class Bound:
    """Base class: one theorem or corollary.

    Subclasses set the class attributes and implement :meth:`preconditions` and
    :meth:`predict`.  ``forms`` maps predicted quantities ("rate", "floor", ...)
    to :class:`LogLinearForm` objects whose unknown constants must be calibrated;
    ``trends`` lists the qualitative claims.
    """

    id: str = ""
    source: Source
    tightness: Tightness
    forms: Mapping[str, LogLinearForm] = {}
    trends: tuple[Trend, ...] = ()
    predicts: tuple[str, ...] = ("rate", "floor")

    def preconditions(self, params: Params) -> list[str]:
        """Violated hypotheses of the theorem at ``params``, in words (empty: all hold)."""
        return []

    def requirements(self, params: Params) -> dict[str, float]:
        """Informational: quantities the theorem requires vs what the point has."""
        return {}

    def predict(
        self, params: Params, calibration: Mapping[str, CalibratedForm] | None = None
    ) -> Prediction:
        """Predicted quantities at ``params``.

        Quantities whose constants are unknown are predicted from ``calibration``
        (point prediction); without it they are ``None``.
        """
        calibration = calibration or {}
        values = {
            name: (calibration[name].predict(params) if name in calibration else None)
            for name in self.forms
        }
        return self.prediction_from(params, values, calibrated=bool(calibration))

    def prediction_from(
        self, params: Params, values: Mapping[str, float | None], calibrated: bool
    ) -> Prediction:
        """Assemble a :class:`Prediction` from the forms' values.

        The default treats a form named ``rate`` as the *decay* per round
        (``-log`` of the contraction factor), so the contraction factor is
        ``exp(-decay)``.
        """
        decay = values.get("rate")
        rate = math.exp(-decay) if decay is not None else None
        extra = {k: v for k, v in values.items() if k not in ("rate", "floor") and v is not None}
        if decay is not None:
            extra["decay"] = decay
        return Prediction(rate=rate, floor=values.get("floor"), extra=extra, calibrated=calibrated)

    #: named wrong versions of this bound for mutation testing (name -> what is wrong)
    mutations: Mapping[str, str] = {}
    #: named wrong *forms* of its predictions (a factor that depends on the parameters, not a
    #: constant), applied by :meth:`mutation_factor` to calibrated and exact predictions alike
    form_mutations: Mapping[str, str] = {}

    def mutation_factor(self, perturb: Mapping[str, float], quantity: str, params: Params) -> float:
        """``mutated / true`` prediction of ``quantity`` for the mutations named in ``perturb``
        (1 when none applies)."""
        return 1.0

    def describe(self) -> dict[str, str]:
        return {"id": self.id, "source": str(self.source), "tightness": str(self.tightness)}


_REGISTRY: dict[str, Bound] = {}


def register(bound_cls: type[Bound]) -> type[Bound]:
    """Class decorator: instantiate and register a bound under its ``id``."""
    instance = bound_cls()
    if not instance.id:
        raise ValueError(f"{bound_cls.__name__} has no id")
    if instance.id in _REGISTRY:
        raise ValueError(f"bound id {instance.id!r} registered twice")
    _REGISTRY[instance.id] = instance
    return bound_cls


def get(bound_id: str) -> Bound:
    """The registered bound with this id; ``KeyError`` naming the known ids otherwise."""
    try:
        return _REGISTRY[bound_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown bound id {bound_id!r}; known: {known}") from None


def registry() -> dict[str, Bound]:
    return dict(sorted(_REGISTRY.items()))
