"""CUDA adaptive 2-D average and max pooling (NCHW), forward and backward.

Forward: one thread per output element sums (or scans) its bin. Global
average pooling (``output_size = 1``): one block per plane, a deterministic
shared-memory tree sum. Backward is a gather, one thread per input element,
over the bins covering it: row ``r`` lies in bins
``[floor(r H_out / H), ceil((r + 1) H_out / H))``. No atomics.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda._launch import MAX_THREADS_PER_BLOCK, block_sum, unravel4
from jitgrad.kernels.reference.pooling_adaptive import check_adaptive_backward, check_adaptive_forward

__all__: list[str] = kernel_names("pooling_adaptive")  # the one list: kernels/_constants.py


@cuda.jit(device=True)
def _bin(i, size, out):
    return (i * size) // out, ((i + 1) * size + out - 1) // out


@cuda.jit(device=True)
def _covering(r, size, out):
    """Bins ``[lo, hi)`` whose range contains input index ``r``."""
    return (r * out) // size, ((r + 1) * out + size - 1) // size


@cuda.jit(device=True)
def _output_bin(idx, c, h, w, h_out, w_out):
    """Output element ``idx``'s (image, channel, i, j) and its input bin ``[h0, h1) x [w0, w1)``."""
    img, ci, i, j = unravel4(idx, c, h_out, w_out)
    h0, h1 = _bin(i, h, h_out)
    w0, w1 = _bin(j, w, w_out)
    return img, ci, i, j, h0, h1, w0, w1


@cuda.jit
def _global_avg_kernel(x, inv_count, zero, y):
    # x is (planes, H*W); one block per plane.
    planes, hw = x.shape
    buf = cuda.shared.array(MAX_THREADS_PER_BLOCK, x.dtype)
    for p in range(cuda.blockIdx.x, planes, cuda.gridDim.x):
        acc = zero
        for k in range(cuda.threadIdx.x, hw, cuda.blockDim.x):
            acc += x[p, k]
        total = block_sum(buf, acc)
        if cuda.threadIdx.x == 0:
            y[p] = total * inv_count


@cuda.jit
def _avg_kernel(x, inv_h, inv_w, zero, out):
    n, c, h, w = x.shape
    h_out, w_out = out.shape[2], out.shape[3]
    for idx in range(cuda.grid(1), n * c * h_out * w_out, cuda.gridsize(1)):
        img, ci, i, j, h0, h1, w0, w1 = _output_bin(idx, c, h, w, h_out, w_out)
        acc = zero
        for r in range(h0, h1):
            for col in range(w0, w1):
                acc += x[img, ci, r, col]
        out[img, ci, i, j] = acc * inv_h[i] * inv_w[j]


@cuda.jit
def _avg_backward_kernel(grad_out, inv_h, inv_w, zero, out):
    n, c, h, w = out.shape
    h_out, w_out = grad_out.shape[2], grad_out.shape[3]
    for idx in range(cuda.grid(1), n * c * h * w, cuda.gridsize(1)):
        img, ci, r, col = unravel4(idx, c, h, w)
        i_lo, i_hi = _covering(r, h, h_out)
        j_lo, j_hi = _covering(col, w, w_out)
        acc = zero
        for i in range(i_lo, i_hi):
            for j in range(j_lo, j_hi):
                acc += grad_out[img, ci, i, j] * inv_h[i] * inv_w[j]
        out[img, ci, r, col] = acc


@cuda.jit
def _max_kernel(x, out, argmax):
    n, c, h, w = x.shape
    h_out, w_out = out.shape[2], out.shape[3]
    for idx in range(cuda.grid(1), n * c * h_out * w_out, cuda.gridsize(1)):
        img, ci, i, j, h0, h1, w0, w1 = _output_bin(idx, c, h, w, h_out, w_out)
        best = x[img, ci, h0, w0]
        k = h0 * w + w0
        # The first maximum wins; the first NaN wins and stays (v != v is the NaN test).
        for r in range(h0, h1):
            for col in range(w0, w1):
                v = x[img, ci, r, col]
                if best == best and (v > best or v != v):
                    best = v
                    k = r * w + col
        out[img, ci, i, j] = best
        argmax[img, ci, i, j] = k


@cuda.jit
def _max_backward_kernel(grad_out, argmax, zero, out):
    n, c, h, w = out.shape
    h_out, w_out = grad_out.shape[2], grad_out.shape[3]
    for idx in range(cuda.grid(1), n * c * h * w, cuda.gridsize(1)):
        img, ci, r, col = unravel4(idx, c, h, w)
        me = r * w + col
        i_lo, i_hi = _covering(r, h, h_out)
        j_lo, j_hi = _covering(col, w, w_out)
        acc = zero
        for i in range(i_lo, i_hi):
            for j in range(j_lo, j_hi):
                if argmax[img, ci, i, j] == me:
                    acc += grad_out[img, ci, i, j]
        out[img, ci, r, col] = acc


_INV_COUNTS: dict[tuple[int, int, str], Any] = {}


def _inv_counts(size: int, out: int, dtype: Any) -> Any:
    """Device array of ``1 / bin length`` per bin, in ``dtype`` (cached: uploaded once per geometry),
    so a float32 kernel never divides by an int promoted to float64."""
    key = (size, out, np.dtype(dtype).str)
    inv = _INV_COUNTS.get(key)
    if inv is None:
        i = np.arange(out)
        lengths = ((i + 1) * size + out - 1) // out - (i * size) // out
        inv = _INV_COUNTS[key] = cuda.to_device((1.0 / lengths).astype(dtype))
    return inv


def adaptive_avg_pool2d(x: Any, *, output_size: Any) -> Any:
    d = check_adaptive_forward(x, output_size)
    out = _launch.empty(d.output_shape, x.dtype)
    zero = np.dtype(x.dtype).type(0)
    if d.is_global:
        planes = d.n * d.c
        blocks, threads = _launch.grid_rows(planes)
        _global_avg_kernel[blocks, threads](x.reshape(planes, d.h * d.w), np.dtype(x.dtype).type(1 / (d.h * d.w)),
                                            zero, out.reshape(planes))
    else:
        blocks, threads = _launch.grid_1d(math.prod(d.output_shape))
        _avg_kernel[blocks, threads](x, _inv_counts(d.h, d.h_out, x.dtype), _inv_counts(d.w, d.w_out, x.dtype),
                                     zero, out)
    return out


def adaptive_avg_pool2d_backward(grad_out: Any, *, input_shape: tuple[int, ...]) -> Any:
    """A gather per input element: deterministic, no atomics."""
    d = check_adaptive_backward(grad_out, input_shape)
    out = _launch.empty(d.input_shape, grad_out.dtype)
    blocks, threads = _launch.grid_1d(math.prod(d.input_shape))
    _avg_backward_kernel[blocks, threads](grad_out, _inv_counts(d.h, d.h_out, grad_out.dtype),
                                          _inv_counts(d.w, d.w_out, grad_out.dtype), np.dtype(grad_out.dtype).type(0),
                                          out)
    return out


def adaptive_max_pool2d(x: Any, *, output_size: Any) -> tuple[Any, Any]:
    d = check_adaptive_forward(x, output_size)
    out = _launch.empty(d.output_shape, x.dtype)
    argmax = _launch.empty(d.output_shape, np.int32)
    blocks, threads = _launch.grid_1d(math.prod(d.output_shape))
    _max_kernel[blocks, threads](x, out, argmax)
    return out, argmax


def adaptive_max_pool2d_backward(grad_out: Any, argmax: Any, *, input_shape: tuple[int, ...]) -> Any:
    """A gather: each input element sums the bins that chose it. An ``argmax`` entry outside
    ``[0, H*W)`` routes nothing (checking it would need a host copy).
    """
    d = check_adaptive_backward(grad_out, input_shape, argmax)
    out = _launch.empty(d.input_shape, grad_out.dtype)
    blocks, threads = _launch.grid_1d(math.prod(d.input_shape))
    _max_backward_kernel[blocks, threads](grad_out, argmax, np.dtype(grad_out.dtype).type(0), out)
    return out
