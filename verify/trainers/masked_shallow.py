"""Masked-surrogate training of a one-hidden-layer ReLU network (arXiv:2112.02668, Alg. 1).

Model: ``f(W, x) = (1/sqrt(m)) sum_r a_r relu(w_r.x)``, ``a_r`` fixed +-1, ``w_r(0) ~ N(0, kappa^2 I)``.
Round k: draw p masks (Bernoulli(xi) per neuron, or a random partition into p groups for
IST, where a neuron's keep probability is 1/p); on every surrogate run tau GD steps of
size eta on ``1/2 ||y - u^(l)||^2``; each neuron's new weight is the average of its trained
copies over the surrogates that hold it; neurons in no surrogate keep their weight.  After
every round the *full* network's loss ``||y - u(k)||^2`` is logged.

Two output conventions (``scaling``), with ``s = sum_{r in mask l} a_r relu(w_r.x)``:

* ``"inverted"`` (the authors' public code, ``JLiao980706/MaskedNTK-TMLR``): surrogate
  ``u^(l) = s / (xi sqrt(m))``, full network ``u = (1/sqrt(m)) sum_r a_r relu(w_r.x)``;
* ``"paper"`` (arXiv:2112.02668v1, Section 3 and the display before eq. (1)): surrogate
  ``f_m = s / sqrt(m)`` unscaled, full network ``u = (xi/sqrt(m)) sum_r a_r relu(w_r.x)``.

An inverted run with step eta and labels y is exactly the paper run with step eta/xi^2 and
labels xi*y, every loss divided by xi^2 (tested to rounding).

Measured proof events (Theorem 2 of the paper), on a stated sample of rounds (every
``monitor_every``-th round start, round 0 included, and the end): the smallest eigenvalue of
every surrogate's masked NTK ``(1/m) sum_r m_r 1{w_r.x_i >= 0, w_r.x_j >= 0} x_i.x_j``
(Definition 1, at the round's first local step) and the largest distance of a neuron from its
initialisation ``max_r ||w_r - w_r(0)||``.

Implementation (the cost of a local step is the useful ``4 n d k`` FLOPs for the k selected
neurons, in two matmuls per block, plus a few passes over in-cache memory):

* Gathering: the selected neurons of every surrogate of every repetition are gathered
  into a ``(K, d)`` matrix of copies, in batches of up to :data:`BATCH_ROWS` copies (a
  surrogate with more copies is a batch of its own).  Nothing is ever computed for
  unselected neurons and no 0/1 mask multiplies a full matrix.
* Blocking: a batch is processed in column blocks of its ``n x K`` pre-activations that
  stay in cache (:mod:`verify.trainers.blocked_kernels`); the full ``n x K`` temporaries
  are never formed, only a boolean activity pattern.  A batch runs all tau local steps
  before the next one is gathered; each block's backward pass is fused with its forward
  pass at the new weights.
* Loss: the full network's loss after round k - 1 is computed at the start of round k, over
  all m neurons.  From keep probability :data:`REUSE_KEEP` on, this pass also yields every
  surrogate's output and activity pattern for its first local step (its coefficients
  restricted to the surrogate's neurons), so the first forward pass is not repeated.
  With disjoint masks (p = 1, or a partition) and keep probability below
  :data:`INCREMENTAL_KEEP`, the network's output is instead updated by the change of the
  selected neurons' contribution (their last step also runs forward), and recomputed over
  all m neurons every :data:`RESYNC` rounds.
* Averaging: each neuron's copies are summed per surrogate into an ``(m, d)`` accumulator;
  with disjoint masks a neuron simply takes its one trained copy.
* Compiled elementwise passes: where numba is available, the activity, the ReLU sums, the
  0/1 activity and the scaled step of each block are compiled loops around its two
  products (:mod:`verify.trainers.block_helpers`).
* One local step (tau = 1, Bernoulli masks, ``n d`` up to
  :data:`~verify.trainers.fused_kernels.MAX_ND`, or up to
  :data:`~verify.trainers.fused_kernels.SINGLE_MAX_ND` for p = 1, numba available, and not
  the incremental case above, whose work is proportional to the keep probability): none of
  the above.  A round is one fused pass over each repetition's weights
  (:mod:`verify.trainers.fused_kernels`) that moves every neuron by the mean of its copies'
  steps and computes, at the new weights, the next loss and the next round's surrogate
  outputs.  Each repetition is then its own pass: trained alone it gives the same numbers
  bit for bit (:func:`independent_repetitions`), so the runner may spread a point's
  repetitions over the workers.

These choices change results only at rounding level; the tests compare the loss curves
with a plain loop to a relative 1e-10.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from bounds.ntk import cosine_matrix, finite_width_gram

from . import fused_kernels, mask_draws, unrolled_kernels
from .blocked_kernels import Kernels
from .outputs import RunOutput, divergence_limit

#: the exact algorithm and the broken variants used by mutation testing
VARIANTS = ("exact", "no_averaging", "no_rescaling")

#: keep probability from which a round's first local step reuses the full network's
#: forward pass (which logs the loss) instead of running the selected copies forward
REUSE_KEEP = 0.3

#: with disjoint masks (p = 1, or a partition) and a keep probability below this, the
#: full network's output is updated from the selected neurons' change instead of being
#: recomputed over all m neurons every round
INCREMENTAL_KEEP = 0.6

#: rounds between full recomputations of a tracked network output (bounds the drift of
#: the running sum to a few roundings)
RESYNC = 16

#: rows (neuron copies) of the surrogates trained together: small surrogates share the
#: blocked passes, so the number of NumPy calls per step does not grow with p and the
#: repetitions
BATCH_ROWS = 4096

#: output conventions: the authors' code ("inverted") and the paper's text ("paper")
SCALINGS = ("inverted", "paper")

#: rounds between samples of the proof events when ``monitor_every = 0`` (automatic):
#: about this many samples per run
MONITOR_SAMPLES = 50


def output_scales(keep: float, m: int, scaling: str, variant: str = "exact") -> tuple[float, float]:
    """``(surrogate scale, full-network scale)`` multiplying raw ReLU sums.

    ``inverted``: ``(1/(xi sqrt m), 1/sqrt m)``; ``paper``: ``(1/sqrt m, xi/sqrt m)``.  The
    mutant ``no_rescaling`` puts both on the full network's scale (in both conventions the
    surrogate then loses its ``1/xi`` relative to the full network).
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    root = 1.0 / math.sqrt(m)
    full = keep * root if scaling == "paper" else root
    surrogate = full if variant == "no_rescaling" else full / keep
    return surrogate, full


def monitor_interval(rounds: int, every: int) -> int:
    """Rounds between samples of the proof events (``every = 0``: automatic)."""
    return every if every > 0 else max(1, rounds // MONITOR_SAMPLES)


def init_weights(
    rng: np.random.Generator, m: int, d: int, kappa: float
) -> tuple[np.ndarray, np.ndarray]:
    """Hidden weights ``N(0, kappa^2 I)`` and output signs uniform on {-1, +1}."""
    W = kappa * rng.standard_normal((m, d))
    a = 2.0 * rng.integers(0, 2, size=m) - 1.0
    return W, a


def draw_masks(
    rng: np.random.Generator, m: int, xi: float, p: int, scheme: str
) -> list[np.ndarray]:
    """Indices of the neurons of each of the p surrogates of one round.

    ``bernoulli``: each neuron kept independently with probability xi in each surrogate,
    from the round's key (one draw of ``rng``; :mod:`~verify.trainers.mask_draws`).
    ``partition``: a uniformly random permutation split into p near-equal groups (IST).
    """
    if scheme == "partition":
        return np.array_split(rng.permutation(m), p)
    return mask_draws.index_lists(mask_draws.draw_key(rng), m, p, xi)


def train(
    X: np.ndarray,
    y: np.ndarray,
    *,
    m: int,
    kappa: float,
    eta: float,
    rounds: int,
    xi: float,
    p: int,
    tau: int,
    scheme: str = "bernoulli",
    rngs: Sequence[np.random.Generator],
    init_rngs: Sequence[np.random.Generator] | None = None,
    dtype: str = "float64",
    variant: str = "exact",
    block: int | None = None,
    scaling: str = "inverted",
    monitor_every: int = 0,
    fused: bool | None = None,
) -> list[RunOutput]:
    """Train ``len(rngs)`` independent repetitions at one parameter set.

    Each repetition draws its initialisation from ``init_rngs[r]`` (default: ``rngs[r]``)
    and then, round by round, its masks from ``rngs[r]``, in the same order as the plain
    reference loop in the tests.  ``block`` is the number of neuron copies per cache block
    (default: :data:`~verify.trainers.blocked_kernels.BLOCK_BYTES` per buffer); results do
    not depend on it beyond rounding.

    ``variant`` selects a deliberately broken algorithm for mutation testing only
    (:mod:`verify.mutants`): ``no_averaging`` sums the trained copies of a neuron instead
    of averaging them, ``no_rescaling`` drops the surrogates' ``1/xi`` output scaling.
    ``scaling`` is the output convention (:func:`output_scales`); ``monitor_every`` the
    rounds between samples of the proof events (0: about :data:`MONITOR_SAMPLES` samples).

    ``fused`` chooses the fused one-pass rounds of :mod:`~verify.trainers.fused_kernels`
    (only for tau = 1; needs numba) over the blocked NumPy passes; ``None`` applies the
    measured crossover rule :func:`~verify.trainers.fused_kernels.use_fused`.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    R = len(rngs)
    ftype = np.dtype(dtype)
    X = np.asarray(X, dtype=ftype)
    y = np.asarray(y, dtype=ftype)
    n, d = X.shape
    keep = 1.0 / p if scheme == "partition" else xi
    inits = [init_weights(rng, m, d, kappa) for rng in (init_rngs or rngs)]
    W = np.concatenate([w for w, _ in inits]).astype(ftype)
    a = np.concatenate([s for _, s in inits]).astype(ftype)
    W0 = W.copy()
    scale, full_scale = output_scales(keep, m, scaling, variant)
    root_m = ftype.type(full_scale)
    every = monitor_interval(rounds, monitor_every)
    ntk_min = np.full(R, np.inf)
    movement = np.zeros(R)
    loss = np.full((rounds + 1, R), np.nan)
    diverged = np.full(R, -1)
    events = _Events(X, W0, m, every, movement, ntk_min)
    if fused is None:
        fused = fused_rounds(n, d, tau, p, scheme, keep)
    if fused and tau != 1:
        raise ValueError("the fused rounds train tau = 1 only")
    if fused and scheme != "bernoulli":
        raise ValueError("the fused rounds draw Bernoulli masks; partitions use the blocked passes")
    if fused and not fused_kernels.AVAILABLE:
        raise ValueError(
            "the fused rounds need numba (pip install numba), or MASKVERIFY_NUMBA is 0"
        )
    run = _Rounds(X, y, W, a, rngs, loss, diverged, events, m, xi, p, scheme, eta, scale)
    run.root_m, run.rounds, run.tau, run.variant = root_m, rounds, tau, variant
    if fused:
        _fused_passes(run)
    else:
        _blocked_passes(run, block)
    outputs = []
    for r in range(R):
        curve = loss[:, r].copy()
        if diverged[r] >= 0:
            curve[diverged[r] :] = np.nan
        W_r, W0_r = W[r * m : (r + 1) * m], W0[r * m : (r + 1) * m]
        ok = diverged[r] < 0
        outputs.append(
            RunOutput(
                curves={"loss": curve},
                scalars={
                    "diverged_round": float(diverged[r]),
                    "lambda_min_H0": _lambda_min(X, W0_r),
                    "lambda_min_Hend": _lambda_min(X, W_r) if ok else math.nan,
                    "max_movement": float(movement[r]) if ok else math.nan,
                    "masked_ntk_min": float(ntk_min[r]) if ok and rounds else math.nan,
                    "monitor_interval": float(every),
                },
            )
        )
    return outputs


def fused_rounds(n: int, d: int, tau: int, p: int, scheme: str, keep: float) -> bool:
    """The rule :func:`train` applies by default: the fused one-pass rounds for tau = 1
    where :func:`~verify.trainers.fused_kernels.use_fused` allows them, except the disjoint
    masks at low keep probability, whose incremental blocked rounds (work ~ xi) were
    measured faster than a full pass."""
    fusable = tau == 1 and fused_kernels.use_fused(n, d, scheme, p)
    return fusable and not incremental_rounds(p, scheme, keep)


def independent_repetitions(n: int, d: int, tau: int, p: int, scheme: str, keep: float) -> bool:
    """Whether :func:`train` computes each repetition exactly as if it were trained alone.

    True for the fused rounds (each repetition is its own pass; tested bit for bit); the
    blocked passes batch small surrogates of several repetitions together, so a
    repetition's rounding depends on its neighbours.
    """
    return fused_rounds(n, d, tau, p, scheme, keep)


@dataclass
class _Rounds:
    """What the passes of one call of :func:`train` share: the data, the repetitions'
    weights (rows ``r m`` to ``(r + 1) m``), generators and logs, and the round's
    parameters."""

    X: np.ndarray
    y: np.ndarray
    W: np.ndarray
    a: np.ndarray
    rngs: Sequence[np.random.Generator]
    loss: np.ndarray
    diverged: np.ndarray
    events: _Events
    m: int
    xi: float
    p: int
    scheme: str
    eta: float
    scale: float
    root_m: np.floating = np.float64(1.0)
    rounds: int = 0
    tau: int = 1
    variant: str = "exact"

    def fields(self) -> tuple:
        """Every field, in declaration order."""
        return tuple(vars(self).values())


def _blocked_passes(run: _Rounds, block: int | None) -> None:
    """The rounds with the blocked NumPy passes (any tau), filling ``loss`` and ``diverged``."""
    X, y, W, a, rngs, loss, diverged, events = run.fields()[:8]
    m, xi, p, scheme, eta, scale, root_m = run.fields()[8:15]
    rounds, tau, variant = run.rounds, run.tau, run.variant
    R = len(rngs)
    ftype = X.dtype
    n = X.shape[0]
    keep = 1.0 / p if scheme == "partition" else xi
    disjoint = p == 1 or scheme == "partition"
    incremental = incremental_rounds(p, scheme, keep)
    reuse = not incremental and keep >= REUSE_KEEP
    kernels = Kernels(X, max(m, BATCH_ROWS), block)
    full_active = np.empty((R * m, n), dtype=bool) if reuse else None
    active = np.empty((max(m, BATCH_ROWS), n), dtype=bool)
    #: each repetition's raw network output ``sum_r a_r relu(w_r.x_i)``, when tracked
    outputs_raw: list[np.ndarray | None] = [None] * R
    limit = np.full(R, np.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        # pass k logs the loss after round k - 1 and trains round k (the last pass only logs)
        for k in range(1, rounds + 2):
            training = k <= rounds
            masks = [draw_masks(rng, m, xi, p, scheme) for rng in rngs] if training else []
            live = [r for r in range(R) if diverged[r] < 0]
            events.sample(k - 1, W, live, masks)
            first_sums: dict[int, np.ndarray] = {}
            for r in live:
                W_r, a_r = W[r * m : (r + 1) * m], a[r * m : (r + 1) * m]
                if outputs_raw[r] is None or (k - 1) % RESYNC == 0:
                    first = training and full_active is not None
                    coefs = [a_r] + ([_restrict(a_r, idx) for idx in masks[r]] if first else [])
                    rows = full_active[r * m : (r + 1) * m] if first else None
                    sums = kernels.forward(W_r, coefs, rows)
                    outputs_raw[r] = sums[0].astype(np.float64)
                    if first:
                        first_sums[r] = sums[1:]
                raw = outputs_raw[r]
                res = (raw * root_m).astype(ftype) - y
                loss[k - 1, r] = float(res @ res)
            if training:
                segments = [
                    (r, l, r * m + idx) for r in live for l, idx in enumerate(masks[r]) if len(idx)
                ]
                changes = _train_round(
                    kernels,
                    W,
                    a,
                    segments,
                    first_sums if full_active is not None else None,
                    full_active,
                    active,
                    y=y,
                    eta=eta,
                    scale=scale,
                    tau=tau,
                    variant=variant,
                    disjoint=disjoint,
                    track=incremental,
                )
                for r in live:
                    raw = outputs_raw[r]
                    outputs_raw[r] = raw + changes.get(r, 0.0) if incremental else None
            limit = _check_divergence(loss, k - 1, diverged, limit)


def _fused_passes(run: _Rounds) -> None:
    """The rounds (tau = 1, Bernoulli masks) as one fused pass over each repetition's weights
    per round.

    With one local step, every surrogate holding neuron r computes its gradient at the
    round's starting weight, so the mean of its trained copies moves it by
    ``-(eta s a_r / c_r) sum_i 1[w_r.x_i > 0] x_i sum_{l holds r} err_li`` (c_r the number
    of surrogates holding r): one pass updates every neuron and, at the new weights,
    computes the network's output (the next loss) and the next round's surrogate outputs
    (its errors), so the next round's key is drawn one round ahead (each repetition's draws
    stay in the reference loop's order: one key per round).  The passes run on a transposed
    ``(d, m)`` copy of each repetition's weights (contiguous per coordinate), written back
    to ``W`` where the proof events are sampled and at the end.
    """
    X, y, W, a, rngs, loss, diverged, events = run.fields()[:8]
    m, xi, p, scheme, eta, scale, root_m = run.fields()[8:15]
    rounds, variant = run.rounds, run.variant
    R = len(rngs)
    n = X.shape[0]
    ftype = X.dtype
    limit = np.full(R, np.inf)
    rows = [slice(r * m, (r + 1) * m) for r in range(R)]
    WT = [W[s].T.copy() for s in rows]  # C-contiguous copies (never views of W)
    coefs = [a[s] for s in rows]

    def draw(training: bool) -> list[np.uint64]:
        return [mask_draws.draw_key(rng) for rng in rngs] if training else [np.uint64(0)] * R

    def write_back(live: Sequence[int]) -> None:
        for r in live:
            W[rows[r]] = WT[r].T

    unroll = fused_kernels.use_unrolled(n, X.shape[1], p, m * R * rounds)
    words = [unrolled_kernels.Words(m, n, p) if unroll else None for _ in rows]
    keys = draw(rounds > 0)
    q = p if rounds else 0

    def fused(r: int, key, p_now: int, nkey, q: int, err: np.ndarray, step: float, average: bool):
        return fused_kernels.fused_round(
            WT[r], coefs[r], X, key, p_now, nkey, q, xi, err, step, average, unroll, words[r]
        )

    sums = [fused(r, 0, 0, keys[r], q, np.zeros((0, n)), 0.0, True) for r in range(R)]
    average = variant != "no_averaging"
    with np.errstate(over="ignore", invalid="ignore"):
        # pass k logs the loss after round k - 1 and trains round k (the last pass only logs)
        for k in range(1, rounds + 2):
            training = k <= rounds
            live = [r for r in range(R) if diverged[r] < 0]
            if events.due(k - 1, training):
                write_back(live)
                masks = [mask_draws.index_lists(key, m, p, xi) for key in keys] if training else []
                events.sample(k - 1, W, live, masks)
            for r in live:
                res = (sums[r][0] * root_m).astype(ftype) - y
                loss[k - 1, r] = float(res @ res)
            if training:
                nxt = draw(k < rounds)
                q = p if k < rounds else 0
                for r in live:
                    err = (scale * sums[r][1:]).astype(ftype) - y
                    sums[r] = fused(r, keys[r], p, nxt[r], q, err, eta * scale, average)
                keys = nxt
            limit = _check_divergence(loss, k - 1, diverged, limit)
    write_back(range(R))


class _Events:
    """The sampled proof events of every repetition (see the module docstring)."""

    def __init__(
        self,
        X: np.ndarray,
        W0: np.ndarray,
        m: int,
        every: int,
        movement: np.ndarray,
        ntk_min: np.ndarray,
    ) -> None:
        self.X, self.W0, self.m, self.every = X.astype(np.float64), W0, m, every
        self.cosines = cosine_matrix(self.X)  # the masked NTK's x_i.x_j, fixed over the run
        self.movement, self.ntk_min = movement, ntk_min

    def due(self, k: int, training: bool) -> bool:
        """Whether round start k is sampled (every ``every``-th, and the end)."""
        return k % self.every == 0 or not training

    def sample(
        self, k: int, W: np.ndarray, live: Sequence[int], masks: Sequence[Sequence[np.ndarray]]
    ) -> None:
        """At round start k (a sampled one, or the end: ``masks`` empty), update the events."""
        if not self.due(k, bool(masks)):
            return
        m = self.m
        for r in live:
            rows = slice(r * m, (r + 1) * m)
            self.movement[r] = max(self.movement[r], _max_movement(W[rows], self.W0[rows]))
            if masks:
                worst = _masked_ntk_min(self.X, self.cosines, W[rows], masks[r], m)
                self.ntk_min[r] = min(self.ntk_min[r], worst)


def _check_divergence(
    loss: np.ndarray, k: int, diverged: np.ndarray, limit: np.ndarray
) -> np.ndarray:
    """Mark the repetitions whose loss after round k is not finite or above the limit.

    The limit is :func:`~verify.trainers.outputs.divergence_limit` of the initial loss (set at
    k = 0, returned).
    """
    if k == 0:
        return divergence_limit(loss[0])
    bad = (~np.isfinite(loss[k]) | (loss[k] > limit)) & (diverged < 0)
    diverged[bad] = k
    return limit


def incremental_rounds(p: int, scheme: str, keep: float) -> bool:
    """Whether the blocked rounds track the output from the selected neurons' change only
    (disjoint masks, keep probability below :data:`INCREMENTAL_KEEP`)."""
    return (p == 1 or scheme == "partition") and keep < INCREMENTAL_KEEP


def _restrict(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The coefficients ``a`` on the neurons ``idx`` and 0 elsewhere."""
    out = np.zeros_like(a)
    out[idx] = a[idx]
    return out


def _batches(
    segments: Sequence[tuple[int, int, np.ndarray]], rows: int
) -> Iterator[list[tuple[int, int, np.ndarray]]]:
    """Consecutive segments grouped into batches of at most ``rows`` rows (or one segment)."""
    batch: list[tuple[int, int, np.ndarray]] = []
    size = 0
    for seg in segments:
        if batch and size + len(seg[2]) > rows:
            yield batch
            batch, size = [], 0
        batch.append(seg)
        size += len(seg[2])
    if batch:
        yield batch


def _train_round(
    kernels: Kernels,
    W: np.ndarray,
    a: np.ndarray,
    segments: Sequence[tuple[int, int, np.ndarray]],
    first_sums: dict[int, np.ndarray] | None,
    full_active: np.ndarray | None,
    active: np.ndarray,
    *,
    y: np.ndarray,
    eta: float,
    scale: float,
    tau: int,
    variant: str,
    disjoint: bool,
    track: bool,
) -> dict[int, np.ndarray]:
    """One round of all repetitions, in place on the stacked weights ``W``.

    ``segments`` lists the surrogates ``(repetition, l, rows of W)``.  Their copies are
    gathered a batch of :data:`BATCH_ROWS` rows at a time, trained for tau steps and then
    averaged back per neuron.  ``first_sums[r][l]`` is surrogate l's raw ReLU sum at the
    round's start when the full network's forward pass has already computed it (the
    activity pattern of every neuron is then in ``full_active``); otherwise the copies are
    first run forward themselves.  ``active`` is the batch's activity buffer.

    ``disjoint`` says that no neuron is in two surrogates (p = 1, or a partition): each
    selected neuron then simply takes its trained copy's weight.  With ``track`` (only for
    disjoint masks) the last step also runs the copies forward at their final weights, and
    the change of each repetition's raw output ``sum_r a_r relu(w_r.x)`` is returned.
    """
    changes: dict[int, np.ndarray] = {}
    total = count = None
    if not disjoint:
        total = np.zeros_like(W)
        count = np.zeros(W.shape[0])
    for batch in _batches(segments, BATCH_ROWS):
        rows = np.concatenate([seg[2] for seg in batch])
        starts = np.zeros(len(batch) + 1, dtype=np.int64)
        np.cumsum([len(seg[2]) for seg in batch], out=starts[1:])
        W_b = np.take(W, rows, axis=0)
        a_b = np.take(a, rows)
        rate = (eta * scale) * a_b
        act = active[: len(rows)]
        blocks = kernels.plan(starts, len(rows))
        if first_sums is not None and full_active is not None:
            np.take(full_active, rows, axis=0, out=act)
            sums = np.stack([first_sums[r][l] for r, l, _ in batch])
        else:
            sums = kernels.segment_forward(W_b, a_b, starts, blocks, act)
        start = sums
        for t in range(tau):
            err = scale * sums - y
            sums = kernels.segment_step(
                W_b, a_b, rate, err, starts, blocks, act, forward_next=t < tau - 1 or track
            )
        if track:
            diff = sums.astype(np.float64) - start
            for j, (r, _, _) in enumerate(batch):
                changes[r] = changes.get(r, 0.0) + diff[j]
        if disjoint:
            W[rows] = W_b
            continue
        W_b -= np.take(W, rows, axis=0)
        for j, (_, _, idx) in enumerate(batch):
            delta = W_b[starts[j] : starts[j + 1]]
            delta += np.take(total, idx, axis=0)
            total[idx] = delta
            count[idx] += 1.0
    if total is not None and count is not None:
        held = np.flatnonzero(count)
        update = np.take(total, held, axis=0)
        if variant != "no_averaging":
            update /= count[held, None]
        update += np.take(W, held, axis=0)
        W[held] = update
    return changes


def _max_movement(W: np.ndarray, W0: np.ndarray) -> float:
    """``max_r ||w_r - w_r(0)||`` (Theorem 2's event: at most R = kappa lambda0 / (8 n))."""
    diff = W.astype(np.float64) - W0
    return float(np.sqrt(np.einsum("ij,ij->i", diff, diff).max()))


#: widths below which the masked NTK's neuron counts are summed in float32: every count
#: and partial sum is an integer below 2^24, exactly representable, so the counts are the
#: float64 ones bit for bit at half the GEMM cost
EXACT_COUNT_WIDTH = 2**24

#: data points up to which the counts may go through a histogram of the neurons' activity
#: patterns (:func:`by_pattern`) instead of a product of the activity matrix with itself per
#: surrogate.  n = 8, d = 4, m = 10^6, p = 4: 92 -> 45 ms per sampled round (measured, one
#: thread)
PATTERN_MAX_N = 16


def by_pattern(n: int, m: int) -> bool:
    """Whether the masked NTK's counts go through the activity patterns: at most
    :data:`PATTERN_MAX_N` points and no more patterns (2^n) than neurons, so a histogram's
    bins cost less than the rows of a product."""
    return n <= PATTERN_MAX_N and 2**n <= m


def _pattern_counts(active: np.ndarray, masks: Sequence[np.ndarray], m: int) -> list[np.ndarray]:
    """``sum_r m_{l,r} 1{.}_ri 1{.}_rj`` per distinct mask through the activity patterns:
    each neuron's n activity bits as one integer, a histogram of the patterns of the mask's
    neurons, and ``B^T diag(hist) B`` over the patterns present, with B their bits
    (integers: exact)."""
    n = active.shape[1]
    packed = np.packbits(active, axis=1, bitorder="little").astype(np.int64)
    pattern = packed[:, 0] if n <= 8 else packed[:, 0] | (packed[:, 1] << 8)
    counts = []
    for idx in masks:
        hist = np.bincount(pattern if len(idx) == m else pattern[idx], minlength=2**n)
        present = np.flatnonzero(hist)
        bits = ((present[:, None] >> np.arange(n)) & 1).astype(np.float64)
        counts.append((bits.T * hist[present]) @ bits)
    return counts


def _product_counts(active: np.ndarray, masks: Sequence[np.ndarray], m: int) -> list[np.ndarray]:
    """The same counts as products of the activity rows of each mask (float32 where exact)."""
    exact = np.float32 if m < EXACT_COUNT_WIDTH else np.float64
    A = active.astype(exact)
    counts = []
    for idx in masks:
        S = A if len(idx) == m else A[idx]  # exact counts: row order is immaterial
        counts.append((S.T @ S).astype(np.float64))
    return counts


def _masked_ntk_min(
    X: np.ndarray, cosines: np.ndarray, W: np.ndarray, masks: Sequence[np.ndarray], m: int
) -> float:
    """Smallest eigenvalue over the surrogates of the masked NTK (Definition 1, k' = k, t = 0).

    ``(m_l o H)_ij = (1/m) x_i.x_j sum_r m_{l,r} 1{w_r.x_i >= 0} 1{w_r.x_j >= 0}``; Theorem 2
    claims it is at least ``lambda0 / 2`` (``lambda0 = lambda_min(xi H_inf)``).  ``X`` in
    float64, ``cosines`` its :func:`~bounds.ntk.cosine_matrix`.  The counts
    ``sum_r m_{l,r} 1{.} 1{.}`` are integers, computed exactly (:func:`_pattern_counts`
    where :func:`by_pattern`, else :func:`_product_counts`); a mask equal to an
    earlier one of the round (at xi = 1 every surrogate holds every neuron) is not counted
    again.
    """
    active = W.astype(np.float64) @ X.T >= 0
    distinct: list[np.ndarray] = []
    for idx in masks:
        if not any(len(c) == len(idx) and np.array_equal(c, idx) for c in distinct):
            distinct.append(idx)
    count = _pattern_counts if by_pattern(X.shape[0], m) else _product_counts
    return min(
        (
            float(np.linalg.eigvalsh(cosines * counts / m)[0])
            for counts in count(active, distinct, m)
        ),
        default=math.inf,
    )


def _lambda_min(X: np.ndarray, W: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(finite_width_gram(X.astype(float), W.astype(float)))[0])
