"""Qin, Song & Yang, "Efficient SGD Neural Network Training via Sublinear Activated Neuron
Identification", arXiv:2307.06565 (2023).

Model: ``f(W, x) = (1/sqrt(m)) sum_r a_r sigma_b(w_r.x)`` with the shifted ReLU
``sigma_b(z) = max(z - b, 0)``, ``a_r = +-1`` fixed, ``w_r(0) ~ N(0, I_d)``, ``||x_i|| = 1`` and
the threshold ``b = sqrt(0.4 log m)`` (:func:`threshold`).  Gradient descent on
``L(W) = 1/2 ||u - y||^2`` over ``W``.  A neuron is *activated* by input ``x`` when
``w_r.x > b``; only activated neurons have a non-zero output or gradient for that input.

Claims verified (the statement numbers are not cited: the claims are those of the paper as
summarised in the project's notes, described by what they say):

1. sparsity at initialisation: per input, the fraction of activated neurons has expectation
   exactly ``Phi-bar(b)`` (the Gaussian tail, ``w.x ~ N(0, 1)``; ``active_fraction``) and
   ``Phi-bar(b) <= exp(-b^2 / 2) = m^(-1/5)`` (``active_fraction_bound``), so the fraction
   decays at least like ``m^(-1/5)`` (``active_fraction_exponent`` = -0.2);
2. sparsity during training: while the weights stay near the initialisation, every input
   activates at most ``2 m^(4/5)`` neurons at every step (``active_count_bound``);
3. exactness of the sparse step: the gradient summed over the activated set only equals the
   dense gradient (inactive neurons contribute exactly 0), so the trajectories coincide
   (``gradient_mismatch`` = ``trajectory_mismatch`` = 0, up to rounding);
4. convergence: the loss tends to 0 linearly with a rate driven by the smallest eigenvalue of
   the shifted-ReLU kernel.  Its infinite-width version is
   ``lambda_b = lambda_min(H^b)``, ``H^b_ij = x_i.x_j P(w.x_i > b, w.x_j > b)``
   (:func:`shifted_relu_kernel`), whose diagonal is ``Phi-bar(b)``: ``lambda_b`` shrinks with
   the width (roughly like ``m^(-1/5)``), the price of sparsity is a slower rate than the
   plain ReLU kernel's.  GD runs on the finite-width kernel ``H(0)``
   (:func:`finite_width_kernel`), whose ``lambda_min`` concentrates on ``lambda_b`` only as
   ``m * Phi-bar(b)`` (the activated neurons per input) grows; at the smallest feasible widths
   it is well below ``lambda_b``.  Tested: the per-step decay
   ``-log rho = C eta lambda_min(H(0))`` (``lambda_min_H0_gmean``, measured by the trainer:
   the geometric mean over the repetitions, as the decay is their mean) with ``C`` calibrated on half of the widths and predicted
   on the others: the dependence on the kernel's eigenvalue across widths, not an absolute
   time.  ``lambda_b`` itself is predicted (``lambda_b``) and reported next to it.

Tightness: claims 1 (expectation), 3 and the floor 0 are exact identities; the bounds of
claims 1 and 2 are upper bounds with the paper's constants; the rate is an upper-calibrated
functional form (the absolute constant is not specified), hence the bound's label.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from .core import Bound, LogLinearForm, Params, Prediction, Source, Term, Tightness, register
from .ntk import cosine_matrix, init_kernel_width

PAPER = "arXiv:2307.06565 (Qin, Song & Yang, 2023)"
#: the paper's threshold: b = sqrt(THRESHOLD_COEF log m)
THRESHOLD_COEF = 0.4
#: the sparsity exponent: Phi-bar(sqrt(0.4 log m)) <= exp(-0.2 log m) = m^(-1/5)
SPARSITY_EXPONENT = -THRESHOLD_COEF / 2.0
#: failure probability over the initialisation used in the width requirement
DELTA = 0.1
WIDTH_NOTE = (
    "the paper's width requirement (polynomial in n, 1/lambda_b and log(1/delta), with "
    "unspecified constants) is far above feasible widths -- already its first step, the "
    "concentration of H(0) around H^b, needs m > 1e7 here (requirements()); finite-width "
    "effects are screened by the measured kernel at initialisation"
)


def threshold(m: int, coef: float = THRESHOLD_COEF) -> float:
    """The activation threshold ``b = sqrt(coef log m)`` (the paper: ``coef = 0.4``)."""
    if m < 2 or coef <= 0:
        raise ValueError(f"need m >= 2 and coef > 0, got m = {m}, coef = {coef}")
    return math.sqrt(coef * math.log(m))


def tail_probability(b: float) -> float:
    """``Phi-bar(b) = P(Z > b)``, ``Z ~ N(0, 1)``: the expected active fraction per input."""
    return float(stats.norm.sf(b))


def pair_tail_probability(b: float, rho: np.ndarray) -> np.ndarray:
    """``P(Z_1 > b, Z_2 > b)`` for standard bivariate normals with correlation ``rho``.

    Owen (1956): ``Phi_2(h, h; rho) = Phi(h) - 2 T(h, sqrt((1 - rho) / (1 + rho)))`` for
    ``h != 0``, with Owen's T function; by symmetry the upper orthant at ``b`` is the lower
    orthant at ``-b`` and ``T`` is even in ``h``.  ``rho = -1`` gives 0 (for ``b >= 0``).
    """
    rho = np.clip(np.asarray(rho, dtype=float), -1.0, 1.0)
    with np.errstate(divide="ignore"):
        slope = np.sqrt((1.0 - rho) / (1.0 + rho))
    out = tail_probability(b) - 2.0 * special.owens_t(b, np.where(rho > -1.0, slope, 0.0))
    out = np.where(rho > -1.0, out, max(0.0, tail_probability(b) - stats.norm.cdf(b)))
    return np.maximum(out, 0.0)


def shifted_relu_kernel(X: np.ndarray, b: float) -> np.ndarray:
    """``H^b_ij = x_i.x_j P(w.x_i > b, w.x_j > b)``, ``w ~ N(0, I)`` (unit-norm inputs).

    The expectation over the initialisation of the finite-width Gram matrix
    ``H(W)_ij = x_i.x_j (1/m) sum_r 1{w_r.x_i > b} 1{w_r.x_j > b}`` of the output's
    gradient in ``W`` (:func:`finite_width_kernel`).
    """
    G = cosine_matrix(np.asarray(X, dtype=float))
    return G * pair_tail_probability(b, G)


def finite_width_kernel(X: np.ndarray, W: np.ndarray, b: float) -> np.ndarray:
    """``H(W) = (X X^T) o (S S^T) / m`` with ``S_ir = 1{w_r.x_i > b}``."""
    S = (X @ W.T > b).astype(float)
    return cosine_matrix(X) * (S @ S.T) / W.shape[0]


def lambda_b(X: np.ndarray, m: int, coef: float = THRESHOLD_COEF) -> float:
    """``lambda_min(H^b)`` at the width's threshold ``b = sqrt(coef log m)``."""
    return float(np.linalg.eigvalsh(shifted_relu_kernel(X, threshold(m, coef)))[0])


def activated_per_input(params: Params) -> float:
    """``m Phi-bar(b)``: the expected number of neurons an input activates at init."""
    m = params["m"]
    return m * tail_probability(threshold(m, params.get("threshold_coef", THRESHOLD_COEF)))


RATE_FORM = LogLinearForm(
    name="rate",
    terms=(
        Term("eta", lambda q: q["eta"]),
        Term("lambda_min_H0", lambda q: q["lambda_min_H0_gmean"]),
        # finite-width correction, calibrated (0 = the paper's form): with few activated
        # neurons per input the weights move O(1) and the kernel degrades during training
        Term("activated_per_input", activated_per_input, exponent=None, default=0.0),
    ),
)


def model_hypotheses(params: Params) -> list[str]:
    """Violated assumptions of the model itself (unit-norm inputs, the paper's threshold)."""
    out: list[str] = []
    if params.get("input_norm_error", 0.0) > 1e-8:
        out.append("inputs must have unit norm (||x_i|| = 1)")
    coef = params.get("threshold_coef", THRESHOLD_COEF)
    if coef != THRESHOLD_COEF:
        out.append(
            f"threshold b = sqrt({THRESHOLD_COEF} log m) (the paper's choice), got "
            f"b = sqrt({coef} log m)"
        )
    if params["m"] < 2:
        out.append(f"width m >= 2 (b = sqrt(0.4 log m) > 0), got m = {params['m']}")
    return out


def init_sparsity_predictions(params: Params) -> dict[str, float]:
    """Claims 1 and 3: the active fraction at initialisation and the exact sparse step."""
    m = params["m"]
    b = threshold(m, params.get("threshold_coef", THRESHOLD_COEF))
    return {
        "active_fraction": tail_probability(b),
        "active_fraction_bound": m**SPARSITY_EXPONENT,
        "active_fraction_exponent": SPARSITY_EXPONENT,
        "gradient_mismatch": 0.0,
        "trajectory_mismatch": 0.0,
    }


@register
class InitSparsity(Bound):
    """Claims 1 and 3 alone: sparsity at initialisation (a property of the Gaussian
    initialisation and the threshold) and the exactness of the step over the activated set
    (an identity: inactive neurons contribute exactly 0).  Neither needs the width, kernel
    or step-size hypotheses of the convergence analysis, so a grid point outside those is
    still tested here."""

    id = "qin2023.init_sparsity"
    source = Source(
        PAPER,
        "sparsity at initialisation (per input, P(w.x > b) = Phi-bar(b) <= m^(-1/5)); the "
        "gradient over the activated set equals the full gradient",
        "hypotheses: unit-norm inputs and the paper's threshold only",
    )
    tightness = Tightness.EXACT
    predicts = tuple(init_sparsity_predictions({"m": 2}))

    def preconditions(self, params: Params) -> list[str]:
        return model_hypotheses(params)

    def prediction_from(self, params, values, calibrated) -> Prediction:
        return Prediction(extra=init_sparsity_predictions(params), calibrated=calibrated)


@register
class SparseActivation(Bound):
    """Sparse activation at initialisation and during training, exactness of the sparse
    step, and linear convergence at a rate proportional to ``eta lambda_min(H(0))``."""

    id = "qin2023.sparse_activation"
    source = Source(
        PAPER,
        "sparsity at initialisation (per input, P(w.x > b) = Phi-bar(b) <= m^(-1/5)); "
        "sparsity during training (at most 2 m^(4/5) activated neurons per input at every "
        "step); the gradient over the activated set equals the full gradient; linear "
        "convergence of GD governed by lambda_min of the shifted-ReLU kernel",
        WIDTH_NOTE,
    )
    tightness = Tightness.UPPER_CALIBRATED
    forms = {"rate": RATE_FORM}
    predicts = (
        "rate",
        "floor",
        "active_fraction",
        "active_fraction_bound",
        "active_fraction_exponent",
        "active_count_bound",
        "gradient_mismatch",
        "trajectory_mismatch",
        "lambda_b",
    )

    def preconditions(self, params: Params) -> list[str]:
        out = model_hypotheses(params)
        lam = params.get("lambda_b")
        if lam is not None and not lam > 1e-12:
            out.append(
                "lambda_b = lambda_min(H^b) > 0 (no two inputs parallel) fails: "
                f"lambda_b = {lam:.3g}"
            )
        margin = params.get("step_margin0")
        if margin is not None and math.isfinite(margin) and margin <= 1.0:
            out.append(
                f"step size: eta lambda_max(H(0)) = {1.0 / margin:.3g} >= 1 on some repetition "
                "(the linearised GD step is not non-expansive; the paper's step is far smaller)"
            )
        measured = params.get("lambda_min_H0")
        if lam is not None and measured is not None and measured < lam / 2:
            out.append(
                f"finite-width kernel at init: lambda_min(H(0)) = {measured:.3g} < lambda_b / 2 "
                f"= {lam / 2:.3g} on some repetition (the concentration event the analysis "
                f"conditions on: the width does not support n = {params.get('n')} inputs)"
            )
        return out

    def requirements(self, params: Params) -> dict[str, float]:
        """A necessary width: ``H(0)`` within ``lambda_b / 4`` of ``H^b`` (Hoeffding and a
        union bound over the entries, :func:`bounds.ntk.init_kernel_width`); the paper's
        requirement is larger still.  Without the measured ``lambda_b`` its upper bound
        ``Phi-bar(b)`` (the kernel's diagonal) is used: the width needed is at least that."""
        lam = params.get("lambda_b")
        if lam is None:
            lam = tail_probability(
                threshold(params["m"], params.get("threshold_coef", THRESHOLD_COEF))
            )
        if not lam > 0:
            return {}
        need = init_kernel_width(int(params["n"]), lam, DELTA)
        return {"width_required_at_least": need, "width_gap_at_least": need / params["m"]}

    def prediction_from(self, params, values, calibrated) -> Prediction:
        base = super().prediction_from(params, values, calibrated)
        m = params["m"]
        extra = dict(base.extra) | init_sparsity_predictions(params)
        extra["active_count_bound"] = 2.0 * m ** (1.0 + SPARSITY_EXPONENT)
        if "lambda_b" in params:
            extra["lambda_b"] = float(params["lambda_b"])
        return Prediction(rate=base.rate, floor=0.0, extra=extra, calibrated=calibrated)
