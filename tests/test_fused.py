"""The fused one-pass rounds (verify/trainers/fused_kernels.py) against the blocked NumPy
passes and the plain reference loop, both paths of the trainer, and the NumPy fallback."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from verify.data import sphere
from verify.trainers import fused_kernels, unrolled_kernels
from verify.trainers.blocked_kernels import Kernels
from verify.trainers.mask_draws import draw_key, index_lists, threshold
from verify.trainers.masked_shallow import init_weights, train
from verify.trainers.unrolled_kernels import kernel

from .conftest import ROOT
from .reference_loop import reference_train
from .test_trainer import _variant_reference

needs_numba = pytest.mark.skipif(not fused_kernels.AVAILABLE, reason="numba is not installed")


def _plain_round(X, y, W, a, masks, eta, s, average=True):
    """One round with tau = 1 of the reference loop: every surrogate's copy, then the mean."""
    m = W.shape[0]
    total, count = np.zeros_like(W), np.zeros(m)
    for idx in masks:
        mask = np.zeros(m)
        mask[idx] = 1.0
        Z = X @ W.T
        err = (np.maximum(Z, 0) * mask * a).sum(axis=1) * s - y
        grad = ((err[:, None] * (Z > 0) * mask * a).T @ X) * s
        total += -eta * grad * mask[:, None]
        count += mask
    held = count > 0
    out = W.copy()
    out[held] += total[held] / (count[held, None] if average else 1.0)
    return out


def _round_inputs(rng, n, d, m, p, dtype="float64"):
    X = rng.standard_normal((n, d)).astype(dtype)
    W, a = init_weights(rng, m, d, 1.0)
    err = rng.standard_normal((p, n)).astype(dtype)
    return X, np.ascontiguousarray(W.T.astype(dtype)), a.astype(dtype), err


@needs_numba
@pytest.mark.parametrize("m", [1, 63, 64, 65, 1000])
def test_fused_round_matches_the_blocked_passes_and_the_plain_round(m, global_seed):
    """Forward sums against ``Kernels.forward``; the update against the plain round (1e-10)."""
    rng = np.random.default_rng(global_seed)
    X, y = sphere(8, 4, rng)
    W, a = init_weights(rng, m, 4, 1.0)
    key, nkey = draw_key(rng), draw_key(rng)
    masks, nxt = index_lists(key, m, 3, 0.6), index_lists(nkey, m, 3, 0.6)
    s, eta = 1.0 / (0.6 * math.sqrt(m)), 0.3
    kernels = Kernels(X, m)

    def restricted(idx):
        out = np.zeros_like(a)
        out[idx] = a[idx]
        return out

    WT = W.T.copy()  # C-contiguous, never a view of W
    sums = fused_kernels.fused_round(WT, a, X, 0, 0, key, 3, 0.6, np.zeros((0, 8)), 0.0, True)
    blocked = kernels.forward(W, [a] + [restricted(idx) for idx in masks])
    np.testing.assert_allclose(sums, blocked, rtol=1e-10, atol=1e-12 * np.abs(blocked).max())
    assert np.array_equal(WT.T, W)  # no training: the weights are untouched

    err = s * sums[1:] - y
    new = fused_kernels.fused_round(WT, a, X, key, 3, nkey, 3, 0.6, err, eta * s, True)
    expected = _plain_round(X, y, W, a, masks, eta, s)
    np.testing.assert_allclose(WT.T, expected, rtol=1e-10, atol=1e-14)
    after = kernels.forward(expected, [a] + [restricted(idx) for idx in nxt])
    np.testing.assert_allclose(new, after, rtol=1e-10, atol=1e-12 * np.abs(after).max())


@needs_numba
def test_fused_round_comparison_detects_a_wrong_update(global_seed):
    """Negative control: summing instead of averaging the copies fails the comparison."""
    rng = np.random.default_rng(global_seed)
    X, y = sphere(8, 4, rng)
    m = 500
    W, a = init_weights(rng, m, 4, 1.0)
    key = draw_key(rng)
    masks = index_lists(key, m, 3, 0.6)
    s, eta = 1.0 / (0.6 * math.sqrt(m)), 0.3
    WT = W.T.copy()  # C-contiguous, never a view of W
    sums = fused_kernels.fused_round(WT, a, X, 0, 0, key, 3, 0.6, np.zeros((0, 8)), 0.0, True)
    fused_kernels.fused_round(WT, a, X, key, 3, 0, 0, 0.6, s * sums[1:] - y, eta * s, False)
    expected = _plain_round(X, y, W, a, masks, eta, s)
    assert not np.allclose(WT.T, expected, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(WT.T, _plain_round(X, y, W, a, masks, eta, s, average=False))


def _unrolled_against_loops(n, d, p, m, dtype, rng, source=None, xi=0.7):
    """Run the kernel generated for (n, d, p) (or from ``source``) and the loops over a
    sequence of calls on the same weights and words: the first forward pass (0, p), training
    rounds feeding the next (p, p) with averaged and summed copies, the last round (p, 0),
    and a forward pass after it, each call's key the previous call's next key.  Returns
    whether every call gave the same weights and sums bit for bit."""
    X, WT, a, err = _round_inputs(rng, n, d, m, p, dtype)
    T = threshold(xi)
    step = WT.dtype.type(0.05)
    if source is None:
        unrolled = kernel(n, d, p)
    else:
        namespace: dict = {}
        exec(source.replace("cache=True", "cache=False"), namespace)
        unrolled = namespace["kernel"]
    words = unrolled_kernels.Words(m, n, p)
    W1, W2 = WT.copy(), WT.copy()
    same = True
    nkey = draw_key(rng)
    calls = [(0, p, True), (p, p, True), (p, p, False), (p, 0, True), (0, p, True)]
    for p_now, q, average in calls:
        key, nkey = nkey, draw_key(rng)
        full = np.zeros((p, n), dtype=dtype)
        full[:p_now] = err[:p_now]
        before = W1.copy()
        loops = fused_kernels._round(W1, a, X, key, p_now, nkey, q, T, err[:p_now], step, average)
        fast = unrolled(W2, a, X, key, p_now, nkey, q, T, full, step, average, words.bits)
        same &= np.array_equal(W1, W2) and np.array_equal(loops, fast)
        if m > 1:  # a training round moves the weights
            assert (p_now == 0) == np.array_equal(W1, before)
    return same


@needs_numba
@pytest.mark.parametrize("n,d,p", [(8, 4, 4), (8, 4, 1), (3, 5, 2), (1, 1, 3)])
@pytest.mark.parametrize("m", [1, 63, 64, 65, 1000])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_unrolled_kernel_is_the_loops_bit_for_bit(n, d, p, m, dtype, global_seed):
    """The kernel generated for (n, d, p) returns the loops' weights and sums exactly, with
    the gradient table (m at least TABLE_ROWS 2^(n + p): (3, 5, 2) from m = 128, (1, 1, 3)
    from 64) and without it."""
    rng = np.random.default_rng(global_seed)
    assert _unrolled_against_loops(n, d, p, m, dtype, rng)


@needs_numba
@pytest.mark.parametrize("n,d,p", [(8, 4, 4), (3, 5, 2)])
@pytest.mark.parametrize("m", [65, 1000])
def test_unrolled_kernel_at_keep_probability_one_is_the_loops(n, d, p, m, global_seed):
    """xi = 1: the kernel draws no masks and copies the full network's lanes to every
    surrogate; the loops draw and sum them: the same numbers."""
    rng = np.random.default_rng(global_seed)
    assert _unrolled_against_loops(n, d, p, m, "float64", rng, xi=1.0)


@needs_numba
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_unrolled_kernel_with_its_table_is_the_loops_at_the_wide_size(dtype, global_seed):
    """n = 8, d = 4, p = 4 (the non-vacuous case's size) with m large enough for the table."""
    m = unrolled_kernels.TABLE_ROWS * 2 ** (8 + 4) + 5
    assert _unrolled_against_loops(8, 4, 4, m, dtype, np.random.default_rng(global_seed))


@needs_numba
def test_unrolled_comparison_detects_a_changed_table():
    """Negative control: the table's first gradient coordinate summed over the 8 points in
    the reverse order is not bit-identical to the loops (the comparison sees the table)."""
    n, d, p, m = 8, 4, 1, 3000  # tabled from m = 4 * 2^9
    src = unrolled_kernels.source(n, d, p)
    first = "G[gb + 0] = zero + " + " + ".join(f"s{i} * x{i}_0" for i in range(n))
    reordered = "G[gb + 0] = zero + " + " + ".join(f"s{i} * x{i}_0" for i in reversed(range(n)))
    assert src.count(first) == 1
    changed = src.replace(first, reordered)
    assert not _unrolled_against_loops(n, d, p, m, "float64", np.random.default_rng(3), changed)
    assert _unrolled_against_loops(n, d, p, m, "float64", np.random.default_rng(3), src)


def test_unrolled_kernel_needs_the_words_of_the_previous_call():
    X, WT, a, err = _round_inputs(np.random.default_rng(0), 8, 4, 50, 2)
    with pytest.raises(ValueError, match="words"):
        fused_kernels.fused_round(WT, a, X, 1, 2, 2, 2, 0.5, err, 0.1, True, True)
    if not fused_kernels.AVAILABLE:
        return
    words = unrolled_kernels.Words(50, 8, 2)
    fused_kernels.fused_round(WT, a, X, 0, 0, 7, 2, 0.5, err[:0], 0.0, True, True, words)
    assert words.key == 7
    with pytest.raises(ValueError, match="holders of round key 7"):  # not the next round's key
        fused_kernels.fused_round(WT, a, X, 8, 2, 9, 2, 0.5, err, 0.1, True, True, words)
    fused_kernels.fused_round(WT, a, X, 7, 2, 9, 0, 0.5, err, 0.1, True, True, words)
    assert words.key is None


@needs_numba
def test_unrolled_comparison_detects_a_changed_sum_order(global_seed):
    """Negative control: the same kernel with one pre-activation sum reordered is not
    bit-identical (weights and output sums), though equal to rounding."""
    n, d, p, m = 3, 3, 2, 1000
    src = unrolled_kernels.source(n, d, p)
    first = "z0 = zero + " + " + ".join(f"x0_{k} * w{k}" for k in range(d))
    reordered = "z0 = zero + " + " + ".join(f"x0_{k} * w{k}" for k in reversed(range(d)))
    assert src.count(first) >= 1  # the forward pass's (one loop with draws, one without)
    namespace: dict = {}
    exec(src.replace(first, reordered).replace("cache=True", "cache=False"), namespace)
    rng = np.random.default_rng(global_seed)
    X, WT, a, err = _round_inputs(rng, n, d, m, p)
    args = (draw_key(rng), 0, draw_key(rng), p, threshold(0.9), err, 0.05, True)
    W1, W2 = WT.copy(), WT.copy()
    act1, act2 = (unrolled_kernels.Words(m, n, p).bits for _ in range(2))
    out1 = kernel(n, d, p)(W1, a, X, *args, act1)
    out2 = namespace["kernel"](W2, a, X, *args, act2)
    np.testing.assert_allclose(out1, out2, rtol=1e-10)
    assert not np.array_equal(out1, out2)


@needs_numba
def test_trainer_with_and_without_the_unrolled_kernel_agree(monkeypatch, global_seed):
    """The unrolled kernel is a speed choice only: the trainer's outputs are bit-identical."""
    X, y = sphere(8, 4, np.random.default_rng(global_seed))
    kw = dict(m=700, kappa=1.0, eta=0.2, rounds=12, xi=0.8, p=4, tau=1, monitor_every=5)

    def run():
        rngs = [np.random.default_rng(global_seed + r) for r in range(2)]
        return train(X, y, rngs=rngs, fused=True, **kw)

    used = []
    monkeypatch.setattr(fused_kernels, "use_unrolled", lambda *a: used.append(a) or True)
    fast = run()
    monkeypatch.setattr(fused_kernels, "use_unrolled", lambda *a: False)
    loops = run()
    assert used == [(8, 4, 4, 700 * 2 * 12)]
    for f, g in zip(fast, loops, strict=True):
        assert np.array_equal(f.curves["loss"], g.curves["loss"])
        assert f.scalars == g.scalars


def test_unrolled_kernel_rule(monkeypatch, tmp_path):
    """Unrolled only within the size limits, and only where it is compiled already or the
    run is long enough to pay for compiling it."""
    monkeypatch.setenv("MASKVERIFY_KERNEL_DIR", str(tmp_path))
    big = fused_kernels.UNROLL_MIN_WORK
    assert fused_kernels.use_unrolled(2, 2, 7, big)
    assert not fused_kernels.use_unrolled(2, 2, 7, big - 1)  # nothing compiled in tmp_path
    assert not fused_kernels.use_unrolled(16, 16, 4, big)  # n d > UNROLL_MAX_ND
    assert not fused_kernels.use_unrolled(8, 4, fused_kernels.UNROLL_MAX_P + 1, big)


@pytest.mark.parametrize("fused", [False, pytest.param(True, marks=needs_numba)])
@pytest.mark.parametrize(
    "xi,p,scheme",
    [(0.5, 1, "bernoulli"), (0.3, 3, "bernoulli"), (1.0, 2, "bernoulli"), (0.9, 4, "bernoulli")],
)
def test_both_paths_match_the_reference_loop(fused, xi, p, scheme, global_seed):
    X, y = sphere(6, 3, np.random.default_rng(global_seed))
    kw = dict(m=70, kappa=1.0, eta=0.05, rounds=6, xi=xi, p=p, tau=1, scheme=scheme)
    seeds = [global_seed + 21, global_seed + 22]
    out = train(X, y, rngs=[np.random.default_rng(s) for s in seeds], fused=fused, **kw)
    ref = reference_train(X, y, seeds=seeds, **kw)
    for o, r in zip(out, ref, strict=True):
        np.testing.assert_allclose(o.curves["loss"], r, rtol=1e-10, atol=1e-12)


@needs_numba
@pytest.mark.parametrize("variant", ["no_averaging", "no_rescaling"])
def test_fused_variants_match_their_plain_loop(variant, global_seed):
    X, y = sphere(6, 3, np.random.default_rng(global_seed))
    kw = dict(m=30, kappa=1.0, eta=0.02, rounds=4, xi=0.4, p=3, tau=1, scheme="bernoulli")
    out = train(
        X, y, rngs=[np.random.default_rng(global_seed + 3)], variant=variant, fused=True, **kw
    )
    ref = _variant_reference(X, y, seed=global_seed + 3, variant=variant, **kw)
    np.testing.assert_allclose(out[0].curves["loss"], ref, rtol=1e-10, atol=1e-12)


@needs_numba
def test_fused_and_blocked_paths_report_the_same_outputs(global_seed):
    """Loss curves, proof events and kernel eigenvalues agree between the two paths; the
    fused path's numbers are bit-identical on a rerun; float32 follows float64."""
    X, y = sphere(8, 4, np.random.default_rng(global_seed))
    kw = dict(m=3000, kappa=1.0, eta=0.2, rounds=30, xi=0.7, p=4, tau=1, monitor_every=7)

    def run(fused, dtype="float64"):
        rngs = [np.random.default_rng(global_seed + r) for r in range(2)]
        return train(X, y, rngs=rngs, fused=fused, dtype=dtype, **kw)

    fused, blocked, again = run(True), run(False), run(True)
    for f, b, g in zip(fused, blocked, again, strict=True):
        np.testing.assert_allclose(f.curves["loss"], b.curves["loss"], rtol=1e-10)
        assert f.scalars.keys() == b.scalars.keys()
        for key in f.scalars:
            np.testing.assert_allclose(f.scalars[key], b.scalars[key], rtol=1e-9, atol=1e-15)
        assert np.array_equal(f.curves["loss"], g.curves["loss"])
        assert f.scalars == g.scalars
    for f32, f64 in zip(run(True, "float32"), fused, strict=True):
        np.testing.assert_allclose(f32.curves["loss"], f64.curves["loss"], rtol=1e-3)


def test_partitions_match_the_reference_loop(global_seed):
    X, y = sphere(6, 3, np.random.default_rng(global_seed))
    kw = dict(m=70, kappa=1.0, eta=0.05, rounds=6, xi=0.5, p=3, tau=1, scheme="partition")
    seeds = [global_seed + 21, global_seed + 22]
    out = train(X, y, rngs=[np.random.default_rng(s) for s in seeds], **kw)
    ref = reference_train(X, y, seeds=seeds, **kw)
    for o, r in zip(out, ref, strict=True):
        np.testing.assert_allclose(o.curves["loss"], r, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="Bernoulli"):
        train(X, y, rngs=[np.random.default_rng(0)], fused=True, **kw)


def test_fused_rounds_refuse_several_local_steps():
    X, y = sphere(6, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="tau = 1"):
        train(
            X,
            y,
            m=10,
            kappa=1.0,
            eta=0.1,
            rounds=1,
            xi=0.5,
            p=1,
            tau=2,
            rngs=[np.random.default_rng(0)],
            fused=True,
        )


def test_numpy_fallback_without_numba(tmp_path, monkeypatch):
    """``MASKVERIFY_NUMBA=0``: no fused rounds, the blocked NumPy passes train (as without
    numba): the numbers of this process's blocked passes without the compiled helpers."""
    script = (
        "import numpy as np\n"
        "from verify.data import sphere\n"
        "from verify.trainers import fused_kernels\n"
        "from verify.trainers.masked_shallow import train\n"
        "assert not fused_kernels.AVAILABLE and not fused_kernels.use_fused(8, 4)\n"
        "X, y = sphere(8, 4, np.random.default_rng(0))\n"
        "kw = dict(m=50, kappa=1.0, eta=0.1, rounds=3, xi=0.5, p=2, tau=1)\n"
        "out = train(X, y, rngs=[np.random.default_rng(1)], **kw)\n"
        f"np.save({str(tmp_path / 'loss.npy')!r}, out[0].curves['loss'])\n"
        "try:\n"
        "    train(X, y, rngs=[np.random.default_rng(1)], fused=True, **kw)\n"
        "except ValueError as exc:\n"
        "    assert 'numba' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('fused=True without numba must fail')\n"
    )
    env = {**os.environ, "MASKVERIFY_NUMBA": "0"}
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True)
    X, y = sphere(8, 4, np.random.default_rng(0))
    kw = dict(m=50, kappa=1.0, eta=0.1, rounds=3, xi=0.5, p=2, tau=1)
    from verify.trainers import block_helpers

    monkeypatch.setattr(block_helpers, "AVAILABLE", False)
    blocked = train(X, y, rngs=[np.random.default_rng(1)], fused=False, **kw)
    assert np.array_equal(np.load(tmp_path / "loss.npy"), blocked[0].curves["loss"])


@needs_numba
def test_generating_a_kernel_removes_stale_ones(monkeypatch, tmp_path):
    """A kernel generated from changed sources replaces the files of the same size."""
    monkeypatch.setenv("MASKVERIFY_KERNEL_DIR", str(tmp_path))
    stale = tmp_path / "round_n2_d3_p2_000000000000.py"
    stale.write_text("stale = True\n")
    (tmp_path / "__pycache__").mkdir()
    cached = tmp_path / "__pycache__" / f"{stale.stem}.kernel-9.py311.nbi"
    cached.write_bytes(b"")
    other = tmp_path / "round_n2_d3_p3_000000000000.py"  # another size: kept
    other.write_text("other = True\n")
    unrolled_kernels.kernel.cache_clear()
    try:
        unrolled_kernels.kernel(2, 3, 2)
    finally:
        unrolled_kernels.kernel.cache_clear()
    assert not stale.exists() and not cached.exists() and other.exists()
    assert len(list(tmp_path.glob("round_n2_d3_p2_*.py"))) == 1


def _outputs_equal(a, b) -> bool:
    """Bit-for-bit equality of two runs' curves and scalars (NaN equal to NaN)."""
    same = all(np.array_equal(a.curves[k], b.curves[k], equal_nan=True) for k in a.curves)
    scalars = all(
        a.scalars[k] == b.scalars[k] or (math.isnan(a.scalars[k]) and math.isnan(b.scalars[k]))
        for k in a.scalars
    )
    return same and scalars


@needs_numba
@pytest.mark.parametrize("xi,p", [(0.9, 4), (1.0, 1), (0.7, 3)])
def test_independent_repetitions_are_the_same_trained_alone(xi, p, global_seed):
    """Where the trainer declares its repetitions independent (the fused rounds), each one
    trained alone is bit for bit the same as trained with the others; negative control:
    the blocked passes, whose batches mix repetitions, are declared dependent and differ."""
    from verify.trainers.masked_shallow import independent_repetitions

    X, y = sphere(8, 4, np.random.default_rng(global_seed))
    kw = dict(m=300, kappa=1.0, eta=0.05, rounds=20, xi=xi, p=p)
    seeds = [global_seed + r for r in range(3)]

    def gens(chosen):
        return [np.random.default_rng(s) for s in chosen]

    assert independent_repetitions(8, 4, 1, p, "bernoulli", xi)
    together = train(X, y, rngs=gens(seeds), tau=1, **kw)
    alone = [train(X, y, rngs=gens([s]), tau=1, **kw)[0] for s in seeds]
    assert all(_outputs_equal(t, a) for t, a in zip(together, alone, strict=True))

    assert not independent_repetitions(8, 4, 2, p, "bernoulli", xi)
    together = train(X, y, rngs=gens(seeds), tau=2, block=128, **kw)
    alone = [train(X, y, rngs=gens([s]), tau=2, block=128, **kw)[0] for s in seeds]
    assert not all(_outputs_equal(t, a) for t, a in zip(together, alone, strict=True))
