"""Register-tiled GEMM shared by the CPU ``matmul`` and ``conv`` kernels.

The structure is BLIS's (Van Zee & van de Geijn, "BLIS: A Framework for
Rapidly Instantiating BLAS Functionality", 2015):

* The micro-kernel keeps an ``MR x NR`` tile of ``C`` in ``2 * MR`` vector
  registers (two vectors wide; 8 x 32 float32 or 8 x 16 float64 with
  AVX-512's 32 zmm registers, 6 x 16 or 6 x 8 with AVX2's 16 ymm: the path
  is chosen at import by ``_isa``) for a whole ``k`` slice: per ``k`` it
  loads two vectors of B, broadcasts ``MR`` values of A and issues
  ``2 * MR`` FMAs (``vfmadd231ps`` with a broadcast operand; in L1 it runs
  at the machine's FMA peak). Edge tiles store only their valid rows and, with
  lane masks, their valid columns.
* B is read from *panels* of ``NR`` columns in which the ``NR`` values of
  one ``k`` are contiguous (``b_rs`` apart from one ``k`` to the next):
  a row-major B already is one (read in place when small and its row pitch
  does not alias in L1), otherwise it is packed, transposed B with
  hardware gathers. A is read through ``(row, column)`` strides, so a
  row-major A, a transposed A and packed panels of A all feed the same
  micro-kernel; only a large transposed A is packed (each ``k`` of it
  would be its own cache line).
* Blocking: a ``k`` slice is ``KC`` deep so that a B micro-panel
  (``KC x NR``) stays in L1 while the A rows of a block stream from L2; a
  *task* is a block of up to ``MC_PANELS x NC_PANELS`` tiles of ``C``.
  Tasks write disjoint blocks of ``C``, so they run under ``prange``
  without races; blocks shrink until every thread has one.

Packing happens before the tasks start, which keeps the drivers simple and
makes an ``out`` that aliases a packed input harmless.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from jitgrad.config import FASTMATH

from ._gemm_simd import (VEC_BYTES, load, prefetch_write, store, vadd, vbroadcast_load, vfma, vgather, vload,
                         vload_masked, vstore, vstore_masked, vzero)
from ._isa import ISA

#: Rows of the register tile (A panel width): 8 with AVX-512's 32 registers,
#: 6 with AVX2's 16 (see ``_isa``). The micro-kernel is written for 8 rows;
#: ``MR`` is a compile-time constant, so with 6 the code of rows 6 and 7 is
#: never emitted.
MR = ISA.gemm_mr
#: Depth of one ``k`` slice: a B micro-panel (``KC x NR``) is 16 KiB on AVX2
#: (half of a 32 KiB L1d), 32 KiB with AVX-512's 32 columns (Skylake-X, Ice
#: Lake: L1d 32 / 48 KiB; measured 0.86-0.93x OpenBLAS there with this KC).
KC = 256
#: Bytes of the A block (``MC x KC``) that stays in L2 while the B micro-panels
#: of a ``k`` slice stream past it: 144 KiB, BLIS's Zen 3 choice (``MC = 144``
#: float32 rows, 72 float64, of a 512 KiB L2; Skylake-X and later have 1 MiB+).
MC_BYTES = 144 * 1024
#: Row-major A is read in place (not packed) up to this many columns of C.
A_IN_PLACE_MAX_N = 32
#: A parallel task's block of C, in panels: up to ``MC_PANELS * MR`` rows ...
MC_PANELS = 32
#: ... and ``NC_PANELS * NR`` columns.
NC_PANELS = 16

_jit = dict(cache=True, fastmath=set(FASTMATH), nogil=True)


@njit(**_jit)
def nr_of(arr):
    """Columns of the register tile (B panel width) for ``arr``'s dtype: two vectors."""
    return 2 * (VEC_BYTES // arr.itemsize)


@njit(**_jit)
def cdiv(a, b):
    return (a + b - 1) // b


# --------------------------------------------------------------------------
# Micro-kernel
# --------------------------------------------------------------------------

@njit(**_jit)
def micro_kernel(kc, a, a_off, a_rs, a_cs, b, b_off, b_rs, c, c_off, ldc, mr, ncols, accumulate,
                 bias, bias_off, has_bias):
    """``C[:mr, :ncols] (+)= A[:mr, :kc] @ B[:kc, :ncols] (+ bias)`` on flat buffers.

    ``mr <= MR`` and ``ncols <= NR``: an edge tile computes the whole
    register tile and stores only its valid rows (branches) and columns
    (lane-masked stores).

    With ``has_bias`` the accumulators start at ``bias[bias_off + r]`` for row
    ``r`` (``bias`` padded to whole panels), so a bias costs nothing.

    ``a[a_off + r * a_rs + p * a_cs]`` is ``A[r, p]``: a packed panel has
    ``(a_rs, a_cs) = (1, MR)``, but A can also be read in place, row-major
    ``(lda, 1)`` or transposed ``(1, lda)`` (rows past ``mr`` then read row
    0 again, so nothing out of bounds is touched). ``b[b_off + p * b_rs + j]``
    is ``B[p, j]`` for ``j < NR`` (a packed panel: ``b_rs = NR``);
    ``c[c_off + r * ldc + j]`` is ``C[r, j]``.
    """
    bp = b
    lanes = VEC_BYTES // bp.itemsize
    nr = 2 * lanes
    # The C tile is needed only after the k loop: start fetching it now.
    for r in range(mr):
        prefetch_write(c, c_off + r * ldc)
        prefetch_write(c, c_off + r * ldc + nr - 1)
    if has_bias:
        c00 = vbroadcast_load(bias, bias_off)
        c01 = c00
        c10 = vbroadcast_load(bias, bias_off + 1)
        c11 = c10
        c20 = vbroadcast_load(bias, bias_off + 2)
        c21 = c20
        c30 = vbroadcast_load(bias, bias_off + 3)
        c31 = c30
        c40 = vbroadcast_load(bias, bias_off + 4)
        c41 = c40
        c50 = vbroadcast_load(bias, bias_off + 5)
        c51 = c50
    else:
        c00 = vzero(bp)
        c01 = vzero(bp)
        c10 = vzero(bp)
        c11 = vzero(bp)
        c20 = vzero(bp)
        c21 = vzero(bp)
        c30 = vzero(bp)
        c31 = vzero(bp)
        c40 = vzero(bp)
        c41 = vzero(bp)
        c50 = vzero(bp)
        c51 = vzero(bp)
    c60 = vzero(bp)
    c61 = vzero(bp)
    c70 = vzero(bp)
    c71 = vzero(bp)
    if MR > 6 and has_bias:
        c60 = vbroadcast_load(bias, bias_off + 6)
        c61 = c60
        c70 = vbroadcast_load(bias, bias_off + 7)
        c71 = c70
    # Row r of the A tile, clamped to row 0 past mr (in bounds when A is read in place).
    o0 = a_off
    o1 = a_off + (1 * a_rs if mr > 1 else 0)
    o2 = a_off + (2 * a_rs if mr > 2 else 0)
    o3 = a_off + (3 * a_rs if mr > 3 else 0)
    o4 = a_off + (4 * a_rs if mr > 4 else 0)
    o5 = a_off + (5 * a_rs if mr > 5 else 0)
    o6 = a_off + (6 * a_rs if mr > 6 else 0)
    o7 = a_off + (7 * a_rs if mr > 7 else 0)
    if a_rs == 1 and mr == MR:
        # The MR values of one k side by side (packed panels, transposed A):
        # one pointer with constant offsets, which leaves LLVM enough
        # general registers for the unrolled loop (the general form below
        # keeps one index per row and spills them).
        ia = a_off
        ib = b_off
        for _ in range(kc):
            b0 = vload(b, ib)
            b1 = vload(b, ib + lanes)
            av = vbroadcast_load(a, ia)
            c00 = vfma(av, b0, c00)
            c01 = vfma(av, b1, c01)
            av = vbroadcast_load(a, ia + 1)
            c10 = vfma(av, b0, c10)
            c11 = vfma(av, b1, c11)
            av = vbroadcast_load(a, ia + 2)
            c20 = vfma(av, b0, c20)
            c21 = vfma(av, b1, c21)
            av = vbroadcast_load(a, ia + 3)
            c30 = vfma(av, b0, c30)
            c31 = vfma(av, b1, c31)
            av = vbroadcast_load(a, ia + 4)
            c40 = vfma(av, b0, c40)
            c41 = vfma(av, b1, c41)
            av = vbroadcast_load(a, ia + 5)
            c50 = vfma(av, b0, c50)
            c51 = vfma(av, b1, c51)
            if MR > 6:
                av = vbroadcast_load(a, ia + 6)
                c60 = vfma(av, b0, c60)
                c61 = vfma(av, b1, c61)
                av = vbroadcast_load(a, ia + 7)
                c70 = vfma(av, b0, c70)
                c71 = vfma(av, b1, c71)
            ia += a_cs
            ib += b_rs
        kc = 0
    ia = 0
    ib = b_off
    for _ in range(kc):
        b0 = vload(b, ib)
        b1 = vload(b, ib + lanes)
        av = vbroadcast_load(a, o0 + ia)
        c00 = vfma(av, b0, c00)
        c01 = vfma(av, b1, c01)
        av = vbroadcast_load(a, o1 + ia)
        c10 = vfma(av, b0, c10)
        c11 = vfma(av, b1, c11)
        av = vbroadcast_load(a, o2 + ia)
        c20 = vfma(av, b0, c20)
        c21 = vfma(av, b1, c21)
        av = vbroadcast_load(a, o3 + ia)
        c30 = vfma(av, b0, c30)
        c31 = vfma(av, b1, c31)
        av = vbroadcast_load(a, o4 + ia)
        c40 = vfma(av, b0, c40)
        c41 = vfma(av, b1, c41)
        av = vbroadcast_load(a, o5 + ia)
        c50 = vfma(av, b0, c50)
        c51 = vfma(av, b1, c51)
        if MR > 6:
            av = vbroadcast_load(a, o6 + ia)
            c60 = vfma(av, b0, c60)
            c61 = vfma(av, b1, c61)
            av = vbroadcast_load(a, o7 + ia)
            c70 = vfma(av, b0, c70)
            c71 = vfma(av, b1, c71)
        ia += a_cs
        ib += b_rs
    store_row(c, c_off, lanes, c00, c01, accumulate, ncols)
    if mr > 1:
        store_row(c, c_off + ldc, lanes, c10, c11, accumulate, ncols)
    if mr > 2:
        store_row(c, c_off + 2 * ldc, lanes, c20, c21, accumulate, ncols)
    if mr > 3:
        store_row(c, c_off + 3 * ldc, lanes, c30, c31, accumulate, ncols)
    if mr > 4:
        store_row(c, c_off + 4 * ldc, lanes, c40, c41, accumulate, ncols)
    if mr > 5:
        store_row(c, c_off + 5 * ldc, lanes, c50, c51, accumulate, ncols)
    if MR > 6 and mr > 6:
        store_row(c, c_off + 6 * ldc, lanes, c60, c61, accumulate, ncols)
    if MR > 7 and mr > 7:
        store_row(c, c_off + 7 * ldc, lanes, c70, c71, accumulate, ncols)


@njit(**_jit)
def store_row(c, off, lanes, v0, v1, accumulate, ncols):
    """``c[off : off + ncols] (+)= [v0, v1][:ncols]``."""
    if ncols >= 2 * lanes:
        if accumulate:
            v0 = vadd(v0, vload(c, off))
            v1 = vadd(v1, vload(c, off + lanes))
        vstore(c, off, v0)
        vstore(c, off + lanes, v1)
    else:
        n0 = min(ncols, lanes)
        n1 = ncols - lanes
        if accumulate:
            v0 = vadd(v0, vload_masked(c, off, n0))
            v1 = vadd(v1, vload_masked(c, off + lanes, n1))
        vstore_masked(c, off, v0, n0)
        vstore_masked(c, off + lanes, v1, n1)


@njit(**_jit)
def gemm_block(a, a_base, a_pstride, a_rs, a_cs, b, b_pstride, b_rs, k0, k1, m, n, ip0, ip1, jp0, jp1,
               c, c_off, ldc, accumulate, bias, has_bias):
    """``C[rows of A panels ip0:ip1, cols of B panels jp0:jp1] (+)= A[:, k0:k1] @ B[k0:k1, :]``.

    ``A[ip * MR + r, k]`` is ``a[a_base + ip * a_pstride + r * a_rs + k * a_cs]`` (packed
    panels: ``(K * MR, 1, MR)``), ``B[k, jp * NR + j]`` is
    ``b[jp * b_pstride + k * b_rs + j]`` (packed: ``(K * NR, NR)``);
    ``m x n`` is the logical size of C (edges), ``c[c_off + i * ldc + j]`` is
    ``C[i, j]``. ``accumulate`` adds to C instead of overwriting it. Callers
    that hold only some panels shift ``c_off`` (and ``m``/``n``) instead.
    With ``has_bias`` row ``i`` gets ``bias[i]`` added (``bias`` padded to
    whole A panels); ``bias`` is otherwise unused (pass any float array).
    """
    nr = nr_of(b)
    mc = max(1, MC_BYTES // (MR * KC * b.itemsize))
    for pc in range(k0, k1, KC):
        kc = min(KC, k1 - pc)
        acc = accumulate or pc > k0
        add_bias = has_bias and pc == k0
        # Blocks of ``mc`` A panels: their k slice stays in L2 while every
        # B micro-panel of the slice is used on it (from L1).
        for ic in range(ip0, ip1, mc):
            ie = min(ip1, ic + mc)
            for jp in range(jp0, jp1):
                j0 = jp * nr
                ncols = min(nr, n - j0)
                b_off = jp * b_pstride + pc * b_rs
                for ip in range(ic, ie):
                    i0 = ip * MR
                    micro_kernel(kc, a, a_base + ip * a_pstride + pc * a_cs, a_rs, a_cs, b, b_off, b_rs,
                                 c, c_off + i0 * ldc + j0, ldc, min(MR, m - i0), ncols, acc, bias, i0, add_bias)


# --------------------------------------------------------------------------
# Packing of plain matrices (conv packs its own panels straight from images)
# --------------------------------------------------------------------------

@njit(**_jit)
def pack_a_panel(a, trans, i0, ap, off):
    """Pack rows ``i0 : i0 + MR`` of ``op(a)`` (all of K) into ``ap[off:]``, zero-padded."""
    if trans:
        k, m = a.shape
    else:
        m, k = a.shape
    af = a.reshape(a.size)
    rows = min(MR, m - i0)
    for p in range(k):
        dst = off + p * MR
        for r in range(rows):
            src = p * m + i0 + r if trans else (i0 + r) * k + p
            store(ap, dst + r, load(af, src))
        for r in range(rows, MR):
            store(ap, dst + r, 0.0)


@njit(**_jit)
def pack_a(a, trans, ip0, ip1, ap):
    """Pack A panels ``ip0 : ip1`` of ``op(a)`` (all of K; panel ``ip`` at ``ap[ip * K * MR]``).

    Loop orders follow the source layout: with ``trans`` rows of ``a`` are
    read in full cache lines and dealt out to the panels; otherwise each
    panel reads ``MR`` rows side by side.
    """
    if trans:
        k, m = a.shape
    else:
        m, k = a.shape
    af = a.reshape(a.size)
    full = min(ip1, m // MR)
    if trans:
        # Tiles of 16 rows of ``a``: the rows stay in L1 while each panel
        # receives 16 consecutive ``k`` (one run of writes per panel).
        for p0 in range(0, k, 16):
            p1 = min(k, p0 + 16)
            for ip in range(ip0, full):
                for p in range(p0, p1):
                    dst = ip * k * MR + p * MR
                    src = p * m + ip * MR
                    for r in range(MR):
                        store(ap, dst + r, load(af, src + r))
    else:
        for ip in range(ip0, full):
            dst = ip * k * MR
            src = ip * MR * k
            for p in range(k):
                for r in range(MR):
                    store(ap, dst + p * MR + r, load(af, src + r * k + p))
    for ip in range(max(ip0, full), ip1):
        pack_a_panel(a, trans, ip * MR, ap, ip * k * MR)


@njit(**_jit)
def pack_b_panel(b, trans, j0, bp, off):
    """Pack columns ``j0 : j0 + NR`` of ``op(b)`` (all of K) into ``bp[off:]``, zero-padded."""
    nr = nr_of(bp)
    if trans:
        n, k = b.shape
    else:
        k, n = b.shape
    cols = min(nr, n - j0)
    bf = b.reshape(b.size)
    if cols == nr:
        if trans:
            for p in range(k):
                dst = off + p * nr
                for j in range(nr):
                    store(bp, dst + j, load(bf, (j0 + j) * k + p))
        else:
            lanes = VEC_BYTES // bp.itemsize
            for p in range(k):
                dst = off + p * nr
                src = p * n + j0
                vstore(bp, dst, vload(bf, src))
                vstore(bp, dst + lanes, vload(bf, src + lanes))
    else:
        for p in range(k):
            dst = off + p * nr
            if trans:
                for j in range(cols):
                    bp[dst + j] = b[j0 + j, p]
            else:
                for j in range(cols):
                    bp[dst + j] = b[p, j0 + j]
            for j in range(cols, nr):
                bp[dst + j] = 0


@njit(**_jit)
def pack_b(b, trans, jp0, jp1, bp):
    """Pack B panels ``jp0 : jp1`` of ``op(b)`` (all of K; panel ``jp`` at ``bp[jp * K * NR]``).

    A transposed ``b`` holds a panel's ``NR`` values of one ``k`` in ``NR``
    different rows: they are fetched with two hardware gathers per ``k``.
    """
    nr = nr_of(bp)
    lanes = VEC_BYTES // bp.itemsize
    if trans:
        n, k = b.shape
    else:
        k, n = b.shape
    full = min(jp1, n // nr)
    if trans and jp0 < full and nr * k < 2**31:
        bf = b.reshape(b.size)
        offsets = np.arange(nr).astype(np.int32) * np.int32(k)
        for jp in range(jp0, full):
            dst = jp * k * nr
            src = jp * nr * k
            for p in range(k):
                vstore(bp, dst + p * nr, vgather(bf, src + p, offsets, 0))
                vstore(bp, dst + p * nr + lanes, vgather(bf, src + p, offsets, lanes))
        jp0 = full
    for jp in range(jp0, jp1):
        pack_b_panel(b, trans, jp * nr, bp, jp * k * nr)


# --------------------------------------------------------------------------
# matmul drivers
# --------------------------------------------------------------------------

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


@njit(**_jit)
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


@njit(**_jit)
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


@njit(**_jit)
def b_in_place(trans, k, n, itemsize):
    """Whether the full B panels are read where they lie (only the last, partial one packed).

    A row-major B already has the ``NR`` values of one ``k`` side by side;
    packing it only pays when its rows would collide in the L1 sets (a row
    pitch that is a multiple of 256 bytes maps the ``KC`` rows of a panel
    onto a few sets) or when it is too large to stay in L2 while reused.
    """
    return not trans and k * n * itemsize <= (1 << 20) and (n * itemsize) % 256 != 0


@njit(**_jit)
def gemm_cols(af, a_pstride, a_rs, a_cs, b, bp, in_place, k, m, n, ip0, ip1, jp0, jp1, c):
    """``c[A panels ip0:ip1, B panels jp0:jp1] = op(a) @ op(b)``; B from ``b`` in place or ``bp`` packed.

    In place, the full panels come from ``b`` (row pitch ``n``) and the last,
    partial panel from ``bp`` (packed alone at ``bp[0:]``, zero-padded).
    """
    nr = nr_of(c)
    if in_place:
        full = n // nr
        mid = min(jp1, full)
        if jp0 < mid:
            gemm_block(af, 0, a_pstride, a_rs, a_cs, b.reshape(b.size), nr, n, 0, k, m, n, ip0, ip1, jp0, mid,
                       c, 0, n, False, bp, False)
        if jp1 > full:
            gemm_block(af, 0, a_pstride, a_rs, a_cs, bp, 0, nr, 0, k, m, n, ip0, ip1, max(jp0, full), jp1,
                       c, 0, n, False, bp, False)
    else:
        gemm_block(af, 0, a_pstride, a_rs, a_cs, bp, k * nr, nr, 0, k, m, n, ip0, ip1, jp0, jp1,
                   c, 0, n, False, bp, False)


@njit(**_jit)
def gemm_serial(a, b, trans_a, trans_b, c):
    """``c = op(a) @ op(b)`` with the micro-kernel, on the calling thread."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    nr = nr_of(c)
    npa = cdiv(m, MR)
    npb = cdiv(n, nr)
    b_direct = b_in_place(trans_b, k, n, c.itemsize)
    if b_direct:
        bp = np.empty(k * nr, dtype=c.dtype)
        if n % nr:
            pack_b_panel(b, False, n - n % nr, bp, 0)
    else:
        bp = np.empty(npb * k * nr, dtype=c.dtype)
        pack_b(b, trans_b, 0, npb, bp)
    if a_in_place(trans_a, m, k, n, c.itemsize):
        af = a.reshape(a.size)
        a_pstride, a_rs, a_cs = a_layout(trans_a, m, k)
    else:
        af = np.empty(npa * k * MR, dtype=c.dtype)
        pack_a(a, trans_a, 0, npa, af)
        a_pstride, a_rs, a_cs = k * MR, 1, MR
    gemm_cols(af, a_pstride, a_rs, a_cs, b, bp, b_direct, k, m, n, 0, npa, 0, npb, c.reshape(m * n))


@njit(parallel=True, **_jit)
def gemm_parallel(a, b, trans_a, trans_b, c, nthreads):
    """``c = op(a) @ op(b)``: panels packed (where needed), then blocks of C computed, under ``prange``.

    ``nthreads`` (``numba.get_num_threads()``, passed in: reading it here
    would make the function uncacheable) sizes the blocks.
    """
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    nr = nr_of(c)
    npa = cdiv(m, MR)
    npb = cdiv(n, nr)
    b_direct = b_in_place(trans_b, k, n, c.itemsize)
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
            pack_b_panel(b, False, n - n % nr, bp, 0)
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
                  bj * nc, min(npb, (bj + 1) * nc), cflat)
