"""Numba kernels for depthwise convolution (``groups == C_in``), forward and both backwards.

A depthwise filter sees one input channel: its GEMM has ``K = kH * kW``
(9 for 3x3), far too short to amortise packing, so im2col + GEMM is the
wrong algorithm (measured: see ``docs/performance.md``). These kernels
are direct: for every output row and every tap, one contiguous
multiply-add over the row's valid columns (with unit stride both operands
are unit-stride runs, which LLVM vectorises). Bounds are clipped per row
and tap instead of padding the input, so nothing is copied.

``m = C_out / C_in`` is the channel multiplier: output channel ``co``
reads input channel ``co // m``.

Parallelism is over disjoint writes only: forward over output planes
``(n, co)``, backward-input over input planes ``(n, c)`` (each sums the
``m`` output channels that read it), backward-weight over output channels
``co`` (each sums over the batch). No atomics: deterministic.
"""

from __future__ import annotations

from numba import njit, prange

from ._gemm import _jit


@njit(**_jit)
def _col_range(w_in, w_out, sw, offset):
    """Output columns ``ow`` whose input column ``ow * sw + offset`` lies in ``[0, w_in)``."""
    lo = 0
    if offset < 0:
        lo = (-offset + sw - 1) // sw
    hi = (w_in - 1 - offset) // sw + 1 if w_in - 1 - offset >= 0 else 0
    if hi > w_out:
        hi = w_out
    return lo, hi


@njit(parallel=True, **_jit)
def depthwise_forward(x, w, bias, has_bias, sh, sw, ph, pw, dh, dw, y):
    n_img, c_in, h, wid = x.shape
    c_out, _, kh, kw = w.shape
    h_out, w_out = y.shape[2], y.shape[3]
    m = c_out // c_in
    for task in prange(n_img * c_out):
        img = task // c_out
        co = task - img * c_out
        ci = co // m
        for oh in range(h_out):
            row = y[img, co, oh]
            b0 = bias[co] if has_bias else 0
            for ow in range(w_out):
                row[ow] = b0
            for i in range(kh):
                ih = oh * sh - ph + i * dh
                if ih < 0 or ih >= h:
                    continue
                src = x[img, ci, ih]
                for j in range(kw):
                    off = j * dw - pw
                    lo, hi = _col_range(wid, w_out, sw, off)
                    wv = w[co, 0, i, j]
                    if sw == 1:
                        for ow in range(lo, hi):
                            row[ow] += wv * src[ow + off]
                    else:
                        for ow in range(lo, hi):
                            row[ow] += wv * src[ow * sw + off]


@njit(parallel=True, **_jit)
def depthwise_backward_input(g, w, sh, sw, ph, pw, dh, dw, gx):
    n_img, c_in, h, wid = gx.shape
    c_out, _, kh, kw = w.shape
    h_out, w_out = g.shape[2], g.shape[3]
    m = c_out // c_in
    for task in prange(n_img * c_in):
        img = task // c_in
        ci = task - img * c_in
        plane = gx[img, ci]
        for ih in range(h):
            for iw in range(wid):
                plane[ih, iw] = 0
        for co in range(ci * m, ci * m + m):
            for oh in range(h_out):
                src = g[img, co, oh]
                for i in range(kh):
                    ih = oh * sh - ph + i * dh
                    if ih < 0 or ih >= h:
                        continue
                    dst = plane[ih]
                    for j in range(kw):
                        off = j * dw - pw
                        lo, hi = _col_range(wid, w_out, sw, off)
                        wv = w[co, 0, i, j]
                        if sw == 1:
                            for ow in range(lo, hi):
                                dst[ow + off] += wv * src[ow]
                        else:
                            for ow in range(lo, hi):
                                dst[ow * sw + off] += wv * src[ow]


@njit(parallel=True, **_jit)
def depthwise_backward_weight(x, g, sh, sw, ph, pw, dh, dw, gw, gb):
    n_img, c_in, h, wid = x.shape
    c_out, _, kh, kw = gw.shape
    h_out, w_out = g.shape[2], g.shape[3]
    m = c_out // c_in
    for co in prange(c_out):
        ci = co // m
        for i in range(kh):
            for j in range(kw):
                gw[co, 0, i, j] = 0
        zero = gw[co, 0, 0, 0]  # a 0 of the array's dtype (float32 stays float32)
        bsum = zero
        for img in range(n_img):
            for oh in range(h_out):
                src = g[img, co, oh]
                for ow in range(w_out):
                    bsum += src[ow]
                for i in range(kh):
                    ih = oh * sh - ph + i * dh
                    if ih < 0 or ih >= h:
                        continue
                    xrow = x[img, ci, ih]
                    for j in range(kw):
                        off = j * dw - pw
                        lo, hi = _col_range(wid, w_out, sw, off)
                        acc = zero
                        if sw == 1:
                            for ow in range(lo, hi):
                                acc += src[ow] * xrow[ow + off]
                        else:
                            for ow in range(lo, hi):
                                acc += src[ow] * xrow[ow * sw + off]
                        gw[co, 0, i, j] += acc
        gb[co] = bsum
