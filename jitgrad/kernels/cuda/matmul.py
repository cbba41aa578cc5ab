"""CUDA ``matmul``: shared-memory tiles with register blocking.

Each block computes a 64x64 tile of the output; each of its 16x16 = 256
threads holds a 4x4 sub-tile in registers and, for every 16-wide slice of
the inner dimension, reads 4 values of ``op(a)`` and 4 of ``op(b)`` from
shared memory for 16 multiply-adds (the register blocking: 4x fewer
shared-memory reads per flop than one output per thread). Transposition is
done in the indexing of the tile loads, never by copying. Tails (sizes not a
multiple of the tile) load zeros and skip out-of-range stores.

The block size is fixed by the tile geometry (256 threads), not by
``config.cuda_threads_per_block``; the grid is capped and blocks stride over
tiles, so any grid size is correct.

Large float32 outputs take a second kernel, ``_matmul_big_kernel``: 128x128
tiles, 8x8 outputs per thread and register prefetch (the next 16-wide k-slice
is loaded from global memory into registers while the current one is
multiplied from shared memory, then stored into the other half of a
double-buffered shared tile: one ``syncthreads`` per k-slice and the global
latency hidden behind 1024 FMAs a thread). On an H200 it ran 4096^3 in 4.9 ms
(28 TFLOP/s, 0.57x cuBLAS with TF32 off; the 64x64 kernel: 18.7 ms).
``matmul`` picks the kernel by dtype and number of output tiles
(``uses_big_tile``). Small outputs over a long inner dimension split K
across blocks (``k_splits``) and sum the parts with a second kernel. The
64x64 constants and ``tile_multiply_accumulate`` are shared with conv2d's
forward kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda._launch import SPLIT_SUM_WARPS, split_total
from jitgrad.kernels.reference.matmul import check_matmul_args

__all__: list[str] = kernel_names("matmul")  # the one list: kernels/_constants.py

#: Output tile of one block (TILE_M x TILE_N) and inner-dimension slice (TILE_K).
TILE_M = 64
TILE_N = 64
TILE_K = 16
#: Outputs per thread along each axis (register blocking).
THREAD_M = 4
THREAD_N = 4
#: 16 x 16 threads.
THREADS_M = TILE_M // THREAD_M
THREADS_N = TILE_N // THREAD_N
MATMUL_THREADS = THREADS_M * THREADS_N


@cuda.jit(device=True)
def tile_multiply_accumulate(a_tile, b_tile, acc, a_reg, b_reg, ty, tx):
    """``acc += a_tile[:, rows].T @ b_tile[:, cols]`` for this thread's 4x4 (or 8x8) outputs.

    ``a_tile`` is stored k-major (TILE_K, TILE_M) so that a warp reading one
    k-row reads consecutive addresses. The 64x64 kernels pass 4x4 ``acc``,
    the 128x128 one 8x8 (its tiles, 16 x 128 + padding, are read the same way). Thread (ty, tx) owns rows
    ``ty + 16 i`` and columns ``tx + 16 j``: within a warp ``tx`` runs over 16
    consecutive columns (no bank conflicts) and ``ty`` takes two values
    (broadcast reads).
    """
    # The masks change nothing (ty < THREADS_M, tx < THREADS_N) but tell LLVM both are >= 0: no
    # negative-index wrap-around in the shared-memory addresses. The TILE_K = 16 steps are unrolled
    # by hand (NVVM keeps them a loop): constant addresses, no loop counter, and the scheduler may
    # issue the next k's shared loads under this k's FMAs.
    ty = ty & (THREADS_M - 1)
    tx = tx & (THREADS_N - 1)
    _kstep(a_tile, b_tile, 0, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 1, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 2, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 3, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 4, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 5, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 6, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 7, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 8, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 9, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 10, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 11, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 12, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 13, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 14, acc, a_reg, b_reg, ty, tx)
    _kstep(a_tile, b_tile, 15, acc, a_reg, b_reg, ty, tx)


@cuda.jit(device=True)
def _kstep(a_tile, b_tile, kk, acc, a_reg, b_reg, ty, tx):
    """The rank-1 update of one k: ``acc[i, j] += a_tile[kk, ty + 16 i] * b_tile[kk, tx + 16 j]``.

    The register counts come from the local arrays' shapes (4 or 8 a thread), constants once
    inlined, so both tile sizes share this code and NVVM still unrolls every loop.
    """
    for i in range(a_reg.shape[0]):
        a_reg[i] = a_tile[kk, ty + THREADS_M * i]
    for j in range(b_reg.shape[0]):
        b_reg[j] = b_tile[kk, tx + THREADS_N * j]
    for i in range(a_reg.shape[0]):
        for j in range(b_reg.shape[0]):
            acc[i, j] += a_reg[i] * b_reg[j]


@cuda.jit(device=True)
def _zero(acc):
    for i in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            acc[i, j] = 0


@cuda.jit(device=True)
def _store_tile(out, acc, row0, col0, ty, tx, m, n):
    """``out[row0 + ty + 16 i, col0 + tx + 16 j] = acc[i, j]`` where inside the ``m x n`` output."""
    for i in range(acc.shape[0]):
        r = row0 + ty + THREADS_M * i
        if r < m:
            for j in range(acc.shape[1]):
                c = col0 + tx + THREADS_N * j
                if c < n:
                    out[r, c] = acc[i, j]


@cuda.jit
def _matmul_kernel(a, b, trans_a, trans_b, m, n, k, k_chunk, out):
    # out is (splits * m, n): split s sums k in [s * k_chunk, (s + 1) * k_chunk) into rows s*m..s*m+m-1
    # (splits == 1 and k_chunk >= k: the product itself). Blocks stride over splits x tiles.
    a_tile = cuda.shared.array((TILE_K, TILE_M), a.dtype)
    b_tile = cuda.shared.array((TILE_K, TILE_N), a.dtype)
    acc = cuda.local.array((THREAD_M, THREAD_N), a.dtype)
    a_reg = cuda.local.array(THREAD_M, a.dtype)
    b_reg = cuda.local.array(THREAD_N, a.dtype)
    t = cuda.threadIdx.x
    ty = t // THREADS_N
    tx = t % THREADS_N
    tiles_n = (n + TILE_N - 1) // TILE_N
    tiles = ((m + TILE_M - 1) // TILE_M) * tiles_n
    splits = out.shape[0] // m
    for job in range(cuda.blockIdx.x, tiles * splits, cuda.gridDim.x):
        split = job // tiles
        tile = job - split * tiles
        row0 = (tile // tiles_n) * TILE_M
        col0 = (tile % tiles_n) * TILE_N
        k_begin = split * k_chunk
        k_end = min(k, k_begin + k_chunk)
        _zero(acc)
        for k0 in range(k_begin, k_end, TILE_K):
            # Load op(a)[row0:+64, k0:+16]. Consecutive threads take consecutive
            # addresses of the *stored* array (coalesced): k fastest for a (M, K)
            # array, rows fastest for a transposed (K, M) one. The op(b) load below
            # mirrors it on purpose (written out per operand: each its own index order).
            for e in range(t, TILE_M * TILE_K, MATMUL_THREADS):
                if trans_a:
                    r = e % TILE_M
                    kk = e // TILE_M
                else:
                    r = e // TILE_K
                    kk = e % TILE_K
                gr = row0 + r
                gk = k0 + kk
                if gr < m and gk < k_end:
                    a_tile[kk, r] = a[gk, gr] if trans_a else a[gr, gk]
                else:
                    a_tile[kk, r] = 0
            # Load op(b)[k0:+16, col0:+64], same idea.
            for e in range(t, TILE_N * TILE_K, MATMUL_THREADS):
                if trans_b:
                    c = e // TILE_K
                    kk = e % TILE_K
                else:
                    c = e % TILE_N
                    kk = e // TILE_N
                gc = col0 + c
                gk = k0 + kk
                if gc < n and gk < k_end:
                    b_tile[kk, c] = b[gc, gk] if trans_b else b[gk, gc]
                else:
                    b_tile[kk, c] = 0
            cuda.syncthreads()
            tile_multiply_accumulate(a_tile, b_tile, acc, a_reg, b_reg, ty, tx)
            # Nobody may overwrite the tiles while a slower thread still reads them.
            cuda.syncthreads()
        _store_tile(out[split * m:split * m + m], acc, row0, col0, ty, tx, m, n)


@cuda.jit
def sum_splits_kernel(parts, out, tail):
    """``sum_s parts[s, r * cols + c]`` (``cols = parts.shape[1] // out.shape[0]``, the split products one
    row each) into ``out[r, c]`` for ``c < out.shape[1]``, into ``tail[r, 0]`` for the column after (a conv
    weight gradient's bias: matmul has none, and passes ``out`` again); in a fixed order
    (deterministic: ``split_total``)."""
    buf = cuda.shared.array((SPLIT_SUM_WARPS, 32), parts.dtype)
    width = out.shape[1]
    cols = parts.shape[1] // out.shape[0]
    for first in range(cuda.blockIdx.x * 32, parts.shape[1], cuda.gridDim.x * 32):
        e = first + cuda.threadIdx.x
        total = split_total(parts, e, buf)
        if cuda.threadIdx.y == 0 and e < parts.shape[1]:
            r = e // cols
            c = e - r * cols
            if c < width:
                out[r, c] = total
            else:
                tail[r, 0] = total


#: Split-K for the 64x64 kernel: an output of few tiles with a long inner
#: dimension (a classifier layer: 128x10 from k = 1600 is 2 tiles walking 100
#: k-slices one after the other, 0.34 ms on an H200 where cuBLAS takes 0.025)
#: is cut into k ranges computed by separate blocks into a workspace, then
#: summed by a second kernel. Splits fill about SPLIT_K_BLOCKS blocks (two on
#: each of an H200's 132 SMs) and keep at least SPLIT_K_MIN_SLICES k-slices
#: each (every split writes, and the sum reads, one more m x n array).
SPLIT_K_BLOCKS = 264
SPLIT_K_MIN_SLICES = 4


def k_splits(m: int, n: int, k: int) -> tuple[int, int]:
    """``(splits, k_chunk)`` of the 64x64 kernel for an ``m x n`` output over ``k``: ``(1, k)`` when unsplit."""
    tiles = -(-m // TILE_M) * -(-n // TILE_N)
    slices = -(-k // TILE_K)
    splits = min(slices // SPLIT_K_MIN_SLICES, SPLIT_K_BLOCKS // tiles)
    if splits < 2:
        return 1, k
    k_chunk = TILE_K * -(-slices // splits)
    return -(-k // k_chunk), k_chunk


# ----------------------------------------------------------------------------- large outputs

#: The large-output kernel's tile: 128x128 outputs a block, 16-wide k slices,
#: 8x8 outputs a thread (64 accumulators: 4x the FMAs per shared-memory read of
#: the 4x4 kernel; 126 registers with ptxas 12.9, so two blocks of 256 threads
#: fit an SM's 64K: tests/ptx/test_matmul_ptx.py holds it to <= 128).
#: TILE_K = 16, not 8: half the barriers and loop overhead per FMA, and on an
#: H200 (TF32 off, one run) 4096^3 took 4.91 ms against 5.41 ms with TILE_K = 8
#: (cuBLAS 2.78 ms), 8192^3 37.4 against 41.2 ms (cuBLAS 21.7 ms), and it was
#: as fast or faster at every size from 512^2 up. Its shared tiles (2 buffers x
#: 2 operands x 16 x 132 words) are 33 KB in float32 but 66 KB in float64, over
#: the 48 KB of static shared memory a block may have: float64 always takes the
#: 64x64 kernel (``uses_big_tile``).
BIG_TILE_M = 128
BIG_TILE_N = 128
BIG_TILE_K = 16
BIG_THREAD_M = 8
BIG_THREAD_N = 8
BIG_THREADS_M = BIG_TILE_M // BIG_THREAD_M
BIG_THREADS_N = BIG_TILE_N // BIG_THREAD_N
BIG_THREADS = BIG_THREADS_M * BIG_THREADS_N
#: Both kernels share tile_multiply_accumulate: 16 x 16 threads and 16-wide k slices in each.
assert (BIG_THREADS_M, BIG_THREADS_N, BIG_TILE_K) == (THREADS_M, THREADS_N, TILE_K)
#: log2 of the power-of-two sizes the index arithmetic shifts by.
BIG_TILE_M_LOG2 = BIG_TILE_M.bit_length() - 1
BIG_TILE_K_LOG2 = BIG_TILE_K.bit_length() - 1
BIG_THREADS_N_LOG2 = BIG_THREADS_N.bit_length() - 1
assert all(1 << x.bit_length() - 1 == x for x in (BIG_TILE_M, BIG_TILE_K, BIG_THREADS_M, BIG_THREADS_N, BIG_THREADS))
#: Elements of one operand's k-slice that each thread loads (128 * 16 / 256 = 8).
BIG_LOADS = BIG_TILE_M * BIG_TILE_K // BIG_THREADS
#: Row pitch of the shared tiles: 4 words of padding spread the k-contiguous
#: loads' stores (a warp stores 16 k-rows x 2 tile rows: banks 4 kk + r, at
#: most 2 on one bank; without padding all 16 k-rows of a tile row share one).
BIG_PITCH = BIG_TILE_M + 4
#: The 128x128 kernel runs (float32) when the output has at least this many
#: 128x128 tiles. Below, the 64x64 kernel's 4x more blocks spread over more of
#: the SMs and win. Measured on an H200 (132 SMs): 512^2 (16 tiles) 0.150 ms
#: for 64x64 against 0.177 ms; a 1024x512 output (32 tiles, k = 1024) 0.284
#: against 0.277 ms; 1024^2 (64 tiles) 0.349 against 0.235 ms. The CNN
#: examples' products (batch 128: 128x120, 128x10, 10x1600 outputs, 1 tile) stay
#: on the 64x64 kernel, 20-30 % faster there. Read at each call (the simulator
#: tests lower it to reach this kernel with small shapes).
BIG_TILE_MIN_TILES = 32


@cuda.jit(device=True)
def _big_slice_index(trans, t, p):
    """Tile row and k of the ``p``-th element thread ``t`` loads of one operand's k-slice.

    The operand is ``op(x)`` of shape (rows, K); ``trans`` says it is stored
    (K, rows). Consecutive threads take consecutive addresses of the stored
    array (coalesced): rows fastest when stored (K, rows), k fastest (8 k, one
    32-byte sector, then the next row) when stored (rows, K).
    """
    if trans:
        return t & (BIG_TILE_M - 1), (t >> BIG_TILE_M_LOG2) + (BIG_THREADS // BIG_TILE_M) * p
    return (t >> BIG_TILE_K_LOG2) + (BIG_THREADS // BIG_TILE_K) * p, t & (BIG_TILE_K - 1)


@cuda.jit(device=True)
def _big_load_slice(x, trans, rows, k, row0, k0, t, regs):
    """``regs[p] = op(x)[row0 + r, k0 + kk]`` for this thread's elements, 0 outside ``op(x)``."""
    for p in range(BIG_LOADS):
        r, kk = _big_slice_index(trans, t, p)
        gr = row0 + r
        gk = k0 + kk
        if gr < rows and gk < k:
            regs[p] = x[gk, gr] if trans else x[gr, gk]
        else:
            regs[p] = 0


@cuda.jit(device=True)
def _big_store_slice(regs, trans, t, tile):
    """Store the slice loaded by ``_big_load_slice`` k-major into ``tile`` (TILE_K, PITCH)."""
    for p in range(BIG_LOADS):
        r, kk = _big_slice_index(trans, t, p)
        tile[kk, r] = regs[p]


@cuda.jit(device=True)
def _big_step(a, b, trans_a, b_k_major, m, n, k, row0, col0, next_k0, t, ty, tx, a_tile, b_tile, a_next_tile,
              b_next_tile, acc, a_reg, b_reg, a_next, b_next):
    """One k-slice: fetch slice ``next_k0`` into registers, multiply the current shared tiles
    (``a_mine``/``b_mine``), store the fetched slice into the other tiles, one barrier."""
    more = next_k0 < k
    if more:  # the global loads are in flight during the FMAs below
        _big_load_slice(a, trans_a, m, k, row0, next_k0, t, a_next)
        _big_load_slice(b, b_k_major, n, k, col0, next_k0, t, b_next)
    tile_multiply_accumulate(a_tile, b_tile, acc, a_reg, b_reg, ty, tx)
    if more:  # the other tiles were last read in the previous step, before its barrier
        _big_store_slice(a_next, trans_a, t, a_next_tile)
        _big_store_slice(b_next, b_k_major, t, b_next_tile)
    # The stores become visible, and nobody overwrites the current tiles (the next
    # step's store target) while a slower thread still reads them.
    cuda.syncthreads()


@cuda.jit
def _matmul_big_kernel(a, b, trans_a, trans_b, m, n, k, out):
    # Both operands are handled as op(x) of shape (rows, K), stored k-major in shared memory:
    # op(a) is (M, K), stored transposed when trans_a; op(b).T is (N, K), stored transposed
    # when b is *not* (b itself is (K, N) then). Two tiles per operand (double buffering),
    # as separate arrays so that every read has a constant buffer.
    a_tile0 = cuda.shared.array((BIG_TILE_K, BIG_PITCH), a.dtype)
    a_tile1 = cuda.shared.array((BIG_TILE_K, BIG_PITCH), a.dtype)
    b_tile0 = cuda.shared.array((BIG_TILE_K, BIG_PITCH), a.dtype)
    b_tile1 = cuda.shared.array((BIG_TILE_K, BIG_PITCH), a.dtype)
    acc = cuda.local.array((BIG_THREAD_M, BIG_THREAD_N), a.dtype)
    a_reg = cuda.local.array(BIG_THREAD_M, a.dtype)
    b_reg = cuda.local.array(BIG_THREAD_N, a.dtype)
    a_next = cuda.local.array(BIG_LOADS, a.dtype)
    b_next = cuda.local.array(BIG_LOADS, a.dtype)
    b_k_major = not trans_b
    # Masks and shifts, not // and %: LLVM then knows t, ty, tx >= 0 and drops Python's
    # negative-index wrap-around from every shared-memory address (t < 256 = BIG_THREADS).
    t = cuda.threadIdx.x & (BIG_THREADS - 1)
    ty = (t >> BIG_THREADS_N_LOG2) & (BIG_THREADS_M - 1)
    tx = t & (BIG_THREADS_N - 1)
    tiles_n = (n + BIG_TILE_N - 1) // BIG_TILE_N
    tiles = ((m + BIG_TILE_M - 1) // BIG_TILE_M) * tiles_n
    for tile in range(cuda.blockIdx.x, tiles, cuda.gridDim.x):
        row0 = (tile // tiles_n) * BIG_TILE_M
        col0 = (tile % tiles_n) * BIG_TILE_N
        _zero(acc)
        # Prologue: the first k-slice into tiles 0 (the previous tile's last barrier
        # guarantees nobody still reads them).
        _big_load_slice(a, trans_a, m, k, row0, 0, t, a_next)
        _big_load_slice(b, b_k_major, n, k, col0, 0, t, b_next)
        _big_store_slice(a_next, trans_a, t, a_tile0)
        _big_store_slice(b_next, b_k_major, t, b_tile0)
        cuda.syncthreads()
        # Two slices an iteration: tiles 0 then tiles 1 (constant buffers, no index arithmetic).
        for k0 in range(0, k, 2 * BIG_TILE_K):
            _big_step(a, b, trans_a, b_k_major, m, n, k, row0, col0, k0 + BIG_TILE_K, t, ty, tx, a_tile0, b_tile0,
                      a_tile1, b_tile1, acc, a_reg, b_reg, a_next, b_next)
            if k0 + BIG_TILE_K < k:
                _big_step(a, b, trans_a, b_k_major, m, n, k, row0, col0, k0 + 2 * BIG_TILE_K, t, ty, tx, a_tile1,
                          b_tile1, a_tile0, b_tile0, acc, a_reg, b_reg, a_next, b_next)
        _store_tile(out, acc, row0, col0, ty, tx, m, n)


def uses_big_tile(m: int, n: int, dtype: Any) -> bool:
    """Whether an ``m x n`` output takes the 128x128 kernel: float32, ``BIG_TILE_MIN_TILES`` tiles or more."""
    return np.dtype(dtype) == np.float32 and -(-m // BIG_TILE_M) * -(-n // BIG_TILE_N) >= BIG_TILE_MIN_TILES


def matmul(a: Any, b: Any, *, trans_a: bool = False, trans_b: bool = False, out: Any = None) -> Any:
    m, n, k, dtype, trans_a, trans_b = check_matmul_args(a, b, trans_a, trans_b, out)
    if out is not None and (_launch.overlaps(out, a) or _launch.overlaps(out, b)):
        out.copy_to_device(matmul(a, b, trans_a=trans_a, trans_b=trans_b))
        return out
    if out is None:
        out = _launch.empty((m, n), dtype)
    if m == 0 or n == 0:
        return out
    if uses_big_tile(m, n, dtype):
        blocks = _launch.grid_tiles(m, n, BIG_TILE_M, BIG_TILE_N)
        _matmul_big_kernel[blocks, BIG_THREADS](a, b, trans_a, trans_b, m, n, k, out)
        return out
    splits, k_chunk = k_splits(m, n, k)
    blocks = min(_launch.grid_tiles(m, n, TILE_M, TILE_N) * splits, _launch.MAX_BLOCKS)
    if splits == 1:
        _matmul_kernel[blocks, MATMUL_THREADS](a, b, trans_a, trans_b, m, n, k, k_chunk, out)
        return out
    parts = _launch.empty((splits * m, n), dtype)
    _matmul_kernel[blocks, MATMUL_THREADS](a, b, trans_a, trans_b, m, n, k, k_chunk, parts)
    blocks, threads = _launch.split_sum_grid(splits, m * n)
    sum_splits_kernel[blocks, threads](parts.reshape(splits, m * n), out, out)
    return out
