import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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
    m, p, xi = 20000, 5, 0.3
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


def test_float32_option_tracks_float64(global_seed):
    X, y = sphere(8, 4, np.random.default_rng(global_seed))
    kw = dict(m=500, kappa=1.0, eta=0.05, rounds=50, xi=0.5, p=2, tau=2)
    a = train(X, y, rngs=[np.random.default_rng(3)], **kw)[0].curves["loss"]
    b = train(X, y, rngs=[np.random.default_rng(3)], dtype="float32", **kw)[0].curves["loss"]
    np.testing.assert_allclose(a, b, rtol=1e-3)


def _variant_reference(X, y, *, m, kappa, eta, rounds, xi, p, tau, scheme, seed, variant):
    """The plain loop of ``reference_loop`` with the mutation-testing variants."""
    from verify.trainers.masked_shallow import init_weights

    keep = 1.0 / p if scheme == "partition" else xi
    out_scale = 1.0 if variant == "no_rescaling" else keep
    rng = np.random.default_rng(seed)
    W, a = init_weights(rng, m, X.shape[1], kappa)
    curve = [float(np.sum((y - np.maximum(X @ W.T, 0) @ a / np.sqrt(m)) ** 2))]
    for _ in range(rounds):
        total, count = np.zeros_like(W), np.zeros(m)
        for idx in draw_masks(rng, m, xi, p, scheme):
            mask = np.zeros(m)
            mask[idx] = 1.0
            Wl = W.copy()
            for _ in range(tau):
                Z = X @ Wl.T
                u = (np.maximum(Z, 0) * mask * a).sum(axis=1) / (out_scale * np.sqrt(m))
                grad = (((u - y)[:, None] * (Z > 0) * mask * a).T @ X) / (out_scale * np.sqrt(m))
                Wl = Wl - eta * grad
            total += (Wl - W) * mask[:, None]
            count += mask
        held = count > 0
        W = W.copy()
        W[held] += total[held] / (1.0 if variant == "no_averaging" else count[held, None])
        curve.append(float(np.sum((y - np.maximum(X @ W.T, 0) @ a / np.sqrt(m)) ** 2)))
    return np.array(curve)


@pytest.mark.parametrize("variant", ["exact", "no_averaging", "no_rescaling"])
@pytest.mark.parametrize("xi,p,scheme", [(0.4, 3, "bernoulli"), (0.3, 1, "bernoulli")])
def test_variants_match_their_plain_loop(variant, xi, p, scheme, global_seed):
    X, y = sphere(6, 3, np.random.default_rng(global_seed))
    kw = dict(m=30, kappa=1.0, eta=0.02, rounds=4, xi=xi, p=p, tau=2, scheme=scheme)
    out = train(X, y, rngs=[np.random.default_rng(global_seed + 3)], variant=variant, **kw)
    ref = _variant_reference(X, y, seed=global_seed + 3, variant=variant, **kw)
    np.testing.assert_allclose(out[0].curves["loss"], ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "xi,p,tau,scheme",
    [(0.3, 1, 2, "bernoulli"), (0.5, 3, 1, "partition"), (0.7, 2, 3, "bernoulli")],
)
def test_long_runs_match_reference_loop(xi, p, tau, scheme, global_seed):
    """Beyond the periodic full recomputation of a tracked network output (RESYNC rounds)."""
    from verify.trainers.masked_shallow import RESYNC

    X, y = sphere(10, 4, np.random.default_rng(global_seed))
    kw = dict(m=60, kappa=1.0, eta=0.1, rounds=2 * RESYNC + 3, xi=xi, p=p, tau=tau, scheme=scheme)
    out = train(X, y, rngs=[np.random.default_rng(global_seed + 5)], **kw)
    ref = reference_train(X, y, seeds=[global_seed + 5], **kw)
    np.testing.assert_allclose(out[0].curves["loss"], ref[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("xi,p,tau", [(0.25, 1, 3), (0.5, 3, 2), (1.0, 2, 1)])
def test_blocking_and_strategy_do_not_change_results(xi, p, tau, monkeypatch, global_seed):
    """Block size, reuse of the loss pass and output tracking only change the rounding."""
    from verify.trainers import masked_shallow

    X, y = sphere(12, 5, np.random.default_rng(global_seed))
    kw = dict(m=230, kappa=1.0, eta=0.05, rounds=20, xi=xi, p=p, tau=tau)

    def curves(**extra):
        outs = train(X, y, rngs=[np.random.default_rng(s) for s in (1, 2)], **kw, **extra)
        return np.stack([o.curves["loss"] for o in outs])

    expected = curves(block=10**6)
    for block in (1, 7, 64):
        np.testing.assert_allclose(curves(block=block), expected, rtol=1e-12)
    for reuse, incremental in ((0.0, 0.0), (2.0, 0.0), (2.0, 2.0)):
        monkeypatch.setattr(masked_shallow, "REUSE_KEEP", reuse)
        monkeypatch.setattr(masked_shallow, "INCREMENTAL_KEEP", incremental)
        np.testing.assert_allclose(curves(), expected, rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 40),
    xi=st.sampled_from([0.1, 0.3, 0.5, 0.8, 1.0]),
    p=st.integers(1, 4),
    tau=st.integers(1, 3),
    scheme=st.sampled_from(["bernoulli", "partition"]),
    block=st.integers(1, 50),
    seed=st.integers(0, 2**16),
)
def test_random_settings_match_reference_loop(m, xi, p, tau, scheme, block, seed):
    X, y = sphere(5, 3, np.random.default_rng(seed))
    kw = dict(m=m, kappa=1.0, eta=0.05, rounds=3, xi=xi, p=p, tau=tau, scheme=scheme)
    out = train(X, y, rngs=[np.random.default_rng(seed + 1)], block=block, **kw)
    ref = reference_train(X, y, seeds=[seed + 1], **kw)
    np.testing.assert_allclose(out[0].curves["loss"], ref[0], rtol=1e-10, atol=1e-12)


def _direct_masked_ntk_min(X, W, masks, m):
    """Definition 1 term by term in float64: the oracle of the trainer's sampled event."""
    from bounds.ntk import cosine_matrix

    active = (W @ X.T >= 0).astype(np.float64)
    G = cosine_matrix(X)
    return min(
        np.linalg.eigvalsh(G * (active[idx].T @ active[idx]) / m)[0] for idx in masks
    )


@pytest.mark.parametrize(
    "xi,p,scheme", [(1.0, 4, "bernoulli"), (0.6, 3, "bernoulli"), (0.5, 3, "partition")]
)
@pytest.mark.parametrize(
    "n,m,patterns",  # patterns of one byte, of two; products (too many points, too few neurons)
    [(8, 3000, True), (12, 5000, True), (20, 3000, False), (12, 3000, False)],
)
def test_masked_ntk_event_is_definition_1_exactly(xi, p, scheme, n, m, patterns, global_seed):
    """The exact neuron counts (activity-pattern histograms where by_pattern, float32
    products otherwise; one count per distinct mask) give Definition 1's eigenvalue bit
    for bit; negative control: counting a different surrogate's neurons is caught."""
    from bounds.ntk import cosine_matrix
    from verify.trainers.masked_shallow import _masked_ntk_min, by_pattern

    assert by_pattern(n, m) == patterns
    rng = np.random.default_rng(global_seed)
    X, _ = sphere(n, 4, rng)
    W = rng.standard_normal((m, 4))
    masks = draw_masks(rng, m, xi, p, scheme)
    got = _masked_ntk_min(X, cosine_matrix(X), W, masks, m)
    assert got == _direct_masked_ntk_min(X, W, masks, m)
    other = draw_masks(np.random.default_rng(global_seed + 1), m, 0.5, p, "bernoulli")
    assert got != _direct_masked_ntk_min(X, W, other, m)
