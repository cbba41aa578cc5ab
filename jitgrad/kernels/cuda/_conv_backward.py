"""CUDA kernels of the two convolution gradients (the wrappers live in ``conv.py``).

- Weight gradient (``groups == 1``): a split-K implicit GEMM.
  ``[grad_w | grad_b] (C_out, K + 1) = grad_out (C_out, P) @ [im2col(x) | 1] (P, K + 1)``
  with ``K = C_in kH kW`` and ``P = N H_out W_out``. The extra all-ones column of the
  implicit im2col gives ``grad_b = grad_out.sum(axis=(0, 2, 3))`` from the same pass. The
  output has few 64x64 tiles (5 for the Keras convnet's second layer) and a long ``P``,
  so ``P`` is cut into ``S`` chunks (:func:`split_k`): block ``(s, tile)`` writes its partial
  tile to a ``(S, C_out, K + 1)`` scratch, and a second kernel sums the ``S`` partials of
  each element in a fixed order (no atomics: the result is bit-identical run to run). The
  padding is a zero of the implicit im2col, as in the reference's ``im2col``: an infinite
  ``grad_out`` there gives NaN exactly where the reference's product does. A product with
  one tile of at most ``SMALL_MAX_OUTPUTS`` elements (first layers: 32 x 10) computes its
  partials with one thread per element instead of a mostly empty 64x64 tile.
- Input gradient (``groups == 1``, any stride, ``C_in >= GEMM_MIN_C_IN``): an implicit GEMM
  ``grad_x (C_in, N H W) = W^T (C_in, C_out kH kW) @ cols(grad_out)`` whose column for input
  pixel ``(n, ih, iw)`` and tap ``(co, i, j)`` is the ``grad_out`` element that sees the
  pixel through that tap (zero where none does: outside ``grad_out``, or between strides).
  Those zeros multiply every weight, so a non-finite weight would make NaN where the
  reference (a scatter that never forms those products) has none: each block checks the
  weights it loads and, when one is not finite, recomputes its tile with the direct gather
  below. No host sync, no extra launch.
- The direct kernels (grouped convolutions; the input gradient of few channels): the gather
  ``_conv2d_backward_input_kernel`` (one thread per ``grad_x`` element) and
  ``_conv2d_backward_weight_kernel`` (one block per ``grad_w`` element, a tree over ``P``).

The GEMM kernels feed matmul's ``tile_multiply_accumulate`` (64x64 tiles, 256 threads, 4x4
outputs a thread). Their shared tiles have one column of padding: the tile loads walk ``P``
(or the taps) along the k axis of the tile, and unpadded rows of 64 words would put those
16 stores in one memory bank.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from jitgrad.kernels.cuda._launch import (
    MAX_THREADS_PER_BLOCK,
    block_sum,
    unravel3,
    unravel4,
)
from jitgrad.kernels.cuda.matmul import (
    MATMUL_THREADS,
    THREAD_M,
    THREAD_N,
    TILE_K,
    TILE_M,
    TILE_N,
    tile_multiply_accumulate,
)

#: Threads along each axis of a tile (16 x 16), as tile_multiply_accumulate lays them out.
THREADS_M = TILE_M // THREAD_M
THREADS_N = TILE_N // THREAD_N
# The tile loads below give each thread a fixed k row (t % TILE_K) or column (t % TILE_N).
assert MATMUL_THREADS % TILE_K == 0 and MATMUL_THREADS % TILE_N == 0 and TILE_M == TILE_N

#: Shared tile row lengths, one word of padding (see the module docstring).
_A_COLS = TILE_M + 1
_B_COLS = TILE_N + 1
#: Elements of a 64x16 tile each thread loads, and the stride between them.
_PER_THREAD = TILE_M * TILE_K // MATMUL_THREADS
_LANES = MATMUL_THREADS // TILE_K

#: The small weight-gradient kernel: used for at most this many outputs (C_out (K + 1), one tile), which it
#: reduces over SMALL_P pixels per step, a thread per output (up to _SMALL_PER_THREAD of them).
SMALL_MAX_OUTPUTS = 1024
SMALL_P = 32
_SMALL_PER_THREAD = SMALL_MAX_OUTPUTS // MATMUL_THREADS
_SMALL_LANES = MATMUL_THREADS // SMALL_P

#: The weight gradient's split of ``P``: chunks of at least this many pixels, and about this many
#: blocks in all (tiles x chunks) — enough to fill a GPU, few enough that the partial sums stay small.
#: 128, not 256: the Keras convnet's second layer (5 tiles, P = 15488) then has 605 blocks, a short
#: last wave on an H200's 132 SMs whether 1 or 2 blocks fit an SM, instead of 305.
SPLIT_MIN_CHUNK = 128
SPLIT_TARGET_BLOCKS = 1024
#: Fewest input channels for the input gradient's GEMM (rows of its 64-row tiles): below it the direct
#: gather, whose per-product cost is ~3.5x the tile step's (H200: 1.40 ms direct vs ~0.28 ms tiled forward
#: for the same 0.4 G products), wastes less than tiles that are mostly empty rows.
GEMM_MIN_C_IN = 16


def split_k(p_total: int, tiles: int) -> tuple[int, int]:
    """``(splits, chunk)``: ``P = p_total`` cut into ``splits >= 1`` chunks of ``chunk`` pixels (a multiple
    of ``TILE_K``; the last chunk may be shorter), ``splits = ceil(min(P / SPLIT_MIN_CHUNK,
    SPLIT_TARGET_BLOCKS / tiles))``."""
    splits = max(1, math.ceil(min(p_total / SPLIT_MIN_CHUNK, SPLIT_TARGET_BLOCKS / max(tiles, 1))))
    chunk = max(TILE_K, math.ceil(p_total / splits / TILE_K) * TILE_K)
    return max(1, math.ceil(p_total / chunk)), chunk


@cuda.jit(device=True)
def _digits(n, n1, n2):
    """``n`` in the mixed radix ``(.., n1, n2)`` (sizes >= 1): ``(n // (n1 n2), n // n2 % n1, n % n2)``."""
    i0 = n // (n1 * n2)
    rest = n - i0 * n1 * n2
    i1 = rest // n2
    return i0, i1, rest - i1 * n2


@cuda.jit(device=True)
def _advance(i0, i1, i2, d0, d1, d2, n1, n2):
    """``(i0, i1, i2) + (d0, d1, d2)`` in the mixed radix ``(.., n1, n2)`` (``i1, d1 < n1``, ``i2, d2 < n2``):
    a multi-index moved by a fixed step with two carries, no division (the tile loads' inner loops)."""
    i2 += d2
    if i2 >= n2:
        i2 -= n2
        i1 += 1
    i1 += d1
    if i1 >= n1:
        i1 -= n1
        i0 += 1
    return i0 + d0, i1, i2


@cuda.jit(device=True)
def _partial_sizes(x, grad_out, partial):
    """The sizes both weight-gradient partial kernels start from: ``(n_img, h, w, c_out, h_out, w_out,
    splits, cols, k, p_total)``; ``h_out`` and ``w_out`` are at least 1 (P == 0 runs no step: they
    only must not divide by 0)."""
    n_img, _, h, wid = x.shape
    return (n_img, h, wid, grad_out.shape[1], max(grad_out.shape[2], 1), max(grad_out.shape[3], 1),
            partial.shape[0], partial.shape[2], partial.shape[2] - 1,
            n_img * grad_out.shape[2] * grad_out.shape[3])


@cuda.jit
def _weight_grad_partial_kernel(x, grad_out, sh, sw, ph, pw, dh, dw, kh, kw, chunk, partial):
    # partial[s, co, c] = sum over pixel p of chunk s of grad_out[p, co] * [im2col(x) | 1][p, c]; the
    # column index c = (ci * kH + i) * kW + j, and c == K is the column of ones (grad_b).
    n_img, h, wid, c_out, h_out, w_out, splits, cols, k, p_total = _partial_sizes(x, grad_out, partial)
    khw = kh * kw
    # The tile step's set-up as in conv._conv2d_kernel on purpose: shared and local arrays must be declared
    # in the kernel itself (a device function cannot hand them back).
    a_tile = cuda.shared.array((TILE_K, _A_COLS), x.dtype)
    b_tile = cuda.shared.array((TILE_K, _B_COLS), x.dtype)
    acc = cuda.local.array((THREAD_M, THREAD_N), x.dtype)
    a_reg = cuda.local.array(THREAD_M, x.dtype)
    b_reg = cuda.local.array(THREAD_N, x.dtype)
    # This thread's columns of [im2col | 1]: input channel (-1: the ones, -2: past the end) and tap offsets.
    col_ci = cuda.local.array(_PER_THREAD, np.int32)
    col_dh = cuda.local.array(_PER_THREAD, np.int32)
    col_dw = cuda.local.array(_PER_THREAD, np.int32)
    t = cuda.threadIdx.x
    ty = t // THREADS_N
    tx = t % THREADS_N
    # This thread loads row kk of both tiles (the pixel p0 + kk), at tile columns lane + _LANES m:
    # consecutive threads read consecutive pixels (coalesced along W_out).
    kk = t % TILE_K
    lane = t // TILE_K
    step_img, step_oh, step_ow = _digits(TILE_K, h_out, w_out)
    tiles_n = (cols + TILE_N - 1) // TILE_N
    tiles = ((c_out + TILE_M - 1) // TILE_M) * tiles_n
    for job in range(cuda.blockIdx.x, tiles * splits, cuda.gridDim.x):
        s = job // tiles
        tile = job - s * tiles
        row0 = (tile // tiles_n) * TILE_M
        col0 = (tile % tiles_n) * TILE_N
        p_end = min((s + 1) * chunk, p_total)
        for i in range(THREAD_M):
            for j in range(THREAD_N):
                acc[i, j] = 0
        for m in range(_PER_THREAD):
            gc = col0 + lane + _LANES * m
            ci = gc // khw
            rem = gc - ci * khw
            fi = rem // kw
            col_dh[m] = fi * dh - ph
            col_dw[m] = (rem - fi * kw) * dw - pw
            col_ci[m] = ci if gc < k else (-1 if gc == k else -2)
        img, oh, ow = _digits(s * chunk + kk, h_out, w_out)
        for p0 in range(s * chunk, p_end, TILE_K):
            inside = p0 + kk < p_end
            for r in range(lane, TILE_M, _LANES):
                co = row0 + r
                # if/else statements, not a conditional expression: that would unify the float32
                # load with the int 0 into a float64.
                if inside and co < c_out:
                    a_tile[kk, r] = grad_out[img, co, oh, ow]
                else:
                    a_tile[kk, r] = 0
            for m in range(_PER_THREAD):
                c = lane + _LANES * m
                ci = col_ci[m]
                b_tile[kk, c] = 0
                if inside:
                    if ci >= 0:
                        ih = oh * sh + col_dh[m]
                        iw = ow * sw + col_dw[m]
                        if 0 <= ih < h and 0 <= iw < wid:
                            b_tile[kk, c] = x[img, ci, ih, iw]
                    elif ci == -1:
                        b_tile[kk, c] = 1
            img, oh, ow = _advance(img, oh, ow, step_img, step_oh, step_ow, h_out, w_out)
            cuda.syncthreads()
            tile_multiply_accumulate(a_tile, b_tile, acc, a_reg, b_reg, ty, tx)
            cuda.syncthreads()
        for i in range(THREAD_M):
            co = row0 + ty + THREADS_M * i
            if co < c_out:
                for j in range(THREAD_N):
                    gc = col0 + tx + THREADS_N * j
                    if gc < cols:
                        partial[s, co, gc] = acc[i, j]


@cuda.jit
def _weight_grad_small_kernel(x, grad_out, sh, sw, ph, pw, dh, dw, kh, kw, chunk, partial):
    # The partials of _weight_grad_partial_kernel when [grad_w | grad_b] has at most SMALL_MAX_OUTPUTS
    # elements in one 64x64 tile (first layers: 32 x 10 for the Keras convnet's): one block per chunk of P,
    # one thread per output element (up to _SMALL_PER_THREAD), its dot product over SMALL_P pixels at a
    # time from shared memory. The 64x64 tile step would compute 4096 outputs to keep 320.
    n_img, h, wid, c_out, h_out, w_out, splits, cols, k, p_total = _partial_sizes(x, grad_out, partial)
    khw = kh * kw
    g_s = cuda.shared.array((SMALL_P, _A_COLS), x.dtype)
    x_s = cuda.shared.array((SMALL_P, _B_COLS), x.dtype)
    col_ci = cuda.shared.array(TILE_N, np.int32)  # as in _weight_grad_partial_kernel
    col_dh = cuda.shared.array(TILE_N, np.int32)
    col_dw = cuda.shared.array(TILE_N, np.int32)
    acc = cuda.local.array(_SMALL_PER_THREAD, x.dtype)
    t = cuda.threadIdx.x
    if t < cols:
        ci = t // khw
        rem = t - ci * khw
        fi = rem // kw
        col_dh[t] = fi * dh - ph
        col_dw[t] = (rem - fi * kw) * dw - pw
        col_ci[t] = ci if t < k else -1
    pl = t % SMALL_P  # this thread loads pixel p0 + pl, at rows lane + _SMALL_LANES m
    lane = t // SMALL_P
    step_img, step_oh, step_ow = _digits(SMALL_P, h_out, w_out)
    for s in range(cuda.blockIdx.x, splits, cuda.gridDim.x):
        p_end = min((s + 1) * chunk, p_total)
        for m in range(_SMALL_PER_THREAD):
            acc[m] = 0
        img, oh, ow = _digits(s * chunk + pl, h_out, w_out)
        for p0 in range(s * chunk, p_end, SMALL_P):
            inside = p0 + pl < p_end
            cuda.syncthreads()  # the column table is written; nobody still reads the previous step's tiles
            for co in range(lane, c_out, _SMALL_LANES):
                if inside:
                    g_s[pl, co] = grad_out[img, co, oh, ow]
                else:
                    g_s[pl, co] = 0
            for c in range(lane, cols, _SMALL_LANES):
                ci = col_ci[c]
                x_s[pl, c] = 0
                if inside:
                    if ci >= 0:
                        ih = oh * sh + col_dh[c]
                        iw = ow * sw + col_dw[c]
                        if 0 <= ih < h and 0 <= iw < wid:
                            x_s[pl, c] = x[img, ci, ih, iw]
                    else:
                        x_s[pl, c] = 1
            img, oh, ow = _advance(img, oh, ow, step_img, step_oh, step_ow, h_out, w_out)
            cuda.syncthreads()
            for m in range(_SMALL_PER_THREAD):
                e = t + MATMUL_THREADS * m
                if e < c_out * cols:
                    co = e // cols
                    c = e - co * cols
                    for pp in range(SMALL_P):
                        acc[m] += g_s[pp, co] * x_s[pp, c]
        for m in range(_SMALL_PER_THREAD):
            e = t + MATMUL_THREADS * m
            if e < c_out * cols:
                co = e // cols
                partial[s, co, e - co * cols] = acc[m]


@cuda.jit(device=True)
def _output_through_tap(i, pad, tap, dilation, stride, size_out):
    """The output index ``o`` that sees input index ``i`` through filter tap ``tap`` along one axis
    (``o * stride - pad + tap * dilation == i``), or -1 when no output in ``[0, size_out)`` does."""
    t = i + pad - tap * dilation
    if t < 0:
        return -1
    if stride != 1:  # (no division on the common unit stride)
        if t % stride != 0:
            return -1
        t //= stride
    return t if t < size_out else -1


@cuda.jit(device=True)
def _input_grad_at(grad_out, w, img, ci, ih, iw, sh, sw, ph, pw, dh, dw, groups, zero):
    """``grad_x[img, ci, ih, iw]``: the sum over the outputs whose window covers it (no product with a
    position outside ``grad_out``, as the reference's scatter)."""
    c_out, c_in_g, kh, kw = w.shape
    c_out_g = c_out // groups
    h_out = grad_out.shape[2]
    w_out = grad_out.shape[3]
    # Input channel ci feeds only its group's output channels, through weight input-channel ci_w.
    grp = ci // c_in_g
    ci_w = ci - grp * c_in_g
    acc = zero
    for fi in range(kh):
        oh = _output_through_tap(ih, ph, fi, dh, sh, h_out)
        if oh < 0:
            continue
        for fj in range(kw):
            ow = _output_through_tap(iw, pw, fj, dw, sw, w_out)
            if ow < 0:
                continue
            for co in range(grp * c_out_g, (grp + 1) * c_out_g):
                acc += grad_out[img, co, oh, ow] * w[co, ci_w, fi, fj]
    return acc


@cuda.jit
def _conv2d_backward_input_kernel(grad_out, w, sh, sw, ph, pw, dh, dw, groups, out):
    n_img, c_in, h, wid = out.shape
    zero = out.dtype.type(0)
    for idx in range(cuda.grid(1), n_img * c_in * h * wid, cuda.gridsize(1)):
        img, ci, ih, iw = unravel4(idx, c_in, h, wid)
        out[img, ci, ih, iw] = _input_grad_at(grad_out, w, img, ci, ih, iw, sh, sw, ph, pw, dh, dw, groups, zero)


@cuda.jit
def _input_grad_gemm_kernel(grad_out, w, sh, sw, ph, pw, dh, dw, out):
    # out[ci, q] = sum over taps (co, i, j) of w[co, ci, i, j] * cols[(co, i, j), q], q = an input pixel
    # (img, ih, iw), cols = the grad_out element that sees q through the tap, or 0. groups == 1.
    n_img, c_in, h, wid = out.shape
    c_out, _, kh, kw = w.shape
    h_out = grad_out.shape[2]
    w_out = grad_out.shape[3]
    q_total = n_img * h * wid
    zero = out.dtype.type(0)
    # (The tile step's set-up, as in _weight_grad_partial_kernel.)
    a_tile = cuda.shared.array((TILE_K, _A_COLS), out.dtype)
    b_tile = cuda.shared.array((TILE_K, _B_COLS), out.dtype)
    acc = cuda.local.array((THREAD_M, THREAD_N), out.dtype)
    a_reg = cuda.local.array(THREAD_M, out.dtype)
    b_reg = cuda.local.array(THREAD_N, out.dtype)
    # The taps (co, i, j) of this thread's rows of the grad_out tile, moved on by TILE_K each step.
    b_co = cuda.local.array(_PER_THREAD, np.int32)
    b_fi = cuda.local.array(_PER_THREAD, np.int32)
    b_fj = cuda.local.array(_PER_THREAD, np.int32)
    bad = cuda.shared.array(1, np.int32)  # a weight of this tile is not finite
    t = cuda.threadIdx.x
    ty = t // THREADS_N
    tx = t % THREADS_N
    # Weights: this thread loads tap row a_kk at rows a_lane + _LANES m. Columns of grad_out: pixel
    # column b_c (consecutive threads, consecutive pixels: coalesced) at tap rows b_lane + b_step m.
    a_kk = t % TILE_K
    a_lane = t // TILE_K
    b_c = t % TILE_N
    b_lane = t // TILE_N
    b_step = MATMUL_THREADS // TILE_N
    step_co, step_fi, step_fj = _digits(TILE_K, kh, kw)
    tiles_n = (q_total + TILE_N - 1) // TILE_N
    tiles = ((c_in + TILE_M - 1) // TILE_M) * tiles_n
    for tile in range(cuda.blockIdx.x, tiles, cuda.gridDim.x):
        row0 = (tile // tiles_n) * TILE_M
        col0 = (tile % tiles_n) * TILE_N
        cuda.syncthreads()  # everyone has read the previous tile's flag
        if t == 0:
            bad[0] = 0
        cuda.syncthreads()  # ... and it is cleared before any load may set it
        for i in range(THREAD_M):
            for j in range(THREAD_N):
                acc[i, j] = 0
        q = col0 + b_c
        img, ih, iw = unravel3(q, h, wid)
        a_co, a_fi, a_fj = _digits(a_kk, kh, kw)
        for m in range(_PER_THREAD):
            b_co[m], b_fi[m], b_fj[m] = _digits(b_lane + b_step * m, kh, kw)
        for _ in range(0, c_out * kh * kw, TILE_K):
            for r in range(a_lane, TILE_M, _LANES):
                ci = row0 + r
                if a_co < c_out and ci < c_in:
                    v = w[a_co, ci, a_fi, a_fj]
                    a_tile[a_kk, r] = v
                    if not math.isfinite(v):
                        bad[0] = 1
                else:
                    a_tile[a_kk, r] = 0
            a_co, a_fi, a_fj = _advance(a_co, a_fi, a_fj, step_co, step_fi, step_fj, kh, kw)
            for m in range(_PER_THREAD):
                kk = b_lane + b_step * m
                co = b_co[m]
                b_tile[kk, b_c] = 0
                if co < c_out and q < q_total:
                    oh = _output_through_tap(ih, ph, b_fi[m], dh, sh, h_out)
                    ow = _output_through_tap(iw, pw, b_fj[m], dw, sw, w_out)
                    if oh >= 0 and ow >= 0:
                        b_tile[kk, b_c] = grad_out[img, co, oh, ow]
                b_co[m], b_fi[m], b_fj[m] = _advance(co, b_fi[m], b_fj[m], step_co, step_fi, step_fj, kh, kw)
            cuda.syncthreads()
            tile_multiply_accumulate(a_tile, b_tile, acc, a_reg, b_reg, ty, tx)
            cuda.syncthreads()
        for j in range(THREAD_N):
            q = col0 + tx + THREADS_N * j
            if q < q_total:
                img, ih, iw = unravel3(q, h, wid)
                for i in range(THREAD_M):
                    ci = row0 + ty + THREADS_M * i
                    if ci < c_in:
                        out[img, ci, ih, iw] = acc[i, j]
        cuda.syncthreads()  # the flag is complete (also when the loop above ran no step)
        if bad[0] != 0:  # rare: overwrite this thread's outputs with the direct sums
            for e in range(THREAD_M * THREAD_N):
                q = col0 + tx + THREADS_N * (e % THREAD_N)
                ci = row0 + ty + THREADS_M * (e // THREAD_N)
                if q < q_total and ci < c_in:
                    img, ih, iw = unravel3(q, h, wid)
                    out[img, ci, ih, iw] = _input_grad_at(grad_out, w, img, ci, ih, iw, sh, sw, ph, pw, dh, dw, 1,
                                                          zero)


@cuda.jit
def _conv2d_backward_weight_kernel(x, grad_out, sh, sw, ph, pw, dh, dw, grad_w, grad_b):
    # Grouped convolutions. Rows 0 .. grad_w.size-1 are grad_w elements, the next C_out rows grad_b.
    # grad_w is (C_out, C_in / groups, kH, kW): weight (co, ci) reads input channel
    # (co // (C_out / groups)) * C_in / groups + ci.
    n_img, c_in_x, h, wid = x.shape
    c_out, c_in, kh, kw = grad_w.shape
    c_out_g = c_out // (c_in_x // c_in)
    h_out = grad_out.shape[2]
    w_out = grad_out.shape[3]
    hw_out = h_out * w_out
    p_total = n_img * hw_out
    n_weight = c_out * c_in * kh * kw
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, x.dtype)
    for row in range(cuda.blockIdx.x, n_weight + c_out, cuda.gridDim.x):
        acc = x.dtype.type(0)
        co = row - n_weight
        ci = 0
        fi = 0
        fj = 0
        if row < n_weight:
            co, ci, fi, fj = unravel4(row, c_in, kh, kw)
            for p in range(cuda.threadIdx.x, p_total, cuda.blockDim.x):
                img, oh, ow = unravel3(p, h_out, w_out)
                ih = oh * sh - ph + fi * dh
                iw = ow * sw - pw + fj * dw
                if 0 <= ih < h and 0 <= iw < wid:
                    acc += grad_out[img, co, oh, ow] * x[img, (co // c_out_g) * c_in + ci, ih, iw]
        else:
            for p in range(cuda.threadIdx.x, p_total, cuda.blockDim.x):
                img, oh, ow = unravel3(p, h_out, w_out)
                acc += grad_out[img, co, oh, ow]
        # Every thread of the block reaches this call (the branch above is uniform per block).
        total = block_sum(buf, acc)
        if cuda.threadIdx.x == 0:
            if row < n_weight:
                grad_w[co, ci, fi, fj] = total
            else:
                grad_b[co] = total

