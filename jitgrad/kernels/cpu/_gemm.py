"""The matmul drivers on the GEMM core: small products, one thread, and blocks of C under ``prange``.

The micro-kernel, tile and blocking live in ``_gemm_tile``, the packing in
``_gemm_pack``; their names are re-exported here for ``_conv``.

A parallel call first packs what every task shares (B panels, unless each
task packs those of its own columns, and A panels) and then computes the
blocks of C; ``matmul`` computes into a scratch array when ``out`` overlaps
an input, so packed data never aliases the output.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._gemm_pack import pack_a, pack_a_panel, pack_b, pack_b_panel  # noqa: F401 (re-exported for _conv)
from ._gemm_tile import (  # noqa: F401
    KC,
    MC_BYTES,
    MC_PANELS,
    MR,
    NC_PANELS,
    SHALLOW_K,
    _jit,
    cdiv,
    gemm_block,
    micro_kernel,
    nr_of,
)
from ._tier import tiered

#: Row-major A is read in place (not packed) up to this many columns of C.
A_IN_PLACE_MAX_N = 32


@njit(**_jit)
def partition(npa, npb, nthreads):
    """Split C (``npa`` A panels by ``npb`` B panels) into tasks for ``nthreads``.

    Returns ``(mc, nc, ti, tj)``: tasks are ``mc x nc`` panels, ``ti x tj`` of them.
    Blocks start at ``MC_PANELS x NC_PANELS`` and shrink until every thread
    has a task, columns first: tasks that share no B panel can each pack
    their own, with no packing pass and no packed data crossing cores.
    """
    mc = min(MC_PANELS, npa)
    nc = min(NC_PANELS, npb)
    while cdiv(npa, mc) * cdiv(npb, nc) < nthreads and (mc > 1 or nc > 1):
        if nc > 1:
            nc = cdiv(nc, 2)
        else:
            mc = cdiv(mc, 2)
    return mc, nc, cdiv(npa, mc), cdiv(npb, nc)


@njit(inline="always", **_jit)  # inlined: no compile of its own
def a_in_place(trans, m, k, n, itemsize):
    """Whether the micro-kernel reads ``op(a)`` where it lies instead of from packed panels.

    Row-major A is read as ``MR`` row streams, as fast as packed panels and
    without the packing pass, unless its row pitch is a multiple of 4 KiB
    (then the ``MR`` rows map to one L1 set and evict each other).
    Transposed A gives each ``k`` its own cache
    line (``MR`` values of a row ``M`` long): fine while A sits in L2, slow
    beyond, so a large transposed A is packed.
    """
    if not trans:
        # Row pitches that are multiples of 4 KiB put the MR rows in one L1 set.
        return (k * itemsize) % 4096 != 0 and n <= A_IN_PLACE_MAX_N
    return m * k * itemsize <= (1 << 20)


@njit(inline="always", **_jit)  # inlined: no compile of its own
def a_layout(trans, m, k):
    """``(panel stride, row stride, column stride)`` of ``op(a)`` read in place (``a`` C-contiguous)."""
    if trans:
        return MR, 1, m
    return MR * k, k, 1


@njit(**_jit)
def gemm_small(a, b, trans_a, trans_b, c):
    """Unpacked ``c = op(a) @ op(b)`` for small products (packing would dominate)."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    if trans_b:
        for i in range(m):
            for j in range(n):
                s = 0.0
                if trans_a:
                    for p in range(k):
                        s += a[p, i] * b[j, p]
                else:
                    for p in range(k):
                        s += a[i, p] * b[j, p]
                c[i, j] = s
    else:
        for i in range(m):
            for j in range(n):
                c[i, j] = 0
            for p in range(k):
                aip = a[p, i] if trans_a else a[i, p]
                for j in range(n):
                    c[i, j] += aip * b[p, j]


@njit(inline="always", **_jit)  # inlined: no compile of its own
def b_in_place(trans, m, k, n, itemsize):
    """Whether the full B panels are read where they lie (only the last, partial one packed).

    A row-major B already has the ``NR`` values of one ``k`` side by side;
    packing it only pays when its rows would collide in the L1 sets (a row
    pitch that is a multiple of 256 bytes maps the ``KC`` rows of a panel
    onto a few sets) or when it is too large to stay in L2 while reused,
    and not when C has at most ``2 * MR`` rows (each B value is then used
    once or twice: the packing pass would cost as much as the product), nor
    when ``k <= SHALLOW_K`` (``gemm_block`` then streams each panel once per
    row panel of C and never reuses it from L1, so set aliasing costs nothing).
    """
    if trans:
        return False
    if m <= 3 * MR or k <= SHALLOW_K:
        return True
    return k * n * itemsize <= (1 << 20) and (n * itemsize) % 256 != 0


@njit(inline="always", **_jit)  # inlined: no compile of its own
def driver_sizes(a, trans_a, trans_b, c):
    """``(m, n, k, nr, npa, npb, b_direct)`` of ``c = op(a) @ op(b)`` for the drivers: C's size, the
    depth, the B panel width, the numbers of A and B panels, and whether B is read in place."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    nr = nr_of(c)
    return m, n, k, nr, cdiv(m, MR), cdiv(n, nr), b_in_place(trans_b, m, k, n, c.itemsize)


@njit(**_jit)
def gemm_cols(af, a_pstride, a_rs, a_cs, b, bp, in_place, k, m, n, ip0, ip1, jp0, jp1, c, bias, epi):
    """``c[A panels ip0:ip1, B panels jp0:jp1] = op(a) @ op(b)``; B from ``b`` in place or ``bp`` packed.

    ``bias``, ``epi``: the store's epilogue (``_gemm_tile.epilogue_tile``; ``epi = 0``: none).

    In place, the full panels come from ``b`` (row pitch ``n``) and the last,
    partial panel from ``bp`` (packed alone at ``bp[0:]``, zero-padded).
    """
    nr = nr_of(c)
    # Typed zero and False (not the literals 0 / False): Numba compiles a callee
    # once per pattern of literal arguments, so every GEMM caller passes these.
    zero = np.intp(0)
    no = np.bool_(False)
    if in_place:
        full = n // nr
        mid = min(jp1, full)
        if jp0 < mid:
            gemm_block(af, zero, a_pstride, a_rs, a_cs, b.reshape(b.size), nr, n, zero, k, m, n, ip0, ip1, jp0,
                       mid, c, zero, n, no, bias, no, epi)
        if jp1 > full:
            gemm_block(af, zero, a_pstride, a_rs, a_cs, bp, zero, nr, zero, k, m, n, ip0, ip1, max(jp0, full),
                       jp1, c, zero, n, no, bias, no, epi)
    else:
        gemm_block(af, zero, a_pstride, a_rs, a_cs, bp, k * nr, nr, zero, k, m, n, ip0, ip1, jp0, jp1,
                   c, zero, n, no, bias, no, epi)


@njit(**_jit)
def gemm_serial(a, b, trans_a, trans_b, c, bias, epi):
    """``c = op(a) @ op(b)`` with the micro-kernel, on the calling thread (epilogue ``bias``, ``epi``: see gemm_cols)."""
    m, n, k, nr, npa, npb, b_direct = driver_sizes(a, trans_a, trans_b, c)
    zero = np.intp(0)  # not a literal 0 (see gemm_cols)
    if b_direct:
        bp = np.empty(k * nr, dtype=c.dtype)
        if n % nr:
            pack_b_panel(b, np.bool_(False), n - n % nr, bp, zero)
    else:
        bp = np.empty(npb * k * nr, dtype=c.dtype)
        pack_b(b, trans_b, zero, npb, bp)
    if a_in_place(trans_a, m, k, n, c.itemsize):
        af = a.reshape(a.size)
        a_pstride, a_rs, a_cs = a_layout(trans_a, m, k)
    else:
        af = np.empty(npa * k * MR, dtype=c.dtype)
        pack_a(a, trans_a, zero, npa, af)
        a_pstride, a_rs, a_cs = k * MR, 1, MR
    gemm_cols(af, a_pstride, a_rs, a_cs, b, bp, b_direct, k, m, n, zero, npa, zero, npb, c.reshape(m * n), bias, epi)


@tiered
@njit(parallel=True, **_jit)
def gemm_parallel(a, b, trans_a, trans_b, c, nthreads, bias, epi):
    """``c = op(a) @ op(b)``: panels packed (where needed), then blocks of C computed, under ``prange``.

    ``bias``, ``epi``: the store's epilogue (see ``gemm_cols``).

    ``nthreads`` (``numba.get_num_threads()``, passed in: reading it here
    would make the function uncacheable) sizes the blocks.
    """
    m, n, k, nr, npa, npb, b_direct = driver_sizes(a, trans_a, trans_b, c)
    bp = np.empty((1 if b_direct else npb) * k * nr, dtype=c.dtype)
    in_place = a_in_place(trans_a, m, k, n, c.itemsize)
    if in_place:
        af = a.reshape(a.size)
        a_pstride, a_rs, a_cs = a_layout(trans_a, m, k)
    else:
        af = np.empty(npa * k * MR, dtype=c.dtype)
        a_pstride, a_rs, a_cs = k * MR, 1, MR
    mc, nc, ti, tj = partition(npa, npb, nthreads)
    # One row of tasks: each task packs the B panels of its own columns (no
    # shared packing pass). Otherwise a packing pass first, each thread
    # packing a contiguous range of B panels (and of A panels).
    own_b = ti == 1 and in_place and not b_direct
    if b_direct:
        if n % nr:
            pack_b_panel(b, np.bool_(False), n - n % nr, bp, np.intp(0))  # no literals (see gemm_cols)
    if not (b_direct and in_place) and not own_b:
        for t in prange(nthreads):
            if not b_direct:
                pack_b(b, trans_b, t * npb // nthreads, (t + 1) * npb // nthreads, bp)
            if not in_place:
                pack_a(a, trans_a, t * npa // nthreads, (t + 1) * npa // nthreads, af)
    ntasks = ti * tj
    cflat = c.reshape(m * n)
    for t in prange(ntasks):
        bi = t // tj
        bj = t - bi * tj
        if own_b:
            pack_b(b, trans_b, bj * nc, min(npb, (bj + 1) * nc), bp)
        gemm_cols(af, a_pstride, a_rs, a_cs, b, bp, b_direct, k, m, n, bi * mc, min(npa, (bi + 1) * mc),
                  bj * nc, min(npb, (bj + 1) * nc), cflat, bias, epi)
