"""CUDA 2-D max and average pooling (NCHW) and their gradients.

Forward: one thread per output element. Backward: one thread per *input*
element, which gathers from the (at most ``ceil(k / s)`` per axis) windows
that cover it, so overlapping windows add up without atomics and every run
gives the same bits.

``max_pool2d_backward`` takes the forward's window geometry (as PyTorch's
``max_pool2d_with_indices_backward`` does) so each input element visits only
the windows covering it. Device-side difference from the CPU wrapper, by
design: ``argmax`` entries are not range-checked (that needs a device-to-host
copy per call); an index that does not point into its own window is simply
never gathered.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from jitgrad.kernels._constants import kernel_names
from jitgrad.kernels.cuda import _launch
from jitgrad.kernels.cuda._launch import unravel4
from jitgrad.kernels.reference.pooling import (
    _check_avg_pool_backward, _check_avg_pool_forward, _check_max_pool_backward, _check_pool_forward,
)

__all__: list[str] = kernel_names("pooling")  # the one list: kernels/_constants.py


@cuda.jit(device=True)
def _covering_range(i, size_out, k, s, p):
    """Outputs ``o`` in ``[lo, hi)`` whose window ``[o*s - p, o*s - p + k)`` contains input ``i``."""
    # o*s - p <= i  <=>  o <= (i + p) // s ;  o*s - p + k > i  <=>  o >= (i + p - k) // s + 1
    hi = (i + p) // s + 1
    lo_num = i + p - k
    lo = 0 if lo_num < 0 else lo_num // s + 1
    if hi > size_out:
        hi = size_out
    return lo, hi


# Inlined in Numba's IR: a called device function would cost each thread a call and an exception flag.
@cuda.jit(device=True, inline="always")
def _planes(full, pooled):
    """``(C, H, W, H_out, W_out)`` of an input-shaped and an output-shaped NCHW array (every kernel's geometry)."""
    return full.shape[1], full.shape[2], full.shape[3], pooled.shape[2], pooled.shape[3]


@cuda.jit(device=True)
def _window(idx, c, h_out, w_out, sh, sw, ph, pw):
    """Output element ``idx``'s (image, channel, oh, ow) and its window's first row and column (may be < 0)."""
    img, ci, oh, ow = unravel4(idx, c, h_out, w_out)
    return img, ci, oh, ow, oh * sh - ph, ow * sw - pw


@cuda.jit(device=True)
def _covering_window(idx, c, h, w, h_out, w_out, kh, kw, sh, sw, ph, pw):
    """Input element ``idx``'s (image, channel, ih, iw) and the outputs [oh_lo, oh_hi) x [ow_lo, ow_hi) reading it."""
    img, ci, ih, iw = unravel4(idx, c, h, w)
    oh_lo, oh_hi = _covering_range(ih, h_out, kh, sh, ph)
    ow_lo, ow_hi = _covering_range(iw, w_out, kw, sw, pw)
    return img, ci, ih, iw, oh_lo, oh_hi, ow_lo, ow_hi


@cuda.jit(device=True)
def _avg_divisor(oh, ow, h, w, kh, kw, sh, sw, ph, pw, count_include_pad):
    if count_include_pad:
        # Without ceil_mode a window never runs past the padded input: always kh * kw.
        return kh * kw
    h0 = oh * sh - ph
    w0 = ow * sw - pw
    rows = min(h0 + kh, h) - max(h0, 0)
    cols = min(w0 + kw, w) - max(w0, 0)
    return rows * cols


@cuda.jit
def _max_pool2d_kernel(x, kh, kw, sh, sw, ph, pw, out, argmax):
    c, h, w, h_out, w_out = _planes(x, out)
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        img, ci, oh, ow, h0, w0 = _window(idx, c, h_out, w_out, sh, sw, ph, pw)
        # padding <= k // 2, so every window holds at least one real element; start from it.
        hs = max(h0, 0)
        ws = max(w0, 0)
        best = x[img, ci, hs, ws]
        best_at = hs * w + ws
        for ih in range(hs, min(h0 + kh, h)):
            for iw in range(ws, min(w0 + kw, w)):
                v = x[img, ci, ih, iw]
                # Strict '>' keeps the first maximum (PyTorch's tie rule); the first NaN wins, as argmax.
                if v > best or (v != v and best == best):
                    best = v
                    best_at = ih * w + iw
        out[img, ci, oh, ow] = best
        argmax[img, ci, oh, ow] = best_at


@cuda.jit
def _max_pool2d_backward_kernel(grad_out, argmax, kh, kw, sh, sw, ph, pw, out):
    c, h, w, h_out, w_out = _planes(out, grad_out)
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        img, ci, ih, iw, oh_lo, oh_hi, ow_lo, ow_hi = _covering_window(idx, c, h, w, h_out, w_out, kh, kw,
                                                                       sh, sw, ph, pw)
        me = ih * w + iw
        acc = out.dtype.type(0)
        for oh in range(oh_lo, oh_hi):
            for ow in range(ow_lo, ow_hi):
                if argmax[img, ci, oh, ow] == me:
                    acc += grad_out[img, ci, oh, ow]
        out[img, ci, ih, iw] = acc


@cuda.jit
def _avg_pool2d_kernel(x, kh, kw, sh, sw, ph, pw, count_include_pad, out):
    c, h, w, h_out, w_out = _planes(x, out)
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        img, ci, oh, ow, h0, w0 = _window(idx, c, h_out, w_out, sh, sw, ph, pw)
        acc = out.dtype.type(0)
        for ih in range(max(h0, 0), min(h0 + kh, h)):
            for iw in range(max(w0, 0), min(w0 + kw, w)):
                acc += x[img, ci, ih, iw]
        out[img, ci, oh, ow] = acc / out.dtype.type(
            _avg_divisor(oh, ow, h, w, kh, kw, sh, sw, ph, pw, count_include_pad))


@cuda.jit
def _avg_pool2d_backward_kernel(grad_out, kh, kw, sh, sw, ph, pw, count_include_pad, out):
    c, h, w, h_out, w_out = _planes(out, grad_out)
    for idx in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        img, ci, ih, iw, oh_lo, oh_hi, ow_lo, ow_hi = _covering_window(idx, c, h, w, h_out, w_out, kh, kw,
                                                                       sh, sw, ph, pw)
        acc = out.dtype.type(0)
        for oh in range(oh_lo, oh_hi):
            for ow in range(ow_lo, ow_hi):
                acc += grad_out[img, ci, oh, ow] / out.dtype.type(
                    _avg_divisor(oh, ow, h, w, kh, kw, sh, sw, ph, pw, count_include_pad))
        out[img, ci, ih, iw] = acc


def max_pool2d(x: Any, *, kernel_size: Any, stride: Any = None, padding: Any = 0) -> tuple[Any, Any]:
    d = _check_pool_forward(x, kernel_size, stride, padding)
    out = _launch.empty(d.output_shape, x.dtype)
    argmax = _launch.empty(d.output_shape, np.int32)
    blocks, threads = _launch.grid_1d(math.prod(d.output_shape))
    _max_pool2d_kernel[blocks, threads](x, d.kh, d.kw, *d.stride, *d.padding, out, argmax)
    return out, argmax


def max_pool2d_backward(grad_out: Any, argmax: Any, *, input_shape: tuple[int, ...], kernel_size: Any,
                        stride: Any = None, padding: Any = 0) -> Any:
    """A gather: each input element visits only the (at most ``ceil(k / s)`` per axis) windows
    covering it, so the result is deterministic without atomics.
    """
    d = _check_max_pool_backward(grad_out, argmax, input_shape, kernel_size, stride, padding)
    out = _launch.empty(d.input_shape, grad_out.dtype)
    blocks, threads = _launch.grid_1d(math.prod(d.input_shape))
    _max_pool2d_backward_kernel[blocks, threads](grad_out, argmax, d.kh, d.kw, *d.stride, *d.padding, out)
    return out


def avg_pool2d(x: Any, *, kernel_size: Any, stride: Any = None, padding: Any = 0,
               count_include_pad: bool = True) -> Any:
    d = _check_avg_pool_forward(x, kernel_size, stride, padding, count_include_pad)
    out = _launch.empty(d.output_shape, x.dtype)
    blocks, threads = _launch.grid_1d(math.prod(d.output_shape))
    _avg_pool2d_kernel[blocks, threads](x, d.kh, d.kw, *d.stride, *d.padding, bool(count_include_pad), out)
    return out


def avg_pool2d_backward(grad_out: Any, *, input_shape: tuple[int, ...], kernel_size: Any, stride: Any = None,
                        padding: Any = 0, count_include_pad: bool = True) -> Any:
    """A gather per input element: deterministic, no atomics."""
    d = _check_avg_pool_backward(grad_out, input_shape, kernel_size, stride, padding, count_include_pad)
    out = _launch.empty(d.input_shape, grad_out.dtype)
    blocks, threads = _launch.grid_1d(math.prod(d.input_shape))
    _avg_pool2d_backward_kernel[blocks, threads](grad_out, d.kh, d.kw, *d.stride, *d.padding,
                                                 bool(count_include_pad), out)
    return out
