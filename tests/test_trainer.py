import numpy as np
import pytest
from scipy import stats

from verify.data import sphere
from verify.trainers.masked_shallow import draw_masks, train

from .reference_loop import reference_train


@pytest.mark.parametrize(
    "xi,p,tau,scheme",
    [
        (0.5, 1, 1, "bernoulli"),
        (0.3, 3, 2, "bernoulli"),
        (1.0, 1, 3, "bernoulli"),
        (0.5, 3, 2, "partition"),
        (0.05, 2, 1, "bernoulli"),
    ],
)
def test_vectorised_trainer_matches_reference_loop(xi, p, tau, scheme, global_seed):
    X, y = sphere(6, 3, np.random.default_rng(global_seed))
    kw = dict(m=40, kappa=1.0, eta=0.05, rounds=5, xi=xi, p=p, tau=tau, scheme=scheme)
    seeds = [global_seed + 11, global_seed + 12]
    out = train(X, y, rngs=[np.random.default_rng(s) for s in seeds], **kw)
    ref = reference_train(X, y, seeds=seeds, **kw)
    for o, r in zip(out, ref, strict=True):
        np.testing.assert_allclose(o.curves["loss"], r, rtol=1e-10, atol=1e-12)


def test_reference_comparison_detects_a_broken_trainer(global_seed):
    """Negative control: the oracle comparison fails when the 1/xi scaling is dropped."""
    X, y = sphere(6, 3, np.random.default_rng(global_seed))
    kw = dict(m=40, kappa=1.0, eta=0.05, rounds=5, p=2, tau=2, scheme="bernoulli")
    out = train(X, y, rngs=[np.random.default_rng(1)], xi=0.5, **kw)
    ref = reference_train(X, y, seeds=[1], xi=1.0, **kw)  # wrong keep-scaling
    assert not np.allclose(out[0].curves["loss"], ref[0], rtol=1e-6)


def test_bernoulli_masks_have_rate_xi(rng):
    m, p, xi = 2000, 5, 0.3
    masks = draw_masks(rng, m, xi, p, "bernoulli")
    kept = sum(len(idx) for idx in masks)
    assert stats.binomtest(kept, m * p, xi).pvalue > 1e-4
    assert stats.binomtest(kept, m * p, xi + 0.02).pvalue < 1e-4  # power against a wrong rate


def test_partition_covers_every_neuron_exactly_once(rng):
    masks = draw_masks(rng, 101, 0.5, 4, "partition")
    allidx = np.concatenate(masks)
    assert sorted(allidx.tolist()) == list(range(101))
    assert max(len(s) for s in masks) - min(len(s) for s in masks) <= 1


def test_full_gradient_descent_fits_overparameterised_problem(global_seed):
    X, y = sphere(8, 4, np.random.default_rng(global_seed))
    out = train(
        X,
        y,
        m=2000,
        kappa=1.0,
        eta=0.3,
        rounds=600,
        xi=1.0,
        p=1,
        tau=1,
        rngs=[np.random.default_rng(global_seed)],
    )
    assert out[0].curves["loss"][-1] < 1e-4
    assert out[0].scalars["diverged_round"] == -1


def test_divergence_is_recorded_with_its_round(global_seed):
    X, y = sphere(8, 4, np.random.default_rng(global_seed))
    out = train(
        X,
        y,
        m=200,
        kappa=1.0,
        eta=50.0,
        rounds=30,
        xi=1.0,
        p=1,
        tau=1,
        rngs=[np.random.default_rng(global_seed)],
    )
    k = out[0].scalars["diverged_round"]
    assert k > 0
    assert np.isnan(out[0].curves["loss"][int(k) :]).all()


def test_float32_option_tracks_float64(global_seed):
    X, y = sphere(8, 4, np.random.default_rng(global_seed))
    kw = dict(m=500, kappa=1.0, eta=0.05, rounds=50, xi=0.5, p=2, tau=2)
    a = train(X, y, rngs=[np.random.default_rng(3)], **kw)[0].curves["loss"]
    b = train(X, y, rngs=[np.random.default_rng(3)], dtype="float32", **kw)[0].curves["loss"]
    np.testing.assert_allclose(a, b, rtol=1e-3)
