"""Cache-blocked passes of the masked-surrogate trainer over neuron copies.

A set of neuron copies is a ``(rows, d)`` weight matrix ``W`` with output coefficients
``a``.  Its pre-activations ``Z = W X^T`` (``rows x n``, copies by samples) are never held
whole: they are produced a block of rows at a time into preallocated buffers of
:data:`BLOCK_BYTES` that stay in cache, and every pass over a block happens while it is
there.  A batch of rows may hold several surrogates (segments of consecutive rows); per
segment quantities are then taken piece by piece within each block.

* Forward: ``Z_b = W_b X^T`` (one matmul), ``|Z_b|`` (one elementwise pass) and the ReLU
  sums ``sum_r c_r relu(z_r) = (sum_r c_r z_r + sum_r c_r |z_r|) / 2``: the second term is a
  matrix-vector product ``c @ |Z_b|`` per coefficient vector ``c``, the first needs no
  pre-activations at all, ``X (W^T c)``.  ReLU, coefficients and the sum over copies are
  thereby fused into BLAS calls; ``np.maximum`` (which checks for NaN element by element)
  is avoided.
  The activity pattern ``Z_b > 0`` is kept as a boolean ``rows x n`` array, 1/8 of the
  memory of the pre-activations.
* Backward: the gradient of ``1/2 ||y - s u||^2`` (``u`` the surrogate's raw ReLU sum,
  ``s`` its output scale) with respect to a copy's weight is
  ``s a_r sum_i err_i 1[z_ri > 0] x_i``, i.e. for a block ``(1[Z_b > 0] @ E) * (s a)`` with
  ``E = err[:, None] * X`` (``n x d``, shared by all copies of a surrogate).  No
  ``n x rows`` error matrix is formed.

Surrogates are independent during their local steps, so a batch is trained for all of
its tau steps before the next batch is gathered; the step fuses each block's backward pass
with its forward pass at the new weights, while the block is in cache.

Where numba is available the elementwise passes around the two products are compiled
loops (:mod:`verify.trainers.block_helpers`): the activity and the ReLU sums of a block in
one pass (no ``|Z_b|``, no linear half over all copies), the activity as 0/1 floats, and
the scaled step in one pass; ``compiled=False`` keeps the NumPy expressions above (the
same quantities up to rounding, tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import block_helpers

#: pieces of a block: ``(target, coefficient row, plo, phi)``, rows ``plo:phi`` of the block
#: summed into ``sums[target]`` with coefficients ``C[row]`` (block coordinates)
Pieces = list[tuple[int, int, int, int]]

#: one block of a batch: its rows ``lo:hi``, the pieces ``(segment, 0, plo, phi)`` of the
#: segments it intersects and the same pieces as the ``(k, 4)`` integer table of
#: :func:`~verify.trainers.block_helpers.relu_sums`
Block = tuple[int, int, Pieces, np.ndarray]

#: bytes of one ``block x n`` buffer (pre-activations, the 0/1 activity): 512 copies in
#: float64 and 1024 in float32 at n = 64.  Measured here with the compiled elementwise
#: passes (n = 64, d = 16, p = tau = 4, one thread): 256 KiB buffers 214 ms per round at
#: m = 16000, xi = 1, against 259 ms for 512 KiB and 223 ms for 128 KiB (the two products
#: run at 49-53 GFLOP/s on 512-row blocks, 34-38 on 1024-row ones); the NumPy passes had
#: favoured 512 KiB (fewer calls).
BLOCK_BYTES = 256 * 1024


class Kernels:
    """Preallocated block buffers and the blocked forward and backward passes.

    ``max_rows`` bounds the number of rows of one call (no buffer is larger than needed);
    ``compiled`` chooses the compiled elementwise passes (default: where numba is available).
    """

    def __init__(
        self, X: np.ndarray, max_rows: int, block: int | None = None, compiled: bool | None = None
    ) -> None:
        self.compiled = block_helpers.AVAILABLE if compiled is None else compiled
        if self.compiled and not block_helpers.AVAILABLE:
            raise ValueError("the compiled block passes need numba (or MASKVERIFY_NUMBA is 0)")
        n, d = X.shape
        self.X = X
        self.XT = np.ascontiguousarray(X.T)
        if block is None:
            block = BLOCK_BYTES // (n * X.dtype.itemsize)
        self.block = max(1, int(block))
        rows = min(self.block, max(1, max_rows))
        self.Z = np.empty((rows, n), dtype=X.dtype)
        self.A = np.empty((rows, n), dtype=X.dtype)
        self.G = np.empty((rows, n), dtype=X.dtype)
        self.GE = np.empty((rows, d), dtype=X.dtype)
        self.act = np.empty((rows, n), dtype=bool)

    def forward(
        self,
        W: np.ndarray,
        coefs: Sequence[np.ndarray],
        active: np.ndarray | None = None,
    ) -> np.ndarray:
        """``sum_r c_r relu(w_r . x_i)`` for every coefficient vector c, shape ``(len, n)``.

        When ``active`` is given, ``active[r, i] = w_r . x_i > 0`` is stored in it.
        """
        rows = W.shape[0]
        sums = np.zeros((len(coefs), self.X.shape[0]), dtype=self.X.dtype)
        C = np.stack(coefs)
        for lo in range(0, rows, self.block):
            hi = min(lo + self.block, rows)
            whole = [(j, j, 0, hi - lo) for j in range(len(coefs))]
            self._block_forward(W, C, lo, hi, whole, active, sums)
        if not self.compiled:
            for j, c in enumerate(coefs):
                sums[j] += self.X @ (c @ W)
            sums *= 0.5
        return sums

    def plan(self, starts: np.ndarray, rows: int) -> list[Block]:
        """Blocks of a batch of segments (:data:`Block`).

        Segment l holds rows ``starts[l]:starts[l + 1]`` (``starts[-1] == rows``); each
        block lists the pieces of the segments it intersects, in block coordinates.
        """
        blocks = []
        for lo in range(0, rows, self.block):
            hi = min(lo + self.block, rows)
            first = int(np.searchsorted(starts, lo, side="right")) - 1
            last = int(np.searchsorted(starts, hi, side="left"))
            pieces = []
            for seg in range(first, last):
                plo, phi = max(starts[seg], lo), min(starts[seg + 1], hi)
                if phi > plo:
                    pieces.append((seg, 0, int(plo - lo), int(phi - lo)))
            blocks.append((lo, hi, pieces, np.array(pieces, dtype=np.int64).reshape(-1, 4)))
        return blocks

    def segment_forward(
        self,
        W: np.ndarray,
        a: np.ndarray,
        starts: np.ndarray,
        blocks: list[Block],
        active: np.ndarray,
    ) -> np.ndarray:
        """Raw ReLU sum ``sum_{r in l} a_r relu(w_r . x_i)`` of every segment, ``(S, n)``.

        ``active`` receives the activity pattern of all rows.
        """
        if self.compiled:
            sums = np.zeros((len(starts) - 1, self.X.shape[0]), dtype=self.X.dtype)
        else:
            sums = self._linear_sums(W, a, starts)
        for lo, hi, pieces, table in blocks:
            self._block_forward(W, a[None], lo, hi, pieces, active, sums, table)
        if not self.compiled:
            sums *= 0.5
        return sums

    def _block_forward(
        self,
        W: np.ndarray,
        C: np.ndarray,
        lo: int,
        hi: int,
        pieces: Pieces,
        active: np.ndarray | None,
        sums: np.ndarray,
        table: np.ndarray | None = None,
    ) -> None:
        """One block's pre-activations, its activity into ``active[lo:hi]`` (when given)
        and its pieces' ReLU sums added to ``sums`` (``C``: coefficient rows indexed like
        ``W``'s rows; ``table``: ``pieces`` as an integer array).  The NumPy expressions add
        only the ``|z|`` half of ``relu(z) = (z + |z|) / 2``; the caller adds the linear half
        (:meth:`_linear_sums`) and halves."""
        Z = self.Z[: hi - lo]
        np.matmul(W[lo:hi], self.XT, out=Z)
        if self.compiled:
            act = self.act[: hi - lo] if active is None else active[lo:hi]
            if table is None:
                table = np.array(pieces, dtype=np.int64).reshape(-1, 4)
            block_helpers.relu_sums(Z, C[:, lo:hi], act, table, sums)
            return
        if active is not None:
            np.greater(Z, 0.0, out=active[lo:hi])
        A = self.A[: hi - lo]
        np.abs(Z, out=A)
        for target, row, plo, phi in pieces:
            sums[target] += C[row, lo + plo : lo + phi] @ A[plo:phi]

    def segment_step(
        self,
        W: np.ndarray,
        a: np.ndarray,
        rate: np.ndarray,
        err: np.ndarray,
        starts: np.ndarray,
        blocks: list[Block],
        active: np.ndarray,
        forward_next: bool,
    ) -> np.ndarray | None:
        """One gradient step, in place, on a batch of surrogates' copies ``W``.

        ``err[l]`` is segment l's output error at the current weights, ``rate[r] = eta * s
        * a_r`` (``s`` the output scale) and ``active`` the rows' activity pattern.  With
        ``forward_next`` each block is also run forward at its new weights while it is in
        cache: ``active`` is overwritten and the segments' new raw ReLU sums are returned.
        """
        E = err[:, :, None] * self.X
        sums = np.zeros_like(err) if forward_next else None
        for lo, hi, pieces, table in blocks:
            G, GE = self.G[: hi - lo], self.GE[: hi - lo]
            if self.compiled:
                block_helpers.as_float(active[lo:hi], G)
            else:
                np.copyto(G, active[lo:hi])
            for seg, _, plo, phi in pieces:
                np.matmul(G[plo:phi], E[seg], out=GE[plo:phi])
            if self.compiled:
                block_helpers.take_step(W[lo:hi], GE, rate[lo:hi])
            else:
                GE *= rate[lo:hi, None]
                W[lo:hi] -= GE
            if sums is not None:
                self._block_forward(W, a[None], lo, hi, pieces, active, sums, table)
        if sums is not None and not self.compiled:
            sums += self._linear_sums(W, a, starts)
            sums *= 0.5
        return sums

    def _linear_sums(self, W: np.ndarray, a: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """``sum_{r in l} a_r w_r . x_i`` of every segment l, i.e. ``X (W_l^T a_l)``."""
        return np.add.reduceat(a[:, None] * W, starts[:-1], axis=0) @ self.XT
