"""The two output conventions of the masked trainer and the exact mapping between them.

arXiv:2112.02668v1 scales the full network's output by xi and leaves the surrogates
unscaled ("paper"); the authors' code scales each surrogate by 1/xi and leaves the full
network unscaled ("inverted").  An inverted run with step eta and labels y is the paper run
with step eta/xi^2 and labels xi*y, every loss divided by xi^2: the weights follow the same
trajectory, only the rounding differs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verify.data import sphere
from verify.trainers.masked_shallow import output_scales, train


def _losses(X, y, *, scaling, eta, seed, variant="exact", **kw):
    rngs = [np.random.default_rng(seed + r) for r in range(2)]
    out = train(X, y, eta=eta, rngs=rngs, scaling=scaling, variant=variant, **kw)
    return np.array([o.curves["loss"] for o in out]), out


def _mapped(X, y, seed, variant="exact", eta_power=2, **kw):
    keep = 1.0 / kw["p"] if kw["scheme"] == "partition" else kw["xi"]
    inv, _ = _losses(X, y, scaling="inverted", eta=0.05, seed=seed, **kw)
    paper, _ = _losses(
        X, keep * y, scaling="paper", eta=0.05 / keep**eta_power, seed=seed, variant=variant, **kw
    )
    return inv, paper / keep**2


@settings(max_examples=25, deadline=None)
@given(
    xi=st.sampled_from([0.25, 0.5, 0.8, 1.0]),
    p=st.integers(1, 4),
    tau=st.integers(1, 3),
    scheme=st.sampled_from(["bernoulli", "partition"]),
    m=st.integers(20, 300),
    seed=st.integers(0, 2**31),
)
def test_inverted_run_is_the_paper_run_with_mapped_step_and_labels(xi, p, tau, scheme, m, seed):
    X, y = sphere(8, 4, np.random.default_rng(seed))
    inv, paper = _mapped(X, y, seed, m=m, kappa=1.0, rounds=12, xi=xi, p=p, tau=tau, scheme=scheme)
    np.testing.assert_allclose(inv, paper, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("scheme", ["bernoulli", "partition"])
def test_mapping_test_detects_a_wrong_mapping(scheme, global_seed):
    """Negative controls: the step mapped by 1/xi (not 1/xi^2), and a paper run that keeps
    the surrogates on the full network's scale, both break the identity."""
    X, y = sphere(8, 4, np.random.default_rng(global_seed))
    kw = dict(m=200, kappa=1.0, rounds=30, xi=0.5, p=2, tau=2, scheme=scheme)
    inv, wrong_step = _mapped(X, y, global_seed, eta_power=1, **kw)
    assert not np.allclose(inv, wrong_step, rtol=1e-3)
    inv, unscaled = _mapped(X, y, global_seed, variant="no_rescaling", **kw)
    assert not np.allclose(inv, unscaled, rtol=1e-3)


def test_conventions_coincide_at_full_keep(global_seed):
    X, y = sphere(8, 4, np.random.default_rng(global_seed))
    kw = dict(m=100, kappa=1.0, rounds=10, xi=1.0, p=1, tau=2, scheme="bernoulli")
    inv, _ = _losses(X, y, scaling="inverted", eta=0.1, seed=global_seed, **kw)
    paper, _ = _losses(X, y, scaling="paper", eta=0.1, seed=global_seed, **kw)
    np.testing.assert_array_equal(inv, paper)


def test_output_scales_and_bad_convention():
    assert output_scales(0.5, 100, "inverted") == (0.2, 0.1)
    assert output_scales(0.5, 100, "paper") == pytest.approx((0.1, 0.05))
    assert output_scales(0.5, 100, "paper", "no_rescaling") == pytest.approx((0.05, 0.05))
    with pytest.raises(ValueError, match="scaling must be one of"):
        output_scales(0.5, 100, "other")


def test_proof_events_are_measured_on_the_stated_sample(global_seed):
    """Masked-NTK eigenvalue and movement: sampled every ``monitor_every`` rounds; at init the
    masked NTK's eigenvalue is near xi * lambda_min(H_inf) and the movement is zero."""
    from bounds.ntk import lambda0

    X, y = sphere(8, 4, np.random.default_rng(global_seed))
    kw = dict(m=20000, kappa=1.0, xi=0.5, p=2, tau=1, scheme="bernoulli")
    _, (out, *_) = _losses(X, y, scaling="paper", eta=0.1, seed=global_seed, rounds=0, **kw)
    assert np.isnan(out.scalars["masked_ntk_min"]) and out.scalars["max_movement"] == 0.0
    _, (out, *_) = _losses(
        X, y, scaling="paper", eta=0.1, seed=global_seed, rounds=10, monitor_every=3, **kw
    )
    assert out.scalars["monitor_interval"] == 3.0
    assert 0.6 < out.scalars["masked_ntk_min"] / (0.5 * lambda0(X)) < 1.2
    assert 0 < out.scalars["max_movement"] < 1.0
