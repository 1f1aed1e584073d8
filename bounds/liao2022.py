"""Liao & Kyrillidis, "On the Convergence of Shallow Neural Network Training with
Randomly Masked Neurons", TMLR 2022, arXiv:2112.02668.

Setting: ``f(W, x) = (1/sqrt(m)) sum_r a_r relu(w_r.x)``, ``a_r = +-1`` fixed,
``w_r(0) ~ N(0, kappa^2 I)``, ``||x_i|| = 1``.  Each round samples ``p`` masks (Bernoulli(xi)
per neuron, or a random partition for IST), runs ``tau`` local GD steps of size ``eta``
on every surrogate (output scaled by ``1/xi``) and averages each neuron over the
surrogates that hold it.  With ``theta = 1 - (1 - xi)^p``, the main theorem states

    E_masks ||y - u(k)||^2 <= (1 - c theta eta lambda0 tau / 4)^k ||y - u(0)||^2 + B(xi, p, tau, eta, kappa, ...)

for ``m`` large enough and ``eta`` small enough.  The absolute constant ``c`` and the
constants inside the neighbourhood ``B`` are not available in closed numeric form, and
the width requirement is far above feasible widths (see :meth:`Theorem1.requirements`).
Hence the bounds below are *functional forms* whose constants are calibrated on part of
a grid and predicted on the rest (the envelope's rate ``envelope_rate`` has the same form
as ``rate`` with its own constant: the largest decay whose envelope covers the whole
curve, whereas ``rate`` is the early-phase decay):

* rate: ``-log rho = C * theta * (1/xi)^e * eta * lambda0 * tau`` -- the paper's
  ``theta eta lambda0 tau`` (C unknown; ``-log rho ~ 1 - rho`` for small steps) times a
  factor ``(1/xi)^e`` with ``e`` calibrated (default 0 = the paper's form).  Under the
  inverted ``1/xi`` scaling a held neuron's expected update is ``theta/xi`` times the full
  gradient, so the measured ``e`` is close to 1: the paper's rate is then conservative by
  ``1/xi`` and the report shows the fitted ``e``.
* floor: ``B = C_B kappa^a ((1 - xi)/xi)^b p^e_p tau^e_tau eta^e_eta m^e_m``  (heuristic form;
  the masking noise does not vanish with width under 1/sqrt(m) scaling, default e_m = 0;
  the paper's qualitative claims fix the signs: B decreases in p, increases in tau, and
  vanishes at xi = 1).

The exact statement of the theorem was reconstructed from the abstract, the authors'
project page and the NTK analysis it builds on (Du et al. 2019); provenance says so.
"""

from __future__ import annotations

import math

from .core import Bound, LogLinearForm, Params, Source, Term, Tightness, Trend, register
from .ntk import init_kernel_width, theta

PAPER = "arXiv:2112.02668 (Liao & Kyrillidis, TMLR 2022)"
RECONSTRUCTED = (
    "statement reconstructed from the abstract, the authors' project page and Du et al. 2019; "
    "absolute constants unspecified, so c and the floor's constants are calibrated"
)
#: failure probability over the initialisation used in the width requirement
DELTA = 0.1


def _xi(params: Params) -> float:
    """Per-surrogate keep probability; IST's partition into p groups keeps 1/p."""
    return 1.0 / params["p"] if params.get("scheme") == "partition" else params["xi"]


def _theta(params: Params) -> float:
    return 1.0 if params.get("scheme") == "partition" else theta(params["xi"], params["p"])


RATE_FORM = LogLinearForm(
    name="rate",
    terms=(
        Term("theta", _theta),
        Term("inverse_keep", lambda q: 1.0 / _xi(q), exponent=None, default=0.0),
        Term("eta", lambda q: q["eta"]),
        Term("lambda0", lambda q: q["lambda0"]),
        Term("tau", lambda q: q["tau"]),
    ),
)

#: the theorem's worst-case rate: the largest decay whose envelope covers the whole curve
ENVELOPE_RATE_FORM = LogLinearForm(name="envelope_rate", terms=RATE_FORM.terms)

FLOOR_FORM = LogLinearForm(
    name="floor",
    terms=(
        Term("kappa", lambda q: q["kappa"], exponent=None, default=2.0),
        Term("mask_noise", lambda q: (1.0 - _xi(q)) / _xi(q), exponent=None, default=1.0),
        Term("p", lambda q: q["p"], exponent=None, default=-0.5, sign=-1),
        Term("tau", lambda q: q["tau"], exponent=None, default=0.5, sign=+1),
        Term("eta", lambda q: q["eta"], exponent=None, default=1.0, sign=+1),
        Term("m", lambda q: q["m"], exponent=None, default=0.0),
    ),
)

IST_FLOOR_FORM = LogLinearForm(
    name="floor",
    terms=(
        Term("kappa", lambda q: q["kappa"], exponent=None, default=2.0),
        Term("partition_noise", lambda q: q["p"] - 1.0, exponent=None, default=1.0),
        Term("tau", lambda q: q["tau"], exponent=None, default=0.5, sign=+1),
        Term("eta", lambda q: q["eta"], exponent=None, default=1.0, sign=+1),
    ),
)

FLOOR_DECREASES_IN_P = Trend(
    "floor", "p", "nonincreasing", note="abstract: more surrogates, smaller neighbourhood"
)
FLOOR_INCREASES_IN_TAU = Trend(
    "floor", "tau", "nondecreasing", note="abstract: more local steps, larger neighbourhood"
)


class _MaskedTheorem(Bound):
    """Shared hypotheses of the masked-training theorem and its corollaries."""

    forms = {"rate": RATE_FORM, "envelope_rate": ENVELOPE_RATE_FORM, "floor": FLOOR_FORM}
    scheme = "bernoulli"

    def applies(self, params: Params) -> bool:
        """Per-point checks of this bound run only on its own masking scheme."""
        return params.get("scheme", "bernoulli") == self.scheme

    def preconditions(self, params: Params) -> list[str]:
        out: list[str] = []
        if params["lambda0"] <= 1e-12:
            out.append("lambda0 = lambda_min(H_inf) > 0 (no two inputs parallel) fails")
        if params.get("input_norm_error", 0.0) > 1e-8:
            out.append("inputs must have unit norm (||x_i|| = 1)")
        xi = _xi(params)
        step = params["eta"] * params["lambda_max"] / xi
        if step >= 1.0:
            out.append(
                "step size: eta * lambda_max(H_inf) / xi = "
                f"{step:.3g} >= 1 (the linearised local GD step on a surrogate is not "
                "non-expansive; the theorem needs eta = O(lambda0 / (n^2 tau)))"
            )
        measured = params.get("lambda_min_H0")
        if measured is not None and math.isfinite(measured) and measured < params["lambda0"] / 2:
            out.append(
                f"finite-width kernel at init: lambda_min(H(0)) = {measured:.3g} < lambda0 / 2 = "
                f"{params['lambda0'] / 2:.3g} (the event the proof conditions on; width too small)"
            )
        return out

    def requirements(self, params: Params) -> dict[str, float]:
        """The width the analysis needs vs the width used.

        ``init_kernel_width`` is only the first of the proof's width requirements
        (Du et al. Lemma 3.1 with explicit constants); the full requirement of the
        masked theorem grows further with tau, p and 1/delta and its constants are
        unspecified, so the gap reported is a *lower bound* on the true gap.
        """
        need = init_kernel_width(int(params["n"]), params["lambda0"], DELTA)
        return {"width_required_at_least": need, "width_gap_at_least": need / params["m"]}


@register
class Theorem1(_MaskedTheorem):
    """Main theorem: Bernoulli(xi) masks, p surrogates, tau local steps.

    ``E||y - u(k)||^2 <= (1 - c theta eta lambda0 tau / 4)^k ||y - u(0)||^2 + B``.
    """

    id = "liao2022.theorem1"
    source = Source(PAPER, "Theorem 1 (main result, Bernoulli masks)", RECONSTRUCTED)
    tightness = Tightness.UPPER_CALIBRATED
    trends = (FLOOR_DECREASES_IN_P, FLOOR_INCREASES_IN_TAU)


@register
class Dropout(_MaskedTheorem):
    """Dropout corollary: Theorem 1 with ``p = 1`` (one mask per round)."""

    id = "liao2022.dropout"
    source = Source(PAPER, "Corollary (dropout: p = 1)", RECONSTRUCTED)
    tightness = Tightness.UPPER_CALIBRATED
    trends = (FLOOR_INCREASES_IN_TAU,)

    def preconditions(self, params: Params) -> list[str]:
        out = super().preconditions(params)
        if params["p"] != 1:
            out.append(f"dropout corollary needs p = 1, got p = {params['p']}")
        return out


@register
class MultiSampleDropout(_MaskedTheorem):
    """Multi-sample dropout corollary: Theorem 1 with ``tau = 1`` and ``p >= 1`` masks."""

    id = "liao2022.multisample_dropout"
    source = Source(PAPER, "Corollary (multi-sample dropout: tau = 1)", RECONSTRUCTED)
    tightness = Tightness.UPPER_CALIBRATED
    trends = (FLOOR_DECREASES_IN_P,)

    def preconditions(self, params: Params) -> list[str]:
        out = super().preconditions(params)
        if params["tau"] != 1:
            out.append(f"multi-sample dropout corollary needs tau = 1, got tau = {params['tau']}")
        return out


@register
class IndependentSubnetTraining(_MaskedTheorem):
    """IST corollary: categorical masks (a random partition into p subnetworks).

    Every neuron is trained in exactly one subnetwork, so ``theta = 1`` in the rate;
    the error term differs from the Bernoulli case (the paper bounds the loss increase
    when subnetworks are sampled and the decrease when they are combined).  Its floor
    form is heuristic: zero at p = 1 (full GD), growing with the partition noise and tau.
    Ordering claim: at equal p, tau, eta the IST floor is at most the Bernoulli(1/p) floor.
    """

    id = "liao2022.ist"
    source = Source(PAPER, "Corollary (IST: categorical masks, random partition)", RECONSTRUCTED)
    tightness = Tightness.UPPER_CALIBRATED
    forms = {"rate": RATE_FORM, "envelope_rate": ENVELOPE_RATE_FORM, "floor": IST_FLOOR_FORM}
    scheme = "partition"
    trends = (
        FLOOR_INCREASES_IN_TAU,
        Trend(
            "floor",
            "scheme",
            "nondecreasing",
            order=(("partition", 0.0), ("bernoulli", 1.0)),
            note="IST floor <= Bernoulli(xi = 1/p) floor at equal p, tau, eta",
        ),
    )
