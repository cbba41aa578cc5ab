"""CUDA 2-D convolution (NCHW, cross-correlation as PyTorch) and its two gradients.

- ``conv2d`` is an implicit GEMM: ``y[n, :, oh, ow] = W (C_out, K) @ im2col(x) (K, P)``
  with ``K = C_in kH kW`` and ``P = N H_out W_out``. The im2col matrix is never
  built: the tile loader computes each element's input position on the fly
  (zero outside the padding). It reuses matmul's 64x64 tile / 4x4 register
  block compute step. Output columns run over ``P`` (``ow`` fastest), so a
  warp's stores are consecutive addresses.
- The two gradients are ``_conv_backward``'s kernels: implicit GEMMs on the same tile
  step (the weight gradient split along ``P``, summed in a fixed order), and direct
  deterministic kernels for grouped convolutions.
"""

from __future__ import annotations

import math
from typing import Any

from numba import cuda

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cuda import _conv_backward as _cb
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda._launch import unravel3, unravel4
from jitgrad.kernels.cuda.matmul import (
    MATMUL_THREADS,
    THREAD_M,
    THREAD_N,
    THREADS_M,
    THREADS_N,
    TILE_K,
    TILE_M,
    TILE_N,
    sum_splits_kernel,
    tile_multiply_accumulate,
)
from jitgrad.kernels.reference.conv import (
    check_conv2d_args,
    check_conv2d_backward_input_args,
    check_conv2d_backward_weight_args,
)

__all__: list[str] = kernel_names("conv")  # the one list: kernels/_constants.py


@cuda.jit
def _conv2d_kernel(x, w2, b, has_bias, sh, sw, ph, pw, dh, dw, kh, kw, h_out, w_out, out):
    # w2 is w viewed as (C_out, K); K index = (ci * kH + i) * kW + j.
    n_img, c_in, h, wid = x.shape
    c_out = w2.shape[0]
    k = w2.shape[1]
    hw_out = h_out * w_out
    p_total = n_img * hw_out
    # The GEMM micro-kernel's set-up, as in matmul's _matmul_kernel on purpose: shared and local
    # arrays must be declared in the kernel itself (a device function cannot hand them back), and
    # both kernels feed the one tile_multiply_accumulate; only the tile loads differ (implicit im2col here).
    a_tile = cuda.shared.array((TILE_K, TILE_M), x.dtype)
    b_tile = cuda.shared.array((TILE_K, TILE_N), x.dtype)
    acc = cuda.local.array((THREAD_M, THREAD_N), x.dtype)
    a_reg = cuda.local.array(THREAD_M, x.dtype)
    b_reg = cuda.local.array(THREAD_N, x.dtype)
    t = cuda.threadIdx.x
    ty = t // THREADS_N
    tx = t % THREADS_N
    tiles_n = (p_total + TILE_N - 1) // TILE_N
    tiles = ((c_out + TILE_M - 1) // TILE_M) * tiles_n
    khw = kh * kw
    for tile in range(cuda.blockIdx.x, tiles, cuda.gridDim.x):
        row0 = (tile // tiles_n) * TILE_M
        col0 = (tile % tiles_n) * TILE_N
        for i in range(THREAD_M):
            for j in range(THREAD_N):
                acc[i, j] = 0
        for k0 in range(0, k, TILE_K):
            for e in range(t, TILE_M * TILE_K, MATMUL_THREADS):
                r = e // TILE_K
                kk = e % TILE_K
                gr = row0 + r
                gk = k0 + kk
                # if/else statements, not a conditional expression: that would unify the float32
                # load with the int 0 into a float64 (an extra conversion per element).
                if gr < c_out and gk < k:
                    a_tile[kk, r] = w2[gr, gk]
                else:
                    a_tile[kk, r] = 0
            for e in range(t, TILE_N * TILE_K, MATMUL_THREADS):
                c = e % TILE_N
                kk = e // TILE_N
                gp = col0 + c
                gk = k0 + kk
                b_tile[kk, c] = 0
                if gp < p_total and gk < k:
                    img, oh, ow = unravel3(gp, h_out, w_out)
                    ci = gk // khw
                    rem_k = gk - ci * khw
                    fi = rem_k // kw
                    fj = rem_k - fi * kw
                    ih = oh * sh - ph + fi * dh
                    iw = ow * sw - pw + fj * dw
                    if 0 <= ih < h and 0 <= iw < wid:
                        b_tile[kk, c] = x[img, ci, ih, iw]
            cuda.syncthreads()
            tile_multiply_accumulate(a_tile, b_tile, acc, a_reg, b_reg, ty, tx)
            cuda.syncthreads()
        for j in range(THREAD_N):
            gp = col0 + tx + THREADS_N * j
            if gp < p_total:
                img, oh, ow = unravel3(gp, h_out, w_out)
                for i in range(THREAD_M):
                    co = row0 + ty + THREADS_M * i
                    if co < c_out:
                        if has_bias:
                            out[img, co, oh, ow] = acc[i, j] + b[co]
                        else:
                            out[img, co, oh, ow] = acc[i, j]


@cuda.jit
def _conv2d_grouped_kernel(x, w, b, has_bias, zero, sh, sw, ph, pw, dh, dw, groups, out):
    # Grouped/depthwise forward: one thread per output element, a direct sum over its
    # group's C_in/groups * kH * kW taps (short: the tiled GEMM would be mostly padding).
    n_img, c_in, h, wid = x.shape
    c_out, c_in_g, kh, kw = w.shape
    h_out = out.shape[2]
    w_out = out.shape[3]
    c_out_g = c_out // groups
    total = n_img * c_out * h_out * w_out
    for idx in range(cuda.grid(1), total, cuda.gridsize(1)):
        img, co, oh, ow = unravel4(idx, c_out, h_out, w_out)
        ci0 = (co // c_out_g) * c_in_g
        acc = zero  # of x's dtype: float32 accumulates in float32
        if has_bias:
            acc = b[co]
        for ci in range(c_in_g):
            for fi in range(kh):
                ih = oh * sh - ph + fi * dh
                if ih < 0 or ih >= h:
                    continue
                for fj in range(kw):
                    iw = ow * sw - pw + fj * dw
                    if 0 <= iw < wid:
                        acc += x[img, ci0 + ci, ih, iw] * w[co, ci, fi, fj]
        out[img, co, oh, ow] = acc


def conv2d(x: Any, w: Any, b: Any = None, *, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           out: Any = None, groups: int = 1) -> Any:
    d = check_conv2d_args(x, w, b, stride, padding, dilation, out, groups)
    if out is not None and any(a is not None and _launch.overlaps(out, a) for a in (x, w, b)):
        out.copy_to_device(conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups))
        return out
    if out is None:
        out = _launch.empty(d.output_shape, x.dtype)
    if out.size == 0:  # no launch: an empty grid, and w2[0] below would not exist
        return out
    if d.groups != 1:
        blocks, threads = _launch.grid_1d(math.prod(d.output_shape))
        bias = _launch.flat(w) if b is None else b
        _conv2d_grouped_kernel[blocks, threads](x, w, bias, b is not None, x.dtype.type(0), *d.stride, *d.padding,
                                                *d.dilation, d.groups, out)
        return out
    k = d.c_in * d.kh * d.kw
    w2 = w.reshape(d.c_out, k)
    blocks = _launch.grid_tiles(d.c_out, d.n * d.h_out * d.w_out, TILE_M, TILE_N)
    # Without a bias the kernel still needs an array of the right dtype to type-check; it is never read.
    bias = w2[0] if b is None else b
    _conv2d_kernel[blocks, MATMUL_THREADS](x, w2, bias, b is not None, *d.stride, *d.padding, *d.dilation,
                                           d.kh, d.kw, d.h_out, d.w_out, out)
    return out


def conv2d_backward_input(grad_out: Any, w: Any, *, input_shape: tuple[int, int, int, int], stride: Any = 1,
                          padding: Any = 0, dilation: Any = 1, out: Any = None, groups: int = 1,
                          dims: Any = None) -> Any:
    d = check_conv2d_backward_input_args(grad_out, w, input_shape, stride, padding, dilation, out, groups, dims)
    if out is not None and (_launch.overlaps(out, grad_out) or _launch.overlaps(out, w)):
        out.copy_to_device(conv2d_backward_input(grad_out, w, input_shape=input_shape, stride=stride,
                                                 padding=padding, dilation=dilation, groups=groups))
        return out
    if out is None:
        out = _launch.empty(d.input_shape, w.dtype)
    if out.size == 0:
        return out
    if d.groups == 1 and d.c_in >= _cb.GEMM_MIN_C_IN:
        blocks = _launch.grid_tiles(d.c_in, d.n * d.h * d.w, TILE_M, TILE_N)
        _cb._input_grad_gemm_kernel[blocks, MATMUL_THREADS](grad_out, w, *d.stride, *d.padding, *d.dilation, out)
        return out
    blocks, threads = _launch.grid_1d(out.size)
    _cb._conv2d_backward_input_kernel[blocks, threads](grad_out, w, *d.stride, *d.padding, *d.dilation, d.groups,
                                                       out)
    return out


def conv2d_backward_weight(x: Any, grad_out: Any, *, weight_shape: tuple[int, int, int, int], stride: Any = 1,
                           padding: Any = 0, dilation: Any = 1, groups: int = 1,
                           dims: Any = None) -> tuple[Any, Any]:
    d = check_conv2d_backward_weight_args(x, grad_out, weight_shape, stride, padding, dilation, groups, dims)
    grad_w = _launch.empty(d.weight_shape, x.dtype)
    grad_b = _launch.empty((d.c_out,), x.dtype)
    if d.c_out == 0:
        return grad_w, grad_b
    if d.groups == 1:
        k = d.c_in * d.kh * d.kw
        p_total = d.n * d.h_out * d.w_out
        tiles = math.ceil(d.c_out / TILE_M) * math.ceil((k + 1) / TILE_N)
        splits, chunk = _cb.split_k(p_total, tiles)
        partial = _launch.empty((splits, d.c_out, k + 1), x.dtype)
        blocks = max(1, min(tiles * splits, _launch.MAX_BLOCKS))
        small = tiles == 1 and d.c_out * (k + 1) <= _cb.SMALL_MAX_OUTPUTS
        kernel = _cb._weight_grad_small_kernel if small else _cb._weight_grad_partial_kernel
        kernel[blocks, MATMUL_THREADS](x, grad_out, *d.stride, *d.padding, *d.dilation, d.kh, d.kw, chunk, partial)
        blocks, threads = _launch.split_sum_grid(splits, d.c_out * (k + 1))
        sum_splits_kernel[blocks, threads](partial.reshape(splits, d.c_out * (k + 1)), grad_w.reshape(d.c_out, k),
                                           grad_b.reshape(d.c_out, 1))
        return grad_w, grad_b
    blocks, threads = _launch.grid_rows(math.prod(d.weight_shape) + d.c_out)
    _cb._conv2d_backward_weight_kernel[blocks, threads](x, grad_out, *d.stride, *d.padding, *d.dilation,
                                                        grad_w, grad_b)
    return grad_w, grad_b
