"""Register-tiled GEMM core shared by the CPU ``matmul`` and ``conv`` kernels: tile, blocking, micro-kernel.

The structure is BLIS's (Van Zee & van de Geijn, "BLIS: A Framework for
Rapidly Instantiating BLAS Functionality", 2015):

* The micro-kernel keeps an ``MR x NR`` tile of ``C`` in ``2 * MR`` vector
  registers (two vectors wide; 8 x 32 float32 or 8 x 16 float64 with
  AVX-512's 32 zmm registers, 6 x 16 or 6 x 8 with AVX2's 16 ymm: the path
  is chosen at import by ``_isa``) for a whole ``k`` slice: per ``k`` it
  loads two vectors of B, broadcasts ``MR`` values of A and issues
  ``2 * MR`` FMAs (``vfmadd231ps`` with a broadcast operand). Edge tiles
  store only their valid rows and, with lane masks, their valid columns.
* B is read from *panels* of ``NR`` columns in which the ``NR`` values of
  one ``k`` are contiguous (``b_rs`` apart from one ``k`` to the next):
  a row-major B already is one (read in place when used by few A panels,
  or on AVX-512 when small, and its row pitch does not alias in L1:
  ``_gemm.b_in_place``), otherwise it is
  packed (``_gemm_pack``; transposed B by scalar moves). A is read
  through ``(row, column)`` strides, so a row-major A, a transposed A and
  packed ``MR``-row panels of A all feed the same micro-kernel; panels with
  the ``MR`` values of one ``k`` side by side (packed, or transposed A) take
  a k loop with a single A pointer.
* Blocking (``gemm_block``): a ``k`` slice is ``KC`` deep so that a B
  micro-panel (``KC x NR``) stays in L1 while it is used against ``MC``
  rows of A, whose slice (``MC x KC``, ``MC_BYTES``) stays in L2. The
  matmul drivers (``_gemm``) split C into *tasks* of up to
  ``MC_PANELS x NC_PANELS`` tiles that write disjoint blocks of ``C``, so
  they run under ``prange`` without races.

Blocking for the two measured x86 paths, from one rule (B micro-panel
32 KiB in L1, A block 144-288 KiB in L2; K cut into equal slices):

========  =======  =====  ===========  ===================  ==================
path      tile     KC     B panel      MC (float32/64)      L1d / L2 targeted
========  =======  =====  ===========  ===================  ==================
avx2      6 x 16   512    32 KiB       144 / 72 rows        32 KiB / 512 KiB (Zen 2/3, Haswell+)
avx512    8 x 32   256    32 KiB       144 / 72 rows        32-48 KiB / 1 MiB+
========  =======  =====  ===========  ===================  ==================
"""

from __future__ import annotations

from ._gemm_epilogue import EPI_COL_BIAS, EPI_RELU, vrelu
from ._gemm_simd import (
    MASKED_STORE_FAST,
    VEC_BYTES,
    data_pointer,
    prefetch_write,
    vadd,
    vbroadcast_load,
    vfma,
    vlanes,
    vload,
    vload_masked,
    vstore,
    vstore_masked,
    vzero,
)
from ._isa import ISA
from ._jit import FASTMATH, njit
from ._tier import shared

#: Rows of the register tile (A panel width): 8 with AVX-512's 32 registers,
#: 6 with AVX2's 16 (see ``_isa``). The micro-kernel is written for 8 rows;
#: ``MR`` is a compile-time constant, so with 6 the code of rows 6 and 7 is
#: never emitted.
MR = ISA.gemm_mr
#: Largest depth of one ``k`` slice (``gemm_block`` cuts K into equal slices of
#: at most this). Up to AVX2: 512, BLIS's float32 choice for Zen 3 (a B
#: micro-panel ``KC x NR`` is 32 KiB float32); measured on Zen 3 against 256:
#: 2048^2 0.77 -> 0.81-0.83x OpenBLAS, 1024^2 0.92 -> 0.94x (C is read and
#: written half as often). AVX-512 keeps 256 (its 32 columns make the panel
#: 32 KiB already; measured 0.86-0.93x OpenBLAS on Skylake-X / Ice Lake).
KC = 512 if VEC_BYTES <= 32 else 256
#: Largest ``k`` slice while A is read transposed in place (``a_rs == 1``, the ``MR`` values of one
#: ``k`` side by side and the next ``k`` ``M`` values on: a deep weight gradient's ``G^T``). A tile then
#: reads one line of A per ``k`` (64 bytes for the 24 it uses on AVX2) besides its ``kc x NR`` B
#: micro-panel: at ``KC = 512`` 32 KiB each, twice the L1. AVX-512's ``KC`` is this already.
#: Measured on Zen 3 (AVX2), ``bench/gemm_drivers.py``, alternating processes, three rounds, ms
#: (one thread / team of two): 512 x 3584 x 128 TN (the sequence-MNIST LSTM's recurrent weight
#: gradient) 7.5-10.4 -> 6.3-6.6 / 4.6-7.0 -> 3.2-3.8, 256 x 2048 x 64 TN 0.90-0.99 -> 0.78-0.83 /
#: 0.62-0.78 -> 0.45-0.56; at K = 300-512 the same within noise (120 x 512 x 256, 512 x 400 x 128,
#: 256 x 300 x 256 on one thread). Packed A keeps ``KC``.
KC_TRANS_A = 256
#: Bytes of the A block (``MC x KC``) that stays in L2 while the B micro-panels
#: of a ``k`` slice stream past it: BLIS's Zen 3 choice, ``MC = 144`` float32
#: rows at ``KC = 512`` (288 KiB of a 512 KiB L2); 144 KiB with AVX-512.
MC_BYTES = (288 if VEC_BYTES <= 32 else 144) * 1024
#: Up to this depth ``gemm_block`` walks C by rows of tiles instead of by columns.
SHALLOW_K = 32
#: Bytes of B a shallow product keeps in L2 while every row panel of C passes it.
SHALLOW_B_BYTES = 64 * 1024
#: A parallel task's block of C, in panels: up to ``MC_PANELS * MR`` rows ...
MC_PANELS = 32
#: ... and ``NC_PANELS * NR`` columns.
NC_PANELS = 16

_jit = dict(cache=True, fastmath=FASTMATH, nogil=True)


@njit(inline="always", **_jit)
def nr_of(arr):
    """Columns of the register tile (B panel width) for ``arr``'s dtype: two vectors."""
    return 2 * (VEC_BYTES // arr.itemsize)


@njit(inline="always", **_jit)
def cdiv(a, b):
    return (a + b - 1) // b


# --------------------------------------------------------------------------
# Micro-kernel
# --------------------------------------------------------------------------

@njit(inline="always", **_jit)
def packed_step(a, ia, b, ib, lanes, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61,
                c70, c71):
    """One ``k`` of the micro-kernel on A's ``MR`` values side by side at ``a[ia:]`` and B's two vectors
    at ``b[ib:]``: the accumulators (row ``r``: ``c<r>0``, ``c<r>1``) after their ``2 * MR`` FMAs."""
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
    return c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71


# Inlined into gemm_block: called, it cost ~150 cycles a tile in argument passing and atomic reference
# counts of its four arrays, a third of a shallow (K <= 32) product's time. By LLVM (``forceinline``:
# compiled once, then ``alwaysinline``), not by Numba (``inline="always"``), whose IR inlining deep-copied
# its 69 blocks with gemm_block's whole scope: 1.1-1.45 CPU-s of a cold start, measured on Zen 3; the
# code of gemm_block is the same (its tile loops, FMAs and instruction counts).
@njit(forceinline=True, **_jit)
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
    lanes = vlanes(bp)
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
    if ncols <= lanes:
        # A narrow tile (a 10-class head's columns, the last panel of an edge): B's second vector
        # would be padding, so only the first is loaded and multiplied, half the FMAs. One loop for
        # every layout of A (per-row offsets): the product is short-lived, a second copy of this
        # loop for packed A would cost compile time for little.
        ia = 0
        ib = b_off
        for _ in range(kc):
            b0 = vload(b, ib)
            c00 = vfma(vbroadcast_load(a, o0 + ia), b0, c00)
            c10 = vfma(vbroadcast_load(a, o1 + ia), b0, c10)
            c20 = vfma(vbroadcast_load(a, o2 + ia), b0, c20)
            c30 = vfma(vbroadcast_load(a, o3 + ia), b0, c30)
            c40 = vfma(vbroadcast_load(a, o4 + ia), b0, c40)
            c50 = vfma(vbroadcast_load(a, o5 + ia), b0, c50)
            if MR > 6:
                c60 = vfma(vbroadcast_load(a, o6 + ia), b0, c60)
                c70 = vfma(vbroadcast_load(a, o7 + ia), b0, c70)
            ia += a_cs
            ib += b_rs
        kc = 0
    # A short tile (the last rows of an M that is not a multiple of MR: 9 = 8 + 1, 25 = 3 x 8 + 1,
    # 10 = 8 + 2) takes the general loop below, which then computes only the lower half of the rows.
    full = mr > MR // 2
    # The 6-row AVX2 tile has a third height: 4 rows (M = 16 = 6 + 6 + 4, LeNet's and ResNet's
    # 16-channel convolutions) run rows 0-3 in the loop below instead of all six in this one.
    # Forced AVX2 on Zen 4, the product on packed operands: 16 x 150 x 1024 52.5 -> 47.2 us,
    # 16 x 144 x 4096 198 -> 183 us.
    upper = full if MR > 6 else mr > 4
    if a_rs == 1 and upper and (mr == MR or a_cs == MR):
        # The MR values of one k side by side (packed panels, transposed A):
        # one pointer with constant offsets, which leaves LLVM enough
        # general registers for the unrolled loop (the general form below
        # keeps one index per row and spills them). An edge tile takes it
        # too when its panel is MR wide (``a_cs == MR``: packed, so rows past
        # ``mr`` are padding inside the buffer, never stored).
        ia = a_off
        ib = b_off
        if MR == 6 and kc > SHALLOW_K:
            # Two k a turn on the 6 x 16 tile: 12 accumulators, two B vectors and the broadcast
            # hold 15 of 16 ymm registers, and LLVM, which does not unroll this loop itself on
            # AVX2 (it does on AVX-512), kept two accumulators moving through spare registers in
            # it: 27 instructions per k for 12 FMAs, against 22 here. llvm-mca, cycles per k:
            # Haswell 8.0 -> 6.0, Skylake 6.5 -> 6.0, Zen 2 7.35 -> 6.0 (the FMAs' bound). Not
            # for shallow tiles: forced AVX2 on Zen 4, one thread, a transposed A of K = 6 or 32
            # (25 x 6 x 9216, 9 x 32 x 10816) ran ~5 % slower two k a turn.
            for _ in range(kc >> 1):
                for _h in range(2):
                    (c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70,
                     c71) = packed_step(a, ia, b, ib, lanes, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41,
                                        c50, c51, c60, c61, c70, c71)
                    ia += a_cs
                    ib += b_rs
            kc &= 1
        for _ in range(kc):
            (c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70,
             c71) = packed_step(a, ia, b, ib, lanes, c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50,
                                c51, c60, c61, c70, c71)
            ia += a_cs
            ib += b_rs
        kc = 0
    # A full-height tile has a loop of its own, with no test in it: written as one loop for every
    # height, LLVM kept the two row tests in it (and, on AVX2, three reloads of row offsets): ~32
    # instructions per k for 12 FMAs, 8.5 cycles per k on Haswell and Zen 2 (llvm-mca) where the
    # FMAs take 6, as in this loop now. The shorter edge tiles keep the test of row 3. Written out
    # rather than through a helper like ``packed_step``: two more inlined call sites cost gemm_block
    # ~0.4 CPU-s more to compile on AVX2 (Numba types each inlined copy again).
    ia = 0
    ib = b_off
    if upper:
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
    elif MR > 6 and mr <= 2:
        # The last two rows of an 8-row panel (M = 10, a 10-class head's weight gradient): two rows, not
        # the lower half's four. AVX-512, one thread, Zen 4, alternating processes, two rounds, through
        # matmul: 10 x 128 x 84 TN 4.53-4.56 -> 4.29-4.35 us, 10 x 128 x 64 TN 3.02-3.06 -> 2.90-2.92 us,
        # 130 x 84 x 120 NN 28.7-28.9 -> 28.2-28.3 us. Not on AVX2, whose 6-row tile has a 2-row edge
        # at M = 128: there the extra loop cost 128 x 10 x 84 NN 4.22-4.27 -> 4.55-4.65 us (forced
        # AVX2 on Zen 4), code layout rather than arithmetic.
        for _ in range(kc):
            b0 = vload(b, ib)
            b1 = vload(b, ib + lanes)
            av = vbroadcast_load(a, o0 + ia)
            c00 = vfma(av, b0, c00)
            c01 = vfma(av, b1, c01)
            av = vbroadcast_load(a, o1 + ia)
            c10 = vfma(av, b0, c10)
            c11 = vfma(av, b1, c11)
            ia += a_cs
            ib += b_rs
    else:
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
            if MR > 6 or full:  # row 3: in the lower half of an 8-row tile, the upper of a 6-row one
                av = vbroadcast_load(a, o3 + ia)
                c30 = vfma(av, b0, c30)
                c31 = vfma(av, b1, c31)
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
        # A first vector that is whole (an edge of 17-31 float32 columns on AVX-512) by a plain store:
        # Zen 4's k-masked store is slow (~10 cycles each in the edge tiles). One thread, Zen 4,
        # alternating processes, three rounds, kernel in a loop inside Numba (bench/gemm_call.py):
        # 128 x 10 x 84 3.25-3.56 -> 2.96-3.16 us, 256 x 10 x 84 6.36-6.82 -> 5.95-6.23. Only where
        # stores are masked (AVX-512): the per-lane stores of the other paths store a whole vector
        # as one already, and the extra branch left a register copy in AVX2's float64 tile loop.
        if MASKED_STORE_FAST and n0 == lanes:
            vstore(c, off, v0)
        else:
            vstore_masked(c, off, v0, n0)
        vstore_masked(c, off + lanes, v1, n1)


@njit(inline="always", **_jit)
def epilogue_tile(c, c_off, ldc, mr, ncols, bias, bias_col, epi):
    """``C[:mr, :ncols] = act(C[:mr, :ncols] + bias[bias_col:][:ncols])`` by the bits of ``epi``, on the tile
    the micro-kernel has just stored (still in L1).

    Applied on the stored tile rather than in ``store_row``'s registers: inside
    the micro-kernel the epilogue made ``store_row`` too large for LLVM to
    inline, and its calls (reference counts on ``c`` and ``bias`` per row) ran
    shallow products 3x slower. Same arithmetic, same order (``C + bias``,
    then the activation), so the result is the unfused one, bit for bit.
    """
    lanes = vlanes(c)
    n0 = min(ncols, lanes)
    n1 = ncols - lanes
    full = ncols >= 2 * lanes
    for r in range(mr):
        off = c_off + r * ldc
        if full:
            v0 = vload(c, off)
            v1 = vload(c, off + lanes)
        else:
            v0 = vload_masked(c, off, n0)
            v1 = vload_masked(c, off + lanes, n1)
        if epi & EPI_COL_BIAS:
            if full:
                v0 = vadd(v0, vload(bias, bias_col))
                v1 = vadd(v1, vload(bias, bias_col + lanes))
            else:
                v0 = vadd(v0, vload_masked(bias, bias_col, n0))
                v1 = vadd(v1, vload_masked(bias, bias_col + lanes, n1))
        if epi & EPI_RELU:
            v0 = vrelu(v0)
            v1 = vrelu(v1)
        if full:
            vstore(c, off, v0)
            vstore(c, off + lanes, v1)
        else:
            vstore_masked(c, off, v0, n0)
            vstore_masked(c, off + lanes, v1, n1)


@shared  # compiled once per cold start: the tiered step and its background process share it (_tier)
@njit(**_jit)
def gemm_block(a, a_base, a_pstride, a_rs, a_cs, b, b_pstride, b_rs, k0, k1, m, n, ip0, ip1, jp0, jp1,
               c, c_off, ldc, accumulate, bias, has_bias, epi):
    """``C[rows of A panels ip0:ip1, cols of B panels jp0:jp1] (+)= A[:, k0:k1] @ B[k0:k1, :]``.

    ``A[ip * MR + r, k]`` is ``a[a_base + ip * a_pstride + r * a_rs + k * a_cs]`` (packed
    panels: ``(K * MR, 1, MR)``), ``B[k, jp * NR + j]`` is
    ``b[jp * b_pstride + k * b_rs + j]`` (packed: ``(K * NR, NR)``);
    ``m x n`` is the logical size of C (edges), ``c[c_off + i * ldc + j]`` is
    ``C[i, j]``. ``accumulate`` adds to C instead of overwriting it. Callers
    that hold only some panels shift ``c_off`` (and ``m``/``n``) instead.
    With ``has_bias`` row ``i`` gets ``bias[i]`` added (``bias`` padded to
    whole A panels); ``bias`` is otherwise unused (pass any float array).
    ``epi`` is the store's epilogue (``micro_kernel``), applied after the
    last ``k`` slice; its column bias is ``bias[j]`` for column ``j`` of
    these coordinates (``0`` for no epilogue).
    """
    nr = nr_of(b)
    # The tiles read and write through raw pointers (the arrays are this call's arguments, alive
    # throughout): arrays passed to the inlined micro-kernel cost reference counts around each tile
    # (see ``data_pointer``). Zen 4, one thread: 1024 x 10 x 64 25.6 -> 16.5 us, 32 x 9 x 10816 (Keras
    # conv1's im2col product) 123 -> 81 us, 1024 x 256 x 64 340 -> 329 us.
    ap = data_pointer(a)
    bq = data_pointer(b)
    cq = data_pointer(c)
    biasq = data_pointer(bias)
    # One loop nest serves both orders, so that the micro-kernel and the epilogue, inlined, are
    # emitted once: k slices, then blocks of ``blk`` panels of one kind (B for shallow products, A
    # otherwise), then every panel ``sp`` of the other kind, then the block's panels ``bp``. Two
    # nests (one call site each) compiled twice the SIMD code: measured on Zen 3, gemm_block 5.0 ->
    # 3.1 CPU-s, and Numba re-optimises it in every caller's module too (gemm_cols 1.35 -> 0.9 s).
    shallow = k1 - k0 <= SHALLOW_K
    if shallow:
        # Shallow products (im2col of a first conv layer, a Linear layer's
        # input gradient): each tile is mostly its store, so C is written
        # row panel by row panel (sequential lines the hardware prefetcher
        # follows) while the small B stays in L1/L2: in column blocks of
        # SHALLOW_B_BYTES of B, so that a wide B is not fetched again from
        # L3 for every row panel. One k slice (also when K = 0: C = 0, or the bias).
        slices = 1
        kstep = k1 - k0
        blk = max(1, SHALLOW_B_BYTES // (max(1, kstep) * nr * b.itemsize))
        b0, b1, s0, s1 = jp0, jp1, ip0, ip1
    else:
        # Equal slices of at most KC (576 = 2 x 288, not 512 + 64: a thin last slice is mostly overhead),
        # KC_TRANS_A for A read transposed in place.
        kc_max = KC_TRANS_A if a_rs == 1 and a_cs != MR else KC
        slices = (k1 - k0 + kc_max - 1) // kc_max  # not cdiv: a literal argument (KC) compiled another cdiv
        kstep = (k1 - k0 + slices - 1) // slices
        # Blocks of ``blk`` A panels: their k slice stays in L2 while every
        # B micro-panel of the slice is used on it (from L1).
        blk = max(1, MC_BYTES // (MR * kstep * b.itemsize))
        b0, b1, s0, s1 = ip0, ip1, jp0, jp1
    for sl in range(slices):
        pc = k0 + sl * kstep
        kc = min(kstep, k1 - pc)
        acc = accumulate or pc > k0
        add_bias = has_bias and pc == k0
        epi_now = epi if pc + kc >= k1 else 0
        for bc in range(b0, b1, blk):
            be = min(b1, bc + blk)
            for sp in range(s0, s1):
                for bp in range(bc, be):
                    ip = sp if shallow else bp
                    jp = bp if shallow else sp
                    i0 = ip * MR
                    j0 = jp * nr
                    mr = min(MR, m - i0)
                    ncols = min(nr, n - j0)
                    micro_kernel(kc, ap, a_base + ip * a_pstride + pc * a_cs, a_rs, a_cs, bq,
                                 jp * b_pstride + pc * b_rs, b_rs, cq, c_off + i0 * ldc + j0, ldc, mr, ncols, acc,
                                 biasq, i0, add_bias)
                    if epi_now:
                        epilogue_tile(cq, c_off + i0 * ldc + j0, ldc, mr, ncols, biasq, j0, epi_now)
