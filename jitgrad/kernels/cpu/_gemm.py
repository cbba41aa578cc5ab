"""The matmul drivers on the GEMM core: small products, one thread, and blocks of C under ``prange``.

The micro-kernel, tile and blocking live in ``_gemm_tile``, the packing in
``_gemm_pack``; their names are re-exported here for ``_conv``.

A parallel call splits C into blocks, one task each. Each packed operand
is packed by the tasks that read it where that copies little more, else
once before them: on the calling thread when small, else in a packing region of
its own (each region wakes the pool). ``matmul`` computes into a scratch array when ``out`` overlaps
an input, so packed data never aliases the output.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba import carray, prange, types

from ._atomic import new_counter, next_task, share_done
from ._gemm_epilogue import EPI_COL_BIAS, apply_epilogue
from ._gemm_pack import pack_a, pack_a_panel, pack_b, pack_b_panel, transpose_rows  # noqa: F401 (re-exported for _conv)
from ._gemm_simd import VEC_BYTES, address_to_pointer
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
from ._gemv import GEMV_TEAM_MIN, gemv
from ._jit import PRANGE_ONLY, njit
from ._team_state import NO_TEAM, team_product, team_threads
from ._tier import tiered

#: Row-major A is read in place (not packed) up to this many columns of C: 32 on AVX-512 (measured on
#: Zen 4, see ``small_a_in_place``), 128 on AVX2 ...
A_IN_PLACE_MAX_N = 32 if VEC_BYTES >= 64 else 128
#: ... or, on one thread, while it is at most this many bytes (``small_a_in_place``): it stays in L1
#: for every B panel, and packing it cost a tenth of a shallow product. One thread, in a loop inside
#: Numba, packed against in place (``bench/gemm_call.py``, two alternating runs each): LeNet fc3's
#: input gradient, 128 x 10 x 84, Zen 4 AVX-512 5.2-5.3 -> 3.7-4.3 us, forced AVX2 4.1-5.2 -> 3.4-7.6
#: (entry point 4.8-6.2 -> 4.1-4.2); the ResNet head's, 128 x 10 x 64, 3.3-3.6 -> 2.8-3.0 and 2.9-3.5 -> 2.2-2.3 us;
#: 128 x 16 x 84 6.6 -> 5.0-5.6 and 6.0-7.3 -> 4.6-4.9 us.
#:
#: On AVX2 one thread reads every row-major A in place: the 6-row tile's in-place loop keeps its six
#: row offsets in general registers and runs about as fast as a packed panel, so packing A cost its
#: copy. Native Zen 3 (``znver2`` tuning), packed against in place, alternating processes, one thread
#: (thread CPU time, 3 rounds): LeNet fc1's forward 128 x 256 x 120 (B transposed) 103-107 -> 96-101
#: us, fc2's 38-42 -> 35 us, its input gradient 128 x 84 x 120 36-39 -> 33-34 us, 4096 x 256 x 120
#: 3.1-3.4 -> 2.9-3.1 ms, 256^3 387-461 -> 366-368 us and 512^3 3.0-3.6 -> 2.8-2.9 ms (minima), 256 x
#: 1000 x 1000 5.9-6.2 -> 5.7-5.8 ms; 2000^3 and float64 unchanged or faster. Two threads (minima of
#: 15 samples, 4 rounds, the VM's fast-mode runs) gain where A is used by few B panels, 128 columns or
#: fewer: fc1's forward 58.4-59 -> 50.5-51.3 us, fc2's 23.4-24.2 -> 20.3-20.8 us, its input gradient
#: 21.7-22.1 -> 19.4-19.8 us, 8192 x 64 x 100 702-719 -> 619-631 us; from 256 columns (A packed once,
#: shared, then read by many) in place was even or a few per cent slower: 256^3 231-272 -> 250-272 us,
#: 512^3 1.76-1.92 -> 1.85-1.98 ms, 64 x 576 x 784 486-549 -> 491-529 us.
A_IN_PLACE_MAX_BYTES = 8 * 1024 if VEC_BYTES >= 64 else 1 << 62
#: A transposed A too large for L2 is still read in place while B has at most this many panels
#: (``NR`` columns each). In place, each ``k`` of a tile is a line of its own, fetched again by
#: every B panel; packed, A costs a read and a write of all of it before the product. A deep
#: weight gradient ``G^T @ X`` (K = a whole batch) has few panels: measured side by side with
#: OpenBLAS (bench/matmul_side_by_side.py deep, Zen 4), packed against in place, the
#: sequence-MNIST LSTM's 512 x 3584 x 28 0.62-0.67 -> 1.10-1.16x, 512 x 3584 x 128 0.81-0.84 ->
#: 0.98-0.99x, a Linear layer's at batch 4096 (120 x 4096 x 256) 0.86-0.90 -> 1.03-1.09x; with
#: K = 2048-4096 in place never lost up to 16 panels on AVX-512. The AVX2 tile reads an A line
#: for 2.7x fewer multiply-adds, and lost from 16 panels (1024 x 4096 x 512 0.90 -> 0.74x).
T_A_IN_PLACE_MAX_PANELS = 16 if VEC_BYTES >= 64 else 8
#: Up to this many multiply-adds a plain loop beats the micro-kernel's set-up
#: (measured: the two meet near 16 x 16 x 16).
SMALL_MACS = 16 * 16 * 16
#: ``a @ b.T`` with at most this many rows or columns of C runs as dot products of
#: rows (``_gemm_dot``): packing the transposed B would cost more than it saves.
DOT_MAX_MN = 32
#: ... and at least this deep (conv weight gradients, wide Linear inputs): shallower ones gain
#: little, and LeNet-5's first step (no such product) compiles nothing more.
DOT_MIN_K = 256
#: On AVX2, ``a @ b.T`` whose shorter side fills B panels (``product_route``) runs on the packed
#: GEMM, as ``(b @ a.T).T`` when the short side is M: the transposed operand packed into B panels is
#: then the small one (M x K) instead of all of B (N x K, the most of a conv weight gradient's
#: ``g @ cols.T``; the large one is read in place as A), and C is written transposed into a scratch
#: array and copied back (M x N, a few per cent of the product's reads). Native Zen 3, against the
#: dot-product kernel or the GEMM packing B: see docs/performance.md, "a @ b.T as (b @ a.T).T"
#: (stop 50). AVX-512 keeps the earlier routes (its weight-gradient rows were 1.14-2.91x OpenBLAS;
#: not measured swapped: no AVX-512 host since).
SWAP_NT = VEC_BYTES < 64
#: ``product_route``'s answers: the packed GEMM as asked, the dot-product kernel, the GEMM swapped.
GEMM, DOT, SWAPPED = 0, 1, 2


def product_route(trans_a: bool, trans_b: bool, m: int, n: int, k: int, itemsize: int) -> int:
    """How ``op(a) @ op(b)`` (C ``m x n``, depth ``k``, elements of ``itemsize`` bytes) runs: ``GEMM``,
    ``DOT`` (``a @ b.T`` deep with a short side: ``_gemm_dot``) or ``SWAPPED`` (``a @ b.T`` as ``(b @
    a.T).T``, a store epilogue applied after it: ``SWAP_NT``)."""
    if trans_a or not trans_b:
        return GEMM
    short = min(m, n)
    nr = 2 * VEC_BYTES // itemsize
    # On the GEMM: a short side of one or two B panels (the last at least 7/8 full), the long operand
    # read in place as A (its row pitch not a multiple of 4 KiB: ``a_in_place``).
    packed = (SWAP_NT and nr <= short <= DOT_MAX_MN and (-(-short // nr) * nr - short) * 8 <= short
              and (k * itemsize) % 4096 != 0)
    if packed and m < n:
        return SWAPPED
    if k >= DOT_MIN_K and short <= DOT_MAX_MN and not (packed and n <= m):
        return DOT
    return GEMM


#: ``product_route`` for the kernels (the same source).
product_route_jit = njit(inline="always", **_jit)(product_route)
#: A parallel product runs in one parallel region, each task packing the panels it reads, while
#: that packs at most this many elements per thread more than a shared packing pass would (A once
#: per column of tasks, B once per row; 128 KiB of float32, ~10-20 us of copying). Each region
#: costs a wake-up of the pool's threads: ~100 us on the 2-core EPYC VM (OMP_WAIT_POLICY=PASSIVE),
#: 5-20 us on bare metal.
ONE_REGION_COPIES = 32 * 1024
#: A shared packing pass of at most this many elements runs on the calling thread, not in a parallel
#: region of its own: 64k float32 are ~30-60 us of copying, less than the region's wake-up on the
#: VM. (16 x 144 x 12544, a ResNet conv's im2col product: its 2,592 values of A took a region.)
SERIAL_PACK = 64 * 1024
#: Bytes of an operand that one packing holds while it is used. A larger B is packed and used in
#: blocks of at most this (one panel at least) by the one-thread driver and by tasks that pack their
#: own panels, one buffer reused block after block (BLIS's ``NC`` loop; its Zen 3 block ``KC x NC`` is
#: 8 MiB); a larger row-major A, with a B that fits, is multiplied in blocks of rows (``a_row_block``).
#: Packed whole, such an operand's buffer was freshly mapped memory on every call (glibc serves
#: blocks above 32 MiB by mmap), each first touch a page fault: one thread, Zen 3 VM, against NumPy,
#: 32 x 288 x 50176 (a 32-channel convolution over 16 images of 56 x 56) 0.23x, a language model's
#: output layer at batch 128 (512 x 50000 weights) 0.5x forward and input gradient; two threads,
#: 16384 x 2048 x 128 0.40-0.51x, 65536 x 512 x 256 0.58-0.68x (A packed whole).
PACK_BYTES = 8 * 1024 * 1024
#: A B packed for at most this many A panels (a task's, or the whole product's) is packed in blocks
#: of ``SMALL_B_BLOCK`` bytes, each used on every A panel right away, while it is still in L2 (a B
#: packed whole is written out to L3 or memory and read back: with so few A panels to use each B
#: panel, that pass is a tenth of the product). Measured one thread, native Zen 3, B 16 bytes into a
#: line (as most NumPy arrays), alternating processes, two rounds: 32 x 288 x 3136 (a ResNet
#: 32-channel convolution's product) 775-811 -> 756 us; 64 KiB blocks the same, 256 KiB slower; 11
#: panels (64 x 288 x 784, 64 x 576 x 784) even with 64 KiB blocks, up to 3 % slower with 128 KiB.
FEW_A_PANELS = 8
#: (see ``FEW_A_PANELS``): 4 panels of ``KC = 512`` or 7 of K = 288 on AVX2.
SMALL_B_BLOCK = 128 * 1024


@njit(**_jit)
def partition(npa, npb, nthreads, rows_first):
    """Split C (``npa`` A panels by ``npb`` B panels) into ``ti x tj`` tasks for ``nthreads``.

    Returns ``(ti, tj)``; task ``(bi, bj)`` holds the panels from :func:`split_at` of ``bi`` to
    ``bi + 1`` (of ``npa`` in ``ti``) by those of ``bj`` (of ``npb`` in ``tj``).
    Blocks start at ``MC_PANELS x NC_PANELS`` and shrink until every thread
    has a task (then even out), columns first (tasks that share no B panel can each pack
    their own), rows first with ``rows_first`` (B read in place, A packed:
    tasks that share no A panel each pack their own). While there are fewer than
    ``4 * nthreads`` tasks they shrink further, a panel at a time, to a whole number of
    rounds: ``prange`` hands each thread an equal run of tasks, and 3 tasks on 2 threads
    left one thread two thirds of the work (64 x 784 x 576: 2 threads slower than 1). More
    tasks than that take one column of tasks more where that makes whole rounds (13 -> 14).

    A single row of a few tasks whose runs of B panels differ by more than a fifth (3 panels
    on 2 threads: 2 and 1) is cut into ``nthreads`` rows as well: task ``t`` is row ``t // tj``,
    so each thread's run (the team's from either end, ``prange``'s in order) then holds one
    large and one small block. LeNet fc2's forward product on AVX-512 (128 x 120 x 84, B in
    three 32-column panels) gave the calling thread two thirds of the tiles; with 2 x 2 tasks
    (B's panels packed twice, the tasks' A halves once each), 2 threads, Zen 4, alternating
    processes, minimum of 25 blocks: 21.6-26.3 -> 18.3-22.4 us.
    """
    mc = min(MC_PANELS, npa)
    nc = min(NC_PANELS, npb)
    while cdiv(npa, mc) * cdiv(npb, nc) < nthreads and (mc > 1 or nc > 1):
        if nc > 1 and not (rows_first and mc > 1):
            nc = cdiv(nc, 2)
        else:
            mc = cdiv(mc, 2)
    while (cdiv(npa, mc) * cdiv(npb, nc)) % nthreads and cdiv(npa, mc) * cdiv(npb, nc) < 4 * nthreads:
        if nc > 1 and not (rows_first and mc > 1):
            nc -= 1
        elif mc > 1:
            mc -= 1
        else:
            break
    ti = cdiv(npa, mc)
    tj = cdiv(npb, nc)
    while (ti * tj) % nthreads and tj < npb:
        tj += 1
    if ti == 1 and tj < 4 * nthreads and cdiv(npb, tj) * tj * 5 > npb * 6 and npa >= nthreads:
        ti = nthreads  # uneven runs of B panels (see above)
    return ti, tj


@njit(inline="always", **_jit)  # inlined: no compile of its own
def split_at(i, parts, total):
    """Where part ``i`` of ``total`` panels cut in ``parts`` begins (``total - (parts - i) * total //
    parts``): parts differ by at most one panel, and so do the runs of ``parts / nthreads`` parts
    that ``prange`` gives each thread, the first run (the calling thread's, which starts while the
    pool's thread still wakes) the larger. Blocks of a fixed size left the last one short and the
    runs uneven: 49 B panels in blocks of 13 gave one thread 26 and the other 23 (now 25 and 24)."""
    return total - (parts - i) * total // parts


@njit(inline="always", **_jit)  # inlined: no compile of its own
def a_in_place(trans, m, k, n, itemsize):
    """Whether the micro-kernel reads ``op(a)`` where it lies instead of from packed panels.

    Row-major A is read as ``MR`` row streams, as fast as packed panels and
    without the packing pass, while C is narrow (``A_IN_PLACE_MAX_N``; on one
    thread also while A is small, ``small_a_in_place``), unless its row pitch
    is a multiple of 4 KiB (then the ``MR`` rows map to one L1 set and evict
    each other).
    Transposed A gives each ``k`` its own cache
    line (``MR`` values of a row ``M`` long): fine while A sits in L2, or
    while few B panels read it again (``T_A_IN_PLACE_MAX_PANELS``); a large
    transposed A used by many panels is packed.
    """
    if not trans:
        # Row pitches that are multiples of 4 KiB put the MR rows in one L1 set.
        return (k * itemsize) % 4096 != 0 and n <= A_IN_PLACE_MAX_N
    return m * k * itemsize <= (1 << 20) or n <= T_A_IN_PLACE_MAX_PANELS * 2 * (VEC_BYTES // itemsize)


@njit(inline="always", **_jit)  # inlined: no compile of its own
def small_a_in_place(trans, m, k, itemsize):
    """Whether ``gemm_serial`` reads a row-major A of at most ``A_IN_PLACE_MAX_BYTES`` (on AVX2 any A) in
    place however wide C is (its row pitch not a multiple of 4 KiB). Not the parallel drivers: their tasks
    over a wide C with such an A ran slower in place (2 threads, Zen 4, alternating processes, minimum of
    25 blocks: 32 x 9 x 10816 57.7-71.3 -> 74.4-106.5 us, 16 x 16 x 2000 10.7-13.3 -> 16.2-29.6 us)."""
    return not trans and (k * itemsize) % 4096 != 0 and m * k * itemsize <= A_IN_PLACE_MAX_BYTES


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
    and not when C has at most ``3 * MR`` rows (each B value is then used
    at most three times: the packing pass would cost as much as the product),
    nor when ``k <= SHALLOW_K`` (``gemm_block`` then streams each panel once per
    row panel of C and never reuses it from L1) -- in both cases unless the row
    pitch is a multiple of 4 KiB: then all ``k`` rows of a panel fall in one L1
    set, and its loads missed even within one tile. One thread on Zen 3,
    packed against in place: LeNet conv2's input gradient (150 x 16 x 1024, A
    transposed) 145 -> 87 us (0.75 -> 1.03x OpenBLAS; N = 1000 in place:
    109-118 us); 16 x 288 x 2048 520-541 -> 334-346 us, 16 x 150 x 1024
    100-118 -> 93-112 us, 12 x 200 x 1024 80-97 -> 85-97 us (three runs each).

    Taller products keep B in place only on AVX-512. The AVX2 tile's B row is
    64 bytes, one line when aligned but two when not (a NumPy array's data
    starts 16 bytes into a line), so a ``KC = 512`` slice in place spans up to
    64 KiB of lines against the 32 KiB of L1 that its packed panel fits; each
    A panel then fetches B again from L2. One thread, forced AVX2 on Zen 4,
    in place against packed: 64 x 288 x 784 (a ResNet conv's im2col product)
    371 -> 296 us, 96 x 300 x 800 532 -> 440 us, 128 x 256 x 200 150 -> 135
    us, 32 x 200 x 1000 168 -> 149 us, 64 x 96 x 784 110 -> 103 us, 128 x 84 x
    120 (LeNet fc2's input gradient) unchanged. On AVX-512 in place won (the
    same shapes 5-9 % faster than packed).
    """
    if trans:
        return False
    if m <= 3 * MR or k <= SHALLOW_K:
        return (n * itemsize) % 4096 != 0
    return VEC_BYTES >= 64 and k * n * itemsize <= (1 << 20) and (n * itemsize) % 256 != 0


@njit(inline="always", **_jit)  # inlined: no compile of its own
def driver_sizes(a, trans_a, trans_b, c):
    """``(m, n, k, nr, npa, npb, b_direct)`` of ``c = op(a) @ op(b)`` for the drivers: C's size, the
    depth, the B panel width, the numbers of A and B panels, and whether B is read in place."""
    m, n = c.shape
    k = a.shape[0] if trans_a else a.shape[1]
    nr = nr_of(c)
    return m, n, k, nr, cdiv(m, MR), cdiv(n, nr), b_in_place(trans_b, m, k, n, c.itemsize)


# Inlined (only calls): its own library was ~1 CPU-s of a cold start, and each caller re-optimised it
# (gemm_serial and its callees compiled in 8 CPU-s instead of 10).
@njit(inline="always", **_jit)
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


#: How the tasks of a parallel product pack B (``prepare_tasks``' ``task_b``): not at all (B read in
#: place, or packed before them), its panels whole into rows of ``bp``, in blocks (``gemm_b_blocks``),
#: or in blocks with A's slices too (``a_sliced``).
NO_PACK, PACK_ROWS, PACK_BLOCKS, PACK_SLICES = 0, 1, 2, 3


@njit(inline="always", **_jit)  # inlined: no compile of its own
def b_fits(k, npb):
    """Whether the ``npb`` packed panels of B, all of K, fit ``PACK_BYTES`` (else ``gemm_b_blocks``)."""
    return npb * k * 2 * VEC_BYTES <= PACK_BYTES  # a panel: K x NR values, NR = two vectors


@njit(inline="always", **_jit)  # inlined: no compile of its own
def a_row_block(trans_a, m, k, n, itemsize):
    """Rows of C that ``gemm_checked`` computes at a time: ``m``, or for a row-major A above
    ``PACK_BYTES`` with a B that fits, a whole number of ``MR``-row panels whose rows of A fit (each
    block a product of its own: its A packed into a buffer of that size, B packed again each time)."""
    npb = cdiv(n, 2 * VEC_BYTES // itemsize)
    if trans_a or m * k * itemsize <= PACK_BYTES or not b_fits(k, npb):
        return m
    return max(1, PACK_BYTES // (k * itemsize * MR)) * MR


@njit(inline="always", **_jit)  # inlined: no compile of its own
def a_sliced(in_place, npa, k, itemsize):
    """Whether a packed A (not read ``in_place``) is above ``PACK_BYTES``: then packed and used in ``K``
    slices and blocks of panels, as B is (``gemm_b_blocks``), never whole."""
    return not in_place and npa * k * MR * itemsize > PACK_BYTES


@njit(inline="always", **_jit)
def gemm_b_blocks(a, trans_a, sliced, af, a_pstride, a_rs, a_cs, b, trans_b, k, m, n, ip0, ip1, jp0, jp1, c,
                  bias, epi):
    """``gemm_cols`` for a B too large to pack at once, or used by few A panels: its panels ``jp0 : jp1``
    packed a block at a time into one buffer of at most ``PACK_BYTES`` (``SMALL_B_BLOCK`` for at most
    ``FEW_A_PANELS`` A panels; one panel at least), each block used on every A panel
    ``ip0 : ip1`` before the next is packed (BLIS's ``NC`` and ``KC`` loops). A block is ``KC`` deep at
    most (K in equal slices, the product accumulated over them), so that it is wide; a transposed B
    (its ``k`` along the rows of ``b``) is packed all of K deep.

    A comes packed or in place as ``af`` (``a_pstride``, ``a_rs``, ``a_cs``: see ``gemm_block``), or,
    ``sliced`` (``a_sliced``), from ``a`` itself: each slice of A panels ``ip0 : ip1`` packed a block
    of at most ``PACK_BYTES`` at a time into one buffer (BLIS's ``MC`` loop), as deep as B's slice."""
    nr = nr_of(c)
    zero = np.intp(0)
    no = np.bool_(False)
    slices = 1 if trans_b else max(1, (k + KC - 1) // KC)
    depth = max(1, (k + slices - 1) // slices)
    block = SMALL_B_BLOCK if ip1 - ip0 <= FEW_A_PANELS else PACK_BYTES
    per = max(1, block // (max(1, depth) * 2 * VEC_BYTES))
    bp = np.empty(min(per, jp1 - jp0) * depth * nr, dtype=c.dtype)
    rows = max(1, PACK_BYTES // (depth * MR * c.itemsize) if sliced else ip1 - ip0)  # A panels a block
    ap = np.empty(min(rows, ip1 - ip0) * depth * MR if sliced else 0, dtype=c.dtype)
    for j0 in range(jp0, jp1, per):
        j1 = min(jp1, j0 + per)
        # The block's panels are numbered from 0: C, its width and a column bias shifted to them.
        col = j0 * nr
        cbias = bias[col:] if epi & EPI_COL_BIAS else bias
        for p0 in range(0, k, depth):
            p1 = min(k, p0 + depth)
            pack_b(b if trans_b else b[p0:p1], trans_b, j0, j1, bp)
            for i0 in range(ip0, ip1, rows):
                i1 = min(ip1, i0 + rows)
                if sliced:  # A's block packed and numbered from 0, C's rows shifted to it
                    pack_a(a, trans_a, i0, i1, p0, p1, ap)
                    src, base, pstride, rs, cs, shift = ap, zero, (p1 - p0) * MR, 1, MR, i0
                else:
                    src, base, pstride, rs, cs, shift = af, p0 * a_cs, a_pstride, a_rs, a_cs, zero
                gemm_block(src, base, pstride, rs, cs, bp, (p1 - p0) * nr, nr, zero, p1 - p0, m - shift * MR, n - col,
                           i0 - shift, i1 - shift, zero, j1 - j0, c, shift * MR * n + col, n, p0 > 0, cbias, no,
                           epi if p1 == k else 0)


@njit(inline="always", **_jit)  # inlined into gemm_checked, its one compiled caller
def gemm_serial(a, b, trans_a, trans_b, c, bias, epi):
    """``c = op(a) @ op(b)`` with the micro-kernel, on the calling thread (epilogue ``bias``, ``epi``: see gemm_cols)."""
    m, n, k, nr, npa, npb, b_direct = driver_sizes(a, trans_a, trans_b, c)
    zero = np.intp(0)  # not a literal 0 (see gemm_cols)
    in_place = a_in_place(trans_a, m, k, n, c.itemsize) or small_a_in_place(trans_a, m, k, c.itemsize)
    sliced = a_sliced(in_place, npa, k, c.itemsize)
    if in_place or sliced:
        af = a.reshape(a.size)
        a_pstride, a_rs, a_cs = a_layout(trans_a, m, k)
    else:
        af = np.empty(npa * k * MR, dtype=c.dtype)
        pack_a(a, trans_a, zero, npa, zero, k, af)
        a_pstride, a_rs, a_cs = k * MR, 1, MR
    if sliced or (not b_direct and (npa <= FEW_A_PANELS or not b_fits(k, npb))):
        gemm_b_blocks(a, trans_a, sliced, af, a_pstride, a_rs, a_cs, b, trans_b, k, m, n, zero, npa, zero, npb,
                      c.reshape(m * n), bias, epi)
        return
    if b_direct:  # only a partial last panel is packed (no allocation without one: small products notice)
        bp = np.empty(k * nr if n % nr else 0, dtype=c.dtype)
        if n % nr:
            pack_b_panel(b, np.bool_(False), n - n % nr, bp, zero)
    else:
        bp = np.empty(npb * k * nr, dtype=c.dtype)
        pack_b(b, trans_b, zero, npb, bp)
    gemm_cols(af, a_pstride, a_rs, a_cs, b, bp, b_direct, k, m, n, zero, npa, zero, npb, c.reshape(m * n), bias, epi)


#: ``gemm_checked``'s answers: the product is in ``c``; it is valid but above ``max_macs`` (the
#: caller runs a parallel driver), or for the dot-product kernel; the arguments are not plainly
#: valid (the caller's full checks decide).
DONE, LARGER, ELSEWHERE, UNCHECKED = 0, 1, 2, 3


@njit(inline="always", **_jit)  # inlined: no compile of its own
def c_order(x):
    """``(whether the 2-D x is C-contiguous, x as a C-contiguous array over its memory)``; the
    view is the array only when it is. NumPy's rule: the strides of sizes 0 and 1 do not count."""
    rows, cols = x.shape
    s0, s1 = x.strides
    contiguous = x.size == 0 or ((cols == 1 or s1 == x.itemsize) and (rows == 1 or s0 == cols * x.itemsize))
    return contiguous, carray(address_to_pointer(x.ctypes.data, x.dtype), (rows, cols))


@njit(inline="always", **_jit)  # inlined: no compile of its own
def disjoint(x, y):
    """Whether the bytes of ``x`` and ``y`` (C-contiguous) do not meet."""
    x0, y0 = x.ctypes.data, y.ctypes.data
    return x.size == 0 or y.size == 0 or x0 + x.size * x.itemsize <= y0 or y0 + y.size * y.itemsize <= x0


@njit(**_jit)
def gemm_checked(a, b, trans_a, trans_b, c, bias, epi, max_macs, team):
    """``gemm_serial`` behind its own checks, for arrays of any layout (``serial_entry``): ``DONE``,
    ``LARGER``, ``ELSEWHERE`` or ``UNCHECKED``.

    A product with one row or one column of C (a matrix-vector product) runs ``_gemv``'s kernel on this
    thread, whatever ``max_macs``, except that ``matmul``'s float32 ones from ``GEMV_TEAM_MIN`` are
    ``ELSEWHERE`` unless this thread's setting is known to be one thread (for the team:
    ``_team_spans.run_gemv``; ``matmul`` comes back with ``max_macs = 0`` where it cannot run). Others: ``max_macs = 0``: any valid product. ``max_macs > 0``:
    ``matmul``'s products: up to ``SMALL_MACS`` by
    ``gemm_small``, up to ``max_macs`` by the micro-kernel, except the products of the dot-product
    kernel, ``a @ b.T`` deep with a short side (``product_route``): ``ELSEWHERE``; above ``max_macs``,
    float32 on the GEMM team when ``team`` (its state, ``_team_state``) holds the product job and this
    thread's setting is more than one thread (``DONE``), on the micro-kernel when it is one, otherwise
    ``LARGER`` (the caller runs a parallel driver, or readies the team). ``max_macs = -nthreads``: on
    ``nthreads`` threads of the team, ``LARGER`` when it is held. ``team`` is ``_team_state.NO_TEAM``
    where products never go to the team. ``bias``, ``epi``: the store's epilogue (``gemm_cols``). On the
    ``SWAPPED`` route (``product_route``) the product is ``C^T``, into a scratch array transposed into ``c``,
    and the epilogue runs after it. A row-major A above ``PACK_BYTES`` with a B that fits runs in blocks
    of rows (``a_row_block``), each a product of its own. Checked here: the inner
    sizes, ``c``'s shape, every array C-contiguous, ``c`` apart from ``a``, ``b`` and a column bias,
    and that bias's length, each a comparison of a few integers where ``matmul``'s Python checks
    took ~1 us of a 3-5 us product (LeNet fc3's and the ResNet head's gradients). Left to the
    caller: that the arrays are ndarrays of ``c``'s dtype, 2-D (``bias`` 1-D, C-contiguous), ``c``
    writeable and ``epi`` a valid code.
    """
    if trans_a:
        k, m = a.shape
    else:
        m, k = a.shape
    if trans_b:
        n, k_b = b.shape
    else:
        k_b, n = b.shape
    if k_b != k or c.shape[0] != m or c.shape[1] != n:
        return UNCHECKED
    a_plain, a_c = c_order(a)
    b_plain, b_c = c_order(b)
    c_plain, c_c = c_order(c)
    if not (a_plain and b_plain and c_plain and disjoint(c, a) and disjoint(c, b)):
        return UNCHECKED
    if epi & EPI_COL_BIAS and (bias.size != n or not disjoint(c, bias)):
        return UNCHECKED
    macs = m * n * k
    if m == 1 or n == 1:  # a matrix-vector product: the matrix read once, in place (``_gemv``)
        if max_macs > 0 and macs >= GEMV_TEAM_MIN and c.itemsize == 4 and team_threads(team) != 1:
            return ELSEWHERE  # on the team (matmul's _team_spans.run_gemv), or here when it cannot run
        gemv(a_c, b_c, trans_a, trans_b, c_c)
        if epi:
            apply_epilogue(c_c, bias, epi)
        return DONE
    if max_macs > 0 and macs <= SMALL_MACS:
        gemm_small(a_c, b_c, trans_a, trans_b, c_c)
        if epi:
            apply_epilogue(c_c, bias, epi)
        return DONE
    route = product_route_jit(trans_a, trans_b, m, n, k, c.itemsize)
    if max_macs > 0 and route == DOT:
        return ELSEWHERE
    # z = op(x) @ op(y) with the epilogue e: C, or C transposed (SWAPPED: copied to C, then the epilogue)
    x, y, z, e = a_c, b_c, c_c, epi
    if route == SWAPPED:
        x, y, z, e = b_c, a_c, np.empty((n, m), dtype=c.dtype), 0
    on_team = max_macs < 0
    nthreads = -max_macs
    if max_macs > 0 and macs > max_macs:
        nthreads = team_threads(team)
        on_team = nthreads != 1
    rows = max(1, m if route == SWAPPED else a_row_block(trans_a, m, k, n, c.itemsize))
    for i0 in range(0, m, rows):
        xs, zs = (x, z) if rows == m else (x[i0:i0 + rows], z[i0:i0 + rows])  # (swapped: x, z are n rows)
        if on_team:
            if not (nthreads and team_product(team, xs, y, trans_a, trans_b, zs, bias, e, nthreads)):
                return LARGER
        else:
            gemm_serial(xs, y, trans_a, trans_b, zs, bias, e)
    if route == SWAPPED:
        transpose_into(c_c, z)
        if epi:
            apply_epilogue(c_c, bias, epi)
    return DONE


@njit(inline="always", **_jit)  # inlined: no compile of its own
def transpose_into(c, ct):
    """``c[:] = ct.T`` (both C-contiguous): ``ct``'s rows into ``c``'s columns by ``transpose_rows``
    (square blocks of vector width transposed in registers), the last ``n % lanes`` one element at a time."""
    m, n = c.shape
    lanes = VEC_BYTES // c.itemsize
    cf = c.reshape(c.size)
    tf = ct.reshape(ct.size)
    nb = n - n % lanes
    transpose_rows(tf, 0, m, cf, 0, n, nb // lanes)
    for i in range(m):
        for j in range(nb, n):
            cf[i * n + j] = tf[j * m + i]


_SERIAL_ENTRIES: dict = {}


def serial_entry(dtype: np.dtype) -> Any:
    """``gemm_checked``'s compiled entry point for ``dtype`` (float32 or float64; compiled or loaded on
    the first call): arrays of any layout, bool flags, ints, the team's state (C-contiguous int64).
    It skips Numba's typing of nine arguments (~0.5 us) and checks nothing of their types: see
    ``gemm_checked`` for the caller's part."""
    entry = _SERIAL_ENTRIES.get(dtype)
    if entry is None:
        element = numba.from_dtype(dtype)
        array = types.Array(element, 2, "A")
        entry = gemm_checked.compile((array, array, types.boolean, types.boolean, array,
                                      types.Array(element, 1, "C"), types.int64, types.int64, types.int64[::1]))
        _SERIAL_ENTRIES[dtype] = entry
    return entry


def run_serial(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool, c: np.ndarray, bias: np.ndarray,
               epi: int) -> None:
    """``gemm_serial`` for checked arguments (C-contiguous ndarrays of ``c``'s dtype, ``c`` apart from
    ``a`` and ``b``), through ``serial_entry``: the one compiled serial GEMM."""
    if serial_entry(c.dtype)(a, b, trans_a, trans_b, c, bias, epi, 0, NO_TEAM) != DONE:
        raise ValueError(f"gemm: arguments that are not a product: a {a.shape}, b {b.shape}, c {c.shape}")


@njit(inline="always", **_jit)  # inlined: no compile of its own
def plan(a, trans_a, trans_b, c, nthreads):
    """``(m, n, k, nr, npa, npb, b_direct, in_place, ti, tj)`` of a parallel product: its
    :func:`driver_sizes`, whether A is read in place, and C split into ``ti x tj`` tasks
    (:func:`partition`) for ``nthreads``."""
    m, n, k, nr, npa, npb, b_direct = driver_sizes(a, trans_a, trans_b, c)
    in_place = a_in_place(trans_a, m, k, n, c.itemsize)
    if a_sliced(in_place, npa, k, c.itemsize):
        # Each task packs slices of both operands (gemm_b_blocks): a task a thread, one column of tasks
        # (each packing all of B) when B is the smaller operand, else one row (each packing all of A).
        if m >= n:
            return m, n, k, nr, npa, npb, False, in_place, min(npa, nthreads), 1
        return m, n, k, nr, npa, npb, False, in_place, 1, min(npb, nthreads)
    # A B above PACK_BYTES with panels enough for every thread: one row of tasks, each packing its
    # own panels in blocks (gemm_b_blocks). With two rows B was shared, packed whole before the tasks
    # into a buffer as large as B (see PACK_BYTES): 256 x 4096 x 16384 on two threads, 0.6x NumPy.
    one_row = not b_direct and not b_fits(k, npb) and npb >= 4 * nthreads
    ti, tj = partition(1 if one_row else npa, npb, nthreads, b_direct and not in_place)
    return m, n, k, nr, npa, npb, b_direct, in_place, ti, tj


@njit(inline="always", **_jit)  # inlined: no compile of its own
def prepare_tasks(a, b, trans_a, trans_b, c, nthreads, sizes):
    """The packed buffers of a product split as ``sizes`` (:func:`plan`) says, and who packs what.

    Returns ``(af, bp, a_pstride, a_rs, a_cs, task_a, task_b, share_a, share_b, small_share)``.
    Each operand is packed by the tasks that read it (a column of tasks shares no B panel, a row
    no A panel: each row of tasks packs its A panels into a row of ``af`` of its own, each column
    its B panels into one of ``bp``; ``task_a``, and ``task_b``: ``PACK_ROWS``, or ``PACK_BLOCKS``
    for a B above ``PACK_BYTES``: each task then packs its panels in blocks into a buffer of its
    own, ``gemm_b_blocks``) while that copies little more
    (ONE_REGION_COPIES), else once, before the tasks (``share_a``, ``share_b``): already done here
    when small (SERIAL_PACK, ``small_share``), else left to the caller (:func:`pack_share`). Two
    operands over the budget together: the one copied more often goes first.
    """
    m, n, k, nr, npa, npb, b_direct, in_place, ti, tj = sizes
    sliced = a_sliced(in_place, npa, k, c.itemsize)
    a_size = 0 if in_place or sliced else npa * k * MR
    b_size = 0 if b_direct or sliced else npb * k * nr
    budget = ONE_REGION_COPIES * nthreads
    dup_a = (tj - 1) * a_size
    dup_b = (ti - 1) * b_size
    over = dup_a + dup_b > budget
    share_a = dup_a > budget or (over and dup_a >= dup_b)  # packed before the tasks
    share_b = dup_b > budget or (over and dup_b > dup_a)
    task_a = not in_place and not sliced and not share_a  # packed by the tasks
    few_a = cdiv(npa, ti) <= FEW_A_PANELS  # (gemm_b_blocks' small blocks)
    task_b = NO_PACK if b_direct or share_b else (PACK_ROWS if b_fits(k, npb) and not few_a else PACK_BLOCKS)
    task_b = PACK_SLICES if sliced else task_b
    rows_b = task_b == PACK_ROWS
    bp = np.empty((ti if rows_b else 1, k * nr if b_direct else (b_size if rows_b or share_b else 0)), dtype=c.dtype)
    if in_place or sliced:  # (sliced: unused)
        af = a.reshape((1, a.size))
        a_pstride, a_rs, a_cs = a_layout(trans_a, m, k)
    else:
        af = np.empty((tj if task_a else 1, a_size), dtype=c.dtype)
        a_pstride, a_rs, a_cs = k * MR, 1, MR
    if b_direct and n % nr:
        pack_b_panel(b, np.bool_(False), n - n % nr, bp[0], np.intp(0))  # no literals (see gemm_cols)
    small_share = (a_size if share_a else 0) + (b_size if share_b else 0) <= SERIAL_PACK
    if small_share:
        pack_share(a, b, trans_a, trans_b, share_a, share_b, npa, npb, af[0], bp[0], 0, 1)
    return af, bp, a_pstride, a_rs, a_cs, task_a, task_b, share_a, share_b, small_share


@njit(inline="always", **_jit)  # inlined: no compile of its own
def pack_share(a, b, trans_a, trans_b, share_a, share_b, npa, npb, af0, bp0, t, parts):
    """Part ``t`` of ``parts`` of the packing done before the tasks (a contiguous range of B and of A panels)."""
    if share_b:
        j0 = t * npb // parts
        pack_b(b, trans_b, j0, (t + 1) * npb // parts, bp0[j0 * (bp0.size // npb):])  # (bp0: all npb panels)
    if share_a:
        k = a.shape[0] if trans_a else a.shape[1]
        i0 = t * npa // parts
        pack_a(a, trans_a, i0, (t + 1) * npa // parts, np.intp(0), k, af0[i0 * k * MR:])  # (typed 0: gemm_cols)


@njit(inline="always", **_jit)  # inlined: no compile of its own
def gemm_task(a, b, trans_a, trans_b, af, bp, a_pstride, a_rs, a_cs, task_a, task_b, b_direct, k, m, n,
              ti, tj, npa, npb, t, cflat, bias, epi):
    """Task ``t`` of a product split into ``ti x tj`` blocks of C (see :func:`prepare_tasks`)."""
    bi = t // tj
    bj = t - bi * tj
    ip0, ip1 = split_at(bi, ti, npa), split_at(bi + 1, ti, npa)
    jp0, jp1 = split_at(bj, tj, npb), split_at(bj + 1, tj, npb)
    own_a = bj if task_a else 0
    if task_a:
        pack_a(a, trans_a, ip0, ip1, np.intp(0), k, af[own_a][ip0 * k * MR:])
    if task_b >= PACK_BLOCKS:
        gemm_b_blocks(a, trans_a, task_b == PACK_SLICES, af[own_a], a_pstride, a_rs, a_cs, b, trans_b, k, m, n,
                      ip0, ip1, jp0, jp1, cflat, bias, epi)
    else:
        own_b = bi if task_b else 0
        if task_b:
            pack_b(b, trans_b, jp0, jp1, bp[own_b][jp0 * k * nr_of(cflat):])
        gemm_cols(af[own_a], a_pstride, a_rs, a_cs, b, bp[own_b], b_direct, k, m, n, ip0, ip1, jp0, jp1,
                  cflat, bias, epi)


@tiered
@njit(parallel=PRANGE_ONLY, **_jit)
def gemm_parallel(a, b, trans_a, trans_b, c, nthreads, bias, epi):
    """``c = op(a) @ op(b)``: blocks of C computed under ``prange``, each task packing the panels it
    reads, or an operand packed first (on this thread, or in a ``prange`` pass of its own).

    ``bias``, ``epi``: the store's epilogue (see ``gemm_cols``).

    ``nthreads`` (``numba.get_num_threads()``, passed in: reading it here
    would make the function uncacheable) sizes the blocks.
    """
    sizes = plan(a, trans_a, trans_b, c, nthreads)
    m, n, k, _, npa, npb, b_direct, _, ti, tj = sizes
    af, bp, a_pstride, a_rs, a_cs, task_a, task_b, share_a, share_b, small_share = prepare_tasks(
        a, b, trans_a, trans_b, c, nthreads, sizes)
    if not small_share:  # a packing pass first, each thread packing a contiguous range of B (and A) panels
        packing = new_counter()
        for t in prange(nthreads):
            next_task(packing)
            pack_share(a, b, trans_a, trans_b, share_a, share_b, npa, npb, af[0], bp[0], t, nthreads)
            share_done(packing, t, nthreads)
    ntasks = ti * tj
    cflat = c.reshape(m * n)
    # Each thread an equal run of tasks (``partition`` made them a whole number of rounds); the calling
    # thread (w = 0) then waits awake for the others' running tasks instead of sleeping at the region's
    # closing barrier (a second wake-up: ``_atomic``).
    counter = new_counter()
    for w in prange(nthreads):
        next_task(counter)
        for t in range(w * ntasks // nthreads, (w + 1) * ntasks // nthreads):
            gemm_task(a, b, trans_a, trans_b, af, bp, a_pstride, a_rs, a_cs, task_a, task_b, b_direct, k, m, n,
                      ti, tj, npa, npb, t, cflat, bias, epi)
        share_done(counter, w, nthreads)
