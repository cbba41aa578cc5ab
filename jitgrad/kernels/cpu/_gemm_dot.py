"""``c = a @ b.T`` as dot products of rows, for skinny products where packing costs more than it saves.

With ``trans_b`` the GEMM's outer-product micro-kernel (``_gemm_tile``) needs
B transposed into panels first: a pass over all of B (a gather per vector)
that, when C is small (few rows or few columns: a Linear layer's forward at
MNIST sizes, a convolution's weight gradient ``g @ cols.T`` with
``K = batch * pixels`` in the thousands), costs as much as the product.
But ``a`` and ``b`` then both hold ``K`` contiguously in their rows, so each
``C[i, j]`` is a dot product of two contiguous rows. This kernel computes a
tile of ``DOT_MR x DOT_NR`` such dot products at once, straight from the
unpacked operands: per vector step ``DOT_MR`` loads of A, ``DOT_NR`` of B and
``DOT_MR * DOT_NR`` FMAs into vector accumulators, which are summed across
lanes once per ``K`` block.

Tile 3 x 4 on every path: 12 accumulators, 3 vectors of A and one of B
(16 of AVX2's 16 registers; LLVM folds the B load into the FMAs as a memory
operand). K is walked in blocks of ``DOT_KC_BYTES`` (8 KiB of each row: 2048
float32): the 4 rows of B of a tile (32 KiB) are read from memory on the first
row tile of A and from L1/L2 by the others, and the ``M x 8 KiB`` block of A
stays in L2.
Edge tiles read a clamped row again (in bounds) and store only valid
results; a ``K`` that is not a multiple of the vector width ends in a
lane-masked load that reads nothing past the row.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._atomic import new_counter, next_task, share_done
from ._gemm_simd import VEC_BYTES, load, store, vfma, vload, vload_masked, vsum, vzero
from ._gemm_tile import _jit, cdiv
from ._jit import PRANGE_ONLY, njit
from ._tier import tiered

#: Rows of A per tile (dot products share each loaded B vector this many times).
DOT_MR = 3
#: Rows of B (columns of C) per tile.
DOT_NR = 4
#: Depth of a K block in bytes of a row (a multiple of every vector width). Long runs: each tile
#: reads its rows of B from memory once, in runs of this many bytes per row, and the hardware
#: prefetcher only gets ahead of a run a few lines long. Measured on Zen 3, one thread, against
#: 2 KiB (512 float32), two runs each: 16 x 12544 x 144 (a conv weight gradient) 0.92 / 0.88 ->
#: 1.04 / 0.99x OpenBLAS, 32 x 3136 x 144 0.75 / 0.78 -> 1.00 / 1.04x, 16 x 1024 x 150 1.01 / 0.77
#: -> 1.17 / 1.18x, 6 x 9216 x 25 2.2 / 1.8 -> 2.0 / 2.6x, 1024 x 4096 x 16 0.72 / 0.69 -> 1.06 /
#: 0.96x. A software prefetch of the next tile's rows into L2 gained nothing more at 8 KiB.
DOT_KC_BYTES = 8192


@njit(**_jit)
def gemm_dot(a, b, c, j0, j1):
    """``c[:, j0:j1] = a @ b[j0:j1].T`` for C-contiguous ``a`` (M, K), ``b`` (N, K), ``c`` (M, N)."""
    m, k = a.shape
    n = b.shape[0]
    af = a.reshape(a.size)
    bf = b.reshape(b.size)
    cf = c.reshape(c.size)
    lanes = VEC_BYTES // c.itemsize
    sums = np.empty(3 * DOT_NR, dtype=c.dtype)
    kc = DOT_KC_BYTES // c.itemsize
    for p0 in range(0, k, kc):
        p1 = min(k, p0 + kc)
        steps = (p1 - p0) // lanes
        first = p0 == 0
        for jt in range(j0, j1, DOT_NR):
            # Rows of B past the end read the last row again (results not stored).
            ob0 = jt * k + p0
            ob1 = min(jt + 1, j1 - 1) * k + p0
            ob2 = min(jt + 2, j1 - 1) * k + p0
            ob3 = min(jt + 3, j1 - 1) * k + p0
            ncols = min(DOT_NR, j1 - jt)
            # One view per row: the loops index them all with one counter.
            rb0 = bf[ob0:]
            rb1 = bf[ob1:]
            rb2 = bf[ob2:]
            rb3 = bf[ob3:]
            for it in range(0, m, DOT_MR):
                oa0 = it * k + p0
                oa1 = min(it + 1, m - 1) * k + p0
                oa2 = min(it + 2, m - 1) * k + p0
                ra0 = af[oa0:]
                ra1 = af[oa1:]
                ra2 = af[oa2:]
                a2 = vzero(cf)
                c00 = vzero(cf)
                c01 = vzero(cf)
                c02 = vzero(cf)
                c03 = vzero(cf)
                c10 = vzero(cf)
                c11 = vzero(cf)
                c12 = vzero(cf)
                c13 = vzero(cf)
                c20 = vzero(cf)
                c21 = vzero(cf)
                c22 = vzero(cf)
                c23 = vzero(cf)
                q = 0
                # Two vector steps per iteration: LLVM then keeps the loop as written (it
                # unrolls a one-step loop itself, with a base register per row and copy, and spills).
                for _ in range(steps // 2):
                    a0 = vload(ra0, q)
                    a1 = vload(ra1, q)
                    if DOT_MR > 2:
                        a2 = vload(ra2, q)
                    bv = vload(rb0, q)
                    c00 = vfma(a0, bv, c00)
                    c10 = vfma(a1, bv, c10)
                    if DOT_MR > 2:
                        c20 = vfma(a2, bv, c20)
                    bv = vload(rb1, q)
                    c01 = vfma(a0, bv, c01)
                    c11 = vfma(a1, bv, c11)
                    if DOT_MR > 2:
                        c21 = vfma(a2, bv, c21)
                    bv = vload(rb2, q)
                    c02 = vfma(a0, bv, c02)
                    c12 = vfma(a1, bv, c12)
                    if DOT_MR > 2:
                        c22 = vfma(a2, bv, c22)
                    bv = vload(rb3, q)
                    c03 = vfma(a0, bv, c03)
                    c13 = vfma(a1, bv, c13)
                    if DOT_MR > 2:
                        c23 = vfma(a2, bv, c23)
                    a0 = vload(ra0, q + lanes)
                    a1 = vload(ra1, q + lanes)
                    if DOT_MR > 2:
                        a2 = vload(ra2, q + lanes)
                    bv = vload(rb0, q + lanes)
                    c00 = vfma(a0, bv, c00)
                    c10 = vfma(a1, bv, c10)
                    if DOT_MR > 2:
                        c20 = vfma(a2, bv, c20)
                    bv = vload(rb1, q + lanes)
                    c01 = vfma(a0, bv, c01)
                    c11 = vfma(a1, bv, c11)
                    if DOT_MR > 2:
                        c21 = vfma(a2, bv, c21)
                    bv = vload(rb2, q + lanes)
                    c02 = vfma(a0, bv, c02)
                    c12 = vfma(a1, bv, c12)
                    if DOT_MR > 2:
                        c22 = vfma(a2, bv, c22)
                    bv = vload(rb3, q + lanes)
                    c03 = vfma(a0, bv, c03)
                    c13 = vfma(a1, bv, c13)
                    if DOT_MR > 2:
                        c23 = vfma(a2, bv, c23)
                    q += 2 * lanes
                rest = p1 - p0 - q
                while rest > 0:  # the last one or two vectors, lane-masked
                    count = min(lanes, rest)
                    a0 = vload_masked(ra0, q, count)
                    a1 = vload_masked(ra1, q, count)
                    if DOT_MR > 2:
                        a2 = vload_masked(ra2, q, count)
                    bv = vload_masked(rb0, q, count)
                    c00 = vfma(a0, bv, c00)
                    c10 = vfma(a1, bv, c10)
                    if DOT_MR > 2:
                        c20 = vfma(a2, bv, c20)
                    bv = vload_masked(rb1, q, count)
                    c01 = vfma(a0, bv, c01)
                    c11 = vfma(a1, bv, c11)
                    if DOT_MR > 2:
                        c21 = vfma(a2, bv, c21)
                    bv = vload_masked(rb2, q, count)
                    c02 = vfma(a0, bv, c02)
                    c12 = vfma(a1, bv, c12)
                    if DOT_MR > 2:
                        c22 = vfma(a2, bv, c22)
                    bv = vload_masked(rb3, q, count)
                    c03 = vfma(a0, bv, c03)
                    c13 = vfma(a1, bv, c13)
                    if DOT_MR > 2:
                        c23 = vfma(a2, bv, c23)
                    q += lanes
                    rest -= lanes
                # Lane sums to a scratch row, then the valid ones to C (added after the first K block).
                store(sums, 0, vsum(c00))
                store(sums, 1, vsum(c01))
                store(sums, 2, vsum(c02))
                store(sums, 3, vsum(c03))
                store(sums, 4, vsum(c10))
                store(sums, 5, vsum(c11))
                store(sums, 6, vsum(c12))
                store(sums, 7, vsum(c13))
                if DOT_MR > 2:
                    store(sums, 8, vsum(c20))
                    store(sums, 9, vsum(c21))
                    store(sums, 10, vsum(c22))
                    store(sums, 11, vsum(c23))
                for r in range(min(DOT_MR, m - it)):
                    off = (it + r) * n + jt
                    for q in range(ncols):
                        v = load(sums, r * DOT_NR + q)
                        if not first:
                            v += load(cf, off + q)
                        store(cf, off + q, v)


@tiered
@njit(parallel=PRANGE_ONLY, **_jit)
def gemm_dot_parallel(a, b, c, nthreads):
    """``c = a @ b.T`` (as ``gemm_dot``) with the tiles of columns split into ``nthreads`` runs under ``prange``."""
    n = b.shape[0]
    tiles = cdiv(n, DOT_NR)
    counter = new_counter()  # the calling thread waits awake for the others (_atomic)
    for t in prange(nthreads):
        next_task(counter)
        j0 = t * tiles // nthreads * DOT_NR
        j1 = min(n, (t + 1) * tiles // nthreads * DOT_NR)
        if j0 < j1:
            gemm_dot(a, b, c, j0, j1)
        share_done(counter, t, nthreads)
