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
"""

from __future__ import annotations

from typing import Any

from numba import cuda

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cuda import _launch
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
    """``acc += a_tile[:, rows].T @ b_tile[:, cols]`` for this thread's 4x4 outputs.

    ``a_tile`` is stored k-major (TILE_K, TILE_M) so that a warp reading one
    k-row reads consecutive addresses. Thread (ty, tx) owns rows
    ``ty + 16 i`` and columns ``tx + 16 j``: within a warp ``tx`` runs over 16
    consecutive columns (no bank conflicts) and ``ty`` takes two values
    (broadcast reads).
    """
    for kk in range(TILE_K):
        for i in range(THREAD_M):
            a_reg[i] = a_tile[kk, ty + THREADS_M * i]
        for j in range(THREAD_N):
            b_reg[j] = b_tile[kk, tx + THREADS_N * j]
        for i in range(THREAD_M):
            for j in range(THREAD_N):
                acc[i, j] += a_reg[i] * b_reg[j]


@cuda.jit
def _matmul_kernel(a, b, trans_a, trans_b, m, n, k, out):
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
    for tile in range(cuda.blockIdx.x, tiles, cuda.gridDim.x):
        row0 = (tile // tiles_n) * TILE_M
        col0 = (tile % tiles_n) * TILE_N
        for i in range(THREAD_M):
            for j in range(THREAD_N):
                acc[i, j] = 0
        for k0 in range(0, k, TILE_K):
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
                if gr < m and gk < k:
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
                if gc < n and gk < k:
                    b_tile[kk, c] = b[gc, gk] if trans_b else b[gk, gc]
                else:
                    b_tile[kk, c] = 0
            cuda.syncthreads()
            tile_multiply_accumulate(a_tile, b_tile, acc, a_reg, b_reg, ty, tx)
            # Nobody may overwrite the tiles while a slower thread still reads them.
            cuda.syncthreads()
        for i in range(THREAD_M):
            r = row0 + ty + THREADS_M * i
            if r < m:
                for j in range(THREAD_N):
                    c = col0 + tx + THREADS_N * j
                    if c < n:
                        out[r, c] = acc[i, j]


def matmul(a: Any, b: Any, *, trans_a: bool = False, trans_b: bool = False, out: Any = None) -> Any:
    m, n, k, dtype, trans_a, trans_b = check_matmul_args(a, b, trans_a, trans_b, out)
    if out is not None and (_launch.overlaps(out, a) or _launch.overlaps(out, b)):
        out.copy_to_device(matmul(a, b, trans_a=trans_a, trans_b=trans_b))
        return out
    if out is None:
        out = _launch.empty((m, n), dtype)
    if m == 0 or n == 0:
        return out
    blocks = _launch.grid_tiles(m, n, TILE_M, TILE_N)
    _matmul_kernel[blocks, MATMUL_THREADS](a, b, trans_a, trans_b, m, n, k, out)
    return out
