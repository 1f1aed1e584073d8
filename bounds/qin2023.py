"""Qin, Song & Yang, "Efficient SGD Neural Network Training via Sublinear Activated Neuron
Identification", arXiv:2307.06565 (v1 July 2023; only the abstract was available, the
version it was read from is not recorded).

Model: ``f(W, x) = (1/sqrt(m)) sum_r a_r sigma_b(w_r.x)`` with the shifted ReLU
``sigma_b(z) = max(z - b, 0)``, ``a_r = +-1`` fixed, ``w_r(0) ~ N(0, I_d)``, ``||x_i|| = 1`` and
the threshold ``b = sqrt(0.4 log m)`` (:func:`threshold`).  Gradient descent on
``L(W) = 1/2 ||u - y||^2`` over ``W``.  A neuron is *activated* by input ``x`` when
``w_r.x > b``; only activated neurons have a non-zero output or gradient for that input.

Provenance.  Only the paper's abstract was available (no full text of any version, no
code).  Its convergence statement is an *iteration bound*: the training loss reaches ``eps``
within ``O(M^2 / eps^2)`` iterations, with a width quadratic in ``M`` (a norm bound on the
target's coefficients); the constants are not given.  The threshold ``b = sqrt(0.4 log m)``
and the ``O(m^(4/5))`` activated-neuron count are the shifted-ReLU sparsity analysis of the
same group's earlier work (Song, Yang & Zhang, "Does Preprocessing Help Training
Over-parameterized Neural Networks?", NeurIPS 2021, arXiv:2110.04622, as the project's
notes attribute it; that text was not checked here either).  A *linear* rate in
``lambda_min`` of the shifted-ReLU kernel is the NTK analysis of the neighbouring literature
(Du, Zhai, Poczos & Singh, ICLR 2019, arXiv:1810.02054, for the plain ReLU; sparsely
activated networks with a bias threshold, e.g. "Sharper Analysis of Sparsely Activated Wide
Neural Networks with Trainable Biases", ICLR 2023) -- not this paper's theorem.  The bounds
below are split by where their claim comes from, and each ``Source`` says so.

Claims verified:

1. sparsity at initialisation (:class:`InitSparsity`; elementary, and the earlier sparsity
   analysis): per input, the fraction of activated neurons has expectation exactly
   ``Phi-bar(b)`` (the Gaussian tail, ``w.x ~ N(0, 1)``; ``active_fraction``) and
   ``Phi-bar(b) <= exp(-b^2 / 2) = m^(-1/5)`` (``active_fraction_bound``), so the fraction
   decays at least like ``m^(-1/5)`` (``active_fraction_exponent`` = -0.2);
2. sparsity during training (:class:`SparseActivation`; the earlier sparsity analysis): while
   the weights stay near the initialisation, every input activates at most ``2 m^(4/5)``
   neurons at every step (``active_count_bound``);
3. exactness of the sparse step (:class:`InitSparsity`; an identity): the gradient summed
   over the activated set only equals the dense gradient (inactive neurons contribute
   exactly 0), so the trajectories coincide (``gradient_mismatch`` = ``trajectory_mismatch``
   = 0, up to rounding);
4. the paper's convergence statement (:class:`IterationBound`): at fixed ``M`` (fixed data
   and width) the iterations needed to reach training loss ``eps`` grow no faster than
   ``1/eps^2``: the log-log slope of the iterations (and of the total cost, neuron-steps
   processed by the sparse step) against ``eps`` is ``>= -2`` (``iterations_exponent``),
   and ``eps`` is reached (``target_reached`` = 1).  In the lazy regime the growth is
   ``~log(1/eps)``, far slower; the paper claims no more than the bound;
5. linear convergence (:class:`NTKRate`; *not from this paper*, the NTK analysis cited
   above): the loss tends to 0 linearly with a rate driven by the smallest eigenvalue of
   the shifted-ReLU kernel.  Its infinite-width version is
   ``lambda_b = lambda_min(H^b)``, ``H^b_ij = x_i.x_j P(w.x_i > b, w.x_j > b)``
   (:func:`shifted_relu_kernel`), whose diagonal is ``Phi-bar(b)``: ``lambda_b`` shrinks with
   the width (roughly like ``m^(-1/5)``), the price of sparsity is a slower rate than the
   plain ReLU kernel's.  GD runs on the finite-width kernel ``H(0)``
   (:func:`finite_width_kernel`), whose ``lambda_min`` concentrates on ``lambda_b`` only as
   ``m * Phi-bar(b)`` (the activated neurons per input) grows; at the smallest feasible widths
   it is well below ``lambda_b``.  Tested: the per-step decay
   ``-log rho = C eta lambda_min(H(0))`` (``lambda_min_H0_gmean``, measured by the trainer:
   the geometric mean over the repetitions, as the decay is their mean) with ``C``
   calibrated on half of the widths and predicted on the others: the dependence on the
   kernel's eigenvalue across widths, not an absolute time.  ``lambda_b`` itself is
   predicted (``lambda_b``) and reported next to it.

Tightness: claims 1 (expectation), 3 and the floor 0 are exact identities; the bounds of
claims 1 and 2 are upper bounds with the constants of the sparsity analysis; claim 4 fixes
only the exponent of ``eps`` (the paper's constants are not known); the rate is an
upper-calibrated functional form (the absolute constant is not specified).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from .core import Bound, LogLinearForm, Params, Prediction, Source, Term, Tightness, register
from .ntk import cosine_matrix, init_kernel_width

PAPER = "arXiv:2307.06565 (Qin, Song & Yang; v1 July 2023, abstract only)"
#: where the threshold and the activated-neuron count come from (see the module docstring)
SPARSITY_SOURCE = (
    "b = sqrt(0.4 log m) and the O(m^(4/5)) activated-neuron count are the shifted-ReLU "
    "sparsity analysis of Song, Yang & Zhang (NeurIPS 2021, arXiv:2110.04622), which this "
    "paper's abstract builds on; only the abstract of arXiv:2307.06565 was available"
)
#: the neighbouring NTK literature the linear-rate claim comes from
NTK_SOURCE = (
    "not from this paper (its abstract states an O(M^2/eps^2) iteration bound, not a linear "
    "rate): the NTK analysis of Du, Zhai, Poczos & Singh (ICLR 2019, arXiv:1810.02054, "
    "Theorem 4.1 for the plain ReLU) applied to the shifted-ReLU kernel, as in the sparsely "
    "activated NTK literature"
)
#: the paper's threshold: b = sqrt(THRESHOLD_COEF log m)
THRESHOLD_COEF = 0.4
#: the sparsity exponent: Phi-bar(sqrt(0.4 log m)) <= exp(-0.2 log m) = m^(-1/5)
SPARSITY_EXPONENT = -THRESHOLD_COEF / 2.0
#: failure probability over the initialisation used in the width requirement
DELTA = 0.1
WIDTH_NOTE = (
    "the lazy-training analysis' width requirement (polynomial in n, 1/lambda_b and "
    "log(1/delta), with unspecified constants; the paper's abstract: width quadratic in M) "
    "is far above feasible widths -- already its first step, the concentration of H(0) "
    "around H^b, needs m > 1e7 here (requirements()); finite-width effects are screened "
    "by the measured kernel at initialisation"
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
        "abstract: sparse activation under the shifted ReLU; encoded: per input "
        "P(w.x > b) = Phi-bar(b) <= exp(-b^2/2) = m^(-1/5) at initialisation (elementary), "
        "and the gradient over the activated set equals the full gradient (an identity)",
        f"hypotheses: unit-norm inputs and the paper's threshold only; {SPARSITY_SOURCE}",
    )
    tightness = Tightness.EXACT
    predicts = tuple(init_sparsity_predictions({"m": 2}))

    def preconditions(self, params: Params) -> list[str]:
        return model_hypotheses(params)

    def prediction_from(self, params, values, calibrated) -> Prediction:
        return Prediction(extra=init_sparsity_predictions(params), calibrated=calibrated)


class ConvergenceHypotheses(Bound):
    """The hypotheses of the lazy-training analysis the claims during training rest on
    (not registered: a base for :class:`SparseActivation` and :class:`NTKRate`)."""

    def preconditions(self, params: Params) -> list[str]:
        out = model_hypotheses(params) + step_size_hypothesis(params)
        lam = params.get("lambda_b")
        if lam is not None and not lam > 1e-12:
            out.append(
                "lambda_b = lambda_min(H^b) > 0 (no two inputs parallel) fails: "
                f"lambda_b = {lam:.3g}"
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


def step_size_hypothesis(params: Params) -> list[str]:
    """The linearised GD step must be non-expansive: ``eta lambda_max(H(0)) < 1``."""
    margin = params.get("step_margin0")
    if margin is not None and math.isfinite(margin) and margin <= 1.0:
        return [
            f"step size: eta lambda_max(H(0)) = {1.0 / margin:.3g} >= 1 on some repetition "
            "(the linearised GD step is not non-expansive; the paper's step is far smaller)"
        ]
    return []


@register
class SparseActivation(ConvergenceHypotheses):
    """Sparsity during training: at most ``2 m^(4/5)`` activated neurons per input at
    every step, while the weights stay near the initialisation."""

    id = "qin2023.sparse_activation"
    source = Source(
        PAPER,
        "abstract: sparse activation persists during training; encoded: at most "
        "2 m^(4/5) activated neurons per input at every step of GD",
        f"{SPARSITY_SOURCE}; the count holds while the weights stay near the "
        f"initialisation, so the lazy-training hypotheses are screened; {WIDTH_NOTE}",
    )
    tightness = Tightness.UPPER_EXACT
    predicts = ("active_count_bound",)

    def prediction_from(self, params, values, calibrated) -> Prediction:
        bound = 2.0 * params["m"] ** (1.0 + SPARSITY_EXPONENT)
        return Prediction(extra={"active_count_bound": bound}, calibrated=calibrated)


@register
class NTKRate(ConvergenceHypotheses):
    """Linear convergence at a rate proportional to ``eta lambda_min(H(0))`` of the
    shifted-ReLU kernel (the neighbouring NTK literature's claim, not this paper's)."""

    id = "qin2023.ntk_rate"
    source = Source(
        PAPER,
        "model and threshold of this paper; encoded: GD on ||u - y||^2 / 2 converges "
        "linearly, per-step decay C eta lambda_min(H(0)) with C calibrated, floor 0",
        f"{NTK_SOURCE}; {WIDTH_NOTE}",
    )
    tightness = Tightness.UPPER_CALIBRATED
    forms = {"rate": RATE_FORM}
    predicts = ("rate", "floor", "lambda_b")

    def prediction_from(self, params, values, calibrated) -> Prediction:
        base = super().prediction_from(params, values, calibrated)
        extra = dict(base.extra)
        if "lambda_b" in params:
            extra["lambda_b"] = float(params["lambda_b"])
        return Prediction(rate=base.rate, floor=0.0, extra=extra, calibrated=calibrated)


#: the paper's iteration bound O(M^2 / eps^2): exponent of eps in the iterations to reach it
ITERATIONS_EXPONENT = -2.0


@register
class IterationBound(Bound):
    """The paper's own convergence statement, as far as its abstract fixes it: at fixed
    ``M`` (fixed data and width) the iterations (and the total cost) needed to reach
    training loss ``eps`` are ``O(1/eps^2)``."""

    id = "qin2023.iteration_bound"
    source = Source(
        PAPER,
        "abstract: training converges in O(M^2/eps^2) iterations (total cost O(M^2/eps^2) "
        "times the per-step cost) with width quadratic in M; encoded at fixed M: the "
        "log-log slope of the iterations (and neuron-steps) to reach loss eps in eps is "
        ">= -2, and eps is reached",
        "constants and the theorem's exact hypotheses are not in the abstract: only the "
        "exponent of eps is tested; M (a coefficient-norm bound of the target) is fixed by "
        "fixing the data; hypotheses screened: the model's and a non-expansive step",
    )
    #: the exponent is the paper's; no constant is needed to test it
    tightness = Tightness.UPPER_EXACT
    predicts = ("iterations_exponent", "target_reached")

    def preconditions(self, params: Params) -> list[str]:
        out = model_hypotheses(params) + step_size_hypothesis(params)
        if not params.get("target_loss", 0.0) > 0:
            out.append(f"a target loss eps > 0 to reach, got {params.get('target_loss')}")
        return out

    def prediction_from(self, params, values, calibrated) -> Prediction:
        extra = {"iterations_exponent": ITERATIONS_EXPONENT, "target_reached": 1.0}
        return Prediction(extra=extra, calibrated=calibrated)
